package segment

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

var gatherSpecs = []struct {
	name string
	spec frameSpec
	mtu  int
}{
	{"tcp4 64k", frameSpec{tcpOpts: 12, flags: flagsACK | tcpFlagPSH, payload: max4TCP, gsoSize: 1448}, 1500},
	{"tcp4 fin psh cwr short last", frameSpec{tcpOpts: 12, flags: flagsAllEnd, payload: 3*1448 + 7, gsoSize: 1448}, 1500},
	{"tcp4 ip options vlan", frameSpec{tags: []uint16{etherTypeVLAN}, ipOpts: 12, tcpOpts: 12, flags: flagsACK, payload: 10000, gsoSize: 1448}, 1500},
	{"tcp6 64k", frameSpec{v6: true, tcpOpts: 12, flags: flagsACK, payload: max6TCP, gsoSize: 1428}, 1500},
	{"tcp6 destination options", frameSpec{v6: true, destOpt: 16, tcpOpts: 12, flags: flagsAllEnd, payload: 20000, gsoSize: 1428}, 1500},
	{"udp4 uso odd last", frameSpec{udp: true, payload: 20*1200 + 501, gsoSize: 1200}, 1500},
	{"udp6 uso", frameSpec{v6: true, udp: true, payload: 10 * 1000, gsoSize: 1000}, 1500},
}

// gatherAll cuts b with NextHeaders and returns each segment put
// together from its two pieces.
func gatherAll(t *testing.T, s *Splitter, b built, mtu int) [][]byte {
	t.Helper()
	if err := s.Reset(b.h, b.frame, mtu); err != nil {
		t.Fatal(err)
	}
	if !s.Gathers() {
		t.Fatal("Gathers() = false for a super-frame")
	}
	hdr := make([]byte, MaxHeaderLen)
	var segs [][]byte
	for range s.Segments() + 1 {
		n, payload, err := s.NextHeaders(hdr)
		if err != nil {
			t.Fatalf("NextHeaders() error = %v after %d segments", err, len(segs))
		}
		if n == 0 {
			break
		}
		segs = append(segs, append(bytes.Clone(hdr[:n]), payload...))
	}
	if len(segs) != s.Segments() {
		t.Fatalf("NextHeaders() yielded %d segments, Segments() = %d", len(segs), s.Segments())
	}
	return segs
}

// TestNextHeaders: the segments gathered from NextHeaders' pieces are
// Next's, byte for byte; with Partial, but for the transport checksum,
// which holds the pseudo-header seed that a sum from the transport
// header to the end completes to Next's checksum.
func TestNextHeaders(t *testing.T) {
	for _, c := range gatherSpecs {
		t.Run(c.name, func(t *testing.T) {
			b := buildFrame(t, c.spec)
			var s Splitter
			want, err := splitAll(t, &s, b.h, b.frame, c.mtu)
			if err != nil {
				t.Fatal(err)
			}
			got := gatherAll(t, &s, b, c.mtu)
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("segment %d differs from Next's at byte %d", i, firstDiff(got[i], want[i]))
				}
			}

			s.Partial = true
			partial := gatherAll(t, &s, b, c.mtu)
			if !s.Partial {
				t.Fatal("Reset cleared Partial")
			}
			copied, err := splitAll(t, &s, b.h, b.frame, c.mtu)
			if err != nil {
				t.Fatal(err)
			}
			at := b.l4 + tcpCsumOff
			if c.spec.udp {
				at = b.l4 + udpCsumOff
			}
			for i := range want {
				if !bytes.Equal(partial[i], copied[i]) {
					t.Fatalf("partial segment %d: NextHeaders and Next differ at byte %d", i, firstDiff(partial[i], copied[i]))
				}
				seg := partial[i]
				if !bytes.Equal(seg[:at], want[i][:at]) || !bytes.Equal(seg[at+2:], want[i][at+2:]) {
					t.Fatalf("partial segment %d differs from the whole one other than in its checksum", i)
				}
				wantSeed := refFold(refPseudo(seg[b.l3+12:b.l3+16], seg[b.l3+16:b.l3+20], protoOf(c.spec), len(seg)-b.l4))
				if c.spec.v6 {
					wantSeed = refFold(refPseudo(seg[b.l3+8:b.l3+24], seg[b.l3+24:b.l3+40], protoOf(c.spec), len(seg)-b.l4))
				}
				if got := binary.BigEndian.Uint16(seg[at:]); got != wantSeed {
					t.Fatalf("partial segment %d: checksum field %#04x, want the seed %#04x", i, got, wantSeed)
				}
				filled := ^refSum(seg[b.l4:], 0)
				if filled == 0 && c.spec.udp {
					filled = 0xffff
				}
				if w := binary.BigEndian.Uint16(want[i][at:]); filled != w {
					t.Fatalf("partial segment %d: completed checksum %#04x, want %#04x", i, filled, w)
				}
			}
		})
	}
}

