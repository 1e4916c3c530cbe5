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
	// sendBufSize holds what a write's sends take from buf: the headers
	// of gathered segments and the frames completed by copying, each
	// behind its VXLAN header.
	sendBufSize = 256 << 10
	// maxGSOSegs is the most segments one GSO send carries (the kernel's
	// UDP_MAX_SEGMENTS, 64 before Linux 6.9).
	maxGSOSegs = 64
	// maxGatherIovs is the room for the pieces of gathered sends: a
	// header and a payload per segment, a few super-frames' worth.
	maxGatherIovs = 8 * 2 * maxGSOSegs
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
	// giovs are the pieces of gathered sends (addGather): each segment's
	// headers in buf, then its payload where the frame lies.
	giovs []unix.Iovec
	ctrl  [maxMsgs][cmsgSpace / 8]uint64
	out   []unix.Mmsghdr
	omet  []msgMeta
	one   [1]*peer

	// The result of the Write: frames sent, their bytes, copies sent by
	// replication, frames not sent.
	txFrames, txBytes, floods, errs, gso uint64
}

var senders = sync.Pool{New: func() any {
	s := &sender{
		buf:   make([]byte, sendBufSize),
		msgs:  make([]unix.Mmsghdr, 0, maxMsgs),
		meta:  make([]msgMeta, 0, maxMsgs),
		out:   make([]unix.Mmsghdr, maxMsgs),
		omet:  make([]msgMeta, maxMsgs),
		giovs: make([]unix.Iovec, 0, maxGatherIovs),
	}
	return s
}}

