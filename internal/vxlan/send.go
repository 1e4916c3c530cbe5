package vxlan

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/segment"
)

// Send sizing.
const (
	// maxMsgs is the most messages one sendmmsg takes.
	maxMsgs = 64
	// sendBufSize holds the cut segments of a few super-frames, each
	// behind its VXLAN header.
	sendBufSize = 256 << 10
	// maxGSOSegs is the most segments one GSO send carries (the kernel's
	// UDP_MAX_SEGMENTS, 64 before Linux 6.9).
	maxGSOSegs = 64
	// cmsgSpace is the room for one UDP_SEGMENT control message.
	cmsgSpace = 24
)

// msgMeta is what a message carries, for the counters.
type msgMeta struct {
	sock   uint8
	frames uint32
	bytes  uint32
	peer   *peer
}

// sender is the state of one Write, taken from a pool: the buffer cut
// segments are packed into, and the messages of one sendmmsg per socket.
type sender struct {
	e     *Endpoint
	split segment.Splitter
	buf   []byte
	pos   int
	msgs  []unix.Mmsghdr
	meta  []msgMeta
	iovs  [maxMsgs][2]unix.Iovec
	ctrl  [maxMsgs][cmsgSpace / 8]uint64
	out   []unix.Mmsghdr
	omet  []msgMeta
	one   [1]*peer

	// The result of the Write: frames sent, their bytes, copies sent by
	// replication, frames not sent.
	txFrames, txBytes, floods, errs, gso uint64

	// cur is the messages the next sendmmsg sends; sent and errno its
	// result. writeFn makes it.
	cur     []unix.Mmsghdr
	sent    int
	errno   unix.Errno
	writeFn func(fd uintptr) bool

	// The GSO run being packed: runStart and runLen are its bytes in
	// buf, runSeg the size of its segments (but the last), runSegs how
	// many, runInner their inner frames' bytes, runDone that a shorter
	// last segment ended it.
	runStart, runLen, runSeg, runSegs, runInner int
	runDone                                     bool
}

var senders = sync.Pool{New: func() any {
	s := &sender{
		buf:  make([]byte, sendBufSize),
		msgs: make([]unix.Mmsghdr, 0, maxMsgs),
		meta: make([]msgMeta, 0, maxMsgs),
		out:  make([]unix.Mmsghdr, maxMsgs),
		omet: make([]msgMeta, maxMsgs),
	}
	s.writeFn = s.write
	return s
}}

func (s *sender) write(fd uintptr) bool {
	n, errno := mmsg(unix.SYS_SENDMMSG, fd, s.cur)
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return false
	}
	s.sent, s.errno = n, errno
	return true
}

