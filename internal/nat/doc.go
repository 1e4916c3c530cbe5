// Package nat gives tapswitch networks outbound access through the host:
// it enables IPv4/IPv6 forwarding and masquerades each network's subnet
// with nftables rules kept in a table of tapswitch's own.
//
// # The table
//
// New creates the table "tapswitch" in the inet family, replacing one a
// previous daemon left behind when it crashed, with three base chains:
//
//	table inet tapswitch {
//		chain postrouting { type nat hook postrouting priority srcnat; policy accept; }
//		chain forward { type filter hook forward priority filter; policy accept; }
//		chain input { type filter hook input priority filter; policy accept; }
//	}
//
// One inet table serves IPv4 and IPv6 subnets alike; nat chains in the
// inet family need Linux 5.2 or later.
//
// For a network front with subnet 10.20.0.0/24 behind gateway interface
// tsw-front, AddNetwork adds
//
//	forward (head): oifname "tsw-front" iifname != "tsw-front" ct state ! established,related ct status ! dnat counter drop comment "network front"
//	forward:        iifname "tsw-front" accept comment "network front"
//	forward:        oifname "tsw-front" ct state established,related accept comment "network front"
//	postrouting:    meta nfproto ipv4 ip saddr 10.20.0.0/24 oifname != "tsw-front" masquerade comment "network front"
//
// so that its containers reach out and get their replies, and nothing
// else enters: a host on the LAN that routes the subnet through this one
// reaches no container port, as with Docker 28. Published ports still
// work, as the daemon's proxy connects to the container from the host
// itself (the output hook, which no rule of this table filters), and so
// do ports that a destination NAT rule of someone else's opens (CNI's
// portmap, kube-proxy): whoever wrote that rule published the port.
//
// For an internal network back with gateway 10.30.0.1 behind tsw-back,
// AddNetwork adds
//
//	forward (head): iifname "tsw-back" counter drop comment "network back"
//	forward (head): oifname "tsw-back" counter drop comment "network back"
//	input:          iifname "tsw-back" ct state established,related accept comment "network back"
//	input:          iifname "tsw-back" ip daddr 10.30.0.1 udp dport 53 accept comment "network back"
//	input:          iifname "tsw-back" ip daddr 10.30.0.1 tcp dport 53 accept comment "network back"
//	input:          iifname "tsw-back" ip daddr 10.30.0.1 icmp type echo-request accept comment "network back"
//	input:          iifname "tsw-back" counter drop comment "network back"
//
// (an IPv6 network also admits neighbour solicitations and
// advertisements): its containers reach their own network, their
// gateway's DNS server and a ping of their gateway, and nothing of the
// host: not its services on any of its addresses, not the ports other
// networks publish, not other networks' gateways. The host, and the
// daemon, still reach the containers, as the replies are admitted.
//
// Every drop of the forward chain is inserted at its head and every
// accept appended, so a verdict never depends on the order in which
// networks were added. The input chain's rules each name one gateway
// interface, so networks cannot meet there. Every drop rule counts what
// it drops: `nft list table inet tapswitch` shows the counters, and
// Dropped sums them per network.
//
// The comment is how RemoveNetwork and Networks find a network's rules,
// and how an administrator reading `nft list table inet tapswitch` can
// tell them apart.
//
// Every call is one netlink batch, which the kernel applies as a single
// transaction: a call that fails leaves the rules as they were.
//
// # Forwarding is host-wide
//
// AddNetwork of a non-internal network writes 1 to
// /proc/sys/net/ipv4/ip_forward, and for an IPv6 subnet (of an IPv6
// network, or the second subnet of a dual-stack one, Network.Subnet6) to
// /proc/sys/net/ipv6/conf/all/forwarding. These switches belong to the
// whole network namespace, not to tapswitch's interfaces, and stay on
// after RemoveNetwork and Close, as Docker leaves them: turning them off
// could break routing that something else on the host set up meanwhile.
// Enabling IPv6 forwarding makes the kernel ignore router advertisements
// on interfaces whose accept_ra is 1; a host that takes its IPv6 default
// route from them needs accept_ra set to 2.
//
// # Known limits
//
// Every table hooked at forward sees each forwarded packet, and an accept
// in one table does not overrule a drop in another. A host firewall whose
// own forward chain drops, for example Docker's iptables FORWARD chain
// with policy DROP or a firewalld zone, still drops the traffic of
// tapswitch networks in its table. tapswitch does not touch other tables;
// such a host needs its firewall to accept the gateway interfaces, for
// Docker for example
//
//	iptables -I DOCKER-USER -i tsw-front -j ACCEPT
//	iptables -I DOCKER-USER -o tsw-front -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//
// Without WithIsolation, two non-internal networks are isolated only in
// that neither accepts new connections from the other; with it (as the
// daemon runs), nothing is forwarded between gateway interfaces at all.
//
// An ordinary network's gateway interface is not filtered at input: its
// containers reach the host's services and published ports through their
// gateway address, as Docker's containers do through docker0's.
//
// ARP is not IP, so no inet chain sees it: a container of an internal
// network that asks who has another address of the host (another
// network's gateway, the host's LAN address) gets the gateway
// interface's MAC in answer, as the kernel answers ARP for any of its
// addresses on any interface. That tells it the address is the host's;
// every IP packet it then sends there is dropped at input.
//
// WithNetNS makes a Manager work in another network namespace (its
// nftables and its forwarding switches), which is how the tests keep
// their rules out of the host they run on.
package nat
