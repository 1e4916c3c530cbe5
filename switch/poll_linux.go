package vswitch

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Busy polling (Dataplane.BusyPoll, adaptive by default). A worker that
// forwarded a frame and goes to sleep in epoll_wait is woken again for
// the next one, a thread wake-up per hop that a kernel bridge never pays;
// where the bridge's round trip is 30 µs, it doubled it (issue #14). So a
// worker polls its queues (epoll_wait with no timeout) for a short window
// after a pass that forwarded something, yielding the CPU between polls
// so that a sender or receiver that wants it on this CPU gets it.
//
// What it measured on a quiet 2-CPU VM whose bridge round trip was 57-60
// µs (three runs of make bench-parts or -variant, against --busy-poll
// off): 64 B UDP from 8 flows 1.11x, 1.24x and 1.15x (beyond the drift
// each time), which put that row ahead of Open vSwitch; the round trip
// 1.13x, 1.04x and 1.11x longer, still 0.71-0.81x the bridge's; under a
// 64 B load longer still (1.17-1.49x), yet ahead of Open vSwitch; the
// switch's CPU in a ping-pong doubled (40% of one against 22%). On a
// busy machine whose bridge round trip was 18-21 µs it took tapswitch's
// from 1.78x the bridge's to 1.18x. It is on by default for the rows it
// wins and the machines it helps most; --busy-poll off is for hosts that
// want the CPU back and a round trip a little shorter where CPUs idle.
//
// Adaptive: the window grows (up to maxSpin) while polls find replies,
// frames from a port the last pass wrote to, twice the delay the last one
// came after, and halves on every poll that finds nothing or only more of
// a one-way flow, to none below minSpin; at none, one pass in probeEvery
// tries probeSpin to notice when replies start to follow again. Under
// sustained load the queues are never empty and the first poll finds
// frames, so polling costs nothing there; for a one-way trickle polls
// miss and stop.
//
// At most maxSpinners workers poll at once, half the CPUs (at least one):
// the flows of a request and its reply share a worker, so one poller
// serves a ping-pong, while a poller per busy queue would leave the
// senders and receivers no CPU to run on.
var maxSpinners = int32(max(1, runtime.NumCPU()/2))

const (
	maxSpin    = 100 * time.Microsecond
	minSpin    = 10 * time.Microsecond
	probeSpin  = 50 * time.Microsecond
	probeEvery = 64
)

// poller is a worker's polling state.
type poller struct {
	// fixed is the window of a fixed policy (BusyPoll > 0), or 0 for
	// none; adaptive says win is adjusted instead.
	fixed    time.Duration
	adaptive bool
	// win is the adaptive window, idle the passes since the last probe
	// while it is 0.
	win  time.Duration
	idle int
}

func newPoller(b BusyPoll) poller {
	switch {
	case b == BusyPollAdaptive:
		return poller{adaptive: true, win: probeSpin}
	case b > 0:
		return poller{fixed: time.Duration(b)}
	}
	return poller{}
}

// window is how long to poll after a pass that forwarded.
func (p *poller) window() time.Duration {
	if !p.adaptive {
		return p.fixed
	}
	if p.win > 0 {
		return p.win
	}
	if p.idle++; p.idle >= probeEvery {
		p.idle = 0
		return probeSpin
	}
	return 0
}

// hit records a poll that found frames after delay d.
func (p *poller) hit(d time.Duration) {
	if p.adaptive {
		p.win = min(maxSpin, max(p.win, 2*d, minSpin))
	}
}

// miss records a window that found nothing.
func (p *poller) miss() {
	if p.adaptive {
		if p.win /= 2; p.win < minSpin {
			p.win = 0
		}
	}
}

// reply reports whether a poll's events include a queue of a port the
// last pass wrote to: the other end answering, which a poll saves a
// wake-up for. More frames from the port that sent the last ones are a
// one-way flow, which batching serves as well from a wake-up, and a
// poller that waited for them would only take the CPU from its sender
// and receiver. A lane that does not keep the ports it wrote to (the
// frame by frame path) counts every frame found.
func (w *worker) reply(events []unix.EpollEvent, l *lane) bool {
	if l.nsent == 0 {
		return true
	}
	slots := *w.slots.Load()
	for i := range events {
		d := getData(&events[i])
		if d < uint64(len(slots)) && slots[d] != nil && l.wroteTo(slots[d].port) {
			return true
		}
	}
	return false
}

// spin polls the worker's queues for up to the poller's window and
// returns what epoll_wait found: 0 events when nothing came (the worker
// then sleeps).
func (w *worker) spin(events []unix.EpollEvent, l *lane) (int, error) {
	win := w.poll.window()
	if win <= 0 {
		return 0, nil
	}
	if w.spinners.Add(1) > maxSpinners {
		w.spinners.Add(-1)
		return 0, nil
	}
	defer w.spinners.Add(-1)
	start := time.Now()
	for {
		n, err := unix.EpollWait(w.epfd, events, 0)
		if n > 0 {
			if w.reply(events[:n], l) {
				w.poll.hit(time.Since(start))
			} else {
				w.poll.miss()
			}
			return n, nil
		}
		if err != nil && err != unix.EINTR {
			return 0, err
		}
		if time.Since(start) >= win {
			w.poll.miss()
			return 0, nil
		}
		// Let a task waiting for this CPU run: on two CPUs, the
		// sender or receiver of the very flow may be that task.
		unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}