// Write implements device.Queue: every frame goes to the VTEP its
// destination MAC is behind, or to every VTEP of the replication list
// (broadcast, multicast, unknown unicast). A super-frame is cut to the
// overlay MTU here and its segments leave in GSO sends; a frame with a
// checksum left to fill gets it filled. Frames that cannot go (HostOnly
// MACs, no VTEP, a send error) are counted, not reported: Write fails
// only once the tunnel is closed.
func (q *queue) Write(bufs [][]byte, offset int) (int, error) {
	t := (*Tunnel)(q)
	select {
	case <-t.done:
		return 0, errClosed(t)
	default:
	}
	e := t.ep
	s := senders.Get().(*sender)
	s.e = e
	remotes := *t.remotes.Load()
	vteps := *t.vteps.Load()
	var drops, hostOnly uint64
	for _, b := range bufs {
		frame := b[offset:]
		if len(frame) < ethHdrLen {
			drops++
			continue
		}
		dst, src := macKey(frame[0:6]), macKey(frame[6:12])
		if t.isHostOnly(dst) || t.isHostOnly(src) {
			hostOnly++
			continue
		}
		dests := vteps
		if r := remotes[dst]; r != nil && !isGroup(dst) {
			s.one[0] = r.peer.Load()
			dests = s.one[:]
		} else if len(dests) > 0 {
			s.floods += uint64(len(dests))
		}
		if len(dests) == 0 {
			drops++
			continue
		}
		sock := uint8((uint64(flowHash(frame)) * txSockets) >> 32)
		vh := b[offset-device.VnetHdrLen : offset]
		if vh[0] == 0 && vh[1] == 0 {
			// A whole frame: its VXLAN header goes in the headroom
			// before its virtio net header, and the frame is sent from
			// where it lies.
			vx := b[offset-device.VnetHdrLen-HeaderLen : offset-device.VnetHdrLen]
			putHeader(vx, t.vni)
			s.addPlain(sock, dests, vx, frame)
			continue
		}
		h, err := device.ParseVnetHdr(b[offset-device.VnetHdrLen:])
		if err == nil {
			err = s.split.Reset(h, frame, t.mtu)
		}
		if err != nil || !s.addSplit(t.vni, sock, dests) {
			drops++
		}
	}
	s.flush()
	if n := s.txFrames; n != 0 {
		t.c.txPackets.Add(n)
		t.c.txBytes.Add(s.txBytes)
		e.c.txPackets.Add(n)
		e.c.txBytes.Add(s.txBytes)
	}
	if s.gso != 0 {
		e.c.txGSO.Add(s.gso)
	}
	if s.floods != 0 {
		t.c.floods.Add(s.floods)
	}
	if hostOnly != 0 {
		e.c.dropHostOnly.Add(hostOnly)
	}
	if d := drops + hostOnly + s.errs; d != 0 {
		t.c.drops.Add(d)
	}
	if s.errs != 0 {
		e.c.txErrors.Add(s.errs)
	}
	s.txFrames, s.txBytes, s.floods, s.errs, s.gso = 0, 0, 0, 0, 0
	s.one[0] = nil
	s.e = nil
	senders.Put(s)
	return len(bufs), nil
}

// addPlain queues a whole frame to every one of dests: two pieces, the
// VXLAN header and the frame.
func (s *sender) addPlain(sock uint8, dests []*peer, vx, frame []byte) {
	for _, p := range dests {
		if len(s.msgs) == maxMsgs {
			s.flush()
		}
		k := len(s.msgs)
		iov := &s.iovs[k]
		iov[0] = unix.Iovec{Base: &vx[0]}
		iov[0].SetLen(HeaderLen)
		iov[1] = unix.Iovec{Base: &frame[0]}
		iov[1].SetLen(len(frame))
		s.msgs = s.msgs[:k+1]
		m := &s.msgs[k]
		*m = unix.Mmsghdr{}
		m.Hdr.Name = &p.sa.raw[0]
		m.Hdr.Namelen = p.sa.len
		m.Hdr.Iov = &iov[0]
		m.Hdr.SetIovlen(2)
		s.meta = append(s.meta, msgMeta{sock: sock, frames: 1, bytes: uint32(len(frame)), peer: p})
	}
}

// addSplit cuts the frame the splitter holds into segments, each behind
// a VXLAN header, packed back to back in buf, and queues them as GSO
// sends to every one of dests: runs of segments of one size (the last
// may be shorter). It reports false if the frame could not be cut.
func (s *sender) addSplit(vni uint32, sock uint8, dests []*peer) bool {
	s.runLen = 0
	for {
		need := HeaderLen + s.split.MaxSegment()
		if s.pos+need > len(s.buf) || len(s.msgs)+len(dests) > maxMsgs {
			s.endRun(sock, dests)
			s.flush()
		}
		b := s.buf[s.pos:]
		n, err := s.split.Next(b[HeaderLen:])
		if err != nil {
			s.endRun(sock, dests)
			return false
		}
		if n == 0 {
			break
		}
		putHeader(b, vni)
		l := HeaderLen + n
		if s.runLen > 0 && !s.runDone && l <= s.runSeg && s.runSegs < maxGSOSegs && s.runLen+l <= maxDatagram {
			s.runLen += l
			s.runSegs++
			s.runInner += n
			s.runDone = l < s.runSeg
		} else {
			s.endRun(sock, dests)
			s.runStart, s.runLen, s.runSeg, s.runSegs, s.runInner, s.runDone = s.pos, l, l, 1, n, false
		}
		s.pos += l
	}
	s.endRun(sock, dests)
	return true
}

