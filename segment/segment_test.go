package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapswitch/tapswitch/device"
)

// Payloads that make the largest super-frame Linux hands a TAP: an IP
// packet of 64 KiB less one byte, with TCP timestamps.
const (
	max4TCP = 0xffff - ipv4MinLen - tcpMinLen - 12
	max6TCP = 0xffff - tcpMinLen - 12
)

const (
	flagsACK    = 0x10
	flagsAllEnd = flagsACK | tcpFlagFIN | tcpFlagPSH | tcpFlagCWR
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name     string
		spec     frameSpec
		mtu      int
		wantSegs int
	}{
		{"tcp4 64k mtu 1500", frameSpec{tcpOpts: 12, flags: flagsACK | tcpFlagPSH, payload: max4TCP, gsoSize: 1448}, 1500, 46},
		{"tcp4 64k mtu 0", frameSpec{tcpOpts: 12, flags: flagsACK, payload: max4TCP, gsoSize: 1448}, 0, 46},
		{"tcp4 mtu below gso size", frameSpec{tcpOpts: 12, flags: flagsACK, payload: 9000 * 3, gsoSize: 8948}, 1500, 19},
		{"tcp4 gso size below mtu", frameSpec{flags: flagsACK, payload: 4000, gsoSize: 536}, 1500, 8},
		{"tcp4 mtu 0 gso size 64k", frameSpec{flags: flagsACK, payload: 0xffff - 40, gsoSize: 0xffff}, 0, 1},
		// Linux's BIG TCP, past 64 KiB: an IPv4 length holds at most
		// 64 KiB less one byte, whatever the MTU and gso size.
		{"tcp4 gso size past what an IPv4 length holds", frameSpec{flags: flagsACK, payload: 70000, gsoSize: 0xffff}, 0x10000, 2},
		{"tcp4 last segment short", frameSpec{tcpOpts: 12, flags: flagsACK, payload: 3*1448 + 1, gsoSize: 1448}, 1500, 4},
		{"tcp4 payload a multiple of gso size", frameSpec{tcpOpts: 12, flags: flagsACK, payload: 4 * 1448, gsoSize: 1448}, 1500, 4},
		{"tcp4 payload within one segment", frameSpec{flags: flagsACK | tcpFlagPSH, payload: 100, gsoSize: 1448}, 1500, 1},
		{"tcp4 no payload", frameSpec{flags: flagsACK | tcpFlagFIN, payload: 0, gsoSize: 1448}, 1500, 1},
		{"tcp4 no payload headers fill the mtu", frameSpec{flags: flagsACK | tcpFlagFIN, payload: 0, gsoSize: 1448}, 40, 1},
		{"tcp4 fin psh cwr", frameSpec{tcpOpts: 12, flags: flagsAllEnd, payload: 5000, gsoSize: 1448}, 1500, 4},
		{"tcp4 fin psh cwr one segment", frameSpec{flags: flagsAllEnd, payload: 1000, gsoSize: 1448}, 1500, 1},
		{"tcp4 ecn gso type", frameSpec{tcpOpts: 12, flags: flagsACK | tcpFlagCWR, payload: 5000, gsoSize: 1448, ecn: true}, 1500, 4},
		{"tcp4 ip options", frameSpec{ipOpts: 12, tcpOpts: 12, flags: flagsAllEnd, payload: 10000, gsoSize: 1448}, 1500, 7},
		{"tcp4 longest headers", frameSpec{tags: []uint16{etherTypeQinQ, etherTypeVLAN}, ipOpts: 40, tcpOpts: 40, flags: flagsAllEnd, payload: 10000, gsoSize: 1448}, 1500, 8},
		{"tcp4 vlan", frameSpec{tags: []uint16{etherTypeVLAN}, tcpOpts: 12, flags: flagsACK, payload: 20000, gsoSize: 1448}, 1500, 14},
		{"tcp4 no needs csum", frameSpec{tcpOpts: 12, flags: flagsACK, payload: 5000, gsoSize: 1448, noCsum: true}, 1500, 4},
		{"tcp6 64k mtu 1500", frameSpec{v6: true, tcpOpts: 12, flags: flagsACK | tcpFlagPSH, payload: max6TCP, gsoSize: 1428}, 1500, 46},
		{"tcp6 64k mtu 0", frameSpec{v6: true, tcpOpts: 12, flags: flagsACK, payload: max6TCP, gsoSize: 1428}, 0, 46},
		{"tcp6 mtu 9000", frameSpec{v6: true, tcpOpts: 12, flags: flagsAllEnd, payload: max6TCP, gsoSize: 8928}, 9000, 8},
		{"tcp6 destination options", frameSpec{v6: true, destOpt: 16, tcpOpts: 12, flags: flagsAllEnd, payload: 20000, gsoSize: 1428}, 1500, 15},
		{"tcp6 qinq", frameSpec{v6: true, tags: []uint16{etherTypeQinQ, etherTypeVLAN}, tcpOpts: 12, flags: flagsACK, payload: 20000, gsoSize: 1428}, 1500, 15},
		{"udp4 uso", frameSpec{udp: true, payload: 20*1200 + 500, gsoSize: 1200}, 1500, 21},
		{"udp4 uso mtu 0", frameSpec{udp: true, payload: 20*1200 + 500, gsoSize: 1200}, 0, 21},
		{"udp4 uso datagram fills the mtu", frameSpec{udp: true, payload: 10 * 1472, gsoSize: 1472}, 1500, 10},
		{"udp4 uso one datagram below gso size", frameSpec{udp: true, payload: 1000, gsoSize: 1472}, 1500, 1},
		{"udp4 uso one datagram past mtu but within gso size", frameSpec{udp: true, payload: 1000, gsoSize: 4000}, 1500, 1},
		{"udp4 uso ip options vlan", frameSpec{udp: true, tags: []uint16{etherTypeVLAN}, ipOpts: 8, payload: 9000, gsoSize: 1400}, 1500, 7},
		{"udp4 uso empty datagram", frameSpec{udp: true, payload: 0, gsoSize: 1400}, 1500, 1},
		{"udp6 uso", frameSpec{udp: true, v6: true, payload: 20*1200 + 1, gsoSize: 1200}, 1500, 21},
		{"udp6 uso destination options qinq", frameSpec{udp: true, v6: true, tags: []uint16{etherTypeQinQ}, destOpt: 8, payload: 8000, gsoSize: 1444}, 1500, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildFrame(t, tt.spec)
			var s Splitter
			segs, err := splitAll(t, &s, b.h, b.frame, tt.mtu)
			if err != nil {
				t.Fatalf("Reset(%+v, %d bytes, %d) = %v, want nil", b.h, len(b.frame), tt.mtu, err)
			}
			if len(segs) != tt.wantSegs {
				t.Fatalf("Segments() = %d, want %d", len(segs), tt.wantSegs)
			}
			if got, want := s.MaxSegment(), b.hdrEnd+min(wantMSS(b, tt.mtu), len(b.payload)); got != want {
				t.Fatalf("MaxSegment() = %d, want %d", got, want)
			}
			checkSegments(t, b, tt.mtu, segs)
		})
	}
}

