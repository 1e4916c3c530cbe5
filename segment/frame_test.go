package segment

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapswitch/tapswitch/device"
)

// frameSpec describes a frame as a namespace's kernel hands it to a TAP.
type frameSpec struct {
	v6      bool
	udp     bool
	tags    []uint16 // VLAN tag TPIDs, outermost first
	ipOpts  int      // IPv4: bytes of options, a multiple of 4 up to 40
	destOpt int      // IPv6: bytes of a destination options header, 0 or a multiple of 8
	tcpOpts int      // bytes of TCP options, a multiple of 4 up to 40
	flags   uint8    // TCP flags
	payload int
	gsoSize int   // 0: no GSO
	gsoType uint8 // 0: the type that matches v6 and udp (when gsoSize > 0)
	ecn     bool  // add the GSO ECN bit
	noCsum  bool  // no NeedsCsum and no seed in the checksum field
}

// built is a frame from buildFrame and where its headers are.
type built struct {
	h       device.VnetHdr
	frame   []byte
	payload []byte // frame[hdrEnd:]
	l3, l4  int
	hdrEnd  int
	spec    frameSpec
}

// Values buildFrame puts in the headers. The sequence number and the IPv4
// identification are close to wrapping, so a segmenter that does not wrap
// them as 32- and 16-bit fields fails.
const (
	testSeq = 0xffff_f000
	testID  = 0xfffd
	testAck = 0x0102_0304
)

// buildFrame builds the frame sp describes as Linux hands it to a TAP for
// a super-frame or a frame with a checksum left to fill in: the IPv4
// header checksum filled in, the transport checksum field holding the
// pseudo-header sum over the whole TCP or UDP length (Linux's
// ~tcp_v4_check(len, saddr, daddr, 0)), NeedsCsum with csum_start at the
// transport header, and hdr_len covering the headers and some payload, as
// the linear part of Linux's buffer does.
func buildFrame(tb testing.TB, sp frameSpec) built {
	tb.Helper()
	b := []byte{0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01}
	for i, tpid := range sp.tags {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(100+i))
	}
	proto, l4Len := uint8(protoTCP), tcpMinLen+sp.tcpOpts
	if sp.udp {
		proto, l4Len = protoUDP, udpLen
	}
	var src, dst []byte
	l3 := len(b) + 2
	if sp.v6 {
		b = binary.BigEndian.AppendUint16(b, etherTypeIPv6)
		next := proto
		if sp.destOpt > 0 {
			next = ipv6DestOpts
		}
		b = append(b, 0x60, 0x01, 0x23, 0x45) // traffic class, flow label
		b = binary.BigEndian.AppendUint16(b, uint16(sp.destOpt+l4Len+sp.payload))
		b = append(b, next, 64)
		src, dst = ipv6Addr(1), ipv6Addr(2)
		b = append(append(b, src...), dst...)
		if sp.destOpt > 0 {
			// One PadN option fills the header.
			opt := make([]byte, sp.destOpt)
			opt[0], opt[1], opt[2], opt[3] = proto, uint8(sp.destOpt/8-1), 1, uint8(sp.destOpt-4)
			b = append(b, opt...)
		}
	} else {
		b = binary.BigEndian.AppendUint16(b, etherTypeIPv4)
		ihl := ipv4MinLen + sp.ipOpts
		b = append(b, 0x40|uint8(ihl/4), 0x10)
		b = binary.BigEndian.AppendUint16(b, uint16(ihl+l4Len+sp.payload))
		b = binary.BigEndian.AppendUint16(b, testID)
		b = append(b, 0x40, 0, 64, proto, 0, 0) // DF, TTL, protocol, checksum
		src, dst = []byte{192, 0, 2, 1}, []byte{198, 51, 100, 2}
		b = append(append(b, src...), dst...)
		for range sp.ipOpts {
			b = append(b, 1) // NOP
		}
		binary.BigEndian.PutUint16(b[l3+10:], ^refSum(b[l3:l3+ihl], 0))
	}
	l4 := len(b)
	if sp.udp {
		b = binary.BigEndian.AppendUint16(b, 40000)
		b = binary.BigEndian.AppendUint16(b, 5201)
		b = binary.BigEndian.AppendUint16(b, uint16(udpLen+sp.payload))
		b = append(b, 0, 0)
	} else {
		b = binary.BigEndian.AppendUint16(b, 40000)
		b = binary.BigEndian.AppendUint16(b, 5201)
		b = binary.BigEndian.AppendUint32(b, testSeq)
		b = binary.BigEndian.AppendUint32(b, testAck)
		b = append(b, uint8(l4Len/4)<<4, sp.flags)
		b = binary.BigEndian.AppendUint16(b, 0xfaf0) // window
		b = append(b, 0, 0, 0, 0)                    // checksum, urgent pointer
		opts := make([]byte, sp.tcpOpts)
		for i := range opts {
			opts[i] = 1 // NOP
		}
		if sp.tcpOpts >= 12 {
			// Timestamps, as every Linux segment has.
			copy(opts, []byte{1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78})
		}
		b = append(b, opts...)
	}
	hdrEnd := len(b)
	rng := rand.New(rand.NewPCG(uint64(sp.payload), 1))
	for range sp.payload {
		b = append(b, uint8(rng.Uint32()))
	}

	csumOff := tcpCsumOff
	if sp.udp {
		csumOff = udpCsumOff
	}
	h := device.VnetHdr{HdrLen: uint16(hdrEnd + min(sp.payload, 128))}
	if !sp.noCsum {
		seed := refFold(refPseudo(src, dst, proto, len(b)-l4))
		binary.BigEndian.PutUint16(b[l4+csumOff:], seed)
		h.Flags = device.VnetFlagNeedsCsum
		h.CsumStart, h.CsumOffset = uint16(l4), uint16(csumOff)
	}
	if sp.gsoSize > 0 {
		h.GSOSize = uint16(sp.gsoSize)
		switch {
		case sp.gsoType != 0:
			h.GSOType = sp.gsoType
		case sp.udp:
			h.GSOType = device.GSOUDPL4
		case sp.v6:
			h.GSOType = device.GSOTCPv6
		default:
			h.GSOType = device.GSOTCPv4
		}
		if sp.ecn {
			h.GSOType |= device.GSOECN
		}
	}
	return built{h: h, frame: b, payload: b[hdrEnd:], l3: l3, l4: l4, hdrEnd: hdrEnd, spec: sp}
}

