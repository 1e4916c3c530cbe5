package vswitch

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Frames for the security tests are built with gopacket, so the parser
// under test is checked against an independent encoder.

// pkt serialises layers behind an all-zero virtio header.
func pkt(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		panic(err)
	}
	return append(make([]byte, HdrLen), buf.Bytes()...)
}

// Addresses of the secure port "a" (testInfo(0)) and of others.
const (
	ipA  = "10.0.0.1"
	ipB  = "10.0.0.2"
	ip6A = "fd00::1"
	ip6B = "fd00::2"
	// llA is the EUI-64 link-local address of macA.
	llA = "fe80::ff:fe00:a"
	llB = "fe80::ff:fe00:b"
)

func eth(src, dst string, et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: mustMAC(src), DstMAC: mustMAC(dst), EthernetType: et}
}

func vlan(id uint16, inner layers.EthernetType) *layers.Dot1Q {
	return &layers.Dot1Q{VLANIdentifier: id, Type: inner}
}

func arpPkt(op uint16, sha, spa, tpa string) *layers.ARP {
	return &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: mustMAC(sha), SourceProtAddress: net.ParseIP(spa).To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(tpa).To4(),
	}
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

func ip6(src, dst string, nh layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, NextHeader: nh, HopLimit: 255, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

func icmp6(typ uint8) *layers.ICMPv6 {
	return &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
}

func lla(typ layers.ICMPv6Opt, mac string) layers.ICMPv6Option {
	return layers.ICMPv6Option{Type: typ, Data: mustMAC(mac)}
}

func na(target string, opts ...layers.ICMPv6Option) *layers.ICMPv6NeighborAdvertisement {
	return &layers.ICMPv6NeighborAdvertisement{Flags: 0x20, TargetAddress: net.ParseIP(target), Options: opts}
}

func ns(target string, opts ...layers.ICMPv6Option) *layers.ICMPv6NeighborSolicitation {
	return &layers.ICMPv6NeighborSolicitation{TargetAddress: net.ParseIP(target), Options: opts}
}

// ext is an empty 8-byte IPv6 extension header (PadN) followed by nh.
func ext(nh layers.IPProtocol) gopacket.Payload {
	return gopacket.Payload{byte(nh), 0, 1, 4, 0, 0, 0, 0}
}

// fragH is the Fragment header's next header number.
const fragH = layers.IPProtocolIPv6Fragment

// frag is an IPv6 Fragment header followed by nh, at offset off (in
// 8-byte units), with M set if more.
func frag(nh layers.IPProtocol, off uint16, more bool) gopacket.Payload {
	fo := off << 3
	if more {
		fo |= 1
	}
	return gopacket.Payload{byte(nh), 0, byte(fo >> 8), byte(fo), 0, 0, 0x12, 0x34}
}

// ah is a 12-byte IPv6 Authentication Header followed by nh.
func ah(nh layers.IPProtocol) gopacket.Payload {
	return gopacket.Payload{byte(nh), 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}
}

// ra is a Router Advertisement offering a default route.
func ra() *layers.ICMPv6RouterAdvertisement {
	return &layers.ICMPv6RouterAdvertisement{HopLimit: 64, RouterLifetime: 1800}
}

// at returns b with its frame byte i (counted from the Ethernet header)
// set to v.
func at(b []byte, i int, v byte) []byte {
	b[HdrLen+i] = v
	return b
}

// bare is a lone Ethernet header from macA with ethertype et.
func bare(et layers.EthernetType) []byte {
	b := frame(bcast, macA, "")
	binary.BigEndian.PutUint16(b[HdrLen+12:], uint16(et))
	return b
}

// cut returns b with its frame cut to n bytes.
func cut(b []byte, n int) []byte { return b[:HdrLen+n] }

const (
	l3  = ethHdrLen // where the network header starts in an untagged frame
	udp = layers.IPProtocolUDP
	tcp = layers.IPProtocolTCP
)

var (
	etIPv4 = layers.EthernetTypeIPv4
	etIPv6 = layers.EthernetTypeIPv6
	etARP  = layers.EthernetTypeARP
	etVLAN = layers.EthernetTypeDot1Q
	etQinQ = layers.EthernetTypeQinQ
	icmpv6 = layers.IPProtocolICMPv6
	optSrc = layers.ICMPv6OptSourceAddress
	optTgt = layers.ICMPv6OptTargetAddress
)

// securityCases are frames port "a" (testInfo(0)) sends to the broadcast
// address, and the drop reason for each, "" for frames it may send.
var securityCases = []struct {
	name  string
	frame []byte
	want  string
}{
	// Allowed.
	{"other ethertype", frame(bcast, macA, "x"), ""},
	{"ipv4 own", pkt(eth(macA, bcast, etIPv4), ip4(ipA, ipB, tcp), &layers.TCP{SrcPort: 1, DstPort: 2}), ""},
	{"ipv4 own with options", pkt(eth(macA, bcast, etIPv4), &layers.IPv4{Version: 4, IHL: 6, TTL: 1, Protocol: 2,
		SrcIP: net.ParseIP(ipA), DstIP: net.ParseIP("224.0.0.22"), Options: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}}), ""},
	{"dhcp request from 0.0.0.0", pkt(eth(macA, bcast, etIPv4), ip4("0.0.0.0", "255.255.255.255", udp), &layers.UDP{SrcPort: 68, DstPort: 67}), ""},
	{"arp request", pkt(eth(macA, bcast, etARP), arpPkt(1, macA, ipA, ipB)), ""},
	{"arp probe", pkt(eth(macA, bcast, etARP), arpPkt(1, macA, "0.0.0.0", ipA)), ""},
	{"gratuitous arp", pkt(eth(macA, bcast, etARP), arpPkt(2, macA, ipA, ipA)), ""},
	{"ipv6 own tcp", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, tcp), &layers.TCP{SrcPort: 1, DstPort: 2}), ""},
	{"ipv6 own", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, udp), &layers.UDP{SrcPort: 1, DstPort: 2}), ""},
	{"ipv6 link-local", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", udp), &layers.UDP{SrcPort: 1, DstPort: 2}), ""},
	{"ipv6 dad", pkt(eth(macA, bcast, etIPv6), ip6("::", "ff02::1:ff00:1", icmpv6), icmp6(135), ns(ip6A)), ""},
	{"mld report from ::", pkt(eth(macA, bcast, etIPv6), ip6("::", "ff02::16", layers.IPProtocolIPv6HopByHop),
		ext(icmpv6), icmp6(143), gopacket.Payload{0, 0, 0, 0}), ""},
	{"ipv6 first fragment", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, fragH), frag(58, 0, true), icmp6(128), gopacket.Payload{0, 1, 0, 1}), ""},
	{"ipv6 first fragment udp", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, fragH), frag(17, 0, true), &layers.UDP{SrcPort: 1, DstPort: 2}), ""},
	{"ipv6 first fragment tcp", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, fragH), frag(6, 0, true), &layers.TCP{SrcPort: 1, DstPort: 2, DataOffset: 5}), ""},
	{"ipv6 atomic fragment echo", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, fragH), frag(58, 0, false), icmp6(128), gopacket.Payload{0, 1, 0, 1}), ""},
	// A later fragment holds no upper-layer header, whatever its bytes
	// look like: the first fragment was checked.
	{"ipv6 later fragment", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, fragH), frag(58, 185, false), gopacket.Payload{134, 0, 0, 0, 64, 0, 7, 8}), ""},
	{"icmpv6 echo behind AH", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, layers.IPProtocolAH), ah(58), icmp6(128), gopacket.Payload{0, 1, 0, 1}), ""},
	{"esp", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, layers.IPProtocolESP), gopacket.Payload{0, 0, 1, 0, 0, 0, 0, 1, 9, 9, 9, 9}), ""},
	{"no next header", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, layers.IPProtocolIPv6Destination), ext(59)), ""},
	{"rarp request", pkt(eth(macA, bcast, layers.EthernetType(0x8035)), arpPkt(3, macA, "0.0.0.0", "0.0.0.0")), ""},
	{"local experimental 2", bare(0x88b6), ""},
	{"ipv6 behind destination options", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, layers.IPProtocolIPv6Destination), ext(udp), &layers.UDP{}), ""},
	{"na own", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", icmpv6), icmp6(136), na(ip6A, lla(optTgt, macA))), ""},
	{"na link-local", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", icmpv6), icmp6(136), na(llA)), ""},
	{"ns for another host", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1:ff00:2", icmpv6), icmp6(135), ns(ip6B, lla(optSrc, macA))), ""},
	{"rs", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::2", icmpv6), icmp6(133), &layers.ICMPv6RouterSolicitation{Options: layers.ICMPv6Options{lla(optSrc, macA)}}), ""},
	{"icmpv6 echo", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, icmpv6), icmp6(128), gopacket.Payload{0, 1, 0, 1}), ""},
	{"vlan ipv4 own", pkt(eth(macA, bcast, etVLAN), vlan(10, etIPv4), ip4(ipA, ipB, udp), &layers.UDP{}), ""},
	{"qinq arp own", pkt(eth(macA, bcast, etQinQ), vlan(10, etVLAN), vlan(20, etARP), arpPkt(1, macA, ipA, ipB)), ""},
	{"vlan other ethertype", pkt(eth(macA, bcast, etVLAN), vlan(10, 0x88b5), gopacket.Payload{1, 2, 3}), ""},

	// Source MAC.
	{"src mac", frame(bcast, macB, "x"), "src_mac"},
	{"src mac under a good ipv4", pkt(eth(macB, bcast, etIPv4), ip4(ipA, ipB, udp), &layers.UDP{}), "src_mac"},

	// ARP.
	{"arp sender mac", pkt(eth(macA, bcast, etARP), arpPkt(2, macB, ipA, ipB)), "arp_spoof"},
	{"arp sender ip", pkt(eth(macA, bcast, etARP), arpPkt(2, macA, ipB, ipB)), "arp_spoof"},
	{"arp short", cut(pkt(eth(macA, bcast, etARP), arpPkt(1, macA, ipA, ipB)), l3+27), "malformed"},
	{"arp not ipv4", at(pkt(eth(macA, bcast, etARP), arpPkt(1, macA, ipA, ipB)), l3+3, 0xdd), "malformed"},
	{"arp hlen 8", at(pkt(eth(macA, bcast, etARP), arpPkt(1, macA, ipA, ipB)), l3+4, 8), "malformed"},

	// IPv4.
	{"ipv4 other source", pkt(eth(macA, bcast, etIPv4), ip4(ipB, ipA, tcp), &layers.TCP{}), "ip_spoof"},
	{"ipv4 0.0.0.0 tcp", pkt(eth(macA, bcast, etIPv4), ip4("0.0.0.0", ipB, tcp), &layers.TCP{}), "ip_spoof"},
	{"ipv4 0.0.0.0 udp not dhcp", pkt(eth(macA, bcast, etIPv4), ip4("0.0.0.0", ipB, udp), &layers.UDP{SrcPort: 68, DstPort: 68}), "ip_spoof"},
	{"ipv4 0.0.0.0 dhcp fragment", pkt(eth(macA, bcast, etIPv4), &layers.IPv4{Version: 4, IHL: 5, Flags: layers.IPv4MoreFragments, Protocol: udp,
		SrcIP: net.IPv4zero, DstIP: net.IPv4bcast}, &layers.UDP{SrcPort: 68, DstPort: 67}), "ip_spoof"},
	{"ipv4 short", cut(pkt(eth(macA, bcast, etIPv4), ip4(ipA, ipB, tcp)), l3+19), "malformed"},
	{"ipv4 ihl 4", at(pkt(eth(macA, bcast, etIPv4), ip4(ipA, ipB, tcp)), l3, 0x44), "malformed"},
	{"ipv4 ihl past the end", at(cut(pkt(eth(macA, bcast, etIPv4), ip4(ipA, ipB, tcp), &layers.TCP{}), l3+40), l3, 0x4f), "malformed"},
	{"ipv4 version 6", at(pkt(eth(macA, bcast, etIPv4), ip4(ipA, ipB, tcp)), l3, 0x65), "malformed"},
	{"ipv4 no header", bare(etIPv4), "malformed"},
	{"ipv6 no header", bare(etIPv6), "malformed"},
	{"arp no header", bare(etARP), "malformed"},
	{"vlan no tag", bare(etVLAN), "malformed"},

	// IPv6.
	{"ipv6 tcp other source", pkt(eth(macA, bcast, etIPv6), ip6(ip6B, ip6A, tcp), &layers.TCP{}), "ip_spoof"},
	{"ipv6 tcp from ::", pkt(eth(macA, bcast, etIPv6), ip6("::", ip6A, tcp), &layers.TCP{}), "ip_spoof"},
	{"ipv4 tcp from 0.0.0.0", pkt(eth(macA, bcast, etIPv4), ip4("0.0.0.0", ipB, tcp), &layers.TCP{}), "ip_spoof"},
	{"ipv6 other source", pkt(eth(macA, bcast, etIPv6), ip6(ip6B, ip6A, udp), &layers.UDP{}), "ip_spoof"},
	{"ipv6 other link-local", pkt(eth(macA, bcast, etIPv6), ip6(llB, "ff02::1", udp), &layers.UDP{}), "ip_spoof"},
	{"ipv6 multicast source", pkt(eth(macA, bcast, etIPv6), ip6("ff02::1", ip6B, udp), &layers.UDP{}), "ip_spoof"},
	{"ipv6 :: udp", pkt(eth(macA, bcast, etIPv6), ip6("::", ip6B, udp), &layers.UDP{}), "ip_spoof"},
	{"ipv6 :: udp behind hop-by-hop", pkt(eth(macA, bcast, etIPv6), ip6("::", ip6B, layers.IPProtocolIPv6HopByHop), ext(udp), &layers.UDP{}), "ip_spoof"},
	{"ipv6 short", cut(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, udp)), l3+39), "malformed"},
	{"ipv6 version 4", at(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, udp)), l3, 0x40), "malformed"},
	{"ipv6 extension header cut", cut(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, layers.IPProtocolIPv6Destination), ext(udp)), l3+44), "malformed"},
	{"ipv6 extension chain too long", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, layers.IPProtocolIPv6Destination),
		ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(icmpv6), icmp6(136), na(ip6B)), "malformed"},

	// Neighbor Discovery.
	{"na other target", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", icmpv6), icmp6(136), na(ip6B, lla(optTgt, macA))), "nd_spoof"},
	{"na other link-local target", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", icmpv6), icmp6(136), na(llB)), "nd_spoof"},
	{"na other target behind destination options", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", layers.IPProtocolIPv6Destination),
		ext(icmpv6), icmp6(136), na(ip6B)), "nd_spoof"},
	{"na other target lla", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", icmpv6), icmp6(136), na(ip6A, lla(optTgt, macB))), "nd_spoof"},
	{"ns other source lla", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1:ff00:2", icmpv6), icmp6(135), ns(ip6B, lla(optSrc, macB))), "nd_spoof"},
	{"rs other source lla", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::2", icmpv6), icmp6(133),
		&layers.ICMPv6RouterSolicitation{Options: layers.ICMPv6Options{lla(optSrc, macB)}}), "nd_spoof"},
	{"ra other source lla", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", icmpv6), icmp6(134),
		&layers.ICMPv6RouterAdvertisement{Options: layers.ICMPv6Options{lla(optSrc, macB)}}), "ra_guard"},
	{"ra from the port's own link-local address", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", icmpv6), icmp6(134),
		&layers.ICMPv6RouterAdvertisement{Options: layers.ICMPv6Options{lla(optSrc, macA)}}), "ra_guard"},
	{"na cut short", cut(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", icmpv6), icmp6(136), na(ip6A)), l3+40+20), "malformed"},
	{"na option length 0", at(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", icmpv6), icmp6(136), na(ip6A, lla(optTgt, macA))), l3+40+24+1, 0), "malformed"},
	{"na option past the payload", at(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", icmpv6), icmp6(136), na(ip6A, lla(optTgt, macA))), l3+40+24+1, 2), "malformed"},
	{"icmpv6 cut", cut(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, icmpv6)), l3+40+3), "malformed"},

	// Neighbor Discovery behind extension headers (RFC 7113) and in
	// fragments (RFC 6980).
	{"ra behind a fragment header", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(58, 0, false), icmp6(134), ra()), "ra_guard"},
	{"ra in a first fragment", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(58, 0, true), icmp6(134), ra()), "ra_guard"},
	{"ra in a first fragment holding only its header", cut(pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(58, 0, true), icmp6(134), ra()), l3+40+8+4), "ra_guard"},
	{"ra behind hop-by-hop and destination options", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", layers.IPProtocolIPv6HopByHop),
		ext(60), ext(icmpv6), icmp6(134), ra()), "ra_guard"},
	{"ra behind hop-by-hop, destination options and a fragment header", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", layers.IPProtocolIPv6HopByHop),
		ext(60), ext(44), frag(58, 0, false), icmp6(134), ra()), "ra_guard"},
	{"ra behind AH", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", layers.IPProtocolAH), ah(58), icmp6(134), ra()), "ra_guard"},
	{"ra behind an experimental header", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", 253), ext(icmpv6), icmp6(134), ra()), "ra_guard"},
	{"ra behind mobility, HIP and shim6 headers", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", 135), ext(139), ext(140), ext(icmpv6), icmp6(134), ra()), "ra_guard"},
	{"ra behind a routing header", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", layers.IPProtocolIPv6Routing), ext(icmpv6), icmp6(134), ra()), "ra_guard"},
	{"na other target behind a fragment header", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", fragH), frag(58, 0, false), icmp6(136), na(ip6B)), "nd_spoof"},
	{"na own target behind a fragment header", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", fragH), frag(58, 0, false), icmp6(136), na(ip6A, lla(optTgt, macA))), "nd_spoof"},
	{"na other target behind hop-by-hop and destination options", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", layers.IPProtocolIPv6HopByHop),
		ext(60), ext(icmpv6), icmp6(136), na(ip6B)), "nd_spoof"},
	{"ns in a fragment", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1:ff00:2", fragH), frag(58, 0, true), icmp6(135), ns(ip6B, lla(optSrc, macA))), "nd_spoof"},
	{"redirect in a fragment", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(58, 0, false), icmp6(137), gopacket.Payload(make([]byte, 36))), "nd_spoof"},
	{"first fragment without its upper layer", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(58, 0, true)), "malformed"},
	{"first fragment with half an icmpv6 header", cut(pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(58, 0, true), icmp6(134), ra()), l3+40+8+2), "malformed"},
	{"first fragment without a destination options header", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(60, 0, true)), "malformed"},
	{"first fragment with half a tcp header", cut(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, fragH), frag(6, 0, true), &layers.TCP{DataOffset: 5}), l3+40+8+10), "malformed"},
	{"first fragment without the tcp options", at(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, fragH), frag(6, 0, true), &layers.TCP{DataOffset: 5}), l3+40+8+12, 0x60), "malformed"},
	{"first fragment without its udp header", cut(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, fragH), frag(17, 0, true), &layers.UDP{}), l3+40+8+4), "malformed"},
	{"fragment header cut", cut(pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(58, 0, true), icmp6(134), ra()), l3+40+6), "malformed"},
	{"extension header past the payload length", at(pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, layers.IPProtocolIPv6HopByHop), ext(udp), &layers.UDP{}), l3+41, 2), "malformed"},
	{"AH past the payload", at(pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", layers.IPProtocolAH), ah(58), icmp6(134), ra()), l3+41, 200), "malformed"},
	{"later fragment from ::", pkt(eth(macA, bcast, etIPv6), ip6("::", ip6B, fragH), frag(58, 185, false), gopacket.Payload{1, 2, 3, 4, 5, 6, 7, 8}), "ip_spoof"},
	{"udp in a first fragment from ::", pkt(eth(macA, bcast, etIPv6), ip6("::", ip6B, fragH), frag(17, 0, true), &layers.UDP{}), "ip_spoof"},

	// Ethertypes.
	{"rarp other sender", pkt(eth(macA, bcast, layers.EthernetType(0x8035)), arpPkt(4, macA, ipB, ipA)), "arp_spoof"},
	{"mpls", pkt(eth(macA, bcast, layers.EthernetTypeMPLSUnicast), gopacket.Payload{0, 0, 0x11, 64}, ip4(ipB, ipA, udp), &layers.UDP{}), "ethertype"},
	{"mpls multicast", bare(0x8848), "ethertype"},
	{"pppoe session", pkt(eth(macA, bcast, layers.EthernetTypePPPoESession), gopacket.Payload{0x11, 0, 0, 1, 0, 22, 0, 0x21}, ip4(ipB, ipA, udp), &layers.UDP{}), "ethertype"},
	{"pppoe discovery", bare(0x8863), "ethertype"},
	{"llc snap ipv4", pkt(eth(macA, bcast, layers.EthernetType(36)), gopacket.Payload{0xaa, 0xaa, 3, 0, 0, 0, 8, 0}, ip4(ipB, ipA, udp), &layers.UDP{}), "ethertype"},
	{"macsec", bare(0x88e5), "ethertype"},
	{"802.1ah", bare(0x88e7), "ethertype"},
	{"transparent ethernet bridging", bare(0x6558), "ethertype"},
	{"lldp to a unicast address", bare(0x88cc), "ethertype"},
	{"vlan mpls", pkt(eth(macA, bcast, etVLAN), vlan(10, layers.EthernetTypeMPLSUnicast), gopacket.Payload{0, 0, 0x11, 64}), "ethertype"},
	{"qinq pppoe", pkt(eth(macA, bcast, etQinQ), vlan(10, etVLAN), vlan(20, layers.EthernetTypePPPoESession), gopacket.Payload{0x11, 0, 0, 1}), "ethertype"},

	// VLAN tags.
	{"vlan ipv4 other source", pkt(eth(macA, bcast, etVLAN), vlan(10, etIPv4), ip4(ipB, ipA, udp), &layers.UDP{}), "ip_spoof"},
	{"qinq arp other sender", pkt(eth(macA, bcast, etQinQ), vlan(10, etVLAN), vlan(20, etARP), arpPkt(2, macA, ipB, ipA)), "arp_spoof"},
	{"vlan na other target", pkt(eth(macA, bcast, etVLAN), vlan(10, etIPv6), ip6(ip6A, "ff02::1", icmpv6), icmp6(136), na(ip6B)), "nd_spoof"},
	{"three tags", pkt(eth(macA, bcast, etVLAN), vlan(10, etVLAN), vlan(20, etVLAN), vlan(30, etARP), arpPkt(1, macA, ipA, ipB)), "malformed"},
	{"vlan tag cut", cut(pkt(eth(macA, bcast, etVLAN), vlan(10, etIPv4)), 17), "malformed"},
}

// newSecureRig makes ports a (security on, testInfo(0)), b and c
// (security off).
func newSecureRig(t testing.TB) *rig {
	t.Helper()
	r := newRig(t)
	info := testInfo(0)
	info.Storm = noStorm
	r.addInfo(t, "n", "a", info)
	r.add(t, "n", "b")
	r.add(t, "n", "c")
	return r
}

func TestSecurity(t *testing.T) {
	for _, tt := range securityCases {
		t.Run(tt.name, func(t *testing.T) {
			r := newSecureRig(t)
			r.forward("a", tt.frame)
			got := r.receivers(tt.frame, "b", "c")
			drops := r.ports["a"].Counters().Drops
			if tt.want == "" {
				if len(drops) != 0 || !slicesEqual(got, []string{"b", "c"}) {
					t.Fatalf("frame went to %v with drops %v, want it flooded to [b c]", got, drops)
				}
				return
			}
			if len(got) != 0 || drops[tt.want] != 1 || len(drops) != 1 {
				t.Fatalf("frame went to %v with drops %v, want it dropped as %s", got, drops, tt.want)
			}
			if n := r.net.fdb.Len(); n != 0 {
				t.Fatalf("fdb has %d entries after a dropped frame, want 0 (nothing learned)", n)
			}
		})
	}
}

// TestSecurityOff sends every frame of TestSecurity from a port with
// security off: none is dropped.
func TestSecurityOff(t *testing.T) {
	for _, tt := range securityCases {
		t.Run(tt.name, func(t *testing.T) {
			r := newSecureRig(t)
			r.ports["a"].SetSecurity(false)
			if r.ports["a"].Security() {
				t.Fatal("Security() = true after SetSecurity(false)")
			}
			r.forward("a", tt.frame)
			if got := r.receivers(tt.frame, "b", "c"); !slicesEqual(got, []string{"b", "c"}) {
				t.Fatalf("frame went to %v with drops %v, want [b c]", got, r.ports["a"].Counters().Drops)
			}
		})
	}
}

func TestSecurityDefaults(t *testing.T) {
	r := newSecureRig(t)
	if !r.ports["a"].Security() {
		t.Fatal("port attached without NoSecurity: Security() = false, want true")
	}
	if r.ports["b"].Security() {
		t.Fatal("port attached with NoSecurity: Security() = true, want false")
	}
	// A port with security on needs its MAC.
	for _, mac := range []net.HardwareAddr{nil, mustMAC("01:00:5e:00:00:01"), mustMAC("00:00:00:00:00:00"), {1, 2, 3}} {
		d := newFakeDev()
		if _, err := r.sw.AddPort("n", "x", d, PortInfo{MAC: mac}); !errors.Is(err, ErrBadMAC) {
			t.Fatalf("AddPort(MAC %q, security on) = %v, want ErrBadMAC", mac, err)
		}
	}
	for _, p := range []netip.Prefix{{}, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"),
		netip.MustParsePrefix("224.0.0.1/32"), netip.MustParsePrefix("ff02::1/128")} {
		if _, err := r.sw.AddPort("n", "x", newFakeDev(), PortInfo{MAC: mustMAC(macC), IPs: []netip.Prefix{p}}); !errors.Is(err, ErrBadAddress) {
			t.Fatalf("AddPort(IPs %v) = %v, want ErrBadAddress", p, err)
		}
		if err := r.ports["a"].SetAddresses(mustMAC(macA), []netip.Prefix{p}); !errors.Is(err, ErrBadAddress) {
			t.Fatalf("SetAddresses(IPs %v) = %v, want ErrBadAddress", p, err)
		}
	}
	// With security off and no MAC, switching security on lets nothing
	// through until the port has a MAC.
	r.addInfo(t, "n", "x", PortInfo{NoSecurity: true})
	x := r.ports["x"]
	x.SetSecurity(true)
	f := frame(bcast, macC, "x")
	r.forward("x", f)
	if got := x.Counters().Drops["src_mac"]; got != 1 {
		t.Fatalf("port without MAC, security on: drops %v, want src_mac=1", x.Counters().Drops)
	}
	if err := x.SetAddresses(mustMAC(macC), nil); err != nil {
		t.Fatalf("SetAddresses(%s) = %v", macC, err)
	}
	r.reset()
	r.forward("x", f)
	if got := r.receivers(f, "a", "b", "c"); len(got) != 3 {
		t.Fatalf("after SetAddresses, frame went to %v, want [a b c]", got)
	}
}

func TestSetAddresses(t *testing.T) {
	r := newSecureRig(t)
	a := r.ports["a"]
	from := func(ip string) []byte {
		return pkt(eth(macA, bcast, etIPv4), ip4(ip, ipB, udp), &layers.UDP{})
	}
	send := func(f []byte, want bool) {
		t.Helper()
		r.reset()
		before := a.Counters().Drops["ip_spoof"]
		r.forward("a", f)
		got := len(r.receivers(f, "b")) == 1
		if got != want {
			t.Fatalf("frame passed = %v, want %v (drops %v)", got, want, a.Counters().Drops)
		}
		if dropped := a.Counters().Drops["ip_spoof"] - before; dropped != 0 == want {
			t.Fatalf("ip_spoof drops grew by %d, want passed = %v", dropped, want)
		}
	}
	send(from(ipA), true)
	send(from("10.0.0.5"), false)

	ips := []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24"), netip.MustParsePrefix("fd00::5/64")}
	if err := a.SetAddresses(mustMAC(macA), ips); err != nil {
		t.Fatalf("SetAddresses = %v", err)
	}
	send(from("10.0.0.5"), true)
	send(from(ipA), false)
	info := a.Info()
	if len(info.IPs) != 2 || info.IPs[0] != ips[0] || info.MAC.String() != macA {
		t.Fatalf("Info() = %+v after SetAddresses, want MAC %s and IPs %v", info, macA, ips)
	}
	// The port keeps no reference to the caller's slice.
	ips[0] = netip.MustParsePrefix("10.0.0.9/24")
	send(from("10.0.0.5"), true)

	if err := a.SetAddresses(mustMAC("01:00:00:00:00:01"), nil); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("SetAddresses(multicast MAC) = %v, want ErrBadMAC", err)
	}
	if err := a.SetAddresses(nil, nil); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("SetAddresses(nil MAC) = %v, want ErrBadMAC", err)
	}
	// A refused change leaves the identity as it was.
	send(from("10.0.0.5"), true)

	// A new MAC moves the link-local address with it.
	if err := a.SetAddresses(mustMAC(macC), nil); err != nil {
		t.Fatalf("SetAddresses(%s) = %v", macC, err)
	}
	f := pkt(eth(macC, bcast, etIPv6), ip6("fe80::ff:fe00:c", "ff02::1", udp), &layers.UDP{})
	r.reset()
	r.forward("a", f)
	if got := r.receivers(f, "b"); len(got) != 1 {
		t.Fatalf("frame from the new MAC and its link-local address dropped: %v", a.Counters().Drops)
	}
	if info := a.Info(); info.NoSecurity {
		t.Fatalf("Info().NoSecurity = true, want false")
	}
	a.SetSecurity(false)
	if info := a.Info(); !info.NoSecurity {
		t.Fatalf("Info().NoSecurity = false after SetSecurity(false), want true")
	}
}

