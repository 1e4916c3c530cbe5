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

// coalesceBenches are the batches BenchmarkCoalesce and
// TestCoalesceAllocs run: what a worker writes to one port in a wake-up.
func coalesceBenches(tb testing.TB) []struct {
	name string
	bufs [][]byte
} {
	udp8 := make([][]built, 8)
	for i := range udp8 {
		udp8[i] = stream(tb, specUDP4, uint16(40000+i), sizes(8, 64)...)
	}
	many := make([][]built, 64)
	for i := range many {
		many[i] = stream(tb, specUDP4, uint16(40000+i), 64)
	}
	tso := stream(tb, frameSpec{tcpOpts: 12, flags: flagsACK, gsoSize: 1448}, 40000, sizes(8, 44*1448)...)
	return []struct {
		name string
		bufs [][]byte
	}{
		{"udp4-64x64B-1flow", toBufs(stream(tb, specUDP4, 40000, sizes(64, 64)...)...)},
		{"udp6-64x64B-1flow", toBufs(stream(tb, specUDP6, 40000, sizes(64, 64)...)...)},
		{"udp4-64x64B-8flows", toBufs(interleave(udp8...)...)},
		{"udp4-64x64B-verified", toBufs(csumAll(stream(tb, specUDP4, 40000, sizes(64, 64)...), csumNone)...)},
		{"tcp4-44x1448B", toBufs(stream(tb, specTCP4, 40000, sizes(44, 1448)...)...)},
		{"tcp6-44x1428B", toBufs(stream(tb, specTCP6, 40000, sizes(44, 1428)...)...)},
		// Batches that gain nothing, the cost paid on every write: the
		// acknowledgments of a TCP stream, TSO super-frames, 64 flows
		// of one datagram each.
		{"none-64-pure-acks", toBufs(stream(tb, specTCP4, 40000, sizes(64, 0)...)...)},
		{"none-8-tso-frames", toBufs(tso...)},
		{"none-64-flows", toBufs(cat(many...)...)},
	}
}

// BenchmarkCoalesce coalesces one batch per iteration; ns/frame is per
// input frame.
func BenchmarkCoalesce(b *testing.B) {
	for _, bb := range coalesceBenches(b) {
		b.Run(bb.name, func(b *testing.B) {
			var c Coalescer
			c.Coalesce(bb.bufs, offset, capsAll)
			var bytes int
			for _, buf := range bb.bufs {
				bytes += len(buf) - offset
			}
			b.ReportAllocs()
			b.SetBytes(int64(bytes))
			b.ResetTimer()
			for b.Loop() {
				c.Coalesce(bb.bufs, offset, capsAll)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(bb.bufs)), "ns/frame")
			b.ReportMetric(float64(len(bb.bufs))/float64(len(c.Segs())), "frames/write")
		})
	}
}
