package segment

import (
	"encoding/binary"

	"github.com/tapswitch/tapswitch/device"
)

// Reseed makes a whole TCP or UDP frame whose data is known good, but
// whose transport checksum may hold anything, a frame with
// VnetFlagNeedsCsum: the checksum field gets the pseudo-header seed, and
// hdr (its virtio net header, device.VnetHdrLen bytes) says where the
// sum goes, for whoever needs it filled (the kernel, for a route out of
// a device without checksum offload; the switch, for a port without it).
// A receiver's stack takes such a frame as checksummed, as it takes one
// its own host sent.
//
// It is for frames that a Splitter with Partial set cut (a tunnel
// between tapswitch hosts, where the outer UDP checksum covers the
// frame), and equally right for a frame whose checksum was filled in:
// the seed replaces it. It reports false, and changes nothing, for any
// other frame: not TCP or UDP right after an IPv4 header (options may
// be) or an IPv6 one (no extension headers), an IPv4 fragment, or a
// frame longer or shorter than its IP length says (padding would be
// summed with the rest wherever the checksum is filled from the frame's
// end).
func Reseed(hdr, frame []byte) bool {
	l3, etherType := skipEthernet(frame)
	if l3 < 0 {
		return false
	}
	var sum uint64
	var proto uint8
	var l4, l4Len int
	switch etherType {
	case etherTypeIPv4:
		if l3+ipv4MinLen > len(frame) {
			return false
		}
		ip := frame[l3:]
		ihl := int(ip[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if ip[0]>>4 != 4 || ihl < ipv4MinLen || tot < ihl || l3+tot != len(frame) {
			return false
		}
		if ip[6]&ipv4FlagMF != 0 || binary.BigEndian.Uint16(ip[6:])&ipv4FragOffMask != 0 {
			return false
		}
		proto, l4, l4Len = ip[9], l3+ihl, tot-ihl
		sum = uint64(checksum(ip[12:20], 0))
	case etherTypeIPv6:
		if l3+ipv6Len > len(frame) {
			return false
		}
		ip := frame[l3:]
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		if ip[0]>>4 != 6 || pl == 0 || l3+ipv6Len+pl != len(frame) {
			return false
		}
		proto, l4, l4Len = ip[6], l3+ipv6Len, pl
		sum = uint64(checksum(ip[8:40], 0))
	default:
		return false
	}
	var at int
	switch {
	case proto == protoTCP && l4Len >= tcpMinLen:
		at = tcpCsumOff
	case proto == protoUDP && l4Len >= udpLen:
		at = udpCsumOff
	default:
		return false
	}
	binary.BigEndian.PutUint16(frame[l4+at:], fold(sum+uint64(proto)+uint64(l4Len)))
	device.VnetHdr{
		Flags:      device.VnetFlagNeedsCsum,
		CsumStart:  uint16(l4),
		CsumOffset: uint16(at),
	}.Put(hdr)
	return true
}
