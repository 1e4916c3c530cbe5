package segment

import (
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

// BenchmarkTunnelReceive compares the two ways a tunnel's receiver can
// turn a run of received segments (44 TCP segments of 1398 bytes, their
// checksums filled in, as a GSO send of a 64 KiB super-frame brings
// them) into a super-frame for a TAP: each copied into a buffer of its
// own and then merged by Coalesce (two copies), or MergeRun (one); with
// the checksums checked, or known good (DataValid). Bytes are the
// segments'.
func BenchmarkTunnelReceive(b *testing.B) {
	frames := csumAll(stream(b, specTCP4, 40000, sizes(44, 1398)...), csumNone)
	bare := make([][]byte, len(frames))
	total := 0
	for i, f := range frames {
		bare[i] = f.frame
		total += len(f.frame)
	}
	bufs := make([][]byte, len(frames))
	for i := range bufs {
		bufs[i] = make([]byte, offset+2048)
	}
	dst := make([]byte, offset+70000)
	for _, valid := range []bool{false, true} {
		name, flag := "checked", uint8(0)
		if valid {
			name, flag = "valid", device.VnetFlagDataValid
		}
		b.Run("copy+coalesce-"+name, func(b *testing.B) {
			var c Coalescer
			b.ReportAllocs()
			b.SetBytes(int64(total))
			for b.Loop() {
				in := bufs[:0]
				for i, f := range bare {
					buf := bufs[i][:offset+len(f)]
					clear(buf[offset-device.VnetHdrLen : offset])
					buf[offset-device.VnetHdrLen] = flag
					copy(buf[offset:], f)
					in = append(in, buf)
				}
				if out := c.Coalesce(in, offset, capsAll); len(out) != 1 {
					b.Fatalf("%d frames out", len(out))
				}
			}
		})
		b.Run("mergerun-"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(total))
			for b.Loop() {
				if used, _ := MergeRun(dst, offset, bare, valid, capsAll); used != len(bare) {
					b.Fatalf("%d frames merged", used)
				}
			}
		})
	}
}
