package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

// Checksum forms a test frame may come with.
const (
	csumPartial = iota // NeedsCsum, the field holding the pseudo-header sum
	csumValid          // DataValid, the field holding the checksum
	csumNone           // no flag, the field holding the checksum
)

// stream builds the frames of one flow as its sender's stack hands them
// to a TAP: one per payload size, with consecutive IPv4 identifications
// from testID, TCP sequence numbers following each other from testSeq,
// sport as source port, and payload bytes that tell the frames apart.
func stream(tb testing.TB, sp frameSpec, sport uint16, sizes ...int) []built {
	tb.Helper()
	var out []built
	seq := uint32(testSeq)
	for k, size := range sizes {
		s := sp
		s.payload = size
		b := buildFrame(tb, s)
		for j := range b.payload {
			b.payload[j] = uint8(int(sport)*7 + k*31 + j)
		}
		binary.BigEndian.PutUint16(b.frame[b.l4:], sport)
		if !s.udp {
			binary.BigEndian.PutUint32(b.frame[b.l4+4:], seq)
		}
		seq += uint32(size)
		if !s.v6 {
			binary.BigEndian.PutUint16(b.frame[b.l3+4:], uint16(testID+k))
			fixIPv4(b)
		}
		out = append(out, b)
	}
	return out
}

// fixIPv4 sets the IPv4 header checksum of b.
// A header whose IHL was changed past the frame, or below 20, is left as
// it is.
func fixIPv4(b built) {
	if b.spec.v6 || len(b.frame) < b.l3+ipv4MinLen {
		return
	}
	ip := b.frame[b.l3:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < ipv4MinLen || ihl > len(ip) {
		return
	}
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^refSum(ip[:ihl], 0))
}

// edit returns a copy of b changed by fn, its IPv4 header checksum set
// again.
func edit(b built, fn func(f []byte, b built)) built {
	b.frame = bytes.Clone(b.frame)
	b.payload = b.frame[b.hdrEnd:]
	fn(b.frame, b)
	fixIPv4(b)
	return b
}

// withCsum returns a copy of b with its transport checksum in form mode.
func withCsum(b built, mode int) built {
	if mode == csumPartial {
		return b
	}
	b.frame = bytes.Clone(b.frame)
	b.payload = b.frame[b.hdrEnd:]
	f := b.frame
	csumOff, proto := tcpCsumOff, uint8(protoTCP)
	if b.spec.udp {
		csumOff, proto = udpCsumOff, protoUDP
	}
	src, dst := f[b.l3+12:b.l3+16], f[b.l3+16:b.l3+20]
	if b.spec.v6 {
		src, dst = f[b.l3+8:b.l3+24], f[b.l3+24:b.l3+40]
	}
	f[b.l4+csumOff], f[b.l4+csumOff+1] = 0, 0
	c := ^refSum(f[b.l4:], uint32(refFold(refPseudo(src, dst, proto, len(f)-b.l4))))
	if c == 0 && b.spec.udp {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[b.l4+csumOff:], c)
	b.h.Flags, b.h.CsumStart, b.h.CsumOffset = 0, 0, 0
	if mode == csumValid {
		b.h.Flags = device.VnetFlagDataValid
	}
	return b
}

// offset is where frames start in the test buffers, as in the switch.
const offset = device.Headroom

// toBufs lays frames out as the switch hands them to Coalesce.
func toBufs(frames ...built) [][]byte {
	bufs := make([][]byte, len(frames))
	for i, b := range frames {
		buf := make([]byte, offset+len(b.frame))
		b.h.Put(buf[offset-device.VnetHdrLen:])
		copy(buf[offset:], b.frame)
		bufs[i] = buf
	}
	return bufs
}

// cat joins runs of frames.
func cat(runs ...[]built) []built {
	var out []built
	for _, r := range runs {
		out = append(out, r...)
	}
	return out
}

// interleave takes one frame of each run in turn.
func interleave(runs ...[]built) []built {
	var out []built
	for k := 0; ; k++ {
		more := false
		for _, r := range runs {
			if k < len(r) {
				out = append(out, r[k])
				more = true
			}
		}
		if !more {
			return out
		}
	}
}

