package segment

import (
	"bytes"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

// checkMergeRun merges all of frames with MergeRun, run after run, and
// checks every run against Coalesce given the same frames with the
// header MergeRun assumes (DataValid if valid, else none): what MergeRun
// writes is, byte for byte, what Coalesce returns first for the frames
// of the run and the one that ended it, and Coalesce does not merge that
// one into the run. It returns how many frames each run took.
func checkMergeRun(tb testing.TB, frames []built, valid bool, caps device.Caps, room int) []int {
	tb.Helper()
	var flag uint8
	if valid {
		flag = device.VnetFlagDataValid
	}
	bare := make([][]byte, len(frames))
	flagged := make([]built, len(frames))
	for i, b := range frames {
		bare[i] = b.frame
		flagged[i] = built{h: device.VnetHdr{Flags: flag}, frame: b.frame}
	}
	bufs := toBufs(flagged...)
	dst := make([]byte, offset+room)
	var c Coalescer
	var runs []int
	for i := 0; i < len(bare); {
		used, size := MergeRun(dst, offset, bare[i:], valid, caps)
		if used < 1 || i+used > len(bare) || size > room {
			tb.Fatalf("frame %d: MergeRun took %d frames of %d, wrote %d bytes", i, used, len(bare)-i, size)
		}
		out := c.Coalesce(bufs[i:i+used], offset, caps)
		if len(out) != 1 {
			tb.Fatalf("frame %d: MergeRun took %d frames; Coalesce made %d frames of them, want 1", i, used, len(out))
		}
		if got := dst[offset-device.VnetHdrLen : offset+size]; !bytes.Equal(got, out[0][offset-device.VnetHdrLen:]) {
			tb.Fatalf("frame %d: MergeRun of %d frames wrote\n%x\nCoalesce made\n%x", i, used, got, out[0][offset-device.VnetHdrLen:])
		}
		// The frame that ended the run: Coalesce does not merge it
		// into the run either, unless the run filled the room.
		if i+used < len(bare) {
			out = c.Coalesce(bufs[i:i+used+1], offset, caps)
			if len(out) == 1 && len(out[0])-offset <= room {
				tb.Fatalf("frame %d: MergeRun took %d frames; Coalesce merged the next one too, into %d bytes (room %d)", i, used, len(out[0])-offset, room)
			}
		}
		runs = append(runs, used)
		i += used
	}
	return runs
}

func TestMergeRun(t *testing.T) {
	u4 := stream(t, specUDP4, 40000, sizes(8, 100)...)
	t4 := csumAll(stream(t, specTCP4, 40000, sizes(8, 1448)...), csumNone)
	t6 := csumAll(stream(t, specTCP6, 40000, sizes(8, 1428)...), csumNone)
	big := csumAll(stream(t, specTCP4, 40000, sizes(50, 1398)...), csumNone)
	other4 := csumAll(stream(t, specTCP4, 40001, sizes(2, 1448)...), csumNone)
	bad := at(t4, 3, func(f []byte, b built) { f[len(f)-1]++ })
	tests := []struct {
		name   string
		frames []built
		valid  bool
		caps   device.Caps
		room   int
		want   []int
	}{
		{"tcp4 checked", t4, false, capsAll, 70000, []int{8}},
		{"tcp6 checked", t6, false, capsAll, 70000, []int{8}},
		{"tcp4 valid", t4, true, capsAll, 70000, []int{8}},
		{"tcp4 ip length at most 64k", big, true, capsAll, 70000, []int{46, 4}},
		{"tcp4 room for 3", t4, true, capsAll, 66 + 3*1448, []int{3, 3, 2}},
		{"tcp4 bad checksum checked", bad, false, capsAll, 70000, []int{3, 1, 4}},
		// Data valid: the checksum is not read, as DataValid in
		// Coalesce.
		{"tcp4 bad checksum valid", bad, true, capsAll, 70000, []int{8}},
		{"tcp4 another flow ends the run", cat(t4[:3], other4, t4[3:]), true, capsAll, 70000, []int{3, 2, 5}},
		{"tcp4 without caps", t4, true, device.Caps{}, 70000, sizes(8, 1)},
		{"udp4 partial seeds", u4, false, capsAll, 70000, sizes(8, 1)},
		{"udp4 valid", csumAll(u4, csumNone), true, capsAll, 70000, []int{8}},
		{"udp4 without uso", csumAll(u4, csumNone), true, capsTCP, 70000, sizes(8, 1)},
		{"one frame", t4[:1], true, capsAll, 70000, []int{1}},
		{"not ip", []built{other(), other()}, true, capsAll, 70000, []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := checkMergeRun(t, tt.frames, tt.valid, tt.caps, tt.room)
			if !equalInts(runs, tt.want) {
				t.Fatalf("runs %v, want %v", runs, tt.want)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMergeRunAllocs(t *testing.T) {
	frames := csumAll(stream(t, specTCP4, 40000, sizes(44, 1398)...), csumNone)
	bare := make([][]byte, len(frames))
	for i, b := range frames {
		bare[i] = b.frame
	}
	dst := make([]byte, offset+70000)
	if a := testing.AllocsPerRun(100, func() { MergeRun(dst, offset, bare, true, capsAll) }); a != 0 {
		t.Fatalf("MergeRun allocates %v times a run, want 0", a)
	}
}

// FuzzMergeRun merges the frames FuzzCoalesceRoundTrip builds, as
// received without a virtio net header, valid or not, and checks every
// run against Coalesce (checkMergeRun).
func FuzzMergeRun(f *testing.F) {
	f.Add(uint8(0), uint8(100), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(1), uint8(200), []byte{2, 2, 2, 2 | 8<<3, 2, 2, 2 | 9<<3, 2, 2})
	f.Add(uint8(0), uint8(200), []byte{3, 3, 3 | 10<<3, 3, 3, 3 | 12<<3, 3, 3 | 13<<3, 3})
	f.Add(uint8(1), uint8(50), []byte{4, 4, 5, 5, 4 | 16<<3, 4, 6, 6, 7, 7, 6 | 20<<3, 6})
	f.Add(uint8(3), uint8(255), []byte{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2})
	f.Fuzz(func(t *testing.T, bits, size uint8, data []byte) {
		frames := fuzzFrames(t, int(size), data)
		// As received: checksums filled in (not raw frames, which
		// have no headers to find).
		for i, b := range frames {
			if b.l4 > 0 && b.hdrEnd <= len(b.frame) {
				frames[i] = withCsum(b, csumNone)
			}
		}
		room := 70000
		if bits&2 != 0 {
			// Room for a few segments, and for any one frame.
			room = 66 + 3*(int(size)+1)*6
			for _, b := range frames {
				room = max(room, len(b.frame))
			}
		}
		checkMergeRun(t, frames, bits&1 != 0, capsAll, room)
	})
}