// endRun queues the GSO run being packed, if any, to every one of dests.
func (s *sender) endRun(sock uint8, dests []*peer) {
	if s.runLen == 0 {
		return
	}
	for _, p := range dests {
		if len(s.msgs) == maxMsgs {
			// The run's bytes stay in buf: flush only sends.
			s.send()
		}
		k := len(s.msgs)
		iov := &s.iovs[k][0]
		*iov = unix.Iovec{Base: &s.buf[s.runStart]}
		iov.SetLen(s.runLen)
		s.msgs = s.msgs[:k+1]
		m := &s.msgs[k]
		*m = unix.Mmsghdr{}
		m.Hdr.Name = &p.sa.raw[0]
		m.Hdr.Namelen = p.sa.len
		m.Hdr.Iov = iov
		m.Hdr.SetIovlen(1)
		if s.runSegs > 1 {
			c := unsafe.Slice((*byte)(unsafe.Pointer(&s.ctrl[k][0])), cmsgSpace)
			m.Hdr.Control = &c[0]
			m.Hdr.SetControllen(putSegmentCmsg(c, s.runSeg))
		}
		s.meta = append(s.meta, msgMeta{sock: sock, frames: uint32(s.runSegs), bytes: uint32(s.runInner), peer: p})
	}
	s.runLen = 0
}

// flush sends every queued message and frees buf.
func (s *sender) flush() {
	s.send()
	s.pos = 0
}

// send sends every queued message, one sendmmsg per socket.
func (s *sender) send() {
	if len(s.msgs) == 0 {
		return
	}
	same := true
	for _, m := range s.meta[1:] {
		if m.sock != s.meta[0].sock {
			same = false
			break
		}
	}
	if same {
		s.sendOn(s.meta[0].sock, s.msgs, s.meta)
	} else {
		// Order the messages by socket, keeping each socket's (each
		// flow's) in order.
		var count [txSockets + 1]int
		for _, m := range s.meta {
			count[m.sock+1]++
		}
		for i := 1; i <= txSockets; i++ {
			count[i] += count[i-1]
		}
		starts := count
		for i, m := range s.meta {
			j := count[m.sock]
			count[m.sock]++
			s.out[j], s.omet[j] = s.msgs[i], m
		}
		for i := range txSockets {
			if a, b := starts[i], starts[i+1]; a < b {
				s.sendOn(uint8(i), s.out[a:b], s.omet[a:b])
			}
		}
		clear(s.omet)
	}
	clear(s.meta)
	s.msgs, s.meta = s.msgs[:0], s.meta[:0]
}

// sendOn sends msgs on socket i; a message the kernel refuses is counted
// and skipped.
func (s *sender) sendOn(i uint8, msgs []unix.Mmsghdr, meta []msgMeta) {
	raw := s.e.sock.tx[i].raw
	for off := 0; off < len(msgs); {
		s.cur = msgs[off:]
		if err := raw.Write(s.writeFn); err != nil {
			for _, m := range meta[off:] {
				s.errs += uint64(m.frames)
			}
			break
		}
		if s.errno != 0 {
			s.errs += uint64(meta[off].frames)
			off++
			continue
		}
		for _, m := range meta[off : off+s.sent] {
			s.txFrames += uint64(m.frames)
			s.txBytes += uint64(m.bytes)
			if m.frames > 1 {
				s.gso++
			}
			m.peer.tx.Add(uint64(m.frames))
		}
		off += s.sent
	}
	s.cur = nil
}
