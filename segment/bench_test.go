package segment

import "testing"

// BenchmarkSplit cuts one frame per iteration into a buffer allocated
// once, as a switch worker does; bytes are the frame's.
func BenchmarkSplit(b *testing.B) {
	benches := []struct {
		name string
		spec frameSpec
		mtu  int
	}{
		{"tcp4-64k-mtu1500", frameSpec{tcpOpts: 12, flags: flagsACK | tcpFlagPSH, payload: max4TCP, gsoSize: 1448}, 1500},
		{"tcp4-64k-mtu9000", frameSpec{tcpOpts: 12, flags: flagsACK | tcpFlagPSH, payload: max4TCP, gsoSize: 8948}, 9000},
		{"tcp6-64k-mtu1500", frameSpec{v6: true, tcpOpts: 12, flags: flagsACK | tcpFlagPSH, payload: max6TCP, gsoSize: 1428}, 1500},
		{"udp4-uso", frameSpec{udp: true, payload: 40 * 1200, gsoSize: 1200}, 1500},
		{"csum-only", frameSpec{tcpOpts: 12, flags: flagsACK | tcpFlagPSH, payload: 1448}, 1500},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			f := buildFrame(b, bb.spec)
			var s Splitter
			if err := s.Reset(f.h, f.frame, bb.mtu); err != nil {
				b.Fatalf("Reset() = %v", err)
			}
			buf := make([]byte, s.MaxSegment())
			b.ReportAllocs()
			b.SetBytes(int64(len(f.frame)))
			b.ResetTimer()
			for b.Loop() {
				if err := s.Reset(f.h, f.frame, bb.mtu); err != nil {
					b.Fatalf("Reset() = %v", err)
				}
				for {
					n, err := s.Next(buf)
					if err != nil {
						b.Fatalf("Next() = %v", err)
					}
					if n == 0 {
						break
					}
				}
			}
			b.ReportMetric(float64(s.Segments()), "segs/op")
		})
	}
}