// TestSplitRoutingDone cuts a frame whose IPv6 routing header has no
// segments left: the destination address is already the final one.
func TestSplitRoutingDone(t *testing.T) {
	b := buildFrame(t, frameSpec{v6: true, destOpt: 24, tcpOpts: 12, flags: flagsACK, payload: 5000, gsoSize: 1428})
	ext := b.frame[b.l3+ipv6Len:]
	ext[2], ext[3] = 0, 0 // a type 0 routing header with segments left 0
	b.frame[b.l3+6] = ipv6Routing
	var s Splitter
	segs, err := splitAll(t, &s, b.h, b.frame, 1500)
	if err != nil {
		t.Fatalf("Reset() = %v, want nil", err)
	}
	for i, seg := range segs {
		pkt := gopacket.NewPacket(seg, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil {
			t.Fatalf("segment %d: decoded %v, want IPv6 and TCP", i, pkt.Layers())
		}
		tcp.SetNetworkLayerForChecksum(ip)
		if got, err := tcp.ComputeChecksum(); err != nil || got != 0 {
			t.Fatalf("segment %d: ComputeChecksum() = %#x, %v, want 0", i, got, err)
		}
	}
}

func TestResetErrors(t *testing.T) {
	tcp4 := frameSpec{tcpOpts: 12, flags: flagsACK, payload: 3000, gsoSize: 1448}
	tcp6 := frameSpec{v6: true, tcpOpts: 12, flags: flagsACK, payload: 3000, gsoSize: 1428}
	udp4 := frameSpec{udp: true, payload: 3000, gsoSize: 1400}
	udp6 := frameSpec{udp: true, v6: true, payload: 3000, gsoSize: 1400}
	vlan4 := tcp4
	vlan4.tags = []uint16{etherTypeQinQ, etherTypeVLAN}
	dest6 := tcp6
	dest6.destOpt = 16
	tests := []struct {
		name    string
		spec    frameSpec
		mtu     int
		edit    func(b *built) // changes the frame or header after it is built
		wantErr error
	}{
		{"ufo", frameSpec{udp: true, payload: 3000, gsoSize: 1400, gsoType: device.GSOUDP}, 1500, nil, ErrGSOType},
		{"unknown gso type", frameSpec{payload: 3000, gsoSize: 1448, gsoType: 9}, 1500, nil, ErrGSOType},
		{"ecn bit alone", tcp4, 1500, func(b *built) { b.h.GSOType = device.GSOECN }, ErrGSOType},
		{"gso size 0", tcp4, 1500, func(b *built) { b.h.GSOSize = 0 }, ErrMalformed},
		{"udp datagram past mtu", frameSpec{udp: true, payload: 3000, gsoSize: 1473}, 1500, nil, ErrTooBig},
		{"udp6 datagram past mtu", frameSpec{udp: true, v6: true, payload: 3000, gsoSize: 1453}, 1500, nil, ErrTooBig},
		{"udp datagram past an IPv4 length", frameSpec{udp: true, payload: 0xffff - 20, gsoSize: 0xffff - 20}, 0, nil, ErrTooBig},
		{"tcp headers fill the mtu", tcp4, 52, nil, ErrTooBig},
		{"tcp headers past the mtu", tcp4, 40, nil, ErrTooBig},
		{"ethernet cut short", tcp4, 1500, func(b *built) { b.frame = b.frame[:13] }, ErrMalformed},
		{"vlan tag cut short", vlan4, 1500, func(b *built) { b.frame = b.frame[:20] }, ErrMalformed},
		{"ipv4 header cut short", tcp4, 1500, func(b *built) { b.frame = b.frame[:b.l3+19] }, ErrMalformed},
		{"ipv4 options cut short", frameSpec{ipOpts: 20, payload: 100, gsoSize: 50}, 1500, func(b *built) { b.frame = b.frame[:b.l3+30] }, ErrMalformed},
		{"ipv6 header cut short", tcp6, 1500, func(b *built) { b.frame = b.frame[:b.l3+39] }, ErrMalformed},
		{"ipv6 extension header cut short", dest6, 1500, func(b *built) { b.frame = b.frame[:b.l3+ipv6Len+4] }, ErrMalformed},
		{"tcp header cut short", tcp4, 1500, func(b *built) { b.frame = b.frame[:b.l4+19] }, ErrMalformed},
		{"tcp options cut short", tcp4, 1500, func(b *built) { b.frame = b.frame[:b.l4+30] }, ErrMalformed},
		{"udp header cut short", udp4, 1500, func(b *built) { b.frame = b.frame[:b.l4+7] }, ErrMalformed},
		{"tcp data offset below 5", tcp4, 1500, func(b *built) { b.frame[b.l4+12] = 4 << 4 }, ErrMalformed},
		{"tcp data offset past the frame", frameSpec{payload: 10, gsoSize: 1448}, 1500, func(b *built) { b.frame[b.l4+12] = 15 << 4 }, ErrMalformed},
		{"csum start past the transport header", tcp4, 1500, func(b *built) { b.h.CsumStart += 2 }, ErrMalformed},
		{"csum start at the ip header", tcp4, 1500, func(b *built) { b.h.CsumStart = uint16(b.l3) }, ErrMalformed},
		{"csum offset of udp on tcp", tcp4, 1500, func(b *built) { b.h.CsumOffset = udpCsumOff }, ErrMalformed},
		{"csum offset of tcp on udp", udp4, 1500, func(b *built) { b.h.CsumOffset = tcpCsumOff }, ErrMalformed},
		{"tcpv6 type on ipv4", tcp4, 1500, func(b *built) { b.h.GSOType = device.GSOTCPv6 }, ErrMalformed},
		{"tcpv4 type on ipv6", tcp6, 1500, func(b *built) { b.h.GSOType = device.GSOTCPv4 }, ErrMalformed},
		{"ipv4 ethertype on ipv6 header", tcp6, 1500, func(b *built) {
			binary.BigEndian.PutUint16(b.frame[b.l3-2:], etherTypeIPv4)
			b.h.GSOType = device.GSOTCPv4
		}, ErrMalformed},
		{"ipv6 ethertype on ipv4 header", tcp4, 1500, func(b *built) {
			binary.BigEndian.PutUint16(b.frame[b.l3-2:], etherTypeIPv6)
			b.h.GSOType = device.GSOTCPv6
		}, ErrMalformed},
		{"arp ethertype", tcp4, 1500, func(b *built) { binary.BigEndian.PutUint16(b.frame[12:], 0x0806) }, ErrMalformed},
		{"three vlan tags", vlan4, 1500, func(b *built) { binary.BigEndian.PutUint16(b.frame[20:], etherTypeVLAN) }, ErrMalformed},
		{"udp_l4 type on tcp", tcp4, 1500, func(b *built) { b.h.GSOType = device.GSOUDPL4 }, ErrMalformed},
		{"tcpv4 type on udp", udp4, 1500, func(b *built) { b.h.GSOType = device.GSOTCPv4 }, ErrMalformed},
		{"udp6 next header tcp", udp6, 1500, func(b *built) { b.frame[b.l3+6] = protoTCP }, ErrMalformed},
		{"ipv4 ihl below 5", tcp4, 1500, func(b *built) { b.frame[b.l3] = 0x44 }, ErrMalformed},
		{"ipv4 more fragments", tcp4, 1500, func(b *built) { b.frame[b.l3+6] |= 0x20 }, ErrMalformed},
		{"ipv4 fragment offset", tcp4, 1500, func(b *built) { b.frame[b.l3+7] = 1 }, ErrMalformed},
		{"ipv6 fragment header", dest6, 1500, func(b *built) { b.frame[b.l3+6] = 44 }, ErrMalformed},
		{"ipv6 hop-by-hop after another header", dest6, 1500, func(b *built) {
			// Destination options, then a hop-by-hop header: the TCP
			// header's first bytes read as its next header and length.
			b.frame[b.l3+ipv6Len] = ipv6HopByHop
		}, ErrMalformed},
		{"ipv6 routing header with segments left", dest6, 1500, func(b *built) {
			b.frame[b.l3+6] = ipv6Routing
			b.frame[b.l3+ipv6Len+2], b.frame[b.l3+ipv6Len+3] = 4, 1
		}, ErrUnsupported},
		{"ipv6 jumbogram", tcp6, 1500, func(b *built) { b.frame[b.l3+4], b.frame[b.l3+5] = 0, 0 }, ErrUnsupported},
		{"headers past MaxHeaderLen", frameSpec{v6: true, destOpt: 200, tcpOpts: 12, payload: 3000, gsoSize: 1000}, 0, nil, ErrUnsupported},
		{"no gso csum past the frame", frameSpec{payload: 100}, 0, func(b *built) { b.h.CsumStart = uint16(len(b.frame) - tcpCsumOff - 1) }, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildFrame(t, tt.spec)
			if tt.edit != nil {
				tt.edit(&b)
			}
			var s Splitter
			err := s.Reset(b.h, b.frame, tt.mtu)
			if err != tt.wantErr {
				t.Fatalf("Reset(%+v, %d bytes, %d) = %v, want %v", b.h, len(b.frame), tt.mtu, err, tt.wantErr)
			}
			if got := s.Segments(); got != 0 {
				t.Fatalf("Segments() after a failed Reset = %d, want 0", got)
			}
			if n, err := s.Next(make([]byte, 1<<16)); n != 0 || err != nil {
				t.Fatalf("Next() after a failed Reset = %d, %v, want 0, nil", n, err)
			}
		})
	}
}

