package segment

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

// Bits of FuzzSplit's shape argument.
const (
	shapeV6      = 1 << 0
	shapeUDP     = 1 << 1
	shapeTags    = 3 << 2 // how many VLAN tags, 3 meaning two 802.1Q
	shapeNoGSO   = 1 << 4
	shapeNoCsum  = 1 << 5
	shapeECN     = 1 << 6
	shapeAllEnds = 1 << 7 // FIN, PSH and CWR on the super-frame
)

// FuzzSplit builds a valid frame from the fuzzed parameters and checks
// the segments as TestSplit does: they decode, every checksum verifies,
// they carry the payload in order with contiguous sequence numbers and
// consecutive IPv4 IDs, and none is larger than the MTU. Then it feeds
// raw bytes, alone and laid over the valid frame's headers, to Reset and
// Next: no panic, no segment past MaxSegment, no write to the frame, and
// a frame Reset accepts yields segments whose checksums verify.
func FuzzSplit(f *testing.F) {
	f.Add(uint16(60000), uint16(1448), uint16(1500), uint8(0), uint8(0x30), []byte{})
	f.Add(uint16(60000), uint16(1428), uint16(1500), uint8(shapeV6|shapeAllEnds), uint8(0x32), []byte{})
	f.Add(uint16(20000), uint16(1200), uint16(1500), uint8(shapeUDP), uint8(0x00), []byte{})
	f.Add(uint16(20000), uint16(1200), uint16(0), uint8(shapeUDP|shapeV6|8), uint8(0x01), []byte{})
	f.Add(uint16(9000), uint16(8948), uint16(1500), uint8(4|shapeECN|shapeAllEnds), uint8(0xa3), []byte{})
	f.Add(uint16(1000), uint16(0), uint16(0), uint8(shapeNoGSO), uint8(0), []byte{})
	f.Add(uint16(1001), uint16(0), uint16(0), uint8(shapeNoGSO|shapeUDP|shapeV6), uint8(0), []byte{})
	f.Add(uint16(3000), uint16(1473), uint16(1500), uint8(shapeUDP), uint8(0), []byte{})
	f.Add(uint16(3000), uint16(1448), uint16(40), uint8(0), uint8(0x30), []byte{})
	f.Add(uint16(0), uint16(1448), uint16(0xff80), uint8(0), uint8(0), []byte{})
	f.Add(uint16(100), uint16(1448), uint16(0xff81), uint8(shapeV6|shapeUDP), uint8(0), []byte{})
	f.Add(uint16(3000), uint16(1448), uint16(1500), uint8(shapeNoCsum), uint8(0x30), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff})
	// Raw: a virtio net header (flags, type, hdr_len, gso_size,
	// csum_start, csum_offset; little-endian) and a frame.
	raw := buildFrame(f, frameSpec{tcpOpts: 12, flags: flagsACK, payload: 300, gsoSize: 100})
	hdr := make([]byte, device.VnetHdrLen)
	raw.h.Put(hdr)
	f.Add(uint16(0), uint16(0), uint16(1500), uint8(0), uint8(0), append(hdr, raw.frame...))
	raw = buildFrame(f, frameSpec{udp: true, v6: true, destOpt: 8, payload: 300, gsoSize: 100})
	raw.h.Put(hdr)
	f.Add(uint16(0), uint16(0), uint16(1500), uint8(0), uint8(0), append(hdr, raw.frame...))

	f.Fuzz(func(t *testing.T, payload, gso, mtu16 uint16, shape, opts uint8, raw []byte) {
		b, mtu, wantErr := fuzzFrame(t, payload, gso, mtu16, shape, opts)
		var s Splitter
		segs, err := splitAll(t, &s, b.h, b.frame, mtu)
		if err != wantErr {
			t.Fatalf("Reset(%+v, %d bytes, %d) = %v, want %v", b.h, len(b.frame), mtu, err, wantErr)
		}
		if err == nil {
			m := mtu
			if b.spec.gsoSize == 0 {
				// One segment, whatever the MTU.
				b.spec.gsoSize, m = len(b.payload), 0
			}
			checkSegments(t, b, m, segs)
		}

		if len(raw) >= device.VnetHdrLen {
			h := device.VnetHdr{
				Flags:      raw[0],
				GSOType:    raw[1],
				HdrLen:     binary.LittleEndian.Uint16(raw[2:]),
				GSOSize:    binary.LittleEndian.Uint16(raw[4:]),
				CsumStart:  binary.LittleEndian.Uint16(raw[6:]),
				CsumOffset: binary.LittleEndian.Uint16(raw[8:]),
			}
			splitAny(t, &s, h, raw[device.VnetHdrLen:], mtu)
		}
		// The valid frame with raw laid over its headers.
		bad := bytes.Clone(b.frame)
		for i := range min(len(raw), len(bad)) {
			bad[i] ^= raw[i]
		}
		splitAny(t, &s, b.h, bad, mtu)
	})
}

