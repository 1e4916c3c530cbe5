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
package vswitch
