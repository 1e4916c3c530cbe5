package segment

import (
	"encoding/binary"
	"errors"

	"github.com/tapswitch/tapswitch/device"
)

// Errors from Reset and Next. They are plain sentinels, never wrapped, so
// a stream of bad frames costs the switch a comparison and a counter each.
var (
	// ErrGSOType: the GSO type is UFO (GSOUDP, IP fragmentation, which
	// Linux no longer produces) or unknown.
	ErrGSOType = errors.New("segment: unsupported GSO type")
	// ErrMalformed: the headers do not describe a super-frame that can be
	// cut: cut short, an IP version or protocol that does not match the
	// GSO type, an IP fragment, csum_start or csum_offset not at the
	// TCP or UDP checksum, a TCP data offset past the frame, no segment
	// size.
	ErrMalformed = errors.New("segment: malformed frame")
	// ErrUnsupported: well-formed headers the segmenter does not cut: an
	// IPv6 routing header with segments left (the checksum's
	// pseudo-header would need the final destination), an IPv6 jumbogram,
	// or more than MaxHeaderLen bytes of headers.
	ErrUnsupported = errors.New("segment: unsupported headers")
	// ErrTooBig: a UDP datagram, or TCP headers with no room for payload,
	// larger than the MTU (or than an IP length field holds).
	ErrTooBig = errors.New("segment: datagram too big for the MTU")
	// ErrShortBuffer: Next was given less room than the segment it would
	// write. Nothing was written and the segment is still next.
	ErrShortBuffer = errors.New("segment: buffer too short for the segment")
)

// MaxHeaderLen is the most bytes of headers, from the start of the
// Ethernet frame to the end of the TCP or UDP header, that Reset accepts.
// Every segment carries a copy of them, so the bound keeps a crafted frame
// (a packet socket in a namespace can send one, with a segment size of 1)
// from costing more than MaxHeaderLen bytes of copying per payload byte.
// The most the usual headers take is 142 bytes (Ethernet, two VLAN tags,
// IPv4 with 40 bytes of options, TCP with 40); the rest is room for IPv6
// extension headers.
const MaxHeaderLen = 256

// Kinds of frame a Splitter holds.
const (
	kindCopy = iota // GSONone without NeedsCsum: the frame as it is
	kindCsum        // GSONone with NeedsCsum: the frame, checksum filled in
	kindTCP         // a TCP super-frame
	kindUDP         // a UDP super-frame (USO)
)

// Header offsets and values used below.
const (
	etherLen     = 14
	vlanLen      = 4
	etherTypeOff = 12

	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86dd
	etherTypeVLAN   = 0x8100 // 802.1Q
	etherTypeQinQ   = 0x88a8 // 802.1ad service tag
	ipv4MinLen      = 20
	ipv6Len         = 40
	tcpMinLen       = 20
	udpLen          = 8
	tcpCsumOff      = 16
	udpCsumOff      = 6
	protoTCP        = 6
	protoUDP        = 17
	ipv6HopByHop    = 0
	ipv6Routing     = 43
	ipv6DestOpts    = 60
	ipv4MaxLen      = 0xffff           // total length counts the IPv4 header
	ipv6MaxLen      = ipv6Len + 0xffff // payload length does not count the fixed header
	tcpFlagsOff     = 13
	tcpFlagFIN      = 0x01
	tcpFlagPSH      = 0x08
	tcpFlagCWR      = 0x80
	ipv4FlagMF      = 0x20   // in the byte at offset 6
	ipv4FragOffMask = 0x1fff // of the 16 bits at offset 6
)

