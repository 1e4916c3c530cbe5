package vswitch

// Port security: a port may only send as itself. Its identity is its MAC
// and its IP addresses (PortInfo.MAC and PortInfo.IPs, later
// SetAddresses). With security on, forward drops a frame from the port,
// counted by reason, when:
//
//	src_mac    the Ethernet source is not the port's MAC
//	arp_spoof  an ARP sender hardware address is not the port's MAC, or
//	           its sender protocol address is neither one of the port's
//	           IPv4 addresses nor 0.0.0.0 (an ARP probe)
//	ip_spoof   an IPv4 source is not one of the port's IPv4 addresses;
//	           0.0.0.0 is let through for a DHCP request only (UDP from
//	           port 68 to 67, unfragmented), which a namespace running a
//	           DHCP client needs before it has an address.
//	           An IPv6 source is not one of the port's IPv6 addresses nor
//	           its EUI-64 link-local address (fe80::/64 with the modified
//	           EUI-64 of its MAC); :: is let through for ICMPv6 only
//	           (behind any extension headers), which is what duplicate
//	           address detection and MLD reports send before an address
//	           is usable.
//	nd_spoof   an ICMPv6 Neighbor Advertisement's target is not one of the
//	           port's IPv6 addresses or its link-local address, or a
//	           source or target link-layer address option of a Router
//	           Solicitation, Neighbor Solicitation or Neighbor
//	           Advertisement is not the port's MAC; or any Neighbor
//	           Discovery message (RS, NS, NA, Redirect, SEND's CPS and
//	           CPA) behind a Fragment header, which RFC 6980 forbids and
//	           receivers ignore
//	ra_guard   an ICMPv6 Router Advertisement, fragmented or not: a
//	           namespace is never the network's router (the gateway,
//	           which has no port security, is), and a rogue one would
//	           hand its neighbours a default route and addresses of its
//	           choosing (RA guard, RFC 6105)
//	ethertype  an Ethertype port security does not know to be safe (see
//	           below)
//	malformed  ARP shorter than 28 bytes or not Ethernet/IPv4; an IPv4
//	           header shorter than 20 bytes, with IHL below 5, past the end
//	           of the frame or not of version 4; an IPv6 header shorter than
//	           40 bytes or not of version 6; an extension header chain
//	           cut short, running past the payload or longer than
//	           maxExtHdrs; a first fragment without the whole upper-layer
//	           header (RFC 7112); a Neighbor Discovery message cut short,
//	           or with an option of length 0 or past the payload; a VLAN
//	           tag cut short, or more than two tags
//
// What a port with security on may send, by Ethertype (inside up to two
// VLAN tags, 802.1Q 0x8100 and 802.1ad 0x88a8, as a namespace with VLAN
// interfaces sends them; the switch does not separate VLANs, so a tag
// must not hide a spoofed sender, and a frame with more tags is dropped
// as malformed rather than let through unchecked):
//
//	0x0800 IPv4          source address checked (above); what it carries,
//	                     tunnels included (GRE, IPIP, 6in4, VXLAN), is
//	                     between its endpoints, who must have agreed to it
//	0x86dd IPv6          source address checked, extension headers walked
//	                     to the upper layer (ip6.go), RA and ND checked
//	0x0806 ARP           sender MAC and address checked
//	0x8035 RARP          checked as ARP
//	0x88b5, 0x88b6       IEEE local experimental: no stack interprets
//	                     them; for an application's own protocol
//	anything else        dropped (ethertype): 802.3 length frames (LLC and
//	                     SNAP, which can carry IPv4, RFC 1042), MPLS
//	                     0x8847/0x8848 (an IP packet under labels, or a
//	                     whole Ethernet frame under a pseudowire), PPPoE
//	                     0x8863/0x8864 (IP in PPP), MACsec 0x88e5
//	                     (encrypted, uncheckable), 802.1ah 0x88e7 and
//	                     0x6558 (a whole Ethernet frame), TIPC, HSR/PRP,
//	                     batman-adv, NSH and the rest a receiver might
//	                     interpret. A namespace that needs one is a router
//	                     or a bridge of its own: turn its security off.
//
// Under GSO the frame's headers are at its front like in any other
// frame, so a super-frame is checked by the same code.

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/tapswitch/tapswitch/fdb"
)