// testFlow names the flow of frame as the contract means it: the VLAN
// tag (one 802.1Q at most), the addresses, protocol and ports of TCP or
// UDP over IPv4 (not a fragment past the first) or IPv6 (past
// hop-by-hop, routing and destination options headers). ok is false for
// any other frame, whose order is kept only against frames that pass
// unchanged.
func testFlow(f []byte) (string, bool) {
	if len(f) < 14 {
		return "", false
	}
	tag := "-"
	l3, et := 14, binary.BigEndian.Uint16(f[12:])
	if et == etherTypeVLAN {
		if len(f) < 18 {
			return "", false
		}
		tag = fmt.Sprint(binary.BigEndian.Uint16(f[14:]))
		l3, et = 18, binary.BigEndian.Uint16(f[16:])
	}
	var addrs []byte
	var proto uint8
	l4 := 0
	switch et {
	case etherTypeIPv4:
		if len(f) < l3+20 || f[l3]>>4 != 4 || f[l3]&0x0f < 5 || binary.BigEndian.Uint16(f[l3+6:])&0x1fff != 0 {
			return "", false
		}
		addrs, proto, l4 = f[l3+12:l3+20], f[l3+9], l3+int(f[l3]&0x0f)*4
	case etherTypeIPv6:
		if len(f) < l3+40 || f[l3]>>4 != 6 {
			return "", false
		}
		addrs, proto, l4 = f[l3+8:l3+40], f[l3+6], l3+40
		for proto == 0 || proto == 43 || proto == 60 {
			if l4+8 > len(f) || l4 > MaxHeaderLen {
				return "", false
			}
			proto, l4 = f[l4], l4+(int(f[l4+1])+1)*8
		}
	default:
		return "", false
	}
	if (proto != protoTCP && proto != protoUDP) || l4+4 > len(f) {
		return "", false
	}
	return fmt.Sprintf("%s/%x/%d/%x", tag, addrs, proto, f[l4:l4+4]), true
}

// completed is the frame of buf (at offset) as its receiver gets it: with
// a partial checksum completed as the Splitter completes it.
func completed(tb testing.TB, buf []byte) []byte {
	tb.Helper()
	h, err := device.ParseVnetHdr(buf[offset-device.VnetHdrLen:])
	if err != nil || h.GSOType != device.GSONone || h.Flags&device.VnetFlagNeedsCsum == 0 {
		return buf[offset:]
	}
	var s Splitter
	segs, err := splitAll(tb, &s, h, buf[offset:], 0)
	if err != nil || len(segs) != 1 {
		return buf[offset:]
	}
	return segs[0]
}

// checkCoalesce runs c.Coalesce on bufs and checks its result against
// the contract whatever the frames: every input comes out once, either
// as the very buffer it was or cut from a super-frame (by a Splitter)
// as exactly the frame it was, its partial checksum completed; frames of
// one flow in their order; each output in the order of its first input;
// every super-frame one the kernel takes from a TAP and caps allows; bufs
// untouched. It returns the result and Segs().
func checkCoalesce(tb testing.TB, c *Coalescer, bufs [][]byte, caps device.Caps) ([][]byte, []int) {
	tb.Helper()
	orig := make([][]byte, len(bufs))
	want := make([][]byte, len(bufs))
	for i, b := range bufs {
		orig[i] = bytes.Clone(b)
		want[i] = bytes.Clone(completed(tb, b))
	}
	out := c.Coalesce(bufs, offset, caps)
	segs := c.Segs()
	if len(segs) != len(out) {
		tb.Fatalf("Coalesce() gave %d frames, Segs() %d counts", len(out), len(segs))
	}

	// pos[i] is where input i comes out, counting the frames a
	// super-frame is cut into.
	pos := make([]int, len(bufs))
	for i := range pos {
		pos[i] = -1
	}
	at, lastFirst := 0, -1
	for k, o := range out {
		firstIn := -1
		if segs[k] == 1 {
			for i, b := range bufs {
				if len(o) == len(b) && &o[0] == &b[0] {
					firstIn = i
				}
			}
			if firstIn < 0 {
				tb.Fatalf("out[%d]: Segs() 1, but not one of the input buffers", k)
			}
			if pos[firstIn] >= 0 {
				tb.Fatalf("out[%d]: input %d comes out twice", k, firstIn)
			}
			pos[firstIn] = at
			at++
		} else {
			frames := checkSuperFrame(tb, k, o, caps, segs[k])
			for _, seg := range frames {
				i := -1
				for j := range bufs {
					if pos[j] < 0 && bytes.Equal(want[j], seg) {
						i = j
						break
					}
				}
				if i < 0 {
					tb.Fatalf("out[%d], a super-frame of %d: segment %x is none of the inputs not yet out", k, segs[k], seg)
				}
				if firstIn < 0 {
					firstIn = i
				}
				pos[i] = at
				at++
			}
		}
		if firstIn <= lastFirst {
			tb.Fatalf("out[%d] starts with input %d, after out[%d] with input %d", k, firstIn, k-1, lastFirst)
		}
		lastFirst = firstIn
	}
	for i := range bufs {
		if pos[i] < 0 {
			tb.Fatalf("input %d does not come out", i)
		}
		if !bytes.Equal(bufs[i], orig[i]) {
			tb.Fatalf("Coalesce wrote to input %d", i)
		}
	}
	flows := make([]string, len(bufs))
	for i := range bufs {
		flows[i], _ = testFlow(bufs[i][offset:])
	}
	for i := range bufs {
		if flows[i] == "" {
			continue
		}
		for j := i + 1; j < len(bufs); j++ {
			if flows[j] == flows[i] && pos[j] < pos[i] {
				tb.Fatalf("inputs %d and %d, of one flow, come out as %d and %d", i, j, pos[i], pos[j])
			}
		}
	}
	return out, segs
}

