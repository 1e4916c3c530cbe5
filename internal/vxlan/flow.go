package vxlan

import "encoding/binary"

// flowHash hashes the inner flow of an Ethernet frame, as Linux's
// skb_get_hash does for the source port of a VXLAN packet (RFC 7348
// section 5): the IP addresses, the protocol and, for TCP, UDP and SCTP
// outside later fragments, the ports; the MAC addresses of a frame that
// is not IP. Every frame of a flow hashes alike, so a flow keeps one
// outer source port and the underlay keeps its packets in order, while
// flows spread over the underlay's paths.
func flowHash(f []byte) uint32 {
	if len(f) < ethHdrLen {
		return 0
	}
	et := binary.BigEndian.Uint16(f[12:])
	l3 := ethHdrLen
	for range 2 {
		if (et != 0x8100 && et != 0x88a8) || len(f) < l3+4 {
			break
		}
		et = binary.BigEndian.Uint16(f[l3+2:])
		l3 += 4
	}
	macs := func() uint32 {
		return mix(binary.BigEndian.Uint64(f[0:8])*0x9e3779b97f4a7c15 ^ uint64(binary.BigEndian.Uint32(f[8:12]))<<16 ^ uint64(et))
	}
	var h uint64
	var proto uint8
	l4 := 0
	switch et {
	case 0x0800:
		if len(f) < l3+20 {
			return macs()
		}
		ihl := int(f[l3]&0xf) * 4
		proto = f[l3+9]
		h = uint64(binary.BigEndian.Uint32(f[l3+12:]))<<32 | uint64(binary.BigEndian.Uint32(f[l3+16:]))
		// Only the first fragment (offset 0) holds the ports, and a
		// fragmented datagram's pieces must share a hash: no ports when
		// the datagram is fragmented at all (MF set or an offset).
		if binary.BigEndian.Uint16(f[l3+6:])&0x3fff == 0 && ihl >= 20 {
			l4 = l3 + ihl
		}
	case 0x86dd:
		if len(f) < l3+40 {
			return macs()
		}
		proto = f[l3+6]
		for i := 8; i < 40; i += 8 {
			h = h*0x9e3779b97f4a7c15 ^ binary.BigEndian.Uint64(f[l3+i:])
		}
		l4 = l3 + 40
	default:
		return macs()
	}
	h ^= uint64(proto) << 8
	switch proto {
	case 6, 17, 132:
		if l4 > 0 && len(f) >= l4+4 {
			h = h*0x9e3779b97f4a7c15 ^ uint64(binary.BigEndian.Uint32(f[l4:]))
		}
	}
	return mix(h)
}

// mix is a 64-bit finalizer (splitmix64): every input bit moves about
// half of the output bits.
func mix(x uint64) uint32 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return uint32(x >> 32)
}
