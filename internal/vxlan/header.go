package vxlan

import "errors"

// HeaderLen is the length of the VXLAN header (RFC 7348 section 5).
const HeaderLen = 8

// flagI is the I flag: the VNI is valid. The other seven flag bits and
// the reserved fields are sent as zero and ignored on receipt.
const flagI = 0x08

// ethHdrLen is the inner Ethernet header's length.
const ethHdrLen = 14

// Why parse refuses a packet.
var (
	errShort = errors.New("vxlan: packet shorter than a VXLAN header and an Ethernet header")
	errNoVNI = errors.New("vxlan: I flag clear: no valid VNI")
)

// putHeader writes the VXLAN header of vni into b[:HeaderLen].
func putHeader(b []byte, vni uint32) {
	_ = b[HeaderLen-1]
	b[0], b[1], b[2], b[3] = flagI, 0, 0, 0
	b[4], b[5], b[6], b[7] = byte(vni>>16), byte(vni>>8), byte(vni), 0
}

// parse decodes one VXLAN packet, the payload of one UDP datagram: its
// VNI and the inner Ethernet frame, which must hold at least an Ethernet
// header. Reserved bits are ignored, as RFC 7348 says; only the I flag
// must be set.
func parse(b []byte) (vni uint32, frame []byte, err error) {
	if len(b) < HeaderLen+ethHdrLen {
		return 0, nil, errShort
	}
	if b[0]&flagI == 0 {
		return 0, nil, errNoVNI
	}
	return uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]), b[HeaderLen:], nil
}

// macKey is a MAC address as a number, the key of the tunnel's tables.
func macKey(b []byte) uint64 {
	_ = b[5]
	return uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
}

// keyMAC turns a key back into an address.
func keyMAC(k uint64) []byte {
	return []byte{byte(k >> 40), byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
}

// isGroup reports whether the MAC key is a group (broadcast or multicast)
// address.
func isGroup(k uint64) bool { return k&(1<<40) != 0 }
