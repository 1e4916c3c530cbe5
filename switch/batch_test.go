package vswitch

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/device/devicetest"
)

// callDev is a one-queue device that records every Write call: how many
// frames it carried and their payloads, so that a test sees how frames
// were grouped. failAt, if set, refuses the frames whose payload it
// names, as a kernel refuses a frame it finds invalid.
type callDev struct {
	caps   device.Caps
	failAt string
	closed chan struct{}
	once   sync.Once

	// mu guards calls.
	mu    sync.Mutex
	calls [][]string
}

func newCallDev(caps device.Caps) *callDev {
	return &callDev{caps: caps, closed: make(chan struct{})}
}

var _ device.Device = (*callDev)(nil)

func (d *callDev) Queues() []device.Queue { return []device.Queue{d} }
func (d *callDev) Caps() device.Caps      { return d.caps }
func (d *callDev) Close() error           { d.once.Do(func() { close(d.closed) }); return nil }
func (d *callDev) BatchSize() int         { return 1 }

// Read waits for Close: the tests drive forwardBatch themselves.
func (d *callDev) Read([][]byte, []int, int) (int, error) {
	<-d.closed
	return 0, os.ErrClosed
}

func (d *callDev) Write(bufs [][]byte, offset int) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var call []string
	defer func() { d.calls = append(d.calls, call) }()
	for i, b := range bufs {
		p := string(b[offset+ethHdrLen:])
		if d.failAt != "" && p == d.failAt {
			return i, os.NewSyscallError("write", unix.EINVAL)
		}
		call = append(call, p)
	}
	return len(bufs), nil
}

// Calls returns the Write calls since the last one, each as its frames'
// payloads.
func (d *callDev) Calls() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.calls
	d.calls = nil
	return c
}

// batchRig is a network of port a (an in-memory device) and ports b and
// c (callDevs with caps), MACs learned.
func batchRig(t testing.TB, caps device.Caps) (*Network, *Port, *Port, *Port, *callDev, *callDev) {
	sw := New(Config{Logger: quietLogger()})
	t.Cleanup(sw.Close)
	net, err := sw.CreateNetwork("n")
	if err != nil {
		t.Fatal(err)
	}
	a, err := sw.AddPort("n", "a", newDiscardDev(), testInfo(0))
	if err != nil {
		t.Fatal(err)
	}
	db, dc := newCallDev(caps), newCallDev(caps)
	b, err := sw.AddPort("n", "b", db, testInfo(1))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sw.AddPort("n", "c", dc, testInfo(2))
	if err != nil {
		t.Fatal(err)
	}
	net.fwd(b, frame(bcast, macB, "learn"))
	net.fwd(c, frame(bcast, macC, "learn"))
	db.Calls()
	dc.Calls()
	return net, a, b, c, db, dc
}

// inArena places frames (virtio header and frame each) in l's arena as
// readBatch does and returns them.
func inArena(l *lane, frames ...[]byte) [][]byte {
	out, pos := l.frames[:0], 0
	for _, f := range frames {
		b := l.arena[pos : pos+bufSize : pos+bufSize]
		b = placed(b, f)
		out = append(out, b)
		pos += (len(b) + 63) &^ 63
	}
	return out
}

