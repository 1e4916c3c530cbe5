package vswitch

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
)

// A worker serves queue number i of every port: it waits on all of them
// at once with epoll and forwards what arrives. The kernel sends a flow's
// replies out on the queue the flow was written on, and a frame is written
// on the queue numbered like the one it came in on, so both directions
// of a flow (a TCP stream and its ACKs) land on one worker: the thread
// that wrote a frame reads the answer, where a loop per port would have a
// second thread woken, often on the other CPU, for every reply.

// burst bounds the frames a worker reads from one queue before it looks
// at the others, so one busy port cannot starve the rest.
const burst = 64

// workerBatch is the most frames a worker reads from a queue at once; a
// queue's own BatchSize may be smaller.
const workerBatch = 8

// A queue that sends mostly frames storm control drops is parked: the
// worker stops waiting on it for stormPark, and its device's own queue
// (a TAP's holds 1000 frames) fills and drops the rest in the sender's
// kernel, at the sender's cost. Reading a frame costs a system call;
// dropping it after costs the switch no less, so without parking a
// blasting namespace kept a worker busy reading a quarter of a million
// frames a second that it then dropped, which took the CPU from its
// neighbours' traffic. Parked for 20 ms, a queue is read at most about
// its size per 20 ms, a twentieth of that; its own traffic waits as
// long, which only a port that storms pays.
const (
	stormPark = 20 * time.Millisecond
	// stormParkMin: a serve pass parks its queue when it read at least
	// this many frames and storm control dropped at least half of them
	// (counting the port's other queues' drops meanwhile too): a burst
	// of a port's ordinary ARP never reaches that.
	stormParkMin = burst / 2
)

type worker struct {
	// qi is the queue number the worker serves.
	qi int
	// dp is the switch's batching, coalescing and polling; poll is the
	// worker's own polling state (poll_linux.go), touched only by its
	// goroutine.
	dp   Dataplane
	poll poller
	// spinners counts the switch's workers polling now; a worker polls
	// only while fewer than maxSpinners do.
	spinners *atomic.Int32
	epfd     int
	stop     int // eventfd that ends the loop

	// slots maps epoll data to queues; replaced whole under mu.
	slots atomic.Pointer[[]*slot]
	// seq is odd while the worker handles events and even while it waits
	// in epoll_wait; remove waits for a handling pass to end.
	seq atomic.Uint64

	mu   sync.Mutex
	free []int

	// parked are the slots waiting out stormPark; only the worker's
	// goroutine touches it. parks counts the times a slot was parked.
	parked []parkedSlot
	parks  atomic.Uint64

	done chan struct{}
}

// slot is one queue of a port as a worker sees it.
type slot struct {
	w    *worker
	port *Port
	qi   int
	q    device.PollQueue
	// idx is the slot's epoll data, its index in the worker's slots.
	idx int
}

// parkedSlot is a slot the worker does not wait on until resume.
type parkedSlot struct {
	s      *slot
	resume time.Time
}

// stopData is the epoll data of the stop eventfd.
const stopData = ^uint64(0)

func newWorker(qi int, dp Dataplane, spinners *atomic.Int32) (*worker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setData(&ev, stopData)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, stop, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(stop)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	w := &worker{qi: qi, dp: dp, poll: newPoller(dp.BusyPoll), spinners: spinners, epfd: epfd, stop: stop, done: make(chan struct{})}
	w.slots.Store(&[]*slot{})
	go w.run()
	return w, nil
}

func setData(ev *unix.EpollEvent, d uint64) {
	ev.Fd = int32(uint32(d))
	ev.Pad = int32(uint32(d >> 32))
}

func getData(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// add starts serving q, queue qi of p.
func (w *worker) add(p *Port, qi int, q device.PollQueue) (*slot, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &slot{w: w, port: p, qi: qi, q: q}
	old := *w.slots.Load()
	var idx int
	next := append([]*slot(nil), old...)
	if n := len(w.free); n > 0 {
		idx, w.free = w.free[n-1], w.free[:n-1]
		next[idx] = s
	} else {
		idx = len(next)
		next = append(next, s)
	}
	s.idx = idx
	w.slots.Store(&next)
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setData(&ev, uint64(idx))
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, q.Fd(), &ev); err != nil {
		next[idx] = nil
		w.free = append(w.free, idx)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return s, nil
}

// remove stops serving s; when it returns, the worker no longer touches
// s's port.
func (w *worker) remove(s *slot) {
	w.mu.Lock()
	unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, s.q.Fd(), nil)
	old := *w.slots.Load()
	next := append([]*slot(nil), old...)
	for i, x := range next {
		if x == s {
			next[i] = nil
			w.free = append(w.free, i)
		}
	}
	w.slots.Store(&next)
	w.mu.Unlock()
	// A pass that began before the swap may still hold s; wait it out.
	if seq := w.seq.Load(); seq%2 == 1 {
		for w.seq.Load() == seq {
			time.Sleep(20 * time.Microsecond)
		}
	}
}

