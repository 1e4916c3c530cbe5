// Package capture writes what a network's observers see (vswitch.Observer)
// as pcapng, for tshark, tcpdump and Wireshark: one interface per port,
// named after it, each packet flagged inbound (a frame the port sent into
// the switch) or outbound (a frame the switch sent to the port), and
// super-frames written as the wire-sized packets they stand for, cut by
// segment.Splitter with every checksum filled in.
//
// Filters are tcpdump's language, compiled to classic BPF by libpcap's
// own compiler (pcap_compile, through gopacket's binding) and run by
// golang.org/x/net/bpf's interpreter on the forwarding path, before a
// frame is copied, so that a filtered capture of a busy network copies
// only what it keeps.
//
//	                          switch (data path, never waits)               capture (its own goroutine)
//	forward ─▶ observers ─▶ Port? Match (BPF)? ─▶ free record? copy : lost++ ─▶ Session.Run ─▶ segment ─▶ pcapng ─▶ client
package capture
