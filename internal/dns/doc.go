// Package dns is the embedded DNS server of a tapswitch network.
//
// Every network has a gateway address held by a TAP in the daemon's own
// namespace, and the namespaces attached to the network use that gateway as
// their nameserver. A Server listens there on UDP and TCP port 53 and
//
//   - answers A, AAAA and PTR queries for the ports of its own network from
//     Records: a port "web" on network "front" is "web" and "web.front";
//   - answers an asker that is also on other networks (Config.Peers: its
//     namespace has a port on each) with their names too, as NAME and
//     NAME.NETWORK, its own network's first;
//   - answers NXDOMAIN, without forwarding, for any other single-label name
//     and any other name under the network's domain, or under the domain
//     of one of the asker's other networks, so that the names of networks
//     the asker is not on stay invisible (isolation);
//   - forwards every other query to the host's resolvers, read from
//     /etc/resolv.conf with UpstreamsFromResolvConf, except on an internal
//     network, which forwards nothing and answers SERVFAIL.
//
// It serves only the network's own ports (guard.go): queries must come
// from the network's subnet and arrive on its gateway interface, or get no
// answer at all. Each source has a query rate (ratelimit.go), forwards and
// TCP connections are bounded in all and per source (tcp.go), and both
// take their descriptors from the daemon's budget (package fdlimit). Every
// refusal is counted (Server.Stats) and logged at most once per ten
// seconds per reason.
//
// WriteResolvConf and RemoveResolvConf keep /etc/netns/NAME/resolv.conf, the
// file `ip netns exec NAME` bind-mounts over /etc/resolv.conf, pointing at
// the gateway, with the domains of the namespace's networks to search.
//
// The package imports github.com/miekg/dns as mdns to keep its own name.
package dns