func protoOf(sp frameSpec) uint8 {
	if sp.udp {
		return protoUDP
	}
	return protoTCP
}

// TestNextHeadersOneSegment: a frame of one segment is not gathered.
func TestNextHeadersOneSegment(t *testing.T) {
	b := buildFrame(t, frameSpec{tcpOpts: 12, flags: flagsACK, payload: 100})
	var s Splitter
	if err := s.Reset(b.h, b.frame, 1500); err != nil {
		t.Fatal(err)
	}
	if s.Gathers() {
		t.Fatal("Gathers() = true for a frame without GSO")
	}
	if _, _, err := s.NextHeaders(make([]byte, MaxHeaderLen)); err != ErrUnsupported {
		t.Fatalf("NextHeaders() error = %v, want ErrUnsupported", err)
	}
}

// TestReseed: a whole TCP or UDP frame, its checksum right or wrong,
// becomes a NeedsCsum frame whose completed checksum is right; any other
// frame is left as it is.
func TestReseed(t *testing.T) {
	for _, c := range []struct {
		name string
		spec frameSpec
	}{
		{"tcp4", frameSpec{tcpOpts: 12, flags: flagsACK, payload: 1000}},
		{"tcp4 no payload", frameSpec{tcpOpts: 12, flags: flagsACK}},
		{"tcp4 vlan ip options", frameSpec{tags: []uint16{etherTypeVLAN}, ipOpts: 8, flags: flagsACK, payload: 333}},
		{"tcp6", frameSpec{v6: true, tcpOpts: 12, flags: flagsACK, payload: 1000}},
		{"udp4 odd", frameSpec{udp: true, payload: 301}},
		{"udp6", frameSpec{v6: true, udp: true, payload: 64}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := buildFrame(t, c.spec)
			// Complete the frame's checksum to know the right one.
			var s Splitter
			segs, err := splitAll(t, &s, b.h, b.frame, 0)
			if err != nil || len(segs) != 1 {
				t.Fatalf("complete the frame: %v, %d segments", err, len(segs))
			}
			whole := segs[0]
			at := b.l4 + tcpCsumOff
			if c.spec.udp {
				at = b.l4 + udpCsumOff
			}
			for _, mangle := range []bool{false, true} {
				f := bytes.Clone(whole)
				if mangle {
					f[at] ^= 0x5a
				}
				hdr := make([]byte, device.VnetHdrLen)
				hdr[0] = device.VnetFlagDataValid
				if !Reseed(hdr, f) {
					t.Fatal("Reseed() = false")
				}
				h, err := device.ParseVnetHdr(append(hdr, f...))
				if err != nil {
					t.Fatal(err)
				}
				if h.Flags != device.VnetFlagNeedsCsum || h.GSOType != device.GSONone || int(h.CsumStart) != b.l4 || int(h.CsumStart+h.CsumOffset) != at {
					t.Fatalf("header %+v, want NeedsCsum at %d+%d", h, b.l4, at-b.l4)
				}
				filled := ^refSum(f[b.l4:], 0)
				if filled == 0 && c.spec.udp {
					filled = 0xffff
				}
				binary.BigEndian.PutUint16(f[at:], filled)
				if !bytes.Equal(f, whole) {
					t.Fatalf("completed frame differs from the right one at byte %d", firstDiff(f, whole))
				}
			}
		})
	}

	left := func(name string, f []byte) {
		t.Helper()
		hdr := []byte{device.VnetFlagDataValid, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		orig := bytes.Clone(f)
		if Reseed(hdr, f) {
			t.Errorf("%s: Reseed() = true", name)
		}
		if hdr[0] != device.VnetFlagDataValid || !bytes.Equal(f, orig) {
			t.Errorf("%s: changed", name)
		}
	}
	tcp := buildFrame(t, frameSpec{flags: flagsACK, payload: 100}).frame
	left("padded", append(bytes.Clone(tcp), 0, 0, 0, 0))
	left("cut short", tcp[:len(tcp)-1])
	frag := bytes.Clone(tcp)
	frag[etherLen+6] |= ipv4FlagMF
	left("fragment", frag)
	icmp := bytes.Clone(tcp)
	icmp[etherLen+9] = 1
	left("icmp", icmp)
	left("v6 extension header", buildFrame(t, frameSpec{v6: true, destOpt: 8, flags: flagsACK, payload: 10}).frame)
	arp := bytes.Clone(tcp[:42])
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	left("arp", arp)
	left("empty", nil)
}

