package vswitch

import (
	"encoding/binary"

	"github.com/tapswitch/tapswitch/device"
)

// validVnetHdr reports whether the virtio net header at the front of b
// describes the frame after it in a way every receiving TAP accepts. A
// header the kernel would refuse makes the write to every port fail; one
// it would accept but that lies about the frame (a checksum offset or a
// header length past its end) must not reach another namespace at all.
//
// It checks what tun_get_user and virtio_net_hdr_to_skb check on write:
//
//   - the GSO type is none or one of TCPv4, TCPv6, UDP (UFO) and UDP_L4
//     (USO), with the ECN bit only on top of one of those;
//   - a GSO type comes with a segment size;
//   - the header length, and with NEEDS_CSUM the two checksum bytes at
//     csum_start+csum_offset, lie within the frame.
//
// Other flag bits are left alone, as the kernel leaves them.
//
// It is device.ParseVnetHdr's check (the fuzz test holds them to the same
// answer) without decoding into a struct or building an error, so a
// stream of bad headers costs no allocation.
func validVnetHdr(b []byte) bool {
	_ = b[HdrLen-1]
	need := int(binary.LittleEndian.Uint16(b[2:]))
	if b[0]&device.VnetFlagNeedsCsum != 0 {
		need = max(need, int(binary.LittleEndian.Uint16(b[6:]))+int(binary.LittleEndian.Uint16(b[8:]))+2)
	}
	return gsoTypes[b[1]] && (b[1] == device.GSONone || binary.LittleEndian.Uint16(b[4:]) != 0) &&
		need <= len(b)-HdrLen
}

// gsoTypes marks the GSO types a TAP accepts. A table, rather than a
// switch, keeps validVnetHdr small enough to be inlined.
var gsoTypes = [256]bool{
	device.GSONone:                  true,
	device.GSOTCPv4:                 true,
	device.GSOUDP:                   true,
	device.GSOTCPv6:                 true,
	device.GSOUDPL4:                 true,
	device.GSOTCPv4 | device.GSOECN: true,
	device.GSOUDP | device.GSOECN:   true,
	device.GSOTCPv6 | device.GSOECN: true,
	device.GSOUDPL4 | device.GSOECN: true,
}
