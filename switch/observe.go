package vswitch

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapswitch/tapswitch/device"
)

// An Observer sees every frame forwarded in its network, unicast and
// flooded, and every frame dropped there, each with its ingress port and
// its fate. It is how a capture or a mirror watches a network.
//
// The forwarding path hands an observer a copy of each frame into one of
// a fixed set of records, taken from a free list without waiting: when the
// reader has not given records back, the frame is lost for the observer
// and counted, and the switch goes on. So a slow or stuck reader costs
// the switch one copy per frame at most, never a wait. A network's
// observers are a snapshot behind an atomic pointer like its ports, nil
// when there are none, so a network nobody observes pays one load per
// frame.
type Observer struct {
	net  *Network
	snap int
	// port and match narrow what the observer takes (ObserverConfig).
	port  *Port
	match func(frame []byte) bool

	// free holds the records the reader may be handed; ready those
	// filled, in order. Both have room for every record, so a send on
	// either never blocks.
	free, ready chan *Record
	// done is closed by Close.
	done chan struct{}
	once sync.Once

	seen, lost atomic.Uint64
}

// Record is one frame as an observer saw it. The Observer owns it: the
// reader hands it back with Release once done with Frame.
type Record struct {
	// Time is when the switch forwarded or dropped the frame.
	Time time.Time
	// In is the port the frame came in on.
	In *Port
	// Out is the port a unicast frame went to; nil for a frame flooded
	// or dropped.
	Out *Port
	// Dropped says the frame was dropped, for Reason.
	Dropped bool
	Reason  DropReason
	// Hdr is the frame's virtio net header: whether it is a super-frame
	// and whether its checksum is left to fill in.
	Hdr device.VnetHdr
	// Len is the frame's length; Frame is its first Snap bytes.
	Len   int
	Frame []byte

	buf []byte
}

// Flooded reports whether the frame went to every port but In.
func (r *Record) Flooded() bool { return !r.Dropped && r.Out == nil }

// ObserverConfig sizes an observer.
type ObserverConfig struct {
	// Records is how many frames the observer holds for its reader
	// before it loses new ones; 0 means DefaultObserverRecords.
	Records int
	// Snap is how many bytes of each frame are kept; 0 keeps whole
	// frames, super-frames included.
	Snap int
	// Port, if set, keeps to the frames that port sends or is sent:
	// those in from it (dropped ones included), unicast to it, and
	// flooded by another port. The others cost the observer a
	// comparison each and are neither seen nor lost.
	Port *Port
	// Match, if set, is asked about every frame Port lets through,
	// before it is copied, with the frame (no virtio net header, a
	// super-frame whole); a frame it refuses is neither seen nor lost.
	// It runs on the forwarding path, on each worker's goroutine at
	// once: it must be safe for concurrent use, quick, and allocate
	// nothing.
	Match func(frame []byte) bool
}

// DefaultObserverRecords holds about a quarter second of a busy TCP
// stream's super-frames, and takes 16 MiB with whole frames.
const DefaultObserverRecords = 256

// maxObserverRecords bounds ObserverConfig.Records, and
// maxObserverBytes the memory an observer holds, Records times Snap.
const (
	maxObserverRecords = 1 << 16
	maxObserverBytes   = 256 << 20
)

// ErrObserverClosed is returned by Observer.Next once the observer is
// closed.
var ErrObserverClosed = errors.New("observer closed")

