package segment

import "errors"

// ErrNotSuperFrame: NextHeaders was asked to cut a frame without GSO,
// which Next copies whole.
var ErrNotSuperFrame = errors.New("segment: not a super-frame")

// HeaderLen returns the length of the headers every segment of the
// super-frame carries (Ethernet, IP and TCP or UDP): what NextHeaders
// writes. It is 0 before Reset and for a frame without GSO.
func (s *Splitter) HeaderLen() int {
	if s.kind != kindTCP && s.kind != kindUDP {
		return 0
	}
	return s.hdrEnd
}

// NextHeaders is Next without the copy of the payload, for a sender that
// gathers a segment from two pieces (sendmsg's iovecs): it writes the next
// segment's headers, every field and checksum as Next sets them (the
// transport checksum covering the payload), at the start of dst, and
// returns their length and the segment's payload, a slice of the frame
// given to Reset, which it only reads. The segment is dst[:n] followed by
// payload, byte for byte what Next would have written. It returns 0, nil
// and a nil error when no segment is left, and ErrShortBuffer, writing
// nothing, when dst has less than HeaderLen bytes.
//
// Only a super-frame is cut so: for a frame without GSO it returns
// ErrNotSuperFrame, and Next copies it.
func (s *Splitter) NextHeaders(dst []byte) (n int, payload []byte, err error) {
	if s.next >= s.segs {
		return 0, nil, nil
	}
	if s.kind != kindTCP && s.kind != kindUDP {
		return 0, nil, ErrNotSuperFrame
	}
	if len(dst) < s.hdrEnd {
		return 0, nil, ErrShortBuffer
	}
	pay := min(s.mss, len(s.frame)-s.off)
	payload = s.frame[s.off : s.off+pay]
	dst = dst[:s.hdrEnd]
	copy(dst, s.frame[:s.hdrEnd])
	l4 := s.putHeaders(dst, s.hdrEnd+pay)
	// The transport header's length is even (TCP's a multiple of 4,
	// UDP's 8), so the payload's words line up after it, and its sum
	// goes on from the header's.
	sum := checksum(l4, s.pseudo+uint32(s.hdrEnd+pay-s.l4))
	putCsum(dst[s.csumAt:], checksum(payload, uint32(sum)), s.zeroAsOnes)
	s.next++
	s.off += pay
	return s.hdrEnd, payload, nil
}