// Ethertypes, IP protocol numbers and ICMPv6 types the checks look at.
const (
	etherIPv4  = 0x0800
	etherARP   = 0x0806
	etherVLAN  = 0x8100 // 802.1Q
	etherQinQ  = 0x88a8 // 802.1ad
	etherIPv6  = 0x86dd
	maxVLANs   = 2
	ipProtoTCP = 6
	ipProtoUDP = 17

	etherRARP = 0x8035
	// etherLocal1 and etherLocal2 are IEEE 802's local experimental
	// Ethertypes, which no stack interprets: for a protocol of one's own.
	etherLocal1 = 0x88b5
	etherLocal2 = 0x88b6

	ip6HopByHop = 0
	ip6Routing  = 43
	ip6Fragment = 44
	ip6ICMP     = 58
	ip6DestOpts = 60

	icmp6RouterSolicit   = 133
	icmp6RouterAdvert    = 134
	icmp6NeighborSolicit = 135
	icmp6NeighborAdvert  = 136
	icmp6Redirect        = 137
	icmp6CertPathSolicit = 148 // SEND (RFC 3971), Neighbor Discovery too
	icmp6CertPathAdvert  = 149
	ndOptSourceLLA       = 1
	ndOptTargetLLA       = 2
)

// noDrop is what check returns for a frame the port may send.
const noDrop DropReason = -1

// noMAC stands for a port without a MAC. It lies outside the 48 bits of
// a key, so it matches no frame and a port without a MAC sends nothing
// while security is on.
const noMAC = ^uint64(0)

// identity is what a port may send as. It is immutable: a change of
// addresses builds a new one and publishes it with one atomic store, so
// the forwarding path reads it with one atomic load and no lock.
type identity struct {
	mac uint64 // fdb.Key of the port's MAC, or noMAC
	// ip4First is ip4[0], or a value no IPv4 address has; ip6First is the
	// first of the port's own IPv6 addresses, else its link-local one
	// (there is always one when there is a MAC, and without a MAC allows
	// refuses everything before it looks). Both are for allows.
	ip4First uint64
	ip6First [16]byte
	ip4      []uint32
	// ip6 holds the port's IPv6 addresses and its EUI-64 link-local one.
	ip6 []addr6
}

// addr6 is an IPv6 address as two big-endian halves, compared as integers.
type addr6 struct{ hi, lo uint64 }

// isUnicastMAC reports whether mac can be a station's own address.
func isUnicastMAC(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0]&1 == 0 && fdb.Key(mac) != 0
}

// newIdentity builds a port's identity. A MAC that is not a 6-byte unicast
// address and prefixes that are invalid or hold an unspecified or
// multicast address are refused; an empty MAC gives the identity nothing
// may send as (see noMAC).
func newIdentity(mac net.HardwareAddr, ips []netip.Prefix) (*identity, error) {
	id := &identity{mac: noMAC, ip4First: 1 << 32}
	if len(mac) > 0 {
		if !isUnicastMAC(mac) {
			return nil, fmt.Errorf("MAC %q: %w", mac, ErrBadMAC)
		}
		id.mac = fdb.Key(mac)
		id.ip6 = append(id.ip6, linkLocal(mac))
	}
	for _, p := range ips {
		if !p.IsValid() {
			return nil, fmt.Errorf("address %q: %w", p, ErrBadAddress)
		}
		a := p.Addr().Unmap().WithZone("")
		if a.IsUnspecified() || a.IsMulticast() {
			// Either would let the port send as anyone, or as a group.
			return nil, fmt.Errorf("address %s: %w", p, ErrBadAddress)
		}
		if a.Is4() {
			b := a.As4()
			id.ip4 = append(id.ip4, binary.BigEndian.Uint32(b[:]))
			if len(id.ip4) == 1 {
				id.ip4First = uint64(id.ip4[0])
			}
			continue
		}
		b := a.As16()
		id.ip6 = append(id.ip6, read6(b[:]))
	}
	// A port with a MAC has its link-local address first; without a MAC
	// allows never gets past the MAC, and ip6First does not matter.
	var first addr6
	switch {
	case len(mac) > 0 && len(id.ip6) > 1:
		first = id.ip6[1]
	case len(id.ip6) > 0:
		first = id.ip6[0]
	}
	binary.BigEndian.PutUint64(id.ip6First[:], first.hi)
	binary.BigEndian.PutUint64(id.ip6First[8:], first.lo)
	return id, nil
}

