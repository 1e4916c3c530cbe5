package vxlan

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/segment"
)

// Tunnel is one network's port on an Endpoint: the frames of one VNI. It
// is a device.Device with a queue per receiving socket of the endpoint,
// each fed by that socket's goroutine, which the switch reads with a loop
// of its own each.
type Tunnel struct {
	ep       *Endpoint
	vni      uint32
	mtu      int
	hostOnly []uint64

	// remotes maps a MAC (macKey) to the VTEP behind it, and vteps is
	// the head-end replication list. Both are read without a lock by the
	// receiving goroutine and the writers, and replaced whole under mu.
	remotes atomic.Pointer[map[uint64]*remote]
	vteps   atomic.Pointer[[]*peer]
	mu      sync.Mutex

	// qs are the queues, one per receiving goroutine of the endpoint.
	qs []*queue

	// push and Close: closed is set under cmu, so that no batch is
	// queued after Close has drained the queues.
	cmu    sync.RWMutex
	closed bool
	done   chan struct{}

	c tunnelCounters
}

type tunnelCounters struct {
	rxPackets, rxBytes, txPackets, txBytes, floods, drops atomic.Uint64
}

// remote is one entry of a tunnel's MAC table.
type remote struct {
	peer   atomic.Pointer[peer]
	seen   atomic.Int64 // Unix nanoseconds of the last frame from the MAC
	static atomic.Bool
}

var _ device.Device = (*Tunnel)(nil)

// queue is one of a tunnel's device.Queues: the frames one receiving
// goroutine hands the tunnel. Writes go out the same way on every queue.
type queue struct {
	t *Tunnel
	// free is the free list of the receive buffers of the queue's
	// receiving goroutine.
	free chan *rxBuf
	// rxch carries batches from the receiving goroutine to Read; cur is
	// the batch Read is taking frames from, pos the next frame in it.
	rxch chan *rxBatch
	cur  *rxBatch
	pos  int
	// views are cur's frames as slices, for segment.MergeRun.
	views [][]byte
	// rmu orders Read's use of cur with Close.
	rmu sync.Mutex
	// held counts the receive buffers the queued batches hold; space
	// is signalled when Read lets go of some; stalled is set when the
	// receiving goroutine gave up waiting for that (see push).
	held    atomic.Int32
	space   chan struct{}
	stalled atomic.Bool
}

// newTunnel makes the tunnel of vni on e, with a queue of depth batches
// per receiving goroutine of e.
func newTunnel(e *Endpoint, vni uint32, mtu, depth int) *Tunnel {
	t := &Tunnel{ep: e, vni: vni, mtu: mtu, done: make(chan struct{})}
	for _, free := range e.free {
		t.qs = append(t.qs, &queue{t: t, free: free, rxch: make(chan *rxBatch, depth),
			views: make([][]byte, 0, maxBatchFrames), space: make(chan struct{}, 1)})
	}
	t.initTables()
	return t
}

func (t *Tunnel) initTables() {
	m := map[uint64]*remote{}
	t.remotes.Store(&m)
	var v []*peer
	t.vteps.Store(&v)
}

// VNI returns the tunnel's VXLAN network identifier.
func (t *Tunnel) VNI() uint32 { return t.vni }

// MTU returns the overlay MTU super-frames are cut to.
func (t *Tunnel) MTU() int { return t.mtu }

// Queues returns the tunnel's queues, one per receiving socket of the
// endpoint.
func (t *Tunnel) Queues() []device.Queue {
	qs := make([]device.Queue, len(t.qs))
	for i, q := range t.qs {
		qs[i] = q
	}
	return qs
}

// Caps: the tunnel takes TCP and UDP super-frames and frames with a
// checksum left to fill, and cuts and completes them itself, so that a
// super-frame's segments leave in one GSO send.
func (t *Tunnel) Caps() device.Caps {
	return device.Caps{GSO: device.GSOSetTCP | device.GSOSetUDPL4, Csum: true}
}