// Splitter cuts one frame into the frames a device without offloads
// takes: each a whole Ethernet frame, no longer than the MTU, with every
// checksum filled in. The zero value yields nothing; Reset gives it a
// frame. It is not safe for concurrent use: keep one per goroutine and
// reuse it; it holds no memory besides the frame it was given.
//
//	if err := s.Reset(h, frame, mtu); err != nil {
//		return err // one drop
//	}
//	for {
//		n, err := s.Next(buf) // buf has room for s.MaxSegment() bytes
//		if n == 0 {
//			return err // nil: every segment was sent
//		}
//		send(buf[:n])
//	}
type Splitter struct {
	// Partial makes the transport checksum of every segment the
	// pseudo-header seed, as in a frame with VnetFlagNeedsCsum, instead
	// of the sum: for a receiver that fills or skips it itself and whose
	// path covers the data with a checksum of its own (a tunnel between
	// tapswitch hosts, under the outer UDP checksum; see Reseed). The
	// payload is then only copied, never summed. Reset keeps it.
	Partial bool

	// frame is the frame being cut. It is read, never written.
	frame []byte
	// kind is one of kindCopy, kindCsum, kindTCP, kindUDP.
	kind uint8
	// v6 is whether the IP header is IPv6.
	v6 bool
	// l3 is the offset of the IP header in frame.
	l3 int
	// l4 is the offset of the TCP or UDP header (for kindCsum, of
	// csum_start).
	l4 int
	// hdrEnd is the offset of the first payload byte: the headers every
	// segment carries are frame[:hdrEnd].
	hdrEnd int
	// csumAt is the offset of the transport checksum field.
	csumAt int
	// zeroAsOnes is whether a checksum that comes out 0 is written as
	// 0xffff (see putCsum): not in a TCP checksum.
	zeroAsOnes bool
	// mss is the payload bytes of every segment but the last.
	mss int
	// off is the offset in frame of the next segment's payload.
	off int
	// next is the index of the next segment; segs is how many there are.
	next, segs int
	// max is the length of the longest segment.
	max int
	// seq is the TCP sequence number of the first segment.
	seq uint32
	// id is the IPv4 identification of the first segment.
	id uint16
	// ipSum is the one's-complement sum of the IPv4 header with its total
	// length, identification and checksum taken as 0: a segment's header
	// checksum adds only the two fields that change.
	ipSum uint32
	// pseudo is the sum of the pseudo-header without its length: the
	// addresses and the protocol.
	pseudo uint32
}

// Reset prepares s to cut frame, an Ethernet frame without its virtio net
// header, which h describes. s keeps frame until the next Reset; neither
// writes to it.
//
// mtu is the largest IP packet (IP header, TCP or UDP header and payload)
// a segment may be; 0 or less means the segment size in h decides alone.
// A TCP segment carries min(h.GSOSize, what fits in mtu) bytes of
// payload, the last one what is left. A UDP segment (USO) is a datagram
// of h.GSOSize bytes (the last one what is left), as the sender cut them:
// datagram boundaries stay, so a datagram larger than mtu is ErrTooBig.
//
// A frame without GSO yields one segment: itself, and with
// VnetFlagNeedsCsum its checksum completed as Linux's skb_checksum_help
// does (summed from csum_start to the end of the frame, where the field
// at csum_start+csum_offset holds the pseudo-header seed), but for a
// TCP checksum of 0, which stays 0 (see putCsum); mtu does not apply to
// it.
//
// Only csum_start and csum_offset are taken from h, and only checked
// against the headers Reset finds: h.HdrLen is not used, since Linux sets
// it to the linear part of its buffer, which may hold payload too. The
// IP length fields of the super-frame are not used either: the payload
// runs to the end of frame.
//
// On error s yields nothing until the next Reset.
func (s *Splitter) Reset(h device.VnetHdr, frame []byte, mtu int) error {
	partial := s.Partial
	*s = Splitter{Partial: partial}
	err := s.reset(h, frame, mtu)
	if err != nil {
		*s = Splitter{Partial: partial}
	}
	return err
}

