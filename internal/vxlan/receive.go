package vxlan

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Receive sizing.
const (
	// rxMsgs is how many datagrams (each, with UDP_GRO, a run of them)
	// one recvmmsg reads.
	rxMsgs = 32
	// rxBufSize holds the largest read: 64 KiB of coalesced datagrams.
	rxBufSize = 65536
	// rxBufs is how many receive buffers each receiving goroutine has:
	// rxMsgs posted to its socket, the rest in its queues of the tunnels
	// waiting to be read.
	rxBufs = 6 * rxMsgs
	// maxBatchFrames is the most frames one batch handed to a tunnel
	// holds.
	maxBatchFrames = 256
	// tunnelQueue is how many batches wait in one queue of a tunnel
	// (see push for what happens when they are all taken).
	tunnelQueue = 32
)

// newFreeList makes one receiving goroutine's receive buffers.
func newFreeList() chan *rxBuf {
	free := make(chan *rxBuf, rxBufs)
	for range rxBufs {
		free <- &rxBuf{b: make([]byte, rxBufSize)}
	}
	return free
}

// rxBuf is one receive buffer. refs counts the batches that hold frames
// in it; the last to let go puts it back in its free list.
type rxBuf struct {
	b    []byte
	refs atomic.Int32
}

// frameRef is one inner frame in a receive buffer.
type frameRef struct {
	buf    *rxBuf
	off, n int32
	// valid: its sender is checksummed (Endpoint.SetChecksummed), so
	// its data is covered by the outer UDP checksum.
	valid bool
}

// rxBatch is what a receiving goroutine hands a tunnel's queue: its
// inner frames from one read, and the buffers they lie in.
type rxBatch struct {
	frames []frameRef
	bufs   []*rxBuf
	bytes  int
	// mixed: its frames are not all valid or all not (frameRef.valid).
	mixed bool
}

var batchPool = sync.Pool{New: func() any {
	return &rxBatch{frames: make([]frameRef, 0, maxBatchFrames), bufs: make([]*rxBuf, 0, rxMsgs)}
}}

// release lets go of the batch's buffers and returns it to the pool.
func (b *rxBatch) release(free chan *rxBuf) {
	for _, buf := range b.bufs {
		if buf.refs.Add(-1) == 0 {
			free <- buf
		}
	}
	clear(b.bufs)
	b.frames, b.bufs, b.bytes, b.mixed = b.frames[:0], b.bufs[:0], 0, false
	batchPool.Put(b)
}

// reader is the state of a receiving goroutine, made once: the one of
// receiving socket idx, which feeds queue idx of every tunnel.
type reader struct {
	e     *Endpoint
	idx   int
	free  chan *rxBuf
	msgs  [rxMsgs]unix.Mmsghdr
	iovs  [rxMsgs]unix.Iovec
	names [rxMsgs]sockaddr
	oob   [rxMsgs][8]uint64
	bufs  [rxMsgs]*rxBuf
	pend  []pending
	// n and errno are the result of the last recvmmsg; readFn makes it.
	n      int
	errno  unix.Errno
	readFn func(fd uintptr) bool
	// wait times the waits for room in a tunnel's queue (push).
	wait *time.Timer
}

// pending is a batch being filled for one tunnel, and the last source MAC
// learned into it, so that a run of one sender learns once.
type pending struct {
	t       *Tunnel
	b       *rxBatch
	lastSrc uint64
	last    *peer
}

func newReader(e *Endpoint, idx int) *reader {
	r := &reader{e: e, idx: idx, free: e.free[idx]}
	for i := range r.bufs {
		r.bufs[i] = <-r.free
	}
	r.readFn = r.read
	r.wait = time.NewTimer(time.Hour)
	r.wait.Stop()
	return r
}

func (r *reader) read(fd uintptr) bool {
	n, errno := mmsg(unix.SYS_RECVMMSG, fd, r.msgs[:])
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return false
	}
	r.n, r.errno = n, errno
	return true
}