func TestForwardBatchGroups(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames [][]byte
		// wantB and wantC are the Write calls to b and c, payloads.
		wantB, wantC [][]string
	}{
		{
			name:   "unicast grouped by port, in order",
			frames: [][]byte{frame(macB, macA, "b1"), frame(macC, macA, "c1"), frame(macB, macA, "b2"), frame(macC, macA, "c2"), frame(macB, macA, "b3")},
			wantB:  [][]string{{"b1", "b2", "b3"}},
			wantC:  [][]string{{"c1", "c2"}},
		},
		{
			name:   "flushed before a flood",
			frames: [][]byte{frame(macB, macA, "b1"), frame(macB, macA, "b2"), frame(bcast, macA, "all"), frame(macB, macA, "b3"), frame(macC, macA, "c1")},
			wantB:  [][]string{{"b1", "b2"}, {"all"}, {"b3"}},
			wantC:  [][]string{{"all"}, {"c1"}},
		},
		{
			name:   "drops leave the rest in order",
			frames: [][]byte{frame(macB, macA, "b1"), frame(macB, macB, "spoofed"), frame(macB, macA, "b2")},
			wantB:  [][]string{{"b1", "b2"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net, a, _, _, db, dc := batchRig(t, tapCaps)
			l := newBatchLane(0, 64, true)
			net.forwardBatch(a, l, inArena(l, tc.frames...))
			if got := db.Calls(); !slices.EqualFunc(got, tc.wantB, slices.Equal) {
				t.Errorf("writes to b = %q, want %q", got, tc.wantB)
			}
			if got := dc.Calls(); !slices.EqualFunc(got, tc.wantC, slices.Equal) {
				t.Errorf("writes to c = %q, want %q", got, tc.wantC)
			}
			if len(l.pend) != 0 || len(l.dst) != 0 {
				t.Errorf("after the batch, %d frames pending, want 0", len(l.pend))
			}
		})
	}
}

// TestForwardBatchSegments: a super-frame for a port that does not take
// it is cut in the frames' order, between the runs around it.
func TestForwardBatchSegments(t *testing.T) {
	net, a, b, _, db, _ := batchRig(t, device.Caps{MTU: 1500})
	tx0 := b.Counters().TxFrames
	l := newBatchLane(0, 64, true)
	tso := tcp4Frame(4000) // three segments of 1448 bytes at most
	net.forwardBatch(a, l, inArena(l, frame(macB, macA, "b1"), tso, frame(macB, macA, "b2")))
	calls := db.Calls()
	if len(calls) != 3 || !slices.Equal(calls[0], []string{"b1"}) || len(calls[1]) != 3 || !slices.Equal(calls[2], []string{"b2"}) {
		t.Fatalf("writes to b = %d calls %q, want [b1], the 3 segments, [b2]", len(calls), calls)
	}
	if c := b.Counters(); c.TxFrames-tx0 != 5 {
		t.Errorf("b's tx_frames went up by %d, want 5", c.TxFrames-tx0)
	}
}

// TestWriteRunCounts: frames are counted as the frames read, a coalesced
// super-frame as the frames it carries, and a refused frame as a tx_error
// without losing the frames after it.
func TestWriteRunCounts(t *testing.T) {
	_, _, b, _, db, _ := batchRig(t, tapCaps)
	c0 := b.Counters()
	l := newBatchLane(0, 64, true)
	run := inArena(l, frame(macB, macA, "1"), frame(macB, macA, "22"), frame(macB, macA, "333"), frame(macB, macA, "4444"))
	var runBytes uint64
	for _, f := range run {
		runBytes += uint64(len(f) - headroom)
	}
	// As if frames 1-3 had been merged into one super-frame (here the
	// first of them stands for it) and 4 left alone.
	b.writeRun(l, [][]byte{run[0], run[3]}, []int{3, 1}, run)
	c := b.Counters()
	if c.TxFrames-c0.TxFrames != 4 || c.TxBytes-c0.TxBytes != runBytes || c.TxCoalescedFrames != 3 || c.TxCoalescedWrites != 1 {
		t.Errorf("counters %+v, want tx 4 frames %d bytes, coalesced 3 frames in 1 write", c, runBytes)
	}
	if got := db.Calls(); len(got) != 1 || len(got[0]) != 2 {
		t.Errorf("writes %q, want one call of 2 frames", got)
	}

	db.failAt = "22"
	b.writeRun(l, run, nil, run)
	c2 := b.Counters()
	if c2.TxFrames-c.TxFrames != 3 || c2.Drops["tx_error"] != 1 {
		t.Errorf("with frame 22 refused: %d frames sent, drops %v; want 3 sent and 1 tx_error", c2.TxFrames-c.TxFrames, c2.Drops)
	}
	if got := db.Calls(); len(got) != 2 || !slices.Equal(got[1], []string{"333", "4444"}) {
		t.Errorf("writes %q, want [1] and then [333 4444] after the refused frame", got)
	}
}

