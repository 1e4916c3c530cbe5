package tap

import (
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
)

// rawFD reads and writes a non-blocking TAP queue with direct system
// calls, without the Go netpoller: measured side by side, a reader
// parked in the netpoller forwarded no more and was woken later than one
// waiting in its own poll(2), which the kernel wakes directly. A reader
// that finds the ring empty
// waits in poll(2) on the TAP and an eventfd, so the kernel wakes that
// very thread when a frame arrives and Close can wake it too. Writers
// never wait: a TAP with the default socket buffer always takes a write.
//
// refs guards the descriptor against reuse: every call holds a reference
// while it uses fd, and Close waits for them to drain before closing it.
type rawFD struct {
	fd   int
	wake int // eventfd written by Close to end a reader's poll

	// refs counts calls using fd; closedBit is set once Close has begun.
	refs atomic.Int64
	// paused makes reads find the queue empty, so that frames wait in
	// the kernel's ring for the process the queue is handed to (see
	// Pauser); writes go on.
	paused atomic.Bool
}

const closedBit = 1 << 62

func newRawFD(fd int) (*rawFD, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	return &rawFD{fd: fd, wake: wake}, nil
}

func (r *rawFD) acquire() bool {
	if r.refs.Add(1)&closedBit != 0 {
		r.refs.Add(-1)
		return false
	}
	return true
}

func (r *rawFD) release() { r.refs.Add(-1) }

// pausedBackoff is how long TryRead of a paused queue holds the poller
// that called it: a queue is paused for the few milliseconds of a
// hand-over, and a level-triggered poller would otherwise spin on its
// frames; 100 µs keeps that under a thousandth of a CPU's time per
// queue at the cost of 100 µs of latency, once, when reads resume.
const pausedBackoff = 100 * time.Microsecond

// batchSize is how many frames one Read or TryRead takes from a queue
// before the switch forwards them. Eight 64 KiB super-frames are half a
// megabyte, which stays in the L2 cache of the CPUs measured (1 MiB per
// core), so the copy out of each buffer still finds it there; small
// frames fill only the front of each buffer.
const batchSize = 8

// BatchSize implements device.Queue.
func (r *rawFD) BatchSize() int { return batchSize }

// Read implements device.Queue: it waits in poll(2) until a frame is
// queued, then reads until the queue is empty or the batch is full.
func (r *rawFD) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if !r.acquire() {
		return 0, os.ErrClosed
	}
	defer r.release()
	pfd := [2]unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}, {Fd: int32(r.wake), Events: unix.POLLIN}}
	for {
		if r.paused.Load() {
			// Handed over: wait for Close rather than read.
			if _, err := unix.Poll(pfd[1:], -1); err != nil && err != unix.EINTR {
				return 0, os.NewSyscallError("poll", err)
			}
			return 0, os.ErrClosed
		}
		n, err := r.readBatch(bufs, sizes, offset)
		if n > 0 {
			return n, nil
		}
		if err != unix.EAGAIN && err != unix.EINTR {
			return 0, os.NewSyscallError("read", err)
		}
		if r.refs.Load()&closedBit != 0 {
			return 0, os.ErrClosed
		}
		if _, err := unix.Poll(pfd[:], -1); err != nil && err != unix.EINTR {
			return 0, os.NewSyscallError("poll", err)
		}
		if pfd[1].Revents != 0 {
			return 0, os.ErrClosed
		}
	}
}

// readBatch reads frames into bufs until the queue is empty, the batch is
// full or a read fails; an error is returned only with no frame read, and
// is otherwise met again by the next call.
func (r *rawFD) readBatch(bufs [][]byte, sizes []int, offset int) (int, unix.Errno) {
	limit := min(len(bufs), batchSize)
	for i := range limit {
		n, err := rawIO(unix.SYS_READ, r.fd, bufs[i][offset-device.VnetHdrLen:])
		if err != 0 {
			return i, err
		}
		// The kernel puts the header before every frame; a read shorter
		// than that is no frame, and the switch drops it as a runt.
		sizes[i] = max(n-device.VnetHdrLen, 0)
	}
	return limit, 0
}

// Write implements device.Queue: one write(2) per frame, header and all.
func (r *rawFD) Write(bufs [][]byte, offset int) (int, error) {
	if !r.acquire() {
		return 0, os.ErrClosed
	}
	defer r.release()
	for i, b := range bufs {
		if _, err := rawIO(unix.SYS_WRITE, r.fd, b[offset-device.VnetHdrLen:]); err != 0 {
			return i, os.NewSyscallError("write", err)
		}
	}
	return len(bufs), nil
}

// rawIO reads or writes b with a raw system call, which skips the
// scheduler's bookkeeping around a call that might block (handing the
// thread's P to others and taking one back). A read or write of a
// non-blocking TAP never blocks, so there is nothing to hand over.
func rawIO(trap uintptr, fd int, b []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return int(n), e
}

func (r *rawFD) Close() error {
	if !r.shutdown() {
		return os.ErrClosed
	}
	return r.closeFDs()
}

// shutdown makes every later call fail, wakes a waiting reader and waits
// for calls in progress to return; the descriptor stays open. It reports
// false if the descriptor was already shut down.
func (r *rawFD) shutdown() bool {
	for {
		v := r.refs.Load()
		if v&closedBit != 0 {
			return false
		}
		if r.refs.CompareAndSwap(v, v|closedBit) {
			break
		}
	}
	var one [8]byte
	one[0] = 1
	unix.Write(r.wake, one[:])
	// Calls in progress finish within one system call each.
	for r.refs.Load() != closedBit {
		time.Sleep(100 * time.Microsecond)
	}
	return true
}

// closeFDs closes the descriptors of a shut-down rawFD.
func (r *rawFD) closeFDs() error {
	unix.Close(r.wake)
	return unix.Close(r.fd)
}

var _ device.PollQueue = (*rawFD)(nil)

// Fd is the descriptor, for a poller to wait on. Reads and writes must
// still go through the rawFD, which guards the descriptor against reuse.
func (r *rawFD) Fd() int { return r.fd }

// TryRead implements device.PollQueue: Read without the wait, for a
// poller that waits on many queues itself; it returns 0 at once when
// nothing is queued.
func (r *rawFD) TryRead(bufs [][]byte, sizes []int, offset int) (int, error) {
	if !r.acquire() {
		return 0, os.ErrClosed
	}
	if r.paused.Load() {
		r.release()
		// A poller whose queue is readable comes straight back;
		// this keeps it from spinning while the queue is paused.
		time.Sleep(pausedBackoff)
		return 0, nil
	}
	n, err := r.readBatch(bufs, sizes, offset)
	r.release()
	switch {
	case n > 0, err == unix.EAGAIN, err == unix.EINTR:
		return n, nil
	}
	return 0, os.NewSyscallError("read", err)
}