func TestCompleteChecksum(t *testing.T) {
	tests := []struct {
		name string
		spec frameSpec
		// zero makes the payload's last word bring the checksum to 0,
		// which must be sent as 0xffff in UDP and as 0 in TCP.
		zero bool
	}{
		{"tcp4", frameSpec{flags: flagsACK | tcpFlagPSH, tcpOpts: 12, payload: 1000}, false},
		{"tcp4 odd length", frameSpec{flags: flagsACK, payload: 999}, false},
		{"tcp4 vlan ip options", frameSpec{tags: []uint16{etherTypeVLAN}, ipOpts: 8, flags: flagsACK, payload: 1400}, false},
		{"tcp6", frameSpec{v6: true, flags: flagsACK, tcpOpts: 12, payload: 1000}, false},
		{"tcp6 destination options", frameSpec{v6: true, destOpt: 8, flags: flagsACK, payload: 77}, false},
		{"tcp4 no payload", frameSpec{flags: flagsACK | tcpFlagFIN}, false},
		{"udp4", frameSpec{udp: true, payload: 1200}, false},
		{"udp6 odd length", frameSpec{udp: true, v6: true, payload: 1201}, false},
		{"udp4 checksum 0 becomes 0xffff", frameSpec{udp: true, payload: 1200}, true},
		{"udp6 checksum 0 becomes 0xffff", frameSpec{udp: true, v6: true, payload: 64}, true},
		{"tcp4 checksum 0 stays 0", frameSpec{flags: flagsACK, payload: 100}, true},
		{"tcp6 checksum 0 stays 0", frameSpec{v6: true, flags: flagsACK, tcpOpts: 12, payload: 1000}, true},
		{"tcp4 gso one segment checksum 0 stays 0", frameSpec{flags: flagsACK, tcpOpts: 12, payload: 1000, gsoSize: 1448}, true},
		{"udp4 uso one datagram checksum 0 becomes 0xffff", frameSpec{udp: true, payload: 1000, gsoSize: 1400}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildFrame(t, tt.spec)
			if tt.zero {
				// With the seed in the field, the frame from csum_start
				// sums to S; a last word of ^S makes it 0xffff, so the
				// checksum is 0.
				last := b.frame[len(b.frame)-2:]
				clear(last)
				binary.BigEndian.PutUint16(last, ^refSum(b.frame[b.l4:], 0))
			}
			orig := bytes.Clone(b.frame)
			var s Splitter
			segs, err := splitAll(t, &s, b.h, b.frame, 1500)
			if err != nil {
				t.Fatalf("Reset(%+v) = %v, want nil", b.h, err)
			}
			if !bytes.Equal(b.frame, orig) {
				t.Fatalf("Reset and Next wrote to the frame")
			}
			if len(segs) != 1 {
				t.Fatalf("Segments() = %d, want 1", len(segs))
			}
			seg := segs[0]
			if len(seg) != len(b.frame) {
				t.Fatalf("Next() = %d, want the frame's %d bytes", len(seg), len(b.frame))
			}
			if tt.spec.gsoSize == 0 {
				// All but the checksum field is the frame as it came.
				at := int(b.h.CsumStart + b.h.CsumOffset)
				if !bytes.Equal(seg[:at], b.frame[:at]) || !bytes.Equal(seg[at+2:], b.frame[at+2:]) {
					t.Fatalf("Next() changed more than the checksum field")
				}
			}
			if b.spec.gsoSize == 0 {
				b.spec.gsoSize = len(b.payload) // one segment
			}
			checkSegments(t, b, 0, segs)
			if tt.zero {
				at := int(b.h.CsumStart + b.h.CsumOffset)
				want := uint16(0)
				if tt.spec.udp {
					want = 0xffff
				}
				if got := binary.BigEndian.Uint16(seg[at:]); got != want {
					t.Fatalf("checksum = %#x, want %#x", got, want)
				}
			}
		})
	}
}

