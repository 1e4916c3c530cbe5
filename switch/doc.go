// Package vswitch is tapswitch's data plane: networks of ports, one
// receive loop per port, MAC learning, unicast forwarding and flooding.
//
// The folder is named switch; the package is vswitch because switch is a
// Go keyword.
//
// A Switch holds networks. A Network is one isolated Ethernet segment with
// its own forwarding table (package fdb) and an immutable snapshot of its
// ports behind an atomic pointer, replaced on attach and detach, so the
// forwarding path takes no lock. A Port wraps a Device (a TAP opened with
// a virtio net header) and runs the loop that reads the device and
// forwards each frame, whole, header included, to the ports it is for.
//
// Before a frame is learned from or forwarded, the switch checks its
// virtio net header against the frame, and, with port security on (the
// default), that the port sends only as itself: its MAC, and its IP
// addresses in ARP, IPv4, IPv6 (behind any extension headers, ip6.go)
// and Neighbor Discovery, and only Ethertypes it can check (security.go).
// Whatever the port's security, no frame to an 802.1D link-local group
// address is forwarded, nor one over the MTU of the port that sent it or
// of a port it is for (mtu.go), and broadcast, multicast and
// unknown-unicast frames are held to a rate per port (storm.go).
// Learning is bounded per port (PortInfo.MACLimit) and per network
// (fdb.Config.Limit); a frame from a source MAC that cannot be learned is
// dropped rather than flooded. Every drop is counted per port by reason
// (DropReason).
package vswitch
