package fdb

import (
	"errors"
	"fmt"
	"net"
)

// ErrBadMAC is returned by ParseMAC for text that is not an Ethernet address.
var ErrBadMAC = errors.New("fdb: invalid MAC address")

// macMask keeps the 48 bits of an address; the bits above are never part
// of a key, which leaves room for a sentinel that no MAC can equal.
const macMask = 1<<48 - 1

// Key packs the first 6 bytes of b (len(b) >= 6) into a key, b[0] most
// significant, so keys sort like the addresses they stand for.
// It panics if b is shorter than 6 bytes.
func Key(b []byte) uint64 {
	_ = b[5] // one bounds check instead of six
	return uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 |
		uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
}

// PutKey writes the 6 bytes of key into b (len(b) >= 6), the inverse of
// Key, for building frames and API replies without allocating.
func PutKey(b []byte, key uint64) {
	_ = b[5]
	b[0] = byte(key >> 40)
	b[1] = byte(key >> 32)
	b[2] = byte(key >> 24)
	b[3] = byte(key >> 16)
	b[4] = byte(key >> 8)
	b[5] = byte(key)
}

// FormatMAC renders a key as "aa:bb:cc:dd:ee:ff", the form the Linux
// tools print, so output can be compared with bridge fdb listings.
func FormatMAC(key uint64) string {
	const hex = "0123456789abcdef"
	var buf [17]byte
	for i := range 6 {
		b := byte(key >> (40 - 8*i))
		buf[3*i] = hex[b>>4]
		buf[3*i+1] = hex[b&0xf]
		if i < 5 {
			buf[3*i+2] = ':'
		}
	}
	return string(buf[:])
}

// ParseMAC reads an Ethernet address in any form net.ParseMAC accepts
// ("aa:bb:cc:dd:ee:ff", "aa-bb-...", "aabb.ccdd.eeff") and returns its key.
// Longer hardware addresses (EUI-64, InfiniBand) are refused: they cannot
// appear in an Ethernet header.
func ParseMAC(s string) (uint64, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadMAC, s)
	}
	if len(hw) != 6 {
		return 0, fmt.Errorf("%w: %q is not a 6-byte Ethernet address", ErrBadMAC, s)
	}
	return Key(hw), nil
}