// Close closes the tunnel: its VNI is free again, and packets for it are
// dropped as of an unknown VNI.
func (t *Tunnel) Close() error {
	t.cmu.Lock()
	if t.closed {
		t.cmu.Unlock()
		return os.ErrClosed
	}
	t.closed = true
	close(t.done)
	t.cmu.Unlock()
	t.ep.removeTunnel(t)
	for _, q := range t.qs {
		q.drain()
	}
	return nil
}

// drain lets go of the queue's batches, once its tunnel is closed.
func (q *queue) drain() {
	for {
		select {
		case b := <-q.rxch:
			q.releaseQueued(b)
			continue
		default:
		}
		break
	}
	// A Read under way lets go of its batch itself; one waiting for the
	// next Read is let go here.
	if q.rmu.TryLock() {
		if q.cur != nil {
			q.releaseQueued(q.cur)
			q.cur = nil
		}
		q.rmu.Unlock()
	}
}

// push queues a batch for Read. A queue without room (full, or holding
// maxHeld buffers) is waited on, so that a network that reads slower than
// frames come holds the socket back rather than lose frames; one that
// made the wait last stallWait is stalled (nobody reads it), and loses
// its frames at once until Read takes some. A closed tunnel's are
// dropped. push is called by the queue's receiving goroutine only, with
// its timer.
func (q *queue) push(b *rxBatch, wait *time.Timer) {
	t := q.t
	n, bytes := uint64(len(b.frames)), uint64(b.bytes)
	for {
		t.cmu.RLock()
		if t.closed {
			t.cmu.RUnlock()
			break
		}
		// The receiving goroutine is the only sender on rxch, so room
		// now is room at the send. The frames are counted before Read,
		// which owns b once it is queued, can see them.
		if len(q.rxch) < cap(q.rxch) && int(q.held.Load())+len(b.bufs) <= maxHeld {
			q.held.Add(int32(len(b.bufs)))
			t.c.rxPackets.Add(n)
			t.c.rxBytes.Add(bytes)
			t.ep.c.rxPackets.Add(n)
			t.ep.c.rxBytes.Add(bytes)
			q.rxch <- b
			t.cmu.RUnlock()
			return
		}
		t.cmu.RUnlock()
		if q.stalled.Load() {
			break
		}
		wait.Reset(stallWait)
		select {
		case <-q.space:
			wait.Stop()
			continue
		case <-wait.C:
			q.stalled.Store(true)
		case <-t.done:
			wait.Stop()
		}
		break
	}
	t.c.drops.Add(n)
	b.release(q.free)
}

// maxHeld is the most receive buffers a tunnel's queue may hold, so that
// a network that nobody reads leaves the others the buffers of the
// queue's receiving goroutine to receive into.
const maxHeld = rxBufs / 3

// stallWait is how long a receiving goroutine waits for room in a
// tunnel's queue before it takes the tunnel for stalled: far longer than
// a switch that keeps reading takes to free a batch.
const stallWait = 100 * time.Millisecond

// releaseQueued lets go of a batch that was queued.
func (q *queue) releaseQueued(b *rxBatch) {
	q.held.Add(-int32(len(b.bufs)))
	b.release(q.free)
	if q.stalled.Load() {
		q.stalled.Store(false)
	}
	select {
	case q.space <- struct{}{}:
	default:
	}
}

func (t *Tunnel) isHostOnly(k uint64) bool {
	for _, h := range t.hostOnly {
		if h == k {
			return true
		}
	}
	return false
}

