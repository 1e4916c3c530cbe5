package device

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// VnetHdrLen is the size of struct virtio_net_hdr, the header the kernel
// puts before every frame on a TAP opened with IFF_VNET_HDR (the default
// header size; TUNSETVNETHDRSZ is not used).
const VnetHdrLen = 10

// Virtio net header flags and GSO types (include/uapi/linux/virtio_net.h).
const (
	VnetFlagNeedsCsum = 1 // csum_start/csum_offset say where to put the checksum
	VnetFlagDataValid = 2 // the checksum was verified

	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3
	GSOTCPv6 = 4
	GSOUDPL4 = 5
	GSOECN   = 0x80
)

// VnetHdr is a decoded virtio net header. Multi-byte fields are in host
// byte order (little-endian on every platform tapswitch runs on), as the
// kernel writes them for a TAP without TUNSETVNETBE.
type VnetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// Errors from ParseVnetHdr.
var (
	ErrShortHeader = errors.New("device: shorter than a virtio net header")
	ErrBadGSOType  = errors.New("device: unknown GSO type")
	ErrBadCsum     = errors.New("device: checksum offsets past the end of the frame")
	ErrBadGSO      = errors.New("device: GSO header without a segment size")
	ErrBadHdrLen   = errors.New("device: header length past the end of the frame")
)

// ParseVnetHdr decodes the header at the front of b and checks it against
// the frame that follows it (b[VnetHdrLen:]) as the kernel does when the
// header is written to a TAP: a known GSO type (the ECN bit only on top
// of one) with a segment size, a header length within the frame, and
// with NEEDS_CSUM the checksum field within the frame.
func ParseVnetHdr(b []byte) (VnetHdr, error) {
	if len(b) < VnetHdrLen {
		return VnetHdr{}, ErrShortHeader
	}
	h := VnetHdr{
		Flags:      b[0],
		GSOType:    b[1],
		HdrLen:     binary.LittleEndian.Uint16(b[2:]),
		GSOSize:    binary.LittleEndian.Uint16(b[4:]),
		CsumStart:  binary.LittleEndian.Uint16(b[6:]),
		CsumOffset: binary.LittleEndian.Uint16(b[8:]),
	}
	frameLen := len(b) - VnetHdrLen
	switch h.GSOType &^ GSOECN {
	case GSONone:
		if h.GSOType&GSOECN != 0 {
			return h, fmt.Errorf("%w %#x: the ECN bit without a GSO type", ErrBadGSOType, h.GSOType)
		}
	case GSOTCPv4, GSOTCPv6, GSOUDP, GSOUDPL4:
		if h.GSOSize == 0 {
			return h, ErrBadGSO
		}
	default:
		return h, fmt.Errorf("%w %d", ErrBadGSOType, h.GSOType)
	}
	if int(h.HdrLen) > frameLen {
		return h, ErrBadHdrLen
	}
	if h.Flags&VnetFlagNeedsCsum != 0 {
		// The checksum field (two bytes at start+offset) must lie in the frame.
		if int(h.CsumStart)+int(h.CsumOffset)+2 > frameLen {
			return h, ErrBadCsum
		}
	}
	return h, nil
}

// Put encodes h into the first VnetHdrLen bytes of b.
func (h VnetHdr) Put(b []byte) {
	_ = b[VnetHdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}
