// Package segment cuts super-frames into wire-sized frames and completes
// partial checksums in software, for the ports that take neither.
//
// A TAP hands the switch TCP super-frames of up to 64 KiB (and UDP ones,
// with USO) that the namespace's kernel left for the NIC to cut, with the
// transport checksum left to fill in (a virtio net header with GSO type,
// segment size and VnetFlagNeedsCsum). Another TAP takes such a frame
// whole, which is why the switch forwards 64 KiB at a time. A VXLAN
// tunnel, a capture or an in-memory test port does not: it declares so in
// its device.Caps, and the switch runs the frame through a Splitter, which
// does what Linux's skb_segment with tcp_gso_segment or __udp_gso_segment
// and skb_checksum_help would have done before a NIC without offloads.
//
// A Splitter reads the frame and never writes it, so one frame flooded to
// several ports can be cut for each of them. It allocates nothing: the
// caller gives it the buffer each segment goes into.
package segment