// TestBatchOneForwardsEachFrame: with --batch 1 each frame is written as
// it is read, one Write each; with a batch, what one Read brings comes in
// order, grouped.
func TestBatchOneForwardsEachFrame(t *testing.T) {
	for _, batch := range []int{1, 64} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			sw := New(Config{Logger: quietLogger(), Dataplane: Dataplane{Batch: batch}})
			t.Cleanup(sw.Close)
			if _, err := sw.CreateNetwork("n"); err != nil {
				t.Fatal(err)
			}
			da := devicetest.New(devicetest.Config{Caps: tapCaps})
			a, _ := sw.AddPort("n", "a", da, testInfo(0))
			db := newCallDev(tapCaps)
			b, _ := sw.AddPort("n", "b", db, testInfo(1))
			a.Network().fwd(b, frame(bcast, macB, "learn"))
			db.Calls()
			const n = 200
			var want []string
			for i := range n {
				p := string(rune('A'+i%26)) + strings.Repeat("y", i)
				want = append(want, p)
				if err := da.Send(0, frame(macB, macA, p)); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			var calls [][]string
			deadline := time.Now().Add(10 * time.Second)
			for len(got) < n && time.Now().Before(deadline) {
				cs := db.Calls()
				calls = append(calls, cs...)
				for _, c := range cs {
					got = append(got, c...)
				}
				time.Sleep(time.Millisecond)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("b got %d frames, want the %d sent, in order", len(got), n)
			}
			for _, c := range calls {
				if batch == 1 && len(c) != 1 {
					t.Fatalf("batch 1: a Write of %d frames, want 1 each", len(c))
				}
			}
		})
	}
}

func TestForwardBatchAllocatesNothing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		caps     device.Caps
		coalesce bool
	}{
		{"tap, coalescing", tapCaps, true},
		{"tap, no coalescing", tapCaps, false},
		{"no offloads", device.Caps{MTU: 1500}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw := New(Config{Logger: quietLogger()})
			t.Cleanup(sw.Close)
			net, _ := sw.CreateNetwork("n")
			a, _ := sw.AddPort("n", "a", newDiscardDev(), testInfo(0))
			for i, name := range []string{"b", "c"} {
				p, err := sw.AddPort("n", name, devicetest.New(devicetest.Config{Discard: true, Caps: tc.caps}), testInfo(1+i))
				if err != nil {
					t.Fatal(err)
				}
				net.fwd(p, frame(bcast, []string{macB, macC}[i], "learn"))
			}
			l := newBatchLane(0, 64, tc.coalesce)
			var fs [][]byte
			for i := range 60 {
				fs = append(fs, udp4Frame(macB, 64, uint16(i)))
			}
			fs = append(fs, frame(bcast, macA, "flood"), tcp4Frame(65000), frame(macC, macA, "c"), frame(macB, macB, "spoofed"))
			frames := inArena(l, fs...)
			if n := testing.AllocsPerRun(200, func() { net.forwardBatch(a, l, frames) }); n != 0 {
				t.Errorf("forwardBatch allocates %v times per batch, want 0", n)
			}
			b, _ := sw.Port("b")
			if got := b.Counters().TxFrames; got < 201*61 {
				t.Errorf("b sent %d frames, want at least %d: the batches were not forwarded", got, 201*61)
			}
			if merged := b.Counters().TxCoalescedWrites > 0; merged != (tc.coalesce && tc.caps.GSO != 0) {
				t.Errorf("b: %d coalesced writes, want some only when coalescing to a port that takes super-frames", b.Counters().TxCoalescedWrites)
			}
		})
	}
}

// udp4Frame is a virtio header and an IPv4/UDP frame of size bytes from
// port a (10.0.0.1) to dst (10.0.0.2), one flow, IP ID id.
func udp4Frame(dst string, size int, id uint16) []byte {
	b := frame(dst, macA, string(make([]byte, size-ethHdrLen)))
	f := b[HdrLen:]
	f[12], f[13] = 0x08, 0x00
	ip := f[ethHdrLen:]
	ip[0] = 0x45
	ip[2], ip[3] = byte((size-ethHdrLen)>>8), byte(size-ethHdrLen)
	ip[4], ip[5] = byte(id>>8), byte(id)
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], []byte{10, 0, 0, 1})
	copy(ip[16:20], []byte{10, 0, 0, 2})
	udp := ip[20:]
	udp[0], udp[1], udp[2], udp[3] = 0x30, 0x39, 0x30, 0x3a
	ul := size - ethHdrLen - 20
	udp[4], udp[5] = byte(ul>>8), byte(ul)
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip[:20], 0)))
	// The pseudo-header: addresses, protocol, UDP length.
	ps := sum16(ip[12:20], 17+uint32(ul))
	if c := ^fold(sum16(udp, ps)); c != 0 {
		binary.BigEndian.PutUint16(udp[6:], c)
	} else {
		binary.BigEndian.PutUint16(udp[6:], 0xffff)
	}
	return b
}