// fuzzFrame builds the frame FuzzSplit's parameters describe and returns
// it with the MTU to cut it at and the error Reset must return for it.
// An mtu16 from 0xff00 up is the headers' length -128 to +127, where the
// edge cases are. The payload is kept to at most 256 segments, so one run
// stays fast.
func fuzzFrame(tb testing.TB, payload, gso, mtu16 uint16, shape, opts uint8) (built, int, error) {
	sp := frameSpec{
		v6:      shape&shapeV6 != 0,
		udp:     shape&shapeUDP != 0,
		noCsum:  shape&shapeNoCsum != 0,
		ecn:     shape&shapeECN != 0,
		tcpOpts: int(opts>>4) % 11 * 4,
		flags:   flagsACK,
		gsoSize: max(int(gso), 1),
	}
	switch shape & shapeTags >> 2 {
	case 1:
		sp.tags = []uint16{etherTypeVLAN}
	case 2:
		sp.tags = []uint16{etherTypeQinQ, etherTypeVLAN}
	case 3:
		sp.tags = []uint16{etherTypeVLAN, etherTypeVLAN}
	}
	if shape&shapeAllEnds != 0 {
		sp.flags = flagsAllEnd
	}
	if sp.v6 {
		sp.destOpt = int(opts&0x0f) * 8
	} else {
		sp.ipOpts = int(opts&0x0f) % 11 * 4
	}
	if shape&shapeNoGSO != 0 {
		sp.gsoSize = 0
		sp.ecn = false
		if sp.noCsum {
			sp.noCsum = false // a plain copy is TestCopy's
		}
	}
	l4Len := tcpMinLen + sp.tcpOpts
	if sp.udp {
		l4Len = udpLen
	}
	ipHdr := ipv4MinLen + sp.ipOpts // counted in the IPv4 length
	limit := 0xffff
	if sp.v6 {
		ipHdr = ipv6Len + sp.destOpt // the payload length counts sp.destOpt
		limit += ipv6Len
	}
	sp.payload = min(int(payload), limit-ipHdr-l4Len)
	hdrEnd := etherLen + vlanLen*len(sp.tags) + ipHdr + l4Len
	mtu := int(mtu16)
	if mtu >= 0xff00 {
		mtu = max(1, ipHdr+l4Len+mtu-0xff80)
	}
	if mtu > 0 {
		limit = min(limit, int(mtu))
	}
	room := limit - ipHdr - l4Len

	var wantErr error
	switch {
	case sp.gsoSize == 0:
	case hdrEnd > MaxHeaderLen:
		wantErr = ErrUnsupported
	case sp.udp:
		if min(sp.gsoSize, sp.payload) > room {
			wantErr = ErrTooBig
		}
		sp.payload = min(sp.payload, sp.gsoSize*256)
	default:
		if room < 0 || (room == 0 && sp.payload > 0) {
			wantErr = ErrTooBig
		} else if room > 0 {
			sp.payload = min(sp.payload, min(sp.gsoSize, room)*256)
		}
	}
	return buildFrame(tb, sp), mtu, wantErr
}

