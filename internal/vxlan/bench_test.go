package vxlan

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

// sendBench is a tunnel sending to a peer endpoint on loopback that has
// no tunnel of the VNI: what is sent is received and dropped there.
func sendBench(tb testing.TB) *Tunnel {
	ea, _ := pair(tb, "127.0.0.1", "127.0.0.2")
	ta := tunnel(tb, ea, 77, 1450)
	ta.SetRemote(macB, netip.MustParseAddr("127.0.0.2"))
	return ta
}

// writeLoads are the writes measured: a 64 KiB TCP super-frame, cut into
// 47 segments sent in two GSO sends, and a batch of 32 frames of 64
// bytes, sent from where they lie with one sendmmsg.
func writeLoads() map[string][][]byte {
	sf, h := tcpSuperFrame(payloadOf(maxTCPPayload), 1448)
	small := make([][]byte, 32)
	for i := range small {
		f := udpFrame(uint16(40000+i), 5201, 0)
		copy(f, macB)
		small[i] = buffer(f, device.VnetHdr{})
	}
	return map[string][][]byte{"superframe-64KiB": {buffer(sf, h)}, "frames-64B-x32": small}
}

func BenchmarkWrite(b *testing.B) {
	ta := sendBench(b)
	q := ta.Queues()[0]
	for name, bufs := range writeLoads() {
		b.Run(name, func(b *testing.B) {
			var bytes int64
			for _, buf := range bufs {
				bytes += int64(len(buf) - device.Headroom)
			}
			b.SetBytes(bytes)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := q.Write(bufs, device.Headroom); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if s := ta.ep.Stats(); s.TxErrors != 0 {
		b.Fatalf("send errors: %+v", s)
	}
}

// TestWriteAllocs: Write allocates nothing, for a super-frame or for
// small frames.
func TestWriteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not counted under the race detector")
	}
	ta := sendBench(t)
	q := ta.Queues()[0]
	for name, bufs := range writeLoads() {
		q.Write(bufs, device.Headroom)
		if n := testing.AllocsPerRun(200, func() { q.Write(bufs, device.Headroom) }); n != 0 {
			t.Errorf("%s: %v allocations per Write, want 0", name, n)
		}
	}
	if s := ta.ep.Stats(); s.TxErrors != 0 || s.TxPackets == 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestRoundTripAllocs: a frame's whole way, Write at one endpoint, the
// receiving goroutine of the other and Read there, allocates nothing
// (AllocsPerRun counts every goroutine's allocations).
func TestRoundTripAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not counted under the race detector")
	}
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	ta := tunnel(t, ea, 5, 1450, netip.MustParseAddr("127.0.0.2"))
	tb := tunnel(t, eb, 5, 1450)
	sf, h := tcpSuperFrame(payloadOf(maxTCPPayload), 1448)
	for name, c := range map[string]struct {
		buf  []byte
		segs int
		room int
	}{
		"frame":       {buffer(ethFrame(bcast, macA, 100, 1), device.VnetHdr{}), 1, 2000},
		"super-frame": {buffer(sf, h), 47, 2000},
		// Room for super-frames: Read merges the segments.
		"super-frame merged": {buffer(sf, h), 47, 70000},
	} {
		bufs := make([][]byte, readBatch)
		for i := range bufs {
			bufs[i] = make([]byte, device.Headroom+c.room)
		}
		sizes := make([]int, len(bufs))
		in := [][]byte{c.buf}
		round := func() {
			if _, err := ta.Queues()[0].Write(in, device.Headroom); err != nil {
				t.Fatal(err)
			}
			for got := 0; got < c.segs; {
				n, err := tb.Queues()[0].Read(bufs, sizes, device.Headroom)
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					got += segsIn(bufs[i], sizes[i])
				}
			}
		}
		round()
		if n := testing.AllocsPerRun(100, round); n != 0 {
			t.Errorf("%s: %v allocations per round trip, want 0", name, n)
		}
	}
}

// segsIn returns how many segments the frame Read put in buf carries.
func segsIn(buf []byte, size int) int {
	vh := buf[device.Headroom-device.VnetHdrLen:]
	if vh[1] == device.GSONone {
		return 1
	}
	hdrLen, gso := int(binary.LittleEndian.Uint16(vh[2:])), int(binary.LittleEndian.Uint16(vh[4:]))
	return (size - hdrLen + gso - 1) / gso
}