// receive reads receiving socket idx until Close, hands every inner
// frame to queue idx of the tunnel of its VNI and learns where its source
// MAC is.
func (e *Endpoint) receive(idx int) {
	r := newReader(e, idx)
	raw := e.sock.rx[idx].raw
	for {
		for i := range r.msgs {
			m := &r.msgs[i]
			r.iovs[i] = unix.Iovec{Base: &r.bufs[i].b[0]}
			r.iovs[i].SetLen(rxBufSize)
			m.Hdr.Iov = &r.iovs[i]
			m.Hdr.SetIovlen(1)
			m.Hdr.Name = &r.names[i].raw[0]
			m.Hdr.Namelen = uint32(len(r.names[i].raw))
			m.Hdr.Control = (*byte)(unsafe.Pointer(&r.oob[i][0]))
			m.Hdr.SetControllen(len(r.oob[i]) * 8)
			m.Hdr.Flags = 0
			m.Len = 0
		}
		if e.paused.Load() && !e.waitResumed() {
			return
		}
		err := raw.Read(r.readFn)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// PauseReads woke the read.
			continue
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				e.log.Error("vxlan: receiving stopped", "err", err)
			}
			return
		}
		if r.errno != 0 {
			select {
			case <-e.done:
				return
			default:
			}
			// Errors queued by ICMP (refused, unreachable) are not
			// asked for (no IP_RECVERR); anything else is worth a line
			// and a pause, never a spin.
			e.log.Warn("vxlan: recvmmsg failed", "err", r.errno)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		now := time.Now().UnixNano()
		members := *e.members.Load()
		tunnels := *e.tunnels.Load()
		for i := range r.n {
			if !r.handle(i, members, tunnels, now) {
				return
			}
		}
		r.deliver()
	}
}

// handle takes the datagrams of message i; it reports false when the
// endpoint is closing.
func (r *reader) handle(i int, members map[netip.Addr]*peer, tunnels map[uint32]*Tunnel, now int64) bool {
	e := r.e
	m := &r.msgs[i]
	buf := r.bufs[i]
	data := buf.b[:m.Len]
	if m.Hdr.Flags&unix.MSG_TRUNC != 0 || len(data) == 0 {
		e.c.dropMalformed.Add(1)
		return true
	}
	seg := groSize(unsafe.Slice((*byte)(unsafe.Pointer(&r.oob[i][0])), m.Hdr.Controllen))
	if seg <= 0 || seg > len(data) {
		seg = len(data)
	}
	count := uint64((len(data) + seg - 1) / seg)
	if count > 1 {
		e.c.rxGRO.Add(1)
	}
	p := members[r.names[i].addr()]
	if p == nil {
		e.c.dropNotMember.Add(count)
		return true
	}
	if p.heard.Load() != now {
		p.heard.Store(now)
	}
	p.rx.Add(count)
	valid := p.sums.Load()
	given := false
	var bad, unknown, hostOnly uint64
	for off := 0; off < len(data); off += seg {
		d := data[off:min(off+seg, len(data))]
		vni, frame, err := parse(d)
		if err != nil {
			bad++
			continue
		}
		t := tunnels[vni]
		if t == nil {
			unknown++
			continue
		}
		src := macKey(frame[6:12])
		if t.isHostOnly(src) {
			hostOnly++
			t.c.drops.Add(1)
			continue
		}
		pe := r.pendingFor(t)
		if src != pe.lastSrc || p != pe.last {
			if !isGroup(src) && src != 0 {
				t.learn(src, p, now)
			}
			pe.lastSrc, pe.last = src, p
		}
		b := pe.b
		if n := len(b.bufs); n == 0 || b.bufs[n-1] != buf {
			b.bufs = append(b.bufs, buf)
			buf.refs.Add(1)
			given = true
		}
		if len(b.frames) > 0 && b.frames[0].valid != valid {
			b.mixed = true
		}
		b.frames = append(b.frames, frameRef{buf: buf, off: int32(off + HeaderLen), n: int32(len(frame)), valid: valid})
		b.bytes += len(frame)
		if len(b.frames) == cap(b.frames) || len(b.bufs) == cap(b.bufs) {
			t.qs[r.idx].push(b, r.wait)
			pe.b = batchPool.Get().(*rxBatch)
		}
	}
	if bad != 0 {
		e.c.dropMalformed.Add(bad)
	}
	if unknown != 0 {
		e.c.dropUnknownVNI.Add(unknown)
	}
	if hostOnly != 0 {
		e.c.dropHostOnly.Add(hostOnly)
	}
	if given {
		// The buffer now belongs to the batches holding its frames; a
		// fresh one takes its place.
		select {
		case r.bufs[i] = <-r.free:
		case <-e.done:
			return false
		}
	}
	return true
}

// pendingFor returns the batch being filled for t.
func (r *reader) pendingFor(t *Tunnel) *pending {
	for i := range r.pend {
		if r.pend[i].t == t {
			return &r.pend[i]
		}
	}
	r.pend = append(r.pend, pending{t: t, b: batchPool.Get().(*rxBatch)})
	return &r.pend[len(r.pend)-1]
}

// deliver hands every pending batch to its tunnel.
func (r *reader) deliver() {
	for i := range r.pend {
		pe := &r.pend[i]
		if len(pe.b.frames) > 0 {
			pe.t.qs[r.idx].push(pe.b, r.wait)
		} else {
			pe.b.release(r.free)
		}
		*pe = pending{}
	}
	r.pend = r.pend[:0]
}