// splitAny cuts any frame, valid or not. It must not panic, nor write to
// the frame, nor write a segment past MaxSegment; a segment of a frame
// Reset accepts must carry good checksums and the frame's payload.
func splitAny(tb testing.TB, s *Splitter, h device.VnetHdr, frame []byte, mtu int) {
	tb.Helper()
	orig := bytes.Clone(frame)
	if err := s.Reset(h, frame, mtu); err != nil {
		return
	}
	// What Reset found, to check the segments against.
	r := *s
	// A buffer longer than MaxSegment, filled, to catch a write past it.
	buf := bytes.Repeat([]byte{0xa5}, s.MaxSegment()+64)
	var payload []byte
	for i := 0; ; i++ {
		n, err := s.Next(buf[:s.MaxSegment()])
		if err != nil {
			tb.Fatalf("Next() error = %v with MaxSegment() = %d bytes of room", err, s.MaxSegment())
		}
		if n == 0 {
			if i != s.Segments() {
				tb.Fatalf("Next() yielded %d segments, Segments() = %d", i, s.Segments())
			}
			break
		}
		if i >= s.Segments() {
			tb.Fatalf("Next() yields more than Segments() = %d", s.Segments())
		}
		if n > s.MaxSegment() {
			tb.Fatalf("Next() = %d, past MaxSegment() = %d", n, s.MaxSegment())
		}
		for j := s.MaxSegment(); j < len(buf); j++ {
			if buf[j] != 0xa5 {
				tb.Fatalf("Next() wrote byte %d, past MaxSegment() = %d", j, s.MaxSegment())
			}
		}
		seg := buf[:n]
		switch r.kind {
		case kindCopy:
			if !bytes.Equal(seg, frame) {
				tb.Fatalf("Next() = %x, want the frame %x", seg, frame)
			}
		case kindCsum:
			// The checksum balances the sum of the bytes from
			// csum_start with the seed it replaced, unless an odd
			// csum_offset puts the field across two words.
			seed := uint32(binary.BigEndian.Uint16(frame[r.csumAt:]))
			if got := refSum(seg[r.l4:], seed); got != 0xffff && (r.csumAt-r.l4)%2 == 0 {
				tb.Fatalf("completed frame sums to %#x from csum_start, want 0xffff", got)
			}
		default:
			checkAnySegment(tb, r, seg)
			payload = append(payload, seg[r.hdrEnd:]...)
		}
	}
	if (r.kind == kindTCP || r.kind == kindUDP) && !bytes.Equal(payload, frame[r.hdrEnd:]) {
		tb.Fatalf("segments carry %d bytes of payload, not the frame's %d", len(payload), len(frame)-r.hdrEnd)
	}
	if !bytes.Equal(frame, orig) {
		tb.Fatalf("Reset or Next wrote to the frame")
	}
}

// checkAnySegment checks the checksums and lengths of a segment of a
// super-frame Reset accepted, r being the Splitter as Reset left it, with
// the reference sums rather than gopacket (the frame may hold headers
// gopacket does not decode).
func checkAnySegment(tb testing.TB, r Splitter, seg []byte) {
	tb.Helper()
	ip := seg[r.l3:]
	var src, dst []byte
	proto := uint8(protoTCP)
	if r.kind == kindUDP {
		proto = protoUDP
	}
	if r.v6 {
		if got, want := int(binary.BigEndian.Uint16(ip[4:])), len(ip)-ipv6Len; got != want {
			tb.Fatalf("IPv6 payload length = %d, want %d", got, want)
		}
		src, dst = ip[8:24], ip[24:40]
	} else {
		if got, want := int(binary.BigEndian.Uint16(ip[2:])), len(ip); got != want {
			tb.Fatalf("IPv4 total length = %d, want %d", got, want)
		}
		if got := refSum(ip[:r.l4-r.l3], 0); got != 0xffff {
			tb.Fatalf("IPv4 header sums to %#x, want 0xffff", got)
		}
		src, dst = ip[12:16], ip[16:20]
	}
	l4 := seg[r.l4:]
	if r.kind == kindUDP {
		if got, want := int(binary.BigEndian.Uint16(l4[4:])), len(l4); got != want {
			tb.Fatalf("UDP length = %d, want %d", got, want)
		}
	}
	if got := refSum(l4, uint32(refFold(refPseudo(src, dst, proto, len(l4))))); got != 0xffff {
		tb.Fatalf("%d-byte segment: transport checksum %#x: sum with the pseudo-header = %#x, want 0xffff",
			len(seg), binary.BigEndian.Uint16(seg[r.csumAt:]), got)
	}
	// The sum of a segment is never 0, so a computed checksum is never
	// 0xffff: in TCP, 0 is written as it is (in UDP as 0xffff).
	if proto == protoTCP && binary.BigEndian.Uint16(seg[r.csumAt:]) == 0xffff {
		tb.Fatalf("%d-byte segment: TCP checksum 0xffff, want 0x0000 (its computed form)", len(seg))
	}
}
