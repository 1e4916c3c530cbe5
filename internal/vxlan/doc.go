// Package vxlan is the data path of networks that span hosts: VXLAN
// (RFC 7348) over UDP, wire-compatible with Linux's vxlan device.
//
// An Endpoint is the VTEP of one daemon: receiving UDP sockets bound to
// the advertised address and the VXLAN port only, shared by every
// network, one or a few (Config.Receivers; SO_REUSEPORT: the kernel
// spreads the flows over them, a flow keeping to one), each read by a
// goroutine of its own with recvmmsg and UDP_GRO; and a few sending sockets on the
// same address, one outer source port each, picked by the inner flow's
// hash. A Tunnel is one network's port on it (one VNI), a device.Device
// the switch adds like any other port, with a queue per receiving socket:
// it takes super-frames, cuts them to the overlay MTU itself and sends
// each run of segments in one sendmsg with UDP_SEGMENT, the messages of a
// write in one sendmmsg.
//
// Linux only. The underlay may be IPv4 or IPv6.
package vxlan