// TestSplitTCPChecksumZero cuts a TCP super-frame whose second segment's
// checksum comes out 0: it is written 0, as Linux's tcp_gso_segment
// writes it, not 0xffff, which tshark reports as a bad checksum ("TCP
// Checksum 0xffff instead of 0x0000"). About one TCP segment in 65,536
// has a checksum of 0.
func TestSplitTCPChecksumZero(t *testing.T) {
	for _, spec := range []frameSpec{
		{tcpOpts: 12, flags: flagsACK | tcpFlagPSH, payload: 3 * 1448, gsoSize: 1448},
		{v6: true, tcpOpts: 12, flags: flagsACK, payload: 3*1428 + 100, gsoSize: 1428},
	} {
		name := "tcp4"
		if spec.v6 {
			name = "tcp6"
		}
		t.Run(name, func(t *testing.T) {
			b := buildFrame(t, spec)
			var s Splitter
			segs, err := splitAll(t, &s, b.h, b.frame, 1500)
			if err != nil {
				t.Fatalf("Reset(%+v) = %v, want nil", b.h, err)
			}
			// Adding the segment's checksum c to the first word of its
			// payload adds c to its sum S, which becomes S + ^S =
			// 0xffff: the checksum is then 0. The payload starts at an
			// even offset from the TCP header, so the word is one the
			// sum adds as it is.
			at := b.l4 + tcpCsumOff
			c := binary.BigEndian.Uint16(segs[1][at:])
			word := b.payload[wantMSS(b, 1500):]
			binary.BigEndian.PutUint16(word, refFold(uint64(binary.BigEndian.Uint16(word))+uint64(c)))

			segs, err = splitAll(t, &s, b.h, b.frame, 1500)
			if err != nil {
				t.Fatalf("Reset(%+v) = %v, want nil", b.h, err)
			}
			checkSegments(t, b, 1500, segs)
			if got := binary.BigEndian.Uint16(segs[1][at:]); got != 0 {
				t.Fatalf("segment 1: TCP checksum = %#x, want 0 (the payload was made to bring it to 0)", got)
			}
		})
	}
}