// TestSecurityRace changes a port's security and addresses while frames
// from it are forwarded. Under -race it shows the forwarding path reads
// the identity safely. Every identity the port is given holds ipA, none
// holds spoofIP, so whatever the interleaving, every good frame must be
// forwarded, and every spoofed one forwarded (security off) or dropped
// as ip_spoof, nothing else.
func TestSecurityRace(t *testing.T) {
	const spoofIP = "10.0.0.9"
	r := newSecureRig(t)
	a := r.ports["a"]
	good := pkt(eth(macA, bcast, etIPv4), ip4(ipA, ipB, udp), &layers.UDP{})
	spoofed := pkt(eth(macA, bcast, etIPv4), ip4(spoofIP, ipB, udp), &layers.UDP{})
	var stop atomic.Bool
	var sent int
	var wg sync.WaitGroup
	wg.Go(func() {
		for ; !stop.Load() || sent < 1000; sent++ {
			if sent%2 == 0 {
				r.forward("a", good)
			} else {
				r.forward("a", spoofed)
			}
		}
	})
	wg.Go(func() {
		more := append(testInfo(0).IPs, netip.MustParsePrefix("10.0.0.7/24"))
		for i := range 500 {
			a.SetSecurity(i%3 != 0)
			ips := testInfo(0).IPs
			if i%2 == 0 {
				ips = more
			}
			if err := a.SetAddresses(mustMAC(macA), ips); err != nil {
				t.Error(err)
			}
			_ = a.Info()
			_ = a.Security()
		}
		stop.Store(true)
	})
	wg.Wait()
	c := a.Counters()
	goods := uint64(len(r.receivers(good, "b")))
	spoofs := uint64(len(r.receivers(spoofed, "b")))
	if goods != uint64(sent+1)/2 {
		t.Fatalf("%d of %d good frames forwarded, want all (drops %v)", goods, (sent+1)/2, c.Drops)
	}
	if spoofs+c.Drops["ip_spoof"] != uint64(sent/2) || len(c.Drops) > 1 {
		t.Fatalf("%d spoofed frames: %d forwarded, drops %v; want the rest dropped as ip_spoof", sent/2, spoofs, c.Drops)
	}
	if c.RxFrames != goods+spoofs {
		t.Fatalf("rx %d, want %d (every frame forwarded)", c.RxFrames, goods+spoofs)
	}
	// Security ends on (499%3 != 0): the next spoofed frame goes.
	r.forward("a", spoofed)
	if got := a.Counters().Drops["ip_spoof"]; got != c.Drops["ip_spoof"]+1 {
		t.Fatalf("spoofed frame after the run: ip_spoof %d, want %d", got, c.Drops["ip_spoof"]+1)
	}
}

