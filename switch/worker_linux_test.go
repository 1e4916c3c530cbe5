package vswitch

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/fdb"
)

// seqpacketQueue is a PollQueue over one end of a SOCK_SEQPACKET pair,
// which keeps frame boundaries like a TAP queue; the test plays the
// kernel on the other end.
type seqpacketQueue struct {
	fd     int
	closed atomic.Bool
}

func (q *seqpacketQueue) Fd() int        { return q.fd }
func (q *seqpacketQueue) BatchSize() int { return 4 }
func (q *seqpacketQueue) TryRead(bufs [][]byte, sizes []int, offset int) (int, error) {
	if q.closed.Load() {
		return 0, os.ErrClosed
	}
	for i := range min(len(bufs), q.BatchSize()) {
		n, err := unix.Read(q.fd, bufs[i][offset-HdrLen:])
		if err == unix.EAGAIN || (err != nil && i > 0) {
			return i, nil
		}
		if err != nil {
			return 0, err
		}
		sizes[i] = n - HdrLen
	}
	return min(len(bufs), q.BatchSize()), nil
}
func (q *seqpacketQueue) Read([][]byte, []int, int) (int, error) {
	panic("a polled queue is not read by a loop")
}
func (q *seqpacketQueue) Write(bufs [][]byte, offset int) (int, error) {
	if q.closed.Load() {
		return 0, os.ErrClosed
	}
	for i, b := range bufs {
		if _, err := unix.Write(q.fd, b[offset-HdrLen:]); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

type seqpacketDev struct {
	qs   []*seqpacketQueue
	peer []int // the test's ends
}

func newSeqpacketDev(t *testing.T, queues int) *seqpacketDev {
	t.Helper()
	d := &seqpacketDev{}
	for range queues {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		d.qs = append(d.qs, &seqpacketQueue{fd: fds[0]})
		d.peer = append(d.peer, fds[1])
	}
	t.Cleanup(func() {
		for i := range d.qs {
			unix.Close(d.qs[i].fd)
			unix.Close(d.peer[i])
		}
	})
	return d
}

func (d *seqpacketDev) Caps() device.Caps { return tapCaps }

func (d *seqpacketDev) Queues() []device.Queue {
	out := make([]device.Queue, len(d.qs))
	for i, q := range d.qs {
		out[i] = q
	}
	return out
}

func (d *seqpacketDev) Close() error {
	for _, q := range d.qs {
		q.closed.Store(true)
	}
	return nil
}

// recv waits for a frame on the test's end of queue i.
func (d *seqpacketDev) recv(t *testing.T, i int) []byte {
	t.Helper()
	buf := make([]byte, 70000)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := unix.Read(d.peer[i], buf)
		if err == nil {
			return buf[:n]
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func TestWorkersForward(t *testing.T) {
	sw := New(Config{Logger: quietLogger()})
	defer sw.Close()
	if _, err := sw.CreateNetwork("n"); err != nil {
		t.Fatal(err)
	}
	a, b := newSeqpacketDev(t, 2), newSeqpacketDev(t, 2)
	pa, err := sw.AddPort("n", "a", a, PortInfo{MAC: mustMAC(macA)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.AddPort("n", "b", b, PortInfo{MAC: mustMAC(macB)}); err != nil {
		t.Fatal(err)
	}
	if len(pa.slots) != 2 {
		t.Fatalf("port a served by %d workers, want 2 (one per queue)", len(pa.slots))
	}
	// A frame on queue 1 of a comes out on queue 1 of b.
	f := frame(bcast, macA, "via worker")
	unix.Write(a.peer[1], f)
	if got := b.recv(t, 1); !bytes.Equal(got, f) {
		t.Fatalf("b queue 1 got %x, want the frame from a queue 1", got)
	}
	// Detaching while frames keep coming must not race (run with -race)
	// and must leave no entry for the port behind.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		g := frame(bcast, macA, "flood")
		for {
			select {
			case <-stop:
				return
			default:
				unix.Write(a.peer[0], g)
			}
		}
	}()
	time.Sleep(10 * time.Millisecond)
	if err := sw.RemovePort(pa); err != nil {
		t.Fatalf("RemovePort(a) = %v", err)
	}
	close(stop)
	<-done
	if got := pa.net.fdb.Lookup(fdb.Key(mustMAC(macA))); got != nil {
		t.Fatalf("after RemovePort(a), Lookup(%s) = port %s, want nil", macA, got.Name())
	}
}

// TestStormPark blasts broadcasts into a port over its storm control
// rate: the worker parks the queue rather than read it flat out, comes
// back to it, and in the end every frame is accounted for and the port
// forwards again.
func TestStormPark(t *testing.T) {
	sw := New(Config{Logger: quietLogger()})
	defer sw.Close()
	if _, err := sw.CreateNetwork("n"); err != nil {
		t.Fatal(err)
	}
	a, b := newSeqpacketDev(t, 1), newSeqpacketDev(t, 1)
	pb, err := sw.AddPort("n", "b", b, PortInfo{MAC: mustMAC(macB), NoSecurity: true})
	if err != nil {
		t.Fatal(err)
	}
	// b speaks first, so a's unicast to it is known.
	unix.Write(b.peer[0], frame(bcast, macB, "learn"))
	for deadline := time.Now().Add(5 * time.Second); pb.net.fdb.Lookup(fdb.Key(mustMAC(macB))) == nil; {
		if time.Now().After(deadline) {
			t.Fatal("b's MAC never learned")
		}
		time.Sleep(time.Millisecond)
	}
	// a's queue holds a burst before the switch first reads it, so that
	// a pass reads enough to park it however the machine schedules the
	// writer and the worker; the rest follow as fast as they go.
	const sent = 300
	f := frame(bcast, macA, "storm")
	i := 0
	for ; i < sent; i++ {
		if _, err := unix.Write(a.peer[0], f); err == unix.EAGAIN {
			break
		} else if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if i < burst {
		t.Fatalf("a's queue took only %d frames before the port was added, want a burst (%d)", i, burst)
	}
	pa, err := sw.AddPort("n", "a", a, PortInfo{MAC: mustMAC(macA), NoSecurity: true, Storm: StormLimits{Broadcast: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for i < sent {
		_, err := unix.Write(a.peer[0], f)
		switch {
		case err == unix.EAGAIN: // full while parked
			time.Sleep(time.Millisecond)
		case err != nil:
			t.Fatalf("write %d: %v", i, err)
		default:
			i++
		}
	}
	w := pa.slots[0].w
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := pa.Counters()
		if c.RxFrames+c.Drops["storm"] == sent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d broadcasts: rx %d, storm drops %d; want them all accounted for", sent, c.RxFrames, c.Drops["storm"])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w.parks.Load() == 0 {
		t.Fatalf("the worker never parked a queue sending %d broadcasts at a rate of 1/s", sent)
	}
	u := frame(macB, macA, "after the storm")
	unix.Write(a.peer[0], u)
	for {
		got := b.recv(t, 0)
		if got == nil {
			t.Fatal("a unicast frame after the storm never reached b: the queue was not waited on again")
		}
		if bytes.Equal(got, u) {
			break
		}
	}
}

// badfdQueue is a seqpacketQueue whose reads fail as a TAP's do once the
// kernel has destroyed it under its open queues (EBADFD), while its fd
// stays ready for epoll.
type badfdQueue struct{ *seqpacketQueue }

func (q badfdQueue) TryRead([][]byte, []int, int) (int, error) {
	if q.closed.Load() {
		return 0, os.ErrClosed
	}
	return 0, unix.EBADFD
}

type badfdDev struct{ *seqpacketDev }

func (d badfdDev) Queues() []device.Queue {
	out := make([]device.Queue, len(d.qs))
	for i, q := range d.qs {
		out[i] = badfdQueue{q}
	}
	return out
}

// TestPortFailedOnce: a device whose every queue fails, and stays ready
// to the workers' poll until the port is taken out, is reported, logged
// and counted once, not once per poll.
func TestPortFailedOnce(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	failed := make(chan error, 100)
	sw := New(Config{
		Logger:     slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logged}, nil)),
		PortFailed: func(_ *Port, err error) { failed <- err },
	})
	defer sw.Close()
	if _, err := sw.CreateNetwork("n"); err != nil {
		t.Fatal(err)
	}
	a := badfdDev{newSeqpacketDev(t, 2)}
	pa, err := sw.AddPort("n", "a", a, PortInfo{MAC: mustMAC(macA)})
	if err != nil {
		t.Fatal(err)
	}
	if len(pa.slots) != 2 {
		t.Fatalf("port a served by %d workers, want 2", len(pa.slots))
	}
	// Both queues readable, and never read: every poll wakes on them.
	f := frame(bcast, macA, "wake")
	unix.Write(a.peer[0], f)
	unix.Write(a.peer[1], f)
	select {
	case err := <-failed:
		if !errors.Is(err, unix.EBADFD) {
			t.Fatalf("PortFailed got %v, want EBADFD", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PortFailed not called for a device whose reads fail")
	}
	if _, err := sw.Port("a"); err == nil {
		t.Fatal("port a still in the switch after its device failed")
	}
	// The port is out of the workers once PortFailed has run: whatever
	// else was going to report it has done so by now.
	if n := len(failed); n != 0 {
		t.Fatalf("PortFailed called %d more times, want once", n)
	}
	if n := pa.c.drops[DropRxError].Load(); n != 1 {
		t.Fatalf("rx_error drops = %d, want 1", n)
	}
	mu.Lock()
	warned := strings.Count(logged.String(), "port device failed")
	mu.Unlock()
	if warned != 1 {
		t.Fatalf("%q logged %d times, want once:\n%s", "port device failed", warned, logged.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// A poll that finds a frame from a port the last pass wrote to is a
// reply; one that finds only more from elsewhere is not, unless the lane
// keeps no ports (the frame by frame path).
func TestPollReply(t *testing.T) {
	from, to := &Port{}, &Port{}
	w := &worker{}
	w.slots.Store(&[]*slot{{port: from}, {port: to}, nil})
	ev := func(idx ...uint64) []unix.EpollEvent {
		evs := make([]unix.EpollEvent, len(idx))
		for i, d := range idx {
			setData(&evs[i], d)
		}
		return evs
	}
	l := &lane{}
	if !w.reply(ev(0), l) {
		t.Error("a lane that keeps no ports: a frame found is not counted as a reply")
	}
	l.sent[0], l.nsent = to, 1
	if w.reply(ev(0), l) {
		t.Error("more from the sending port counted as a reply")
	}
	if !w.reply(ev(0, 1), l) {
		t.Error("a frame from the port written to not counted as a reply")
	}
	if w.reply(ev(2, 7), l) {
		t.Error("an empty or unknown slot counted as a reply")
	}
	l.resetSent()
	if l.nsent != 0 || l.sent[0] != nil {
		t.Error("resetSent kept ports")
	}
}