// sum16 adds b to s as big-endian 16-bit words, unfolded.
func sum16(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func TestParseBusyPoll(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want BusyPoll
		err  bool
	}{
		{"adaptive", BusyPollAdaptive, false},
		{"off", BusyPollOff, false},
		{"0", BusyPollOff, false},
		{"0s", BusyPollOff, false},
		{"50us", BusyPoll(50 * time.Microsecond), false},
		{"-1us", 0, true},
		{"2s", 0, true},
		{"soon", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseBusyPoll(tc.in)
			if (err != nil) != tc.err || err == nil && got != tc.want {
				t.Errorf("ParseBusyPoll(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestPollerAdapts(t *testing.T) {
	p := newPoller(BusyPollAdaptive)
	if w := p.window(); w != probeSpin {
		t.Fatalf("first window %v, want %v", w, probeSpin)
	}
	p.hit(40 * time.Microsecond)
	if w := p.window(); w != 80*time.Microsecond {
		t.Errorf("after a hit at 40us: window %v, want 80us", w)
	}
	p.hit(90 * time.Microsecond)
	if w := p.window(); w != maxSpin {
		t.Errorf("after a hit at 90us: window %v, want %v", w, maxSpin)
	}
	for range 4 {
		p.miss()
	}
	if w := p.window(); w != 0 {
		t.Errorf("after 4 misses: window %v, want 0", w)
	}
	probes := 0
	for range 2 * probeEvery {
		if p.window() > 0 {
			probes++
		}
	}
	if probes != 2 {
		t.Errorf("%d probes in %d passes, want 2", probes, 2*probeEvery)
	}
	if off := newPoller(BusyPollOff); off.window() != 0 {
		t.Errorf("off: window %v, want 0", off.window())
	}
	fixed := newPoller(BusyPoll(30 * time.Microsecond))
	fixed.miss()
	if w := fixed.window(); w != 30*time.Microsecond {
		t.Errorf("fixed 30us after a miss: window %v, want 30us", w)
	}
}

// BenchmarkForwardBatch forwards batches of 64 64-byte frames to one
// port, without coalescing; per frame.
func BenchmarkForwardBatch(b *testing.B) {
	benchBatch(b, false)
}

// BenchmarkForwardCoalesced is BenchmarkForwardBatch with UDP frames of
// one flow to a port that takes USO, coalescing on.
func BenchmarkForwardCoalesced(b *testing.B) {
	benchBatch(b, true)
}

func benchBatch(b *testing.B, coalesce bool) {
	net, ports := benchSwitch(b, 2)
	net.fwd(ports[1], frame(bcast, macB, "learn"))
	l := newBatchLane(0, 64, coalesce)
	var fs [][]byte
	for i := range 64 {
		fs = append(fs, udp4Frame(macB, 64, uint16(i)))
	}
	frames := inArena(l, fs...)
	net.forwardBatch(ports[0], l, frames)
	c := ports[1].Counters()
	if c.TxFrames != 64 {
		b.Fatalf("port b sent %d frames, want 64: %v", c.TxFrames, ports[0].Counters().Drops)
	}
	if coalesce != (c.TxCoalescedWrites > 0) {
		b.Fatalf("coalescing %v: %d coalesced writes of 64 frames of one flow", coalesce, c.TxCoalescedWrites)
	}
	b.ReportAllocs()
	b.SetBytes(64 * 64)
	for b.Loop() {
		net.forwardBatch(ports[0], l, frames)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/frame")
}