// Observe adds an observer to the network. Close removes it.
func (n *Network) Observe(cfg ObserverConfig) (*Observer, error) {
	if cfg.Records == 0 {
		cfg.Records = DefaultObserverRecords
	}
	if cfg.Records < 0 || cfg.Records > maxObserverRecords {
		return nil, fmt.Errorf("observer of network %q: %d records: want 1 to %d", n.Name(), cfg.Records, maxObserverRecords)
	}
	if cfg.Snap <= 0 || cfg.Snap > frameRoom {
		cfg.Snap = frameRoom
	}
	if cfg.Records*cfg.Snap > maxObserverBytes {
		return nil, fmt.Errorf("observer of network %q: %d records of %d bytes: more than %d MiB; keep fewer records or fewer bytes of each (Snap)", n.Name(), cfg.Records, cfg.Snap, maxObserverBytes>>20)
	}
	if cfg.Port != nil && cfg.Port.net != n {
		return nil, fmt.Errorf("observer of network %q: port %q: %w in this network", n.Name(), cfg.Port.Name(), ErrNoPort)
	}
	o := &Observer{
		net:   n,
		snap:  cfg.Snap,
		port:  cfg.Port,
		match: cfg.Match,
		free:  make(chan *Record, cfg.Records),
		ready: make(chan *Record, cfg.Records),
		done:  make(chan struct{}),
	}
	for range cfg.Records {
		o.free <- &Record{buf: make([]byte, cfg.Snap)}
	}
	s := n.sw
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	var next []*Observer
	if old := n.observers.Load(); old != nil {
		next = slices.Clone(*old)
	}
	next = append(next, o)
	n.observers.Store(&next)
	return o, nil
}

// Next returns the next frame observed, waiting for one, or
// ErrObserverClosed once the observer is closed; records filled before
// Close are still returned first.
func (o *Observer) Next() (*Record, error) {
	select {
	case r := <-o.ready:
		return r, nil
	default:
	}
	select {
	case r := <-o.ready:
		return r, nil
	case <-o.done:
		return nil, ErrObserverClosed
	}
}

// C is the channel Next reads, for a select; give each record back with
// Release.
func (o *Observer) C() <-chan *Record { return o.ready }

// Done is closed when the observer is closed.
func (o *Observer) Done() <-chan struct{} { return o.done }

// Release gives a record back for another frame.
func (o *Observer) Release(r *Record) {
	r.In, r.Out, r.Frame = nil, nil, nil
	select {
	case o.free <- r:
	default:
		// Not one of ours, or given back twice: dropping it keeps the
		// free list within its room.
	}
}

// Stats returns how many frames the observer was offered and how many of
// those it lost because its reader had not given records back.
func (o *Observer) Stats() (seen, lost uint64) { return o.seen.Load(), o.lost.Load() }

// Close removes the observer from its network; the switch no longer
// hands it frames once Close returns, and Next returns ErrObserverClosed.
func (o *Observer) Close() {
	o.once.Do(func() {
		n := o.net
		n.sw.mu.Lock()
		if old := n.observers.Load(); old != nil {
			next := slices.DeleteFunc(slices.Clone(*old), func(x *Observer) bool { return x == o })
			if len(next) == 0 {
				n.observers.Store(nil)
			} else {
				n.observers.Store(&next)
			}
		}
		n.sw.mu.Unlock()
		close(o.done)
	})
}

// observe offers one frame to each observer; see Network.forward.
func observe(obs []*Observer, in, out *Port, why DropReason, buf []byte) {
	for _, o := range obs {
		o.offer(in, out, why, buf)
	}
}

// offer copies the frame into a free record, or counts it lost; a lost
// frame costs two atomic adds and a look at the free list.
func (o *Observer) offer(in, out *Port, why DropReason, buf []byte) {
	if p := o.port; p != nil && in != p && out != p && (out != nil || why != noDrop) {
		return
	}
	if o.match != nil && (len(buf) < headroom || !o.match(buf[headroom:])) {
		return
	}
	o.seen.Add(1)
	// An empty free list, the case of a reader that fell behind, is
	// seen without taking the channel's lock.
	if len(o.free) == 0 {
		o.lost.Add(1)
		return
	}
	var r *Record
	select {
	case r = <-o.free:
	default:
		o.lost.Add(1)
		return
	}
	r.Time, r.In, r.Out = time.Now(), in, out
	r.Dropped, r.Reason = why != noDrop, why
	r.Hdr = device.VnetHdr{}
	r.Len, r.Frame = 0, r.buf[:0]
	if len(buf) >= headroom {
		r.Hdr, _ = device.ParseVnetHdr(buf[headroom-HdrLen:])
		frame := buf[headroom:]
		r.Len = len(frame)
		r.Frame = r.buf[:copy(r.buf, frame)]
	}
	o.ready <- r
}
