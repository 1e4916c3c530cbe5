// Package devicetest provides in-memory devices that implement the port
// contract of package device, for tests of the switch and of whatever
// plugs ports into it, without root or a kernel device.
//
// A Device has queues that the test feeds with Send and whose writes it
// reads back with Frames or Wait. Its Caps are the test's choice, so the
// same fake stands for a TAP that takes super-frames and for a port that
// takes none, such as a tunnel.
package devicetest

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapswitch/tapswitch/device"
)

// DefaultBatchSize is the BatchSize of a Device's queues.
const DefaultBatchSize = 8

// Config describes a Device.
type Config struct {
	// Queues is the number of queues; 0 means 1.
	Queues int
	// Caps is what the device takes on Write.
	Caps device.Caps
	// Discard counts writes without keeping them, for benchmarks.
	Discard bool
	// Backlog is how many frames Send queues per queue before it
	// blocks; 0 means 1024.
	Backlog int
}

// Device is an in-memory device. It is safe for concurrent use.
type Device struct {
	cfg    Config
	queues []*Queue
	closed chan struct{}
	once   sync.Once
	// isClosed is closed, for Write to check without a channel
	// operation; err is what Reads and Writes return once closed.
	isClosed atomic.Bool
	err      error

	// writes counts the frames written; bytes their length, headers
	// not counted.
	writes, bytes atomic.Uint64

	// mu guards frames, on and notify.
	mu     sync.Mutex
	frames [][]byte
	// on[i] is the queue frames[i] was written on.
	on     []int
	notify chan struct{}
}

var _ device.Device = (*Device)(nil)

// New returns an open device.
func New(cfg Config) *Device {
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Backlog == 0 {
		cfg.Backlog = 1024
	}
	d := &Device{cfg: cfg, closed: make(chan struct{}), notify: make(chan struct{})}
	for i := range cfg.Queues {
		d.queues = append(d.queues, &Queue{d: d, index: i, in: make(chan []byte, cfg.Backlog)})
	}
	return d
}

// Queues implements device.Device.
func (d *Device) Queues() []device.Queue {
	out := make([]device.Queue, len(d.queues))
	for i, q := range d.queues {
		out[i] = q
	}
	return out
}

// Caps implements device.Device.
func (d *Device) Caps() device.Caps { return d.cfg.Caps }

// Close implements device.Device: pending and later Reads and Writes
// fail with os.ErrClosed.
func (d *Device) Close() error {
	d.Break(os.ErrClosed)
	return nil
}

// Break makes pending and later Reads and Writes fail with err, as a
// kernel device deleted from outside does; the switch then detaches the
// port as failed. After Close or a first Break it does nothing.
func (d *Device) Break(err error) {
	d.once.Do(func() {
		d.err = err
		d.isClosed.Store(true)
		close(d.closed)
	})
}

// Closed reports whether Close (or Break) was called.
func (d *Device) Closed() bool { return d.isClosed.Load() }

// Send queues b, a virtio net header (device.VnetHdrLen bytes) and an
// Ethernet frame, for the switch to read from queue qi. It blocks while
// the queue's backlog is full and returns os.ErrClosed once the device
// is closed.
func (d *Device) Send(qi int, b []byte) error {
	if len(b) < device.VnetHdrLen {
		return fmt.Errorf("devicetest: %d bytes: shorter than a virtio net header", len(b))
	}
	select {
	case d.queues[qi].in <- slices.Clone(b):
		return nil
	case <-d.closed:
		return d.err
	}
}

// Writes returns how many frames were written to the device and their
// bytes, headers not counted; with Discard, bytes are not counted, so
// that a benchmark's fake costs one atomic add per write.
func (d *Device) Writes() (frames, bytes uint64) { return d.writes.Load(), d.bytes.Load() }

// Frames returns a copy of every frame written so far (without Discard),
// each with its virtio net header in front, in the order written.
func (d *Device) Frames() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.frames)
}

// FramesOn returns the frames written on queue qi, as Frames does.
func (d *Device) FramesOn(qi int) [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out [][]byte
	for i, f := range d.frames {
		if d.on[i] == qi {
			out = append(out, f)
		}
	}
	return out
}

// Reset forgets the frames written so far.
func (d *Device) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.frames, d.on = nil, nil
}

// Wait returns the frames written once there are at least n, or what
// there is with an error after timeout.
func (d *Device) Wait(n int, timeout time.Duration) ([][]byte, error) {
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		if len(d.frames) >= n {
			out := slices.Clone(d.frames)
			d.mu.Unlock()
			return out, nil
		}
		ch := d.notify
		d.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			got := d.Frames()
			return got, fmt.Errorf("devicetest: %d frames written after %v, want %d", len(got), timeout, n)
		}
	}
}

// Queue is one queue of a Device.
type Queue struct {
	d     *Device
	index int
	in    chan []byte
}

var _ device.Queue = (*Queue)(nil)

// BatchSize implements device.Queue.
func (q *Queue) BatchSize() int { return DefaultBatchSize }

// Read implements device.Queue: it waits for a frame given to Send, then
// takes those queued behind it, up to the batch.
func (q *Queue) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if offset < device.Headroom {
		return 0, fmt.Errorf("devicetest: offset %d: want at least device.Headroom", offset)
	}
	var b []byte
	select {
	case b = <-q.in:
	case <-q.d.closed:
		return 0, q.d.err
	}
	limit := min(len(bufs), DefaultBatchSize)
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset-device.VnetHdrLen:], b) - device.VnetHdrLen
		n++
		if n == limit {
			return n, nil
		}
		select {
		case b = <-q.in:
		default:
			return n, nil
		}
	}
}

// Write implements device.Queue: it keeps a copy of each frame with its
// header (or only counts it, with Discard).
func (q *Queue) Write(bufs [][]byte, offset int) (int, error) {
	d := q.d
	if d.Closed() {
		return 0, d.err
	}
	d.writes.Add(uint64(len(bufs)))
	if d.cfg.Discard {
		return len(bufs), nil
	}
	for _, b := range bufs {
		d.bytes.Add(uint64(len(b) - offset))
	}
	d.mu.Lock()
	for _, b := range bufs {
		d.frames = append(d.frames, slices.Clone(b[offset-device.VnetHdrLen:]))
		d.on = append(d.on, q.index)
	}
	close(d.notify)
	d.notify = make(chan struct{})
	d.mu.Unlock()
	return len(bufs), nil
}