// learn records that MAC k is behind p, as of now. A static entry stays
// as it is.
func (t *Tunnel) learn(k uint64, p *peer, now int64) {
	if r := (*t.remotes.Load())[k]; r != nil {
		if r.static.Load() {
			return
		}
		if r.peer.Load() != p {
			r.peer.Store(p)
		}
		if now-r.seen.Load() > int64(time.Second) {
			r.seen.Store(now)
		}
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.remotes.Load()
	if r := old[k]; r != nil {
		if !r.static.Load() {
			r.peer.Store(p)
			r.seen.Store(now)
		}
		return
	}
	if len(old) >= maxRemotes {
		return
	}
	r := &remote{}
	r.peer.Store(p)
	r.seen.Store(now)
	t.storeRemotesLocked(old, k, r)
}

// maxRemotes bounds a tunnel's MAC table; past it, new MACs are not
// learned (their frames are flooded to every VTEP).
const maxRemotes = 16384

// storeRemotesLocked publishes old with k set to r (removed if r is
// nil).
func (t *Tunnel) storeRemotesLocked(old map[uint64]*remote, k uint64, r *remote) {
	next := make(map[uint64]*remote, len(old)+1)
	for key, v := range old {
		next[key] = v
	}
	if r == nil {
		delete(next, k)
	} else {
		next[k] = r
	}
	t.remotes.Store(&next)
}

// removeLocked publishes the table without the entries drop says to
// drop, if there are any.
func (t *Tunnel) removeLocked(drop func(*remote) bool) {
	old := *t.remotes.Load()
	n := 0
	for _, r := range old {
		if drop(r) {
			n++
		}
	}
	if n == 0 {
		return
	}
	next := make(map[uint64]*remote, len(old)-n)
	for k, r := range old {
		if !drop(r) {
			next[k] = r
		}
	}
	t.remotes.Store(&next)
}

// expire forgets learned MACs unseen for agingTime.
func (t *Tunnel) expire(now time.Time) {
	limit := now.Add(-agingTime).UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(func(r *remote) bool { return !r.static.Load() && r.seen.Load() < limit })
}

// SetVTEPs sets the head-end replication list: where broadcast,
// multicast and unknown unicast frames go. The endpoint's own address is
// left out.
func (t *Tunnel) SetVTEPs(vteps []netip.Addr) {
	e := t.ep
	e.mu.Lock()
	list := make([]*peer, 0, len(vteps))
	for _, a := range vteps {
		if !a.IsValid() || a.Unmap() == e.cfg.Local {
			continue
		}
		if p := e.peerLocked(a); !slices.Contains(list, p) {
			list = append(list, p)
		}
	}
	e.mu.Unlock()
	t.vteps.Store(&list)
}

// SetRemote sets a static entry, from the store or configuration: frames
// to mac go to vtep. It does not age, and learning does not move it.
func (t *Tunnel) SetRemote(mac net.HardwareAddr, vtep netip.Addr) {
	if len(mac) != 6 || !vtep.IsValid() || vtep.Unmap() == t.ep.cfg.Local {
		return
	}
	e := t.ep
	e.mu.Lock()
	p := e.peerLocked(vtep)
	e.mu.Unlock()
	k := macKey(mac)
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.remotes.Load()
	if r := old[k]; r != nil {
		r.peer.Store(p)
		r.static.Store(true)
		return
	}
	r := &remote{}
	r.peer.Store(p)
	r.static.Store(true)
	t.storeRemotesLocked(old, k, r)
}

// ForgetRemote removes mac's entry, static or learned.
func (t *Tunnel) ForgetRemote(mac net.HardwareAddr) {
	if len(mac) != 6 {
		return
	}
	k := macKey(mac)
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := *t.remotes.Load(); old[k] != nil {
		t.storeRemotesLocked(old, k, nil)
	}
}

// ForgetVTEP removes every entry, static or learned, behind vtep.
func (t *Tunnel) ForgetVTEP(vtep netip.Addr) {
	vtep = vtep.Unmap()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(func(r *remote) bool { return r.peer.Load().addr == vtep })
}

// Remotes returns the tunnel's MAC table, by MAC, without the learned
// entries past their age.
func (t *Tunnel) Remotes() []Remote {
	limit := time.Now().Add(-agingTime).UnixNano()
	m := *t.remotes.Load()
	out := make([]Remote, 0, len(m))
	for k, r := range m {
		static := r.static.Load()
		seen := r.seen.Load()
		if !static && seen < limit {
			continue
		}
		var last time.Time
		if seen != 0 {
			last = time.Unix(0, seen)
		}
		out = append(out, Remote{MAC: keyMAC(k), VTEP: r.peer.Load().addr, Static: static, LastSeen: last})
	}
	slices.SortFunc(out, func(a, b Remote) int { return slices.Compare(a.MAC, b.MAC) })
	return out
}

// Stats returns the tunnel's counters.
func (t *Tunnel) Stats() TunnelStats {
	return TunnelStats{
		RxPackets: t.c.rxPackets.Load(),
		RxBytes:   t.c.rxBytes.Load(),
		TxPackets: t.c.txPackets.Load(),
		TxBytes:   t.c.txBytes.Load(),
		Floods:    t.c.floods.Load(),
		Drops:     t.c.drops.Load(),
	}
}

// String names the tunnel in logs.
func (t *Tunnel) String() string { return fmt.Sprintf("vxlan VNI %d", t.vni) }

func errClosed(t *Tunnel) error {
	return fmt.Errorf("vxlan: tunnel of VNI %d: %w", t.vni, os.ErrClosed)
}

// BatchSize implements device.Queue.
func (q *queue) BatchSize() int { return readBatch }

// readBatch is the most frames one Read returns: the switch coalesces a
// batch's frames of one flow into super-frames before it writes them to a
// TAP, so a batch holds a 64 KiB super-frame's worth of full-size frames.
const readBatch = 64

// maxRun is the most frames Read merges into one super-frame: a 64 KiB
// TCP super-frame's worth of full segments (46 at the smallest common
// MTU, 1500), or a UDP super-frame's most (64).
const maxRun = 64

// mergeCaps are the super-frames Read makes: what a TAP takes. A port
// that takes less gets them cut by the switch.
var mergeCaps = device.Caps{GSO: device.GSOSetTCP | device.GSOSetUDPL4, Csum: true}

// Read implements device.Queue: it waits for the queue's receiving
// goroutine to hand it frames, then copies up to len(bufs) of them out. A run
// of one flow's segments (as a sender cuts them from one super-frame, and
// the receiving socket reads them, back to back) is merged into one
// super-frame as it is copied, by the switch's coalescing rules
// (segment.MergeRun), with the virtio net header the kernel takes from a
// TAP (GSO type and size, the checksum left to fill); any other frame is
// copied as it came, with a header of no GSO. Frames from a checksummed
// VTEP (Endpoint.SetChecksummed) are known good: their checksums are not
// checked, and may not be filled in (their sender cuts super-frames with
// the checksum left to the receiver, segment.Splitter.Partial): a TCP or
// UDP frame alone gets VnetFlagNeedsCsum with the pseudo-header seed
// (segment.Reseed), any other VnetFlagDataValid. The others' are checked
// before they merge, and a frame alone gets no flag.
func (q *queue) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	t := q.t
	q.rmu.Lock()
	defer q.rmu.Unlock()
	n := 0
	for n < len(bufs) {
		if q.cur == nil {
			var b *rxBatch
			if n == 0 {
				select {
				case b = <-q.rxch:
				case <-t.done:
				}
			} else {
				select {
				case b = <-q.rxch:
				default:
				}
			}
			if b == nil {
				break
			}
			q.cur, q.pos = b, 0
			q.views = q.views[:0]
			for _, f := range b.frames {
				q.views = append(q.views, f.buf.b[f.off:f.off+f.n])
			}
		}
		select {
		case <-t.done:
			q.releaseQueued(q.cur)
			q.cur = nil
			return 0, errClosed(t)
		default:
		}
		b := q.cur
		for n < len(bufs) && q.pos < len(b.frames) {
			f := b.frames[q.pos]
			dst := bufs[n]
			if !b.mixed {
				used, size := segment.MergeRun(dst, offset, q.views[q.pos:min(q.pos+maxRun, len(b.frames))], f.valid, mergeCaps)
				if used == 1 && f.valid {
					segment.Reseed(dst[offset-device.VnetHdrLen:offset], dst[offset:offset+size])
				}
				sizes[n] = size
				n++
				q.pos += used
				continue
			}
			clear(dst[offset-device.VnetHdrLen : offset])
			if f.valid {
				dst[offset-device.VnetHdrLen] = device.VnetFlagDataValid
			}
			sizes[n] = copy(dst[offset:], q.views[q.pos])
			if f.valid {
				segment.Reseed(dst[offset-device.VnetHdrLen:offset], dst[offset:offset+sizes[n]])
			}
			n++
			q.pos++
		}
		if q.pos == len(b.frames) {
			q.releaseQueued(b)
			q.cur = nil
			clear(q.views)
		}
	}
	if n == 0 {
		return 0, errClosed(t)
	}
	return n, nil
}