// FuzzReseed: Reseed never panics, changes nothing when it refuses, and
// when it takes a frame, the checksum completed as its header says sums
// the transport segment to a valid one.
func FuzzReseed(f *testing.F) {
	f.Add(buildFrame(f, frameSpec{tcpOpts: 12, flags: flagsACK, payload: 100}).frame)
	f.Add(buildFrame(f, frameSpec{v6: true, udp: true, payload: 33}).frame)
	f.Add(buildFrame(f, frameSpec{tags: []uint16{etherTypeQinQ, etherTypeVLAN}, ipOpts: 4, flags: flagsACK, payload: 9}).frame)
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		hdr := make([]byte, device.VnetHdrLen)
		if !Reseed(hdr, frame) {
			if !bytes.Equal(frame, orig) || !bytes.Equal(hdr, make([]byte, device.VnetHdrLen)) {
				t.Fatal("refused, yet changed")
			}
			return
		}
		h, err := device.ParseVnetHdr(append(hdr, frame...))
		if err != nil {
			t.Fatalf("header: %v", err)
		}
		start, at := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
		if h.Flags != device.VnetFlagNeedsCsum || at+2 > len(frame) {
			t.Fatalf("header %+v for a frame of %d bytes", h, len(frame))
		}
		for i := range frame {
			if (i < at || i >= at+2) && frame[i] != orig[i] {
				t.Fatalf("byte %d changed, not the checksum", i)
			}
		}
		// Complete it, then the pseudo-header plus the segment must sum
		// to all ones.
		binary.BigEndian.PutUint16(frame[at:], ^refSum(frame[start:], 0))
		l3, et := skipEthernet(frame)
		var pseudo uint64
		if et == etherTypeIPv4 {
			pseudo = refPseudo(frame[l3+12:l3+16], frame[l3+16:l3+20], frame[l3+9], len(frame)-start)
		} else {
			pseudo = refPseudo(frame[l3+8:l3+24], frame[l3+24:l3+40], frame[l3+6], len(frame)-start)
		}
		if s := refFold(pseudo + uint64(refSum(frame[start:], 0))); s != 0xffff {
			t.Fatalf("completed checksum does not verify: sum %#04x", s)
		}
	})
}
