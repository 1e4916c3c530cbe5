package vswitch

// The MTU check. A namespace can raise its own interface's MTU, and ports
// of a network may have been attached with different MTUs; a frame larger
// than its receiver's MTU is one the receiver never agreed to take (a
// kernel takes it from a TAP all the same, and a receiver that routes it
// on passes the problem further). So a frame is checked twice, as a Linux
// bridge checks it once on the way out (is_skb_forwardable):
//
//   - on the way in, against the MTU of the port it came from, which its
//     namespace was attached with: a namespace that raised its MTU is
//     caught here, and the drop is counted on its port;
//   - on the way out, against the MTU of each port it goes to, when that
//     is smaller: counted on that port, as a frame it could not take; but
//     not to a port that takes any size (PortInfo.TakesAnySize: the
//     gateway, whose host stack takes what it is given, as a bridge's own
//     interface does).
//
// Both start with one comparison of the frame's length against the
// port's MTU plus an Ethernet header; only a longer frame is looked at
// further. The size that counts is the IP packet's, what the MTU
// bounds: the frame less its Ethernet header and up to two VLAN tags. A
// super-frame (GSO) is judged by the segments the kernel will cut it
// into: their headers and the segment size of the virtio header.

import (
	"encoding/binary"
	"math"

	"github.com/tapswitch/tapswitch/device"
)

// maxFrameFor is Port.maxFrame for an MTU.
func maxFrameFor(mtu int) int {
	if mtu <= 0 {
		return math.MaxInt
	}
	return mtu + ethHdrLen
}

// tooBig reports whether b, a virtio net header and a frame longer than
// the port's maxFrame, carries more than the port's MTU.
func (p *Port) tooBig(b []byte) bool {
	return packetSize(b) > p.mtu
}

// packetSize is the size of the IP packet (or whatever the frame carries)
// of b, a virtio net header and a frame of at least ethHdrLen bytes, or
// for a super-frame the size of its largest segment.
func packetSize(b []byte) int {
	f := b[HdrLen:]
	l3 := ethHdrLen
	et := be16(f[12:])
	for range maxVLANs {
		if (et != etherVLAN && et != etherQinQ) || len(f) < l3+4 {
			break
		}
		et = be16(f[l3+2:])
		l3 += 4
	}
	size := len(f) - l3
	gso := b[1] &^ device.GSOECN
	if gso == device.GSONone {
		return size
	}
	// Where the transport header starts: found by parsing, or at
	// csum_start, which the kernel sets for every super-frame it hands
	// over, whichever is later. A sender with a packet socket chooses
	// csum_start, so it is not taken alone: one set short would make
	// the segments look smaller than they are.
	l4 := transportOffset(f, l3, et)
	if b[0]&device.VnetFlagNeedsCsum != 0 {
		l4 = max(l4, int(binary.LittleEndian.Uint16(b[6:])))
	}
	if l4 < l3 || l4 >= len(f) {
		// Headers that cannot be found: judged whole, so such a
		// super-frame is dropped rather than let through unmeasured.
		return size
	}
	th := 8 // UDP
	if gso == device.GSOTCPv4 || gso == device.GSOTCPv6 {
		th = 60 // the most a TCP header can be, if it is not there
		if l4+12 < len(f) {
			th = max(20, int(f[l4+12]>>4)*4)
		}
	}
	seg := l4 - l3 + th + int(binary.LittleEndian.Uint16(b[4:]))
	return min(seg, size)
}

// transportOffset finds where the header after the IP header starts in
// f, whose IP header of Ethertype et starts at l3; -1 if it cannot.
func transportOffset(f []byte, l3 int, et int) int {
	h := f[l3:]
	switch et {
	case etherIPv4:
		if len(h) < 20 || h[0]>>4 != 4 || int(h[0]&0xf)*4 < 20 {
			return -1
		}
		return l3 + int(h[0]&0xf)*4
	case etherIPv6:
		if len(h) < 40 || h[0]>>4 != 6 {
			return -1
		}
		c := walkIPv6(h)
		if c.frag != fragNone {
			return -1
		}
		return l3 + c.off
	}
	return -1
}