// checkSuperFrame checks the k-th output, a super-frame said to carry
// n frames, against what the kernel takes from a TAP and caps allows,
// and returns its segments.
func checkSuperFrame(tb testing.TB, k int, o []byte, caps device.Caps, n int) [][]byte {
	tb.Helper()
	h, err := device.ParseVnetHdr(o[offset-device.VnetHdrLen:])
	if err != nil {
		tb.Fatalf("out[%d]: ParseVnetHdr() = %v", k, err)
	}
	if h.GSOType == device.GSONone || h.GSOSize == 0 || !caps.Takes(h.Flags, h.GSOType) {
		tb.Fatalf("out[%d]: header %+v with %d frames, for caps %+v", k, h, n, caps)
	}
	if h.Flags != device.VnetFlagNeedsCsum {
		tb.Fatalf("out[%d]: flags %#x, want NeedsCsum alone", k, h.Flags)
	}
	f := o[offset:]
	l3, et := skipEthernet(f)
	var src, dst []byte
	var l4 int
	proto := uint8(protoTCP)
	if h.GSOType == device.GSOUDPL4 {
		proto = protoUDP
	} else if h.GSOType&^device.GSOECN == device.GSOUDPL4 {
		tb.Fatalf("out[%d]: UDP_L4 with the ECN bit, which the kernel refuses", k)
	}
	switch et {
	case etherTypeIPv4:
		ip := f[l3:]
		l4 = l3 + int(ip[0]&0x0f)*4
		if got := int(binary.BigEndian.Uint16(ip[2:])); got != len(f)-l3 {
			tb.Fatalf("out[%d]: IPv4 total length %d, want %d", k, got, len(f)-l3)
		}
		if got := refSum(ip[:l4-l3], 0); got != 0xffff {
			tb.Fatalf("out[%d]: IPv4 header sums to %#x, want 0xffff", k, got)
		}
		if h.GSOType&^device.GSOECN == device.GSOTCPv6 {
			tb.Fatalf("out[%d]: TCPv6 super-frame of IPv4", k)
		}
		src, dst = ip[12:16], ip[16:20]
	case etherTypeIPv6:
		ip := f[l3:]
		l4 = l3 + ipv6Len
		if got := int(binary.BigEndian.Uint16(ip[4:])); got != len(f)-l4 {
			tb.Fatalf("out[%d]: IPv6 payload length %d, want %d", k, got, len(f)-l4)
		}
		if h.GSOType&^device.GSOECN == device.GSOTCPv4 {
			tb.Fatalf("out[%d]: TCPv4 super-frame of IPv6", k)
		}
		src, dst = ip[8:24], ip[24:40]
	default:
		tb.Fatalf("out[%d]: super-frame of EtherType %#x", k, et)
	}
	csumOff, hdrEnd := udpCsumOff, l4+udpLen
	if proto == protoTCP {
		csumOff, hdrEnd = tcpCsumOff, l4+int(f[l4+12]>>4)*4
	} else if got := int(binary.BigEndian.Uint16(f[l4+4:])); got != len(f)-l4 {
		tb.Fatalf("out[%d]: UDP length %d, want %d", k, got, len(f)-l4)
	}
	if int(h.CsumStart) != l4 || int(h.CsumOffset) != csumOff || int(h.HdrLen) != hdrEnd {
		tb.Fatalf("out[%d]: csum_start %d, csum_offset %d, hdr_len %d, want %d, %d, %d",
			k, h.CsumStart, h.CsumOffset, h.HdrLen, l4, csumOff, hdrEnd)
	}
	if got, want := binary.BigEndian.Uint16(f[l4+csumOff:]), refFold(refPseudo(src, dst, proto, len(f)-l4)); got != want {
		tb.Fatalf("out[%d]: checksum field %#x, want the pseudo-header sum %#x", k, got, want)
	}
	if len(f)-hdrEnd <= int(h.GSOSize) {
		tb.Fatalf("out[%d]: %d bytes of payload for a gso_size of %d: one segment", k, len(f)-hdrEnd, h.GSOSize)
	}
	var s Splitter
	frames, err := splitAll(tb, &s, h, f, 0)
	if err != nil {
		tb.Fatalf("out[%d]: Splitter.Reset() = %v", k, err)
	}
	if len(frames) != n {
		tb.Fatalf("out[%d]: cut into %d frames, Segs() says %d", k, len(frames), n)
	}
	if proto == protoUDP && n > maxUDPSegs {
		tb.Fatalf("out[%d]: %d datagrams, past %d", k, n, maxUDPSegs)
	}
	return frames
}