func TestLinkLocal(t *testing.T) {
	for _, tt := range []struct{ mac, want string }{
		{macA, llA},
		{"00:16:3e:12:34:56", "fe80::216:3eff:fe12:3456"},
		{"02:42:ac:11:00:02", "fe80::42:acff:fe11:2"},
	} {
		want := netip.MustParseAddr(tt.want).As16()
		if got := linkLocal(mustMAC(tt.mac)); got != read6(want[:]) {
			t.Errorf("linkLocal(%s) = %x:%x, want %s", tt.mac, got.hi, got.lo, tt.want)
		}
	}
}

func TestValidVnetHdr(t *testing.T) {
	// hdr builds a virtio header: flags, gso type, hdr_len, gso_size,
	// csum_start, csum_offset.
	hdr := func(flags, gso uint8, hdrLen, gsoSize, start, off uint16) []byte {
		b := frame(bcast, macA, string(make([]byte, 86))) // 100-byte frame
		b[0], b[1] = flags, gso
		binary.LittleEndian.PutUint16(b[2:], hdrLen)
		binary.LittleEndian.PutUint16(b[4:], gsoSize)
		binary.LittleEndian.PutUint16(b[6:], start)
		binary.LittleEndian.PutUint16(b[8:], off)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"zero", hdr(0, 0, 0, 0, 0, 0), true},
		{"data valid", hdr(2, 0, 0, 0, 0, 0), true},
		{"needs csum in frame", hdr(1, 0, 0, 0, 34, 16), true},
		{"csum ends at the frame's end", hdr(1, 0, 0, 0, 90, 8), true},
		{"csum past the end", hdr(1, 0, 0, 0, 90, 9), false},
		{"csum offsets ignored without the flag", hdr(0, 0, 0, 0, 0xffff, 0xffff), true},
		{"hdr_len at the end", hdr(0, 0, 100, 0, 0, 0), true},
		{"hdr_len past the end", hdr(0, 0, 101, 0, 0, 0), false},
		{"tso4", hdr(1, 1, 54, 1448, 34, 16), true},
		{"tso6 ecn", hdr(1, 4|0x80, 74, 1440, 54, 16), true},
		{"ufo", hdr(1, 3, 42, 1472, 34, 6), true},
		{"uso", hdr(1, 5, 42, 1472, 34, 6), true},
		{"gso without size", hdr(1, 1, 54, 0, 34, 16), false},
		{"unknown gso type 2", hdr(0, 2, 0, 1448, 0, 0), false},
		{"unknown gso type 6", hdr(0, 6, 0, 1448, 0, 0), false},
		{"ecn alone", hdr(0, 0x80, 0, 1448, 0, 0), false},
		{"unknown gso type 0x7f", hdr(0, 0x7f, 0, 1448, 0, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validVnetHdr(tt.b); got != tt.want {
				t.Fatalf("validVnetHdr(% x) = %v, want %v", tt.b[:HdrLen], got, tt.want)
			}
			// The same through forward, from a port with security off.
			r := newRig(t, "a", "b")
			r.forward("a", tt.b)
			dropped := r.ports["a"].Counters().Drops["bad_vnet_hdr"] == 1
			passed := len(r.receivers(tt.b, "b")) == 1
			if dropped == tt.want || passed != tt.want {
				t.Fatalf("forward: dropped as bad_vnet_hdr %v, forwarded %v; want forwarded %v", dropped, passed, tt.want)
			}
		})
	}
}

func TestDropNames(t *testing.T) {
	seen := map[string]bool{}
	for r := DropReason(0); r < numDropReasons; r++ {
		name := r.String()
		if name == "" || name == "unknown" || seen[name] {
			t.Fatalf("DropReason(%d).String() = %q: empty, unknown or repeated", r, name)
		}
		seen[name] = true
	}
	for _, want := range []string{"bad_vnet_hdr", "src_mac", "arp_spoof", "ip_spoof", "nd_spoof", "ra_guard", "malformed", "mac_limit", "fdb_full", "ethertype", "link_local", "storm", "oversize"} {
		if !seen[want] {
			t.Errorf("no drop reason named %q", want)
		}
	}
}
