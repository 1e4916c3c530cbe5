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
//
// A Coalescer does the reverse, for the ports that take super-frames: it
// merges runs of one flow's frames about to be written to one port into
// one super-frame, as the kernel's GRO would have merged them, so that a
// Splitter, or the receiver's kernel, cuts it back into exactly the
// frames that were merged. Sixty-four small UDP datagrams then cost the
// switch one write system call and the receiver one trip through its
// stack up to the socket.
package segment