// Write implements device.Queue: every frame goes to the VTEP its
// destination MAC is behind, or to every VTEP of the replication list
// (broadcast, multicast, unknown unicast). A super-frame is cut to the
// overlay MTU here and its segments leave in GSO sends; a frame with a
// checksum left to fill gets it filled. Frames that cannot go (HostOnly
// MACs, no VTEP, a send error) are counted, not reported: Write fails
// only once the tunnel is closed.
func (q *queue) Write(bufs [][]byte, offset int) (int, error) {
	t := q.t
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
			// To tapswitch hosts only, the transport checksums are left
			// to the receiver (see Endpoint.SetChecksummed).
			s.split.Partial = allChecksummed(dests)
			err = s.split.Reset(h, frame, t.mtu)
		}
		switch {
		case err != nil:
			drops++
		case s.split.Gathers():
			if !s.addGather(t.vni, sock, dests) {
				drops++
			}
		case !s.addCopy(t.vni, sock, dests):
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

// allChecksummed reports whether every one of dests is a checksummed
// peer: a tapswitch host, which covers every datagram with a UDP
// checksum, takes the frames of its peers as known good and fills a
// transport checksum in where it goes on (segment.Reseed). A frame to
// such peers is cut with the pseudo-header seed in place of each
// segment's transport checksum, as Linux leaves it for a device with
// checksum offload, which spares the sum over the payload.
func allChecksummed(dests []*peer) bool {
	for _, p := range dests {
		if !p.sums.Load() {
			return false
		}
	}
	return len(dests) > 0
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

// addCopy queues a frame of one segment that is not sent from where it
// lies (its checksum to fill in, or a frame of a kind the splitter only
// copies): written into buf behind its VXLAN header by the splitter, and
// sent whole to every one of dests. It reports false if it could not be.
func (s *sender) addCopy(vni uint32, sock uint8, dests []*peer) bool {
	// Room first, so that addPlain does not flush buf under the frame.
	if s.pos+HeaderLen+s.split.MaxSegment() > len(s.buf) || len(s.msgs)+len(dests) > maxMsgs {
		s.flush()
	}
	b := s.buf[s.pos:]
	n, err := s.split.Next(b[HeaderLen:])
	if err != nil || n == 0 {
		return false
	}
	putHeader(b, vni)
	s.addPlain(sock, dests, b[:HeaderLen], b[HeaderLen:HeaderLen+n])
	s.pos += HeaderLen + n
	return true
}

// addGather queues the segments of the GSO frame the splitter holds as
// GSO sends to every one of dests, each segment gathered from two
// pieces: its VXLAN header and headers, written into buf, and its
// payload, sent from where the frame lies (so copied once, by the
// kernel). Runs are of segments of one size, the last may be shorter.
// It reports false if the frame could not be cut.
func (s *sender) addGather(vni uint32, sock uint8, dests []*peer) bool {
	var runIov, runSegs, runSeg, runLen, runInner int
	end := func() {
		if runSegs == 0 {
			return
		}
		s.queueRun(sock, dests, s.giovs[runIov:runIov+2*runSegs], runSeg, runSegs, runInner)
		runSegs = 0
	}
	for {
		if s.pos+HeaderLen+segment.MaxHeaderLen > len(s.buf) || len(s.giovs)+2 > cap(s.giovs) || len(s.msgs)+len(dests) > maxMsgs {
			end()
			s.flush()
		}
		b := s.buf[s.pos:]
		hl, payload, err := s.split.NextHeaders(b[HeaderLen:])
		if err != nil {
			end()
			return false
		}
		if hl == 0 {
			break
		}
		putHeader(b, vni)
		l := HeaderLen + hl + len(payload)
		if runSegs > 0 && l <= runSeg && runSegs < maxGSOSegs && runLen+l <= maxDatagram && runLen%runSeg == 0 {
			runSegs++
			runLen += l
			runInner += hl + len(payload)
		} else {
			end()
			runIov, runSegs, runSeg, runLen, runInner = len(s.giovs), 1, l, l, hl+len(payload)
		}
		k := len(s.giovs)
		s.giovs = s.giovs[:k+2]
		s.giovs[k] = unix.Iovec{Base: &b[0]}
		s.giovs[k].SetLen(HeaderLen + hl)
		s.giovs[k+1] = unix.Iovec{Base: &payload[0]}
		s.giovs[k+1].SetLen(len(payload))
		s.pos += HeaderLen + hl
	}
	end()
	return true
}

// queueRun queues a GSO send of the pieces iov, segs segments of seg
// bytes (the last may be shorter), inner bytes of inner frames, to every
// one of dests.
func (s *sender) queueRun(sock uint8, dests []*peer, iov []unix.Iovec, seg, segs, inner int) {
	for _, p := range dests {
		if len(s.msgs) == maxMsgs {
			// The pieces stay in buf and giovs: send only sends.
			s.send()
		}
		k := len(s.msgs)
		s.msgs = s.msgs[:k+1]
		m := &s.msgs[k]
		*m = unix.Mmsghdr{}
		m.Hdr.Name = &p.sa.raw[0]
		m.Hdr.Namelen = p.sa.len
		m.Hdr.Iov = &iov[0]
		m.Hdr.SetIovlen(len(iov))
		if segs > 1 {
			c := unsafe.Slice((*byte)(unsafe.Pointer(&s.ctrl[k][0])), cmsgSpace)
			m.Hdr.Control = &c[0]
			m.Hdr.SetControllen(putSegmentCmsg(c, seg))
		}
		s.meta = append(s.meta, msgMeta{sock: sock, frames: uint32(segs), bytes: uint32(inner), peer: p})
	}
}

// flush sends every queued message and frees buf and giovs.
func (s *sender) flush() {
	s.send()
	s.pos = 0
	clear(s.giovs)
	s.giovs = s.giovs[:0]
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
	sk := s.e.sock
	sk.txMu.RLock()
	defer sk.txMu.RUnlock()
	if sk.txClosed {
		for _, m := range meta {
			s.errs += uint64(m.frames)
		}
		return
	}
	fd := sk.tx[i].fd
	for off := 0; off < len(msgs); {
		sent, errno := sendmmsg(fd, msgs[off:])
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			// EAGAIN: the buffer stayed full for sendTimeout.
			s.errs += uint64(meta[off].frames)
			off++
			continue
		}
		for _, m := range meta[off : off+sent] {
			s.txFrames += uint64(m.frames)
			s.txBytes += uint64(m.bytes)
			if m.frames > 1 {
				s.gso++
			}
			m.peer.tx.Add(uint64(m.frames))
		}
		off += sent
	}
}