func TestCopy(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  int
	}{
		{"arp", bytes.Repeat([]byte{0x5a}, 60), 1},
		{"tcp without needs csum", buildFrame(t, frameSpec{flags: flagsACK, payload: 100, noCsum: true}).frame, 1},
		{"empty", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Splitter
			// mtu does not apply to a frame without GSO.
			segs, err := splitAll(t, &s, device.VnetHdr{}, tt.frame, 20)
			if err != nil {
				t.Fatalf("Reset() = %v, want nil", err)
			}
			if len(segs) != tt.want {
				t.Fatalf("Segments() = %d, want %d", len(segs), tt.want)
			}
			if tt.want == 1 && !bytes.Equal(segs[0], tt.frame) {
				t.Fatalf("Next() = %x, want the frame %x", segs[0], tt.frame)
			}
		})
	}
}

func TestNextShortBuffer(t *testing.T) {
	b := buildFrame(t, frameSpec{tcpOpts: 12, flags: flagsACK, payload: 3000, gsoSize: 1448})
	var s Splitter
	if err := s.Reset(b.h, b.frame, 1500); err != nil {
		t.Fatalf("Reset() = %v, want nil", err)
	}
	buf := make([]byte, s.MaxSegment())
	if n, err := s.Next(buf[:s.MaxSegment()-1]); n != 0 || err != ErrShortBuffer {
		t.Fatalf("Next(%d bytes) = %d, %v, want 0, ErrShortBuffer", s.MaxSegment()-1, n, err)
	}
	// The segment is still next.
	var segs [][]byte
	for {
		n, err := s.Next(buf)
		if err != nil {
			t.Fatalf("Next() = %v", err)
		}
		if n == 0 {
			break
		}
		segs = append(segs, bytes.Clone(buf[:n]))
	}
	checkSegments(t, b, 1500, segs)
	// The last segment is short, and so may its buffer be.
	s.Reset(b.h, b.frame, 1500)
	s.Next(buf)
	s.Next(buf)
	last := b.hdrEnd + 3000 - 2*1448
	if n, err := s.Next(buf[:last]); n != last || err != nil {
		t.Fatalf("Next(%d bytes) for the last segment = %d, %v, want %d, nil", last, n, err, last)
	}
	if n, err := s.Next(buf); n != 0 || err != nil {
		t.Fatalf("Next() past the end = %d, %v, want 0, nil", n, err)
	}
}

