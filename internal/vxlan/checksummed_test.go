package vxlan

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

// readOne reads one Read's worth from q and returns each frame's virtio
// net header and frame.
func readOne(t testing.TB, q device.Queue) ([]device.VnetHdr, [][]byte) {
	t.Helper()
	bufs := make([][]byte, q.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, device.Headroom+70000)
	}
	sizes := make([]int, len(bufs))
	n, err := q.Read(bufs, sizes, device.Headroom)
	if err != nil {
		t.Fatal(err)
	}
	var hs []device.VnetHdr
	var fs [][]byte
	for i := range n {
		h, err := device.ParseVnetHdr(bufs[i][device.Headroom-device.VnetHdrLen:])
		if err != nil {
			t.Fatalf("frame %d: virtio net header: %v", i, err)
		}
		hs = append(hs, h)
		fs = append(fs, append([]byte(nil), bufs[i][device.Headroom:device.Headroom+sizes[i]]...))
	}
	return hs, fs
}

// TestChecksummedPeer: a frame from a VTEP named to SetChecksummed comes
// out with VnetFlagDataValid (its outer UDP checksum covered it); from
// any other member, with no flag, to be checked where it merges.
func TestChecksummedPeer(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	ta := tunnel(t, ea, 42, 1450, netip.MustParseAddr("127.0.0.2"))
	tb := tunnel(t, eb, 42, 1450)
	f := ethFrame(bcast, macA, 100, 1)
	for _, c := range []struct {
		sums []netip.Addr
		flag uint8
	}{
		{nil, 0},
		{[]netip.Addr{netip.MustParseAddr("127.0.0.1")}, device.VnetFlagDataValid},
		{[]netip.Addr{netip.MustParseAddr("127.0.0.3")}, 0},
	} {
		eb.SetChecksummed(c.sums)
		if _, err := ta.Queues()[0].Write([][]byte{buffer(f, device.VnetHdr{})}, device.Headroom); err != nil {
			t.Fatal(err)
		}
		hs, fs := readOne(t, tb.Queues()[0])
		if len(fs) != 1 || !bytes.Equal(fs[0], f) {
			t.Fatalf("checksummed %v: got %d frames, want the one sent", c.sums, len(fs))
		}
		if want := (device.VnetHdr{Flags: c.flag}); hs[0] != want {
			t.Fatalf("checksummed %v: header %+v, want %+v", c.sums, hs[0], want)
		}
	}
}