func ipv6Addr(last byte) []byte {
	return []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last}
}

// refSum is the one's-complement sum of RFC 1071 done the textbook way,
// a 16-bit word at a time, as the reference for checksum.
func refSum(b []byte, initial uint32) uint16 {
	s := uint64(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	return refFold(s)
}

func refFold(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// refPseudo is the sum of the TCP/UDP pseudo-header (RFC 793, RFC 8200).
func refPseudo(src, dst []byte, proto uint8, length int) uint64 {
	return uint64(refSum(src, 0)) + uint64(refSum(dst, 0)) + uint64(proto) + uint64(length)
}

// splitAll cuts frame with s and returns copies of the segments. It fails
// the test if Next writes more than MaxSegment bytes, or yields other than
// Segments() segments.
func splitAll(tb testing.TB, s *Splitter, h device.VnetHdr, frame []byte, mtu int) ([][]byte, error) {
	tb.Helper()
	if err := s.Reset(h, frame, mtu); err != nil {
		return nil, err
	}
	buf := make([]byte, s.MaxSegment())
	var segs [][]byte
	for range s.Segments() + 1 {
		n, err := s.Next(buf)
		if err != nil {
			tb.Fatalf("Next() error = %v after %d segments", err, len(segs))
		}
		if n == 0 {
			break
		}
		if n > s.MaxSegment() {
			tb.Fatalf("Next() = %d, past MaxSegment() = %d", n, s.MaxSegment())
		}
		segs = append(segs, bytes.Clone(buf[:n]))
	}
	if len(segs) != s.Segments() {
		tb.Fatalf("Next() yielded %d segments, Segments() = %d", len(segs), s.Segments())
	}
	return segs, nil
}

// wantMSS is the payload every segment but the last must carry.
func wantMSS(b built, mtu int) int {
	if b.spec.udp {
		return b.spec.gsoSize
	}
	limit := 0xffff
	if b.spec.v6 {
		limit += ipv6Len
	}
	if mtu > 0 {
		limit = min(limit, mtu)
	}
	return min(b.spec.gsoSize, limit-(b.hdrEnd-b.l3))
}

// checkSegments checks the segments of the super-frame b against what
// Linux's software segmentation produces, decoding them with gopacket
// and checking every checksum independently of the package's own code.
func checkSegments(tb testing.TB, b built, mtu int, segs [][]byte) {
	tb.Helper()
	if len(segs) == 0 {
		tb.Fatalf("no segments")
	}
	mss := wantMSS(b, mtu)
	var payload []byte
	for i, seg := range segs {
		last := i == len(segs)-1
		pkt := gopacket.NewPacket(seg, layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			tb.Fatalf("segment %d: decode: %v", i, el.Error())
		}
		if got := len(seg); got < b.hdrEnd {
			tb.Fatalf("segment %d: length %d, shorter than the %d bytes of headers", i, got, b.hdrEnd)
		}
		if mtu > 0 && len(seg)-b.l3 > mtu {
			tb.Fatalf("segment %d: IP packet of %d bytes, want at most the MTU %d", i, len(seg)-b.l3, mtu)
		}

		// Everything but the fields segmentation changes is copied.
		want, got := maskHeaders(b, b.frame[:b.hdrEnd]), maskHeaders(b, seg[:b.hdrEnd])
		if !bytes.Equal(got, want) {
			tb.Fatalf("segment %d: headers (changing fields masked) = %x, want %x", i, got, want)
		}

		var net gopacket.NetworkLayer
		if b.spec.v6 {
			ip, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			if !ok {
				tb.Fatalf("segment %d: no IPv6 layer", i)
			}
			if got, want := int(ip.Length), len(seg)-b.l3-ipv6Len; got != want {
				tb.Fatalf("segment %d: IPv6 payload length = %d, want %d", i, got, want)
			}
			net = ip
		} else {
			ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if !ok {
				tb.Fatalf("segment %d: no IPv4 layer", i)
			}
			if got, want := int(ip.Length), len(seg)-b.l3; got != want {
				tb.Fatalf("segment %d: IPv4 total length = %d, want %d", i, got, want)
			}
			if got, want := ip.Id, uint16(testID+i); got != want {
				tb.Fatalf("segment %d: IPv4 ID = %#x, want %#x", i, got, want)
			}
			if got := refSum(ip.Contents, 0); got != 0xffff {
				tb.Fatalf("segment %d: IPv4 header sums to %#x with its checksum %#x, want 0xffff", i, got, ip.Checksum)
			}
			net = ip
		}

		var segPayload []byte
		if b.spec.udp {
			udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if !ok {
				tb.Fatalf("segment %d: no UDP layer", i)
			}
			if got, want := int(udp.Length), len(seg)-b.l4; got != want {
				tb.Fatalf("segment %d: UDP length = %d, want %d", i, got, want)
			}
			if got, want := udp.Checksum, gopacketUDPChecksum(tb, udp, net); got != want {
				tb.Fatalf("segment %d: UDP checksum = %#x, want %#x", i, got, want)
			}
			segPayload = udp.Payload
		} else {
			tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if !ok {
				tb.Fatalf("segment %d: no TCP layer", i)
			}
			if err := tcp.SetNetworkLayerForChecksum(net); err != nil {
				tb.Fatal(err)
			}
			// Summed with a right checksum in place the sum is 0xffff,
			// which gopacket returns complemented.
			if got, err := tcp.ComputeChecksum(); err != nil || got != 0 {
				tb.Fatalf("segment %d: TCP checksum %#x: ComputeChecksum() = %#x, %v, want 0", i, tcp.Checksum, got, err)
			}
			// A segment's sum is never 0, so its checksum is never
			// 0xffff: that is 0 written in the form only UDP uses.
			if tcp.Checksum == 0xffff {
				tb.Fatalf("segment %d: TCP checksum 0xffff, want 0x0000 (its computed form)", i)
			}
			if got, want := tcp.Seq, uint32(testSeq+len(payload)); got != want {
				tb.Fatalf("segment %d: seq = %#x, want %#x", i, got, want)
			}
			f := b.spec.flags
			if got, want := tcp.FIN, f&tcpFlagFIN != 0 && last; got != want {
				tb.Fatalf("segment %d of %d: FIN = %v, want %v", i, len(segs), got, want)
			}
			if got, want := tcp.PSH, f&tcpFlagPSH != 0 && last; got != want {
				tb.Fatalf("segment %d of %d: PSH = %v, want %v", i, len(segs), got, want)
			}
			if got, want := tcp.CWR, f&tcpFlagCWR != 0 && i == 0; got != want {
				tb.Fatalf("segment %d of %d: CWR = %v, want %v", i, len(segs), got, want)
			}
			segPayload = tcp.Payload
		}
		if !last && len(segPayload) != mss {
			tb.Fatalf("segment %d of %d: payload %d bytes, want %d", i, len(segs), len(segPayload), mss)
		}
		if last && len(segPayload) > mss {
			tb.Fatalf("last segment: payload %d bytes, want at most %d", len(segPayload), mss)
		}
		if last && len(segPayload) == 0 && len(segs) > 1 {
			tb.Fatalf("last of %d segments is empty", len(segs))
		}
		payload = append(payload, segPayload...)
	}
	if !bytes.Equal(payload, b.payload) {
		tb.Fatalf("segments carry %d bytes of payload, not the frame's %d (first difference at %d)",
			len(payload), len(b.payload), firstDiff(payload, b.payload))
	}
}

// maskHeaders returns a copy of the headers hdr (a frame's first hdrEnd
// bytes) with the fields segmentation changes set to zero.
func maskHeaders(b built, hdr []byte) []byte {
	m := bytes.Clone(hdr)
	ip := m[b.l3:]
	if b.spec.v6 {
		clear(ip[4:6]) // payload length
	} else {
		clear(ip[2:6])   // total length, ID
		clear(ip[10:12]) // header checksum
	}
	l4 := m[b.l4:]
	if b.spec.udp {
		clear(l4[4:8]) // length, checksum
	} else {
		clear(l4[4:8]) // seq
		l4[tcpFlagsOff] &^= tcpFlagFIN | tcpFlagPSH | tcpFlagCWR
		clear(l4[16:18]) // checksum
	}
	return m
}

// gopacketUDPChecksum returns the checksum gopacket computes for udp in
// net, in the form Linux sends it: 0 as 0xffff.
func gopacketUDPChecksum(tb testing.TB, udp *layers.UDP, net gopacket.NetworkLayer) uint16 {
	tb.Helper()
	u := *udp
	if err := u.SetNetworkLayerForChecksum(net); err != nil {
		tb.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.Payload(udp.Payload).SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
		tb.Fatal(err)
	}
	if err := u.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		tb.Fatal(err)
	}
	if u.Checksum == 0 {
		return 0xffff
	}
	return u.Checksum
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
