package segment

import (
	"bytes"
	"testing"
)

// checkNextHeaders cuts the frame b with NextHeaders and with Next, and
// checks that every segment is the same, headers then payload.
func checkNextHeaders(tb testing.TB, b built, mtu int) {
	tb.Helper()
	var gather, whole Splitter
	errG := gather.Reset(b.h, b.frame, mtu)
	errW := whole.Reset(b.h, b.frame, mtu)
	if errG != errW {
		tb.Fatalf("Reset: %v and %v", errG, errW)
	}
	if errG != nil {
		return
	}
	hdr := make([]byte, MaxHeaderLen)
	seg := make([]byte, whole.MaxSegment())
	if gather.HeaderLen() == 0 {
		if _, _, err := gather.NextHeaders(hdr); err != ErrNotSuperFrame {
			tb.Fatalf("NextHeaders of a frame without GSO: %v, want ErrNotSuperFrame", err)
		}
		return
	}
	if _, _, err := gather.NextHeaders(hdr[:gather.HeaderLen()-1]); err != ErrShortBuffer {
		tb.Fatalf("NextHeaders with too little room: %v, want ErrShortBuffer", err)
	}
	for i := 0; ; i++ {
		n, payload, err := gather.NextHeaders(hdr)
		m, errW := whole.Next(seg)
		if err != nil || errW != nil {
			tb.Fatalf("segment %d: NextHeaders %v, Next %v", i, err, errW)
		}
		if n == 0 || m == 0 {
			if n != 0 || m != 0 || payload != nil {
				tb.Fatalf("segment %d: NextHeaders %d bytes of headers, Next %d bytes: one ended first", i, n, m)
			}
			return
		}
		if n != gather.HeaderLen() {
			tb.Fatalf("segment %d: %d bytes of headers, HeaderLen %d", i, n, gather.HeaderLen())
		}
		if got := append(bytes.Clone(hdr[:n]), payload...); !bytes.Equal(got, seg[:m]) {
			tb.Fatalf("segment %d: headers and payload\n%x\nNext wrote\n%x", i, got, seg[:m])
		}
	}
}

func TestNextHeaders(t *testing.T) {
	for _, sp := range []frameSpec{
		{tcpOpts: 12, flags: flagsACK, payload: 65000, gsoSize: 1448},
		{v6: true, tcpOpts: 12, flags: flagsACK | tcpFlagPSH | tcpFlagFIN, payload: 9000, gsoSize: 1428},
		{udp: true, payload: 20000, gsoSize: 1200},
		{udp: true, v6: true, destOpt: 8, payload: 3001, gsoSize: 1000},
		{tcpOpts: 12, flags: flagsACK, payload: 1000},
	} {
		checkNextHeaders(t, buildFrame(t, sp), 1500)
	}
}

// FuzzNextHeaders cuts FuzzSplit's frames with NextHeaders and with Next
// and checks that the segments are the same (checkNextHeaders).
func FuzzNextHeaders(f *testing.F) {
	f.Add(uint16(60000), uint16(1448), uint16(1500), uint8(0), uint8(0x30))
	f.Add(uint16(60000), uint16(1428), uint16(1500), uint8(shapeV6|shapeAllEnds), uint8(0x32))
	f.Add(uint16(20000), uint16(1200), uint16(1500), uint8(shapeUDP), uint8(0x00))
	f.Add(uint16(9000), uint16(8948), uint16(1500), uint8(4|shapeECN|shapeAllEnds), uint8(0xa3))
	f.Add(uint16(1000), uint16(0), uint16(0), uint8(shapeNoGSO), uint8(0))
	f.Add(uint16(3000), uint16(1448), uint16(40), uint8(0), uint8(0x30))
	f.Fuzz(func(t *testing.T, payload, gso, mtu16 uint16, shape, opts uint8) {
		b, mtu, _ := fuzzFrame(t, payload, gso, mtu16, shape, opts)
		checkNextHeaders(t, b, mtu)
	})
}
