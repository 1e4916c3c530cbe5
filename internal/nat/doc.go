// Package nat gives tapswitch networks outbound access through the host:
// it enables IPv4/IPv6 forwarding and masquerades each network's subnet
// with nftables rules kept in a table of tapswitch's own.
//
// # The table
//
// New creates the table "tapswitch" in the inet family, replacing one a
// previous daemon left behind when it crashed, with two base chains:
//
//	table inet tapswitch {
//		chain postrouting { type nat hook postrouting priority srcnat; policy accept; }
//		chain forward { type filter hook forward priority filter; policy accept; }
//	}
//
// One inet table serves IPv4 and IPv6 subnets alike; nat chains in the
// inet family need Linux 5.2 or later.
//
// For a network front with subnet 10.20.0.0/24 behind gateway interface
// tsw-front, AddNetwork adds
//
//	postrouting: meta nfproto ipv4 ip saddr 10.20.0.0/24 oifname != "tsw-front" masquerade comment "network front"
//	forward:     iifname "tsw-front" accept comment "network front"
//	forward:     oifname "tsw-front" ct state established,related accept comment "network front"
//
// and for an internal network back behind tsw-back, placed ahead of every
// accept so that no other network's rule can let its traffic through,
//
//	forward: iifname "tsw-back" drop comment "network back"
//	forward: oifname "tsw-back" drop comment "network back"
//
// An internal network's traffic to its gateway address is input, not
// forward, so the host and the daemon's DNS still reach its containers.
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
// /proc/sys/net/ipv4/ip_forward, and for an IPv6 subnet to
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
// Two non-internal networks are not isolated from each other: traffic from
// one to the other is routed by the host and accepted like any other.
//
// WithNetNS makes a Manager work in another network namespace (its
// nftables and its forwarding switches), which is how the tests keep
// their rules out of the host they run on.
package nat
