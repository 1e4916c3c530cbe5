package segment

import (
	"encoding/binary"
	"math/bits"
)

// checksum returns the 16-bit one's-complement sum (RFC 1071) of b, read
// as big-endian 16-bit words, added to initial, folded and not
// complemented. initial is a sum of big-endian words, not yet folded.
//
// The sum is independent of byte order (RFC 1071, section 2(B)), so b is
// read as little-endian 64-bit words, the machine's own loads on every
// platform tapswitch runs on, added with carry, and the folded result is
// byte-swapped once at the end. A 1448-byte segment then costs 23
// iterations of eight add-with-carry instructions instead of 724 16-bit
// additions; the checksum is the only pass over the payload besides the
// copy, so its speed is the segmenter's.
func checksum(b []byte, initial uint32) uint16 {
	ac := uint64(bits.ReverseBytes16(fold(uint64(initial))))
	var carry uint64
	for len(b) >= 64 {
		ac, carry = bits.Add64(ac, binary.LittleEndian.Uint64(b[0:]), carry)
		ac, carry = bits.Add64(ac, binary.LittleEndian.Uint64(b[8:]), carry)
		ac, carry = bits.Add64(ac, binary.LittleEndian.Uint64(b[16:]), carry)
		ac, carry = bits.Add64(ac, binary.LittleEndian.Uint64(b[24:]), carry)
		ac, carry = bits.Add64(ac, binary.LittleEndian.Uint64(b[32:]), carry)
		ac, carry = bits.Add64(ac, binary.LittleEndian.Uint64(b[40:]), carry)
		ac, carry = bits.Add64(ac, binary.LittleEndian.Uint64(b[48:]), carry)
		ac, carry = bits.Add64(ac, binary.LittleEndian.Uint64(b[56:]), carry)
		b = b[64:]
	}
	for len(b) >= 8 {
		ac, carry = bits.Add64(ac, binary.LittleEndian.Uint64(b), carry)
		b = b[8:]
	}
	// End-around carry. It cannot carry again: an add that carries out
	// leaves ac at most 2^64-2 (2^64-1 would need ac and the word both
	// 2^64-1 and a carry in, and the chain starts without one).
	ac += carry
	// Fold to 33 bits so the tail (at most 7 bytes, as 32-, 16- and 8-bit
	// values) cannot overflow.
	s := ac>>32 + ac&0xffffffff
	if len(b) >= 4 {
		s += uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s += uint64(binary.LittleEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		// An odd last byte is the high byte of a big-endian word padded
		// with zero, so the low byte of a little-endian one.
		s += uint64(b[0])
	}
	return bits.ReverseBytes16(fold(s))
}

// fold reduces a one's-complement sum to 16 bits with end-around carry.
func fold(s uint64) uint16 {
	s = s>>32 + s&0xffffffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}
