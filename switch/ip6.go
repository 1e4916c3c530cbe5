package vswitch

// The IPv6 extension header chain, walked in place to find the
// upper-layer header, as RA guard and the Neighbor Discovery checks need
// it (RFC 7113) and as the MTU check needs it for a super-frame whose
// virtio header does not say where its TCP or UDP header starts.
//
// Every extension header the IANA registry lists is walked: those in the
// uniform format of RFC 6564 (Hop-by-Hop, Routing, Destination Options,
// Mobility, HIP, Shim6 and the two experimental numbers), whose length
// counts 8-byte units after the first 8; the Authentication Header,
// whose length counts 4-byte units after the first 8; and the Fragment
// header, 8 bytes. ESP ends the chain: what follows it is encrypted. Any
// other next header is the upper layer.
//
// A Fragment header with a non-zero offset ends the walk (fragLater):
// only the first fragment holds the upper-layer header, and that one is
// checked. A first fragment (offset 0, more to come) must hold the whole
// header chain, the upper-layer header included (RFC 7112): if it does
// not, the chain is cut short (fragBad), since the upper layer, which a
// receiver sees after reassembly, cannot be checked.

import "encoding/binary"

// IPv6 next header values the walk knows.
const (
	ip6AH       = 51
	ip6ESP      = 50
	ip6NoNext   = 59
	ip6Mobility = 135
	ip6HIP      = 139
	ip6Shim6    = 140
	ip6Exp1     = 253
	ip6Exp2     = 254
	ip6TCP      = ipProtoTCP
	ip6UDP      = ipProtoUDP
)

// maxExtHdrs bounds the extension headers walked. A real sender uses at
// most the six of RFC 8200's recommended order (Hop-by-Hop, Destination
// Options, Routing, Fragment, AH, Destination Options); a longer chain
// can only be an attempt to hide the upper layer from the checks, and is
// cut short (fragBad). Eight leaves room for Mobility or ESP-in-AH.
const maxExtHdrs = 8

// What walkIPv6 found of fragmentation.
const (
	// fragNone: no Fragment header.
	fragNone = iota
	// fragFirst: a Fragment header with offset 0: a first fragment, or an
	// atomic one (RFC 6946) that holds the whole packet.
	fragFirst
	// fragLater: a Fragment header with a non-zero offset; proto and off
	// are the Fragment header's next header and where it would start.
	fragLater
	// fragBad: the chain is cut short, runs past the payload, is longer
	// than maxExtHdrs, or a first fragment does not hold the whole
	// upper-layer header.
	fragBad
)

// ip6Chain is where an IPv6 packet's header chain ends.
type ip6Chain struct {
	// proto is the upper-layer protocol: TCP, UDP, ICMPv6, ESP, No Next
	// Header or any other.
	proto uint8
	// frag is fragNone, fragFirst, fragLater or fragBad.
	frag uint8
	// off is where the upper-layer header starts in the packet; end is
	// where the payload ends (the payload length, or the end of the
	// frame if that is shorter or the length is 0).
	off, end int
}

// ext6 marks the extension headers in the uniform format (RFC 6564):
// next header, then length in 8-byte units not counting the first 8.
var ext6 = [256]bool{
	ip6HopByHop: true, ip6Routing: true, ip6DestOpts: true,
	ip6Mobility: true, ip6HIP: true, ip6Shim6: true,
	ip6Exp1: true, ip6Exp2: true,
}

// upperMin is the length of the fixed part of an upper-layer header, which
// a first fragment must hold (RFC 7112); a protocol not listed has no
// header known here and needs none. TCP's options count as well (see
// walkIPv6).
var upperMin = [256]uint8{
	ip6TCP:  20,
	ip6UDP:  8,
	ip6ICMP: 4,  // type, code, checksum (RFC 4443)
	ip6ESP:  8,  // SPI, sequence number
	4:       20, // IPv4 in IPv6
	41:      40, // IPv6 in IPv6
	47:      4,  // GRE
	132:     12, // SCTP
	136:     8,  // UDP-Lite
}

// walkIPv6 walks the extension headers of h, an IPv6 packet whose fixed
// 40-byte header is there, to its upper-layer header. It reads h only
// within the payload length, so Ethernet padding is never taken for a
// header, and at most maxExtHdrs headers.
func walkIPv6(h []byte) ip6Chain {
	c := ip6Chain{proto: h[6], off: 40, end: len(h)}
	if n := 40 + int(binary.BigEndian.Uint16(h[4:])); n > 40 && n < c.end {
		// 0 is a jumbogram's (RFC 2675), or a super-frame's whose
		// sender left it so; the frame's end bounds either.
		c.end = n
	}
	for n := 0; ; n++ {
		var size int
		switch {
		case ext6[c.proto]:
			if c.off+8 > c.end {
				c.frag = fragBad
				return c
			}
			size = (int(h[c.off+1]) + 1) * 8
		case c.proto == ip6AH:
			if c.off+8 > c.end {
				c.frag = fragBad
				return c
			}
			size = (int(h[c.off+1]) + 2) * 4
		case c.proto == ip6Fragment:
			if c.off+8 > c.end {
				c.frag = fragBad
				return c
			}
			// Offset in the top 13 bits, M in the lowest.
			fo := binary.BigEndian.Uint16(h[c.off+2:])
			if fo>>3 != 0 {
				c.proto, c.off, c.frag = h[c.off], c.off+8, fragLater
				return c
			}
			// A first fragment, or an atomic one (M clear), which is
			// held to the same rule: it holds the whole packet, so a
			// real one holds the upper-layer header too.
			c.frag, size = fragFirst, 8
		default:
			// The upper layer. A first fragment must hold its header.
			if c.frag == fragFirst && !upperWhole(h, c) {
				c.frag = fragBad
			}
			return c
		}
		if n == maxExtHdrs || c.off+size > c.end {
			c.frag = fragBad
			return c
		}
		c.proto, c.off = h[c.off], c.off+size
	}
}

// upperWhole reports whether the upper-layer header of the chain lies
// whole within the payload: its fixed part, and for TCP its options.
func upperWhole(h []byte, c ip6Chain) bool {
	need := int(upperMin[c.proto])
	if c.off+need > c.end {
		return false
	}
	if c.proto == ip6TCP {
		need = int(h[c.off+12]>>4) * 4
		return need >= 20 && c.off+need <= c.end
	}
	return true
}