func (s *Splitter) reset(h device.VnetHdr, frame []byte, mtu int) error {
	gso := h.GSOType &^ device.GSOECN
	switch gso {
	case device.GSONone:
		if h.GSOType != device.GSONone {
			return ErrGSOType // the ECN bit without a type
		}
		// An empty frame yields nothing, so that Next's 0 always means
		// the end.
		s.frame, s.segs, s.max = frame, min(1, len(frame)), len(frame)
		s.kind = kindCopy
		if h.Flags&device.VnetFlagNeedsCsum != 0 {
			start, at := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
			if at+2 > len(frame) {
				return ErrMalformed
			}
			s.kind, s.l4, s.csumAt = kindCsum, start, at
			s.zeroAsOnes = int(h.CsumOffset) != tcpCsumOff
		}
		return nil
	case device.GSOTCPv4, device.GSOTCPv6:
		s.kind = kindTCP
	case device.GSOUDPL4:
		s.kind = kindUDP
	default:
		return ErrGSOType
	}
	if h.GSOSize == 0 {
		return ErrMalformed
	}

	l3, etherType := skipEthernet(frame)
	if l3 < 0 {
		return ErrMalformed
	}
	switch {
	case etherType == etherTypeIPv4 && gso != device.GSOTCPv6:
	case etherType == etherTypeIPv6 && gso != device.GSOTCPv4:
		s.v6 = true
	default:
		return ErrMalformed
	}
	proto := uint8(protoTCP)
	if s.kind == kindUDP {
		proto = protoUDP
	}
	l4, err := s.parseIP(frame, l3, proto)
	if err != nil {
		return err
	}

	csumOff, hdrEnd := udpCsumOff, l4+udpLen
	if s.kind == kindTCP {
		if l4+tcpMinLen > len(frame) {
			return ErrMalformed
		}
		thlen := int(frame[l4+12]>>4) * 4
		if thlen < tcpMinLen {
			return ErrMalformed
		}
		csumOff, hdrEnd = tcpCsumOff, l4+thlen
		s.seq = binary.BigEndian.Uint32(frame[l4+4:])
	}
	if hdrEnd > len(frame) {
		return ErrMalformed
	}
	if hdrEnd > MaxHeaderLen {
		return ErrUnsupported
	}
	// A GSO frame may come without NeedsCsum (Linux takes one so from a
	// packet socket and finds the transport header itself). Either way
	// each segment's checksum is computed whole, so only where the
	// offsets point is checked, not the seed.
	if h.Flags&device.VnetFlagNeedsCsum != 0 && (int(h.CsumStart) != l4 || int(h.CsumOffset) != csumOff) {
		return ErrMalformed
	}

	// The largest IP packet a segment may be: the MTU, and never more
	// than the IP header's length field holds.
	limit := ipv4MaxLen
	if s.v6 {
		limit = ipv6MaxLen
	}
	if mtu > 0 && mtu < limit {
		limit = mtu
	}
	room := limit - (hdrEnd - l3) // payload bytes that fit in one segment
	payload := len(frame) - hdrEnd
	mss := int(h.GSOSize)
	if s.kind == kindUDP {
		if min(mss, payload) > room {
			return ErrTooBig
		}
	} else {
		if room < 0 || (room == 0 && payload > 0) {
			return ErrTooBig
		}
		mss = min(mss, room)
	}

	s.frame, s.l3, s.l4, s.hdrEnd, s.csumAt = frame, l3, l4, hdrEnd, l4+csumOff
	s.zeroAsOnes = s.kind == kindUDP
	s.mss, s.off = mss, hdrEnd
	// mss is 0 when TCP headers alone fill the MTU, with no payload.
	s.segs = 1
	if payload > mss {
		s.segs = (payload + mss - 1) / mss
	}
	s.max = hdrEnd + min(mss, payload)
	// The pseudo-header is summed from the addresses, not taken from
	// the seed: what length a sender sums into the seed differs (Linux
	// the super-frame's TCP length, others none), and every segment
	// needs its own.
	if s.v6 {
		s.pseudo = uint32(checksum(frame[l3+8:l3+40], 0)) + uint32(proto)
	} else {
		ihl := l4 - l3
		s.id = binary.BigEndian.Uint16(frame[l3+4:])
		s.ipSum = uint32(checksum(frame[l3:l3+2], 0)) + // version, IHL, TOS
			uint32(checksum(frame[l3+6:l3+10], 0)) + // flags, fragment offset, TTL, protocol
			uint32(checksum(frame[l3+12:l3+ihl], 0)) // addresses, options
		s.pseudo = uint32(checksum(frame[l3+12:l3+20], 0)) + uint32(proto)
	}
	return nil
}

// skipEthernet returns the offset of the header after the Ethernet header
// and up to two VLAN tags (802.1Q or 802.1ad, in either order, as Linux's
// __vlan_get_protocol walks them), and the EtherType that names it; -1 if
// frame ends first.
func skipEthernet(frame []byte) (int, uint16) {
	off := etherLen
	if len(frame) < off {
		return -1, 0
	}
	etherType := binary.BigEndian.Uint16(frame[etherTypeOff:])
	for range 2 {
		if etherType != etherTypeVLAN && etherType != etherTypeQinQ {
			break
		}
		if len(frame) < off+vlanLen {
			return -1, 0
		}
		etherType = binary.BigEndian.Uint16(frame[off+2:])
		off += vlanLen
	}
	return off, etherType
}