// linkLocal is the address the kernel gives an interface with mac when
// addr_gen_mode is eui64, its default: fe80::/64 and the modified EUI-64.
func linkLocal(mac net.HardwareAddr) addr6 {
	return addr6{
		hi: 0xfe80 << 48,
		lo: uint64(mac[0]^2)<<56 | uint64(mac[1])<<48 | uint64(mac[2])<<40 |
			0xfffe<<24 | uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5]),
	}
}

func be16(b []byte) int { return int(binary.BigEndian.Uint16(b)) }

func read6(b []byte) addr6 {
	return addr6{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
}

func (id *identity) own4(a uint32) bool {
	for _, x := range id.ip4 {
		if x == a {
			return true
		}
	}
	return false
}

func (id *identity) own6(a addr6) bool {
	for _, x := range id.ip6 {
		if x == a {
			return true
		}
	}
	return false
}

// allows reports whether f, an Ethernet frame of at least ethHdrLen bytes
// whose source MAC is src, is one of the most common frames a port sends,
// which check would let through: from the port's MAC, untagged TCP or UDP
// over IPv6 from the port's first IPv6 address, untagged IPv4 without
// options from its first IPv4 address, or the first local experimental
// Ethertype. It is small enough to be inlined into forward, so that most
// frames cost no call; when it says false, check decides.
func (id *identity) allows(src uint64, f []byte) bool {
	if src != id.mac {
		return false
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case etherIPv4:
		return len(f) >= ethHdrLen+20 && f[14] == 0x45 && uint64(binary.BigEndian.Uint32(f[26:])) == id.ip4First
	case etherIPv6:
		return len(f) >= ethHdrLen+40 && f[14] == 0x60 && upperLayer[f[20]] && [16]byte(f[22:38]) == id.ip6First
	case etherLocal1:
		return true
	}
	return false
}

// upperLayer marks the IPv6 next headers after which check looks no
// further: TCP and UDP.
var upperLayer = [256]bool{ipProtoTCP: true, ipProtoUDP: true}

// check says why the port may not send f, an Ethernet frame of at least
// ethHdrLen bytes whose source MAC is src, or returns noDrop.
func (id *identity) check(src uint64, f []byte) DropReason {
	if src != id.mac {
		return DropSrcMAC
	}
	off := 12 // ethertype
	et := be16(f[off:])
	for tags := 0; et == etherVLAN || et == etherQinQ; tags++ {
		// The tag's 2 bytes and the next ethertype's 2 must be there.
		if tags == maxVLANs || len(f) < off+6 {
			return DropMalformed
		}
		off += 4
		et = be16(f[off:])
	}
	l3 := f[off+2:]
	switch et {
	case etherIPv4:
		return id.checkIPv4(l3)
	case etherIPv6:
		return id.checkIPv6(l3)
	case etherARP, etherRARP:
		// RARP has ARP's layout; a client's request names itself as
		// the sender, and a namespace is never a RARP server.
		return id.checkARP(l3)
	case etherLocal1, etherLocal2:
		return noDrop
	}
	// Anything else may carry an address port security cannot see, in
	// a form some receiver takes: MPLS, PPPoE, MACsec, 802.1ah, LLC/SNAP
	// and the rest (see the list at the top of this file).
	return DropEtherType
}

func (id *identity) checkIPv4(h []byte) DropReason {
	if len(h) < 20 || h[0]>>4 != 4 {
		return DropMalformed
	}
	ihl := int(h[0]&0xf) * 4
	if ihl < 20 || ihl > len(h) {
		return DropMalformed
	}
	src := binary.BigEndian.Uint32(h[12:])
	if id.own4(src) || src == 0 && isDHCPRequest(h, ihl) {
		return noDrop
	}
	return DropIPSpoof
}

// isDHCPRequest reports whether h, an IPv4 header of ihl bytes and what
// follows, is an unfragmented UDP datagram from port 68 to port 67.
func isDHCPRequest(h []byte, ihl int) bool {
	return h[9] == ipProtoUDP && be16(h[6:])&0x3fff == 0 && // neither MF nor an offset
		len(h) >= ihl+8 && be16(h[ihl:]) == 68 && be16(h[ihl+2:]) == 67
}

func (id *identity) checkARP(a []byte) DropReason {
	// Ethernet (1) hardware, IPv4 protocol, 6- and 4-byte addresses: the
	// only ARP there is on Ethernet, and the only one with the fixed
	// layout read below.
	if len(a) < 28 || be16(a) != 1 || be16(a[2:]) != etherIPv4 || a[4] != 6 || a[5] != 4 {
		return DropMalformed
	}
	if fdb.Key(a[8:14]) != id.mac {
		return DropARPSpoof
	}
	if spa := binary.BigEndian.Uint32(a[14:]); spa != 0 && !id.own4(spa) {
		return DropARPSpoof
	}
	return noDrop
}

func (id *identity) checkIPv6(h []byte) DropReason {
	if len(h) < 40 || h[0]>>4 != 6 {
		return DropMalformed
	}
	src := read6(h[8:])
	unspecified := src == addr6{}
	if !unspecified && !id.own6(src) {
		return DropIPSpoof
	}
	c := walkIPv6(h)
	switch {
	case c.frag == fragBad:
		return DropMalformed
	case c.proto == ip6ICMP && c.frag != fragLater:
		return id.checkICMPv6(h, c)
	case unspecified:
		// Only ICMPv6 may come from ::, and a later fragment's
		// protocol cannot be told.
		return DropIPSpoof
	}
	return noDrop
}

// checkICMPv6 checks the Neighbor Discovery messages among the ICMPv6
// messages, the upper layer of c in h, the IPv6 packet.
func (id *identity) checkICMPv6(h []byte, c ip6Chain) DropReason {
	off := c.off
	if c.end < off+4 {
		return DropMalformed
	}
	var opts int // where the options start in the message
	switch h[off] {
	case icmp6RouterSolicit:
		opts = 8
	case icmp6RouterAdvert:
		return DropRAGuard
	case icmp6NeighborSolicit, icmp6NeighborAdvert:
		opts = 24
	case icmp6Redirect, icmp6CertPathSolicit, icmp6CertPathAdvert:
		// Redirects are checked by their source (a router's address,
		// which a port with security on cannot send from); only a
		// fragmented one is dropped here, as below.
		opts = -1
	default:
		return noDrop
	}
	// Neighbor Discovery is never fragmented and receivers ignore it
	// when it is (RFC 6980); one behind a Fragment header is a way
	// around checks that do not look behind it.
	if c.frag != fragNone {
		return DropNDSpoof
	}
	if opts < 0 {
		return noDrop
	}
	// The options run to the end of the payload, which Ethernet padding
	// may leave short of the end of the frame.
	end := 40 + be16(h[4:])
	if end > len(h) || end < off+opts {
		return DropMalformed
	}
	m := h[off:end]
	if m[0] == icmp6NeighborAdvert && !id.own6(read6(m[8:])) {
		return DropNDSpoof
	}
	for o := m[opts:]; len(o) > 0; {
		if len(o) < 8 {
			return DropMalformed
		}
		n := int(o[1]) * 8
		if n == 0 || n > len(o) {
			return DropMalformed
		}
		if (o[0] == ndOptSourceLLA || o[0] == ndOptTargetLLA) && fdb.Key(o[2:8]) != id.mac {
			return DropNDSpoof
		}
		o = o[n:]
	}
	return noDrop
}
