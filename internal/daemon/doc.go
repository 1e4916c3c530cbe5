// Package daemon is tapswitchd's control plane: it turns API requests into
// TAP devices (package tap) and ports of the switch (package vswitch),
// validates what users ask for, and records the daemon's state.
//
// # Networks
//
// Every network is a network of the switch (its own forwarding table and
// port set, so frames never cross networks) with
//
//   - a subnet and its addresses (package ipam), chosen from the pool
//     unless given, overlapping no other network and no route of the host;
//     or two, one IPv4 and one IPv6 (a dual-stack network; subnets.go);
//   - a gateway: a TAP in the daemon's own namespace holding the gateway
//     address of each subnet, plugged into the network as a port of kind "gateway" and
//     named GatewayName (tsw- and 8 hex digits of the state directory and
//     the network's name, so that daemons with different state never
//     clash);
//   - a DNS server on the first gateway address, port 53, answering with
//     the names of the network's ports (package dns), and for a namespace
//     on several networks with those of its other networks too
//     (names.go);
//   - firewall rules in the daemon's own nftables table (TableName):
//     masquerade for outbound access unless the network is internal, and
//     no forwarding between networks (package nat).
//
// The network "default" always exists and takes ports attached without
// --network.
//
// # Ports
//
// A port asked for without addresses gets one from each of its network's
// subnets; an address asked for inside a subnet is reserved for it (and a
// port of a dual-stack network that asks for one family gets the other
// from the network); an address outside them is only put on the TAP, as
// on a plain wire between namespaces. A port with an address in a subnet
// gets a default route via the gateway of each family it has when it is
// the first of its namespace, a DNS name (the port's name, or for a port
// made by connect the name of the port it joined), and for a namespace
// attached by name a resolv.conf under /etc/netns naming the gateway of
// its first network and the domains of all its networks. Published ports are proxies in the
// daemon (package publish) to that address.
//
// # State and restarts
//
// The state file holds the networks with their IPAM state, and every
// attached port with what it takes to take it back. Its TAPs, and the
// gateways, are persistent: a daemon that stops (Close) or dies leaves
// them in their namespaces with their addresses and routes, and the
// namespaces attached by pid or path pinned under the state directory;
// the next daemon with the same state directory opens every TAP again and
// plugs it back in with its name, MAC, addresses, DNS name and published
// ports, so that a connection through the switch sees only a short loss,
// which TCP retransmits over. A port whose namespace or TAP is gone by
// then is dropped: its addresses are released, its pin and resolv.conf
// removed. CloseAndRemove is the other way to stop: it detaches every
// port and removes the gateways, pins and firewall table, and only the
// networks stay in the file for the next start.
package daemon