func (w *worker) close() {
	var one [8]byte
	one[0] = 1
	unix.Write(w.stop, one[:])
	<-w.done
	unix.Close(w.epfd)
	unix.Close(w.stop)
}

func (w *worker) run() {
	defer close(w.done)
	var l *lane
	if batch := w.dp.batch(); batch > 1 {
		l = newBatchLane(w.qi, batch, !w.dp.NoCoalesce)
	} else {
		l = newLane(w.qi, workerBatch)
	}
	events := make([]unix.EpollEvent, 64)
	forwarded := false
	for {
		n := 0
		var err error
		if forwarded {
			// A frame often follows soon after one forwarded (a reply);
			// waiting for it awake saves the wake-up (poll_linux.go).
			n, err = w.spin(events, l)
		}
		l.resetSent()
		if n == 0 && err == nil {
			n, err = unix.EpollWait(w.epfd, events, w.timeout())
		}
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		w.seq.Add(1)
		if len(w.parked) > 0 {
			w.unpark()
		}
		slots := *w.slots.Load()
		forwarded = false
		for i := range n {
			d := getData(&events[i])
			if d == stopData {
				w.seq.Add(1)
				return
			}
			if d >= uint64(len(slots)) || slots[d] == nil {
				continue
			}
			if l.batch > 1 {
				forwarded = w.serveBatch(slots[d], l) || forwarded
			} else {
				forwarded = w.serve(slots[d], l) || forwarded
			}
		}
		w.seq.Add(1)
	}
}

// serveBatch forwards one batch of frames queued on s (batch.go); it
// reports whether it read any. Epoll is level triggered, so frames left
// over bring the worker back.
func (w *worker) serveBatch(s *slot, l *lane) bool {
	p := s.port
	storm0 := p.c.drops[DropStorm].Load()
	frames, err := l.readBatch(s.q)
	if err != nil {
		if !errors.Is(err, os.ErrClosed) {
			p.net.sw.portFailed(p, err)
		}
		return false
	}
	if len(frames) == 0 {
		return false
	}
	p.net.forwardBatch(p, l, frames)
	if len(frames) >= stormParkMin && p.c.drops[DropStorm].Load()-storm0 >= uint64(len(frames))/2 {
		w.park(s)
	}
	return true
}

// serve forwards up to burst frames queued on s, a batch at a time, each
// as it is read (Dataplane.Batch 1); it reports whether it read any.
// Epoll is level triggered, so frames left over bring the worker back.
//
// The first read after a wake-up takes one frame and forwards it before
// reading more: a lone frame, a request or its reply, then goes out
// without waiting for the read that finds the queue empty, as it did
// before reads were batched (a round trip crosses the switch twice, and
// that read measured about 1% of it). What follows it comes in batches.
func (w *worker) serve(s *slot, l *lane) bool {
	p := s.port
	full := min(len(l.bufs), s.q.BatchSize())
	batch := 1
	storm0 := p.c.drops[DropStorm].Load()
	done := 0
	for done < burst {
		n, err := s.q.TryRead(l.bufs[:batch], l.sizes, headroom)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				p.net.sw.portFailed(p, err)
			}
			return done > 0
		}
		for i := range n {
			p.net.forward(p, l, l.bufs[i][:headroom+l.sizes[i]])
		}
		done += n
		if n < batch {
			break
		}
		batch = full
	}
	if done >= stormParkMin && p.c.drops[DropStorm].Load()-storm0 >= uint64(done)/2 {
		w.park(s)
	}
	return done > 0
}

// park stops waiting on s for stormPark. It runs within a handling pass,
// so s's queue is still open even if remove has taken s out already (the
// modification then fails, and unpark lets s go).
func (w *worker) park(s *slot) {
	ev := unix.EpollEvent{}
	setData(&ev, uint64(s.idx))
	if unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, s.q.Fd(), &ev) != nil {
		return
	}
	w.parked = append(w.parked, parkedSlot{s, time.Now().Add(stormPark)})
	w.parks.Add(1)
}

// unpark waits on the parked slots whose time is up again; a slot removed
// meanwhile is let go. Under mu, so that remove cannot take the slot out,
// and a new queue take its descriptor number, in between.
func (w *worker) unpark() {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	slots := *w.slots.Load()
	keep := w.parked[:0]
	for _, ps := range w.parked {
		if now.Before(ps.resume) {
			keep = append(keep, ps)
			continue
		}
		if ps.s.idx < len(slots) && slots[ps.s.idx] == ps.s {
			ev := unix.EpollEvent{Events: unix.EPOLLIN}
			setData(&ev, uint64(ps.s.idx))
			unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, ps.s.q.Fd(), &ev)
		}
	}
	clear(w.parked[len(keep):])
	w.parked = keep
}

// timeout is how long epoll_wait may wait: until the first parked slot is
// due, or for ever.
func (w *worker) timeout() int {
	if len(w.parked) == 0 {
		return -1
	}
	first := w.parked[0].resume
	for _, ps := range w.parked[1:] {
		if ps.resume.Before(first) {
			first = ps.resume
		}
	}
	return max(1, int((time.Until(first)+time.Millisecond-1)/time.Millisecond))
}