func TestZeroSplitter(t *testing.T) {
	var s Splitter
	if n, err := s.Next(nil); n != 0 || err != nil {
		t.Fatalf("Next() on the zero Splitter = %d, %v, want 0, nil", n, err)
	}
	if s.Segments() != 0 || s.MaxSegment() != 0 {
		t.Fatalf("Segments(), MaxSegment() on the zero Splitter = %d, %d, want 0, 0", s.Segments(), s.MaxSegment())
	}
}

// TestReuse cuts frames of every kind one after another with one
// Splitter: nothing of a frame may leak into the next.
func TestReuse(t *testing.T) {
	specs := []frameSpec{
		{tcpOpts: 12, flags: flagsAllEnd, payload: 10000, gsoSize: 1448},
		{udp: true, v6: true, payload: 5000, gsoSize: 1200},
		{v6: true, destOpt: 8, flags: flagsACK, payload: 500},
		{tags: []uint16{etherTypeVLAN}, ipOpts: 4, flags: flagsACK, payload: 7000, gsoSize: 1448},
	}
	var s Splitter
	for round := range 2 {
		for i, sp := range specs {
			b := buildFrame(t, sp)
			segs, err := splitAll(t, &s, b.h, b.frame, 1500)
			if err != nil {
				t.Fatalf("round %d frame %d: Reset() = %v", round, i, err)
			}
			if b.spec.gsoSize == 0 {
				b.spec.gsoSize = len(b.payload) // one segment
			}
			checkSegments(t, b, 1500, segs)
		}
		if err := s.Reset(device.VnetHdr{GSOType: device.GSOUDP, GSOSize: 1}, nil, 0); err != ErrGSOType {
			t.Fatalf("Reset(UFO) = %v, want ErrGSOType", err)
		}
	}
}

// TestErrorsCheap: a stream of bad frames must not allocate.
func TestErrorsCheap(t *testing.T) {
	b := buildFrame(t, frameSpec{tcpOpts: 12, flags: flagsACK, payload: 3000, gsoSize: 1448})
	short := b.frame[:b.l4+10]
	var s Splitter
	allocs := testing.AllocsPerRun(100, func() {
		if err := s.Reset(b.h, short, 1500); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Reset() = %v, want ErrMalformed", err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Reset() of a bad frame: %v allocations, want 0", allocs)
	}
}
