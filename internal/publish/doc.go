// Package publish makes ports of containers reachable from the host:
// `tapswitch attach --publish 8080:80` has the daemon listen on host port
// 8080 and forward what arrives to port 80 of the container's address.
//
// Every published port is a Proxy inside the daemon: a listening socket
// and goroutines, not a process per port. A daemon with hundreds of
// published ports therefore costs goroutines and file descriptors, and
// stopping the daemon stops every one of them.
//
//	host client ──► HostIP:HostPort ──► Proxy ──► target:TargetPort
//	                (listening socket)  │          (through the network's
//	                                    │           gateway)
//	  tcp: one accepted connection, one dialed connection, spliced both ways
//	  udp: one connected socket per client address (a flow), replies sent
//	       back from the listening socket
//
// What clients can make a Proxy hold is bounded (limits.go): open TCP
// connections per port and per source, UDP flows per port and per source,
// descriptors from the daemon's fdlimit budget, and an idle timeout.
// Clients beyond a bound are turned away at once, counted by reason in
// Stats.Refused and logged at most once per 10 s.
//
// ParseSpec reads the --publish syntax, [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO],
// into a Mapping; Start runs a Proxy for a Mapping.
package publish