// parseIP checks the IP header at frame[l3:] and returns the offset of
// the transport header, which must be proto.
func (s *Splitter) parseIP(frame []byte, l3 int, proto uint8) (int, error) {
	if !s.v6 {
		if l3+ipv4MinLen > len(frame) {
			return 0, ErrMalformed
		}
		ip := frame[l3:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[0]>>4 != 4 || ihl < ipv4MinLen || l3+ihl > len(frame) || ip[9] != proto {
			return 0, ErrMalformed
		}
		// A fragment cannot be cut again: the offsets of its pieces
		// would need rewriting and only the first holds the TCP header.
		if ip[6]&ipv4FlagMF != 0 || binary.BigEndian.Uint16(ip[6:])&ipv4FragOffMask != 0 {
			return 0, ErrMalformed
		}
		return l3 + ihl, nil
	}

	if l3+ipv6Len > len(frame) {
		return 0, ErrMalformed
	}
	ip := frame[l3:]
	if ip[0]>>4 != 6 {
		return 0, ErrMalformed
	}
	// A payload length of 0 is a jumbogram (RFC 2675): its hop-by-hop
	// jumbo option would stay in every segment, wrong for all of them.
	if binary.BigEndian.Uint16(ip[4:]) == 0 {
		return 0, ErrUnsupported
	}
	// Walk the extension headers a TCP or UDP super-frame may carry. Each
	// is at least 8 bytes and MaxHeaderLen bounds the walk. A fragment
	// header, AH, ESP or anything else ends it as malformed.
	next, off := ip[6], l3+ipv6Len
	for next != proto {
		switch next {
		case ipv6HopByHop:
			if off != l3+ipv6Len {
				return 0, ErrMalformed // only first (RFC 8200, section 4.1)
			}
		case ipv6DestOpts:
		case ipv6Routing:
			if off+4 <= len(frame) && frame[off+3] != 0 {
				// Segments left: the pseudo-header's destination is the
				// last hop's, inside the routing header (RFC 8200,
				// section 8.1), in a format per routing type.
				return 0, ErrUnsupported
			}
		default:
			return 0, ErrMalformed
		}
		if off+8 > len(frame) {
			return 0, ErrMalformed
		}
		next, off = frame[off], off+(int(frame[off+1])+1)*8
		if off > MaxHeaderLen {
			return 0, ErrUnsupported
		}
	}
	return off, nil
}

// Segments returns how many segments the frame given to Reset yields in
// all (0 after a failed Reset).
func (s *Splitter) Segments() int { return s.segs }

// MaxSegment returns the length of the longest segment Next writes: the
// room each dst needs.
func (s *Splitter) MaxSegment() int { return s.max }

// Next writes the next segment, a whole Ethernet frame with every checksum
// filled in, at the start of dst and returns its length; 0 and a nil
// error when no segment is left. With less room in dst than the segment
// needs (at most MaxSegment bytes) it writes nothing and returns
// ErrShortBuffer; the segment stays next.
//
// Every segment carries a copy of the headers. TCP segments get their
// sequence number advanced by the payload before them, FIN and PSH only
// on the last, CWR only on the first (as Linux's tcp_gso_segment). IPv4
// segments get their total length, an identification one more than the
// segment before (the first keeps the frame's) and their header checksum;
// IPv6 ones their payload length; UDP ones their length. The TCP or UDP
// checksum is computed whole, pseudo-header, header and payload; a
// result of 0 is sent as 0 in TCP and as 0xffff (its other form in one's
// complement) in UDP, where 0 means no checksum, as Linux does.
func (s *Splitter) Next(dst []byte) (int, error) {
	if s.next >= s.segs {
		return 0, nil
	}
	if s.kind == kindCopy || s.kind == kindCsum {
		n := len(s.frame)
		if len(dst) < n {
			return 0, ErrShortBuffer
		}
		copy(dst, s.frame)
		if s.kind == kindCsum && !s.Partial {
			// The field holds the seed, so it is summed as it is, then
			// replaced.
			putCsum(dst[s.csumAt:], checksum(dst[s.l4:n], 0), s.zeroAsOnes)
		}
		s.next++
		return n, nil
	}

	pay := min(s.mss, len(s.frame)-s.off)
	n := s.hdrEnd + pay
	if len(dst) < n {
		return 0, ErrShortBuffer
	}
	payload := s.frame[s.off : s.off+pay]
	copy(dst[s.hdrEnd:n], payload)
	s.putHeaders(dst[:s.hdrEnd], n, dst[s.hdrEnd:n])
	return n, nil
}

// NextHeaders is Next without the copy of the payload, for a sender that
// gathers each segment from two pieces: it writes the next segment's
// headers (MaxHeaderLen bytes at most) at the start of dst and returns
// their length and the segment's payload, a slice of the frame given to
// Reset, which follows them. It yields only the segments of a TCP or UDP
// frame with GSO (Gathers), however many; any other frame yields
// ErrUnsupported.
// Once no segment is left it returns 0, nil and a nil error.
func (s *Splitter) NextHeaders(dst []byte) (int, []byte, error) {
	if s.next >= s.segs {
		return 0, nil, nil
	}
	if !s.Gathers() {
		return 0, nil, ErrUnsupported
	}
	if len(dst) < s.hdrEnd {
		return 0, nil, ErrShortBuffer
	}
	pay := min(s.mss, len(s.frame)-s.off)
	payload := s.frame[s.off : s.off+pay]
	s.putHeaders(dst[:s.hdrEnd], s.hdrEnd+pay, payload)
	return s.hdrEnd, payload, nil
}

// Gathers reports whether NextHeaders yields the frame's segments: a TCP
// or UDP frame with GSO.
func (s *Splitter) Gathers() bool { return s.kind == kindTCP || s.kind == kindUDP }

// putHeaders writes the headers of the next segment, n bytes long in all
// with payload after hdr, into hdr, and moves on to the segment after.
func (s *Splitter) putHeaders(hdr []byte, n int, payload []byte) {
	copy(hdr, s.frame[:s.hdrEnd])
	ip := hdr[s.l3:]
	if s.v6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(n-s.l3-ipv6Len))
	} else {
		totLen, id := uint16(n-s.l3), s.id+uint16(s.next)
		binary.BigEndian.PutUint16(ip[2:], totLen)
		binary.BigEndian.PutUint16(ip[4:], id)
		binary.BigEndian.PutUint16(ip[10:], ^fold(uint64(s.ipSum)+uint64(totLen)+uint64(id)))
	}

	l4 := hdr[s.l4:]
	if s.kind == kindTCP {
		binary.BigEndian.PutUint32(l4[4:], s.seq+uint32(s.off-s.hdrEnd))
		flags := l4[tcpFlagsOff]
		if s.next != s.segs-1 {
			flags &^= tcpFlagFIN | tcpFlagPSH
		}
		if s.next != 0 {
			flags &^= tcpFlagCWR
		}
		l4[tcpFlagsOff] = flags
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(n-s.l4))
	}
	if s.Partial {
		binary.BigEndian.PutUint16(hdr[s.csumAt:], fold(uint64(s.pseudo)+uint64(n-s.l4)))
	} else {
		// The transport header's length is even (TCP's a multiple of
		// 4, UDP's 8), so the payload's words follow on from its sum.
		hdr[s.csumAt], hdr[s.csumAt+1] = 0, 0
		sum := checksum(l4, s.pseudo+uint32(n-s.l4))
		putCsum(hdr[s.csumAt:], checksum(payload, uint32(sum)), s.zeroAsOnes)
	}

	s.next++
	s.off += len(payload)
}

// putCsum stores the checksum for the folded sum of a packet whose
// checksum field was summed as 0 or as the seed. A checksum of 0 is
// written as 0xffff, its other form in one's complement, when zeroAsOnes
// is set: in a UDP checksum, where 0 means none (RFC 768), and in a
// frame completed without GSO whose field is not TCP's, as Linux's
// skb_checksum_help writes any. A TCP checksum of 0 stays 0: it is the
// only form RFC 793's sum gives (a segment, pseudo-header included, has
// words that are not 0, so its sum is never 0 and the checksum never
// 0xffff; RFC 1624, section 3), it is what Linux's tcp_gso_segment and a
// NIC's checksum offload write, and 0xffff in its place, though
// receivers take it, is a bad checksum to Wireshark and tshark ("TCP
// Checksum 0xffff instead of 0x0000").
func putCsum(b []byte, sum uint16, zeroAsOnes bool) {
	c := ^sum
	if c == 0 && zeroAsOnes {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b, c)
}
