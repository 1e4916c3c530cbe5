package vswitch

// The batched path (Dataplane.Batch above 1): a worker reads up to a
// batch of frames from one queue into its lane's arena, routes each as
// forward does, and holds the unicast ones back, grouped by destination
// port, until the batch ends:
//
//	arena: [hdr|frame 1]..[hdr|frame 2]....[hdr|frame 3]..  (each at the next aligned spot)
//	           │ route (checks, learning, storm control, rx counters, observers: as forward)
//	           ├─ drop ──▶ counted as ever
//	           ├─ unicast to p ──▶ pend (in order), dst = p
//	           └─ flood ──▶ flush pend first, then every other port's send
//	flush: for each port in pend, by first appearance, its frames in order
//	           ├─ over its MTU ──▶ drop;  a super-frame it does not take ──▶ sendSegments
//	           └─ runs of the rest ──▶ Coalescer (if the port takes a GSO type) ──▶ one Write
//
// So a frame never overtakes an earlier one to the same port, flooded or
// not, and a receiver is woken once for a run of frames rather than once
// a frame.

import (
	"errors"
	"os"

	"github.com/tapswitch/tapswitch/device"
)

// arenaSize holds a batch: a read needs frameRoom free (it may be a
// 64 KiB super-frame), so eight full buffers' worth takes at least eight
// super-frames, what the per-frame path read at once, and 64 small frames
// take a few KiB of it, which stays in cache.
const arenaSize = 8 * bufSize

// newBatchLane returns a lane for the batched path: an arena for up to
// batch frames and the slices that point into it, all made once.
func newBatchLane(qi, batch int, coalesce bool) *lane {
	l := newLane(qi, 1)
	l.group(batch, coalesce)
	l.arena = alignedBuffer(arenaSize)
	return l
}

// group readies l to forward batches of up to batch frames with
// forwardBatch.
func (l *lane) group(batch int, coalesce bool) {
	l.batch, l.coalesce = batch, coalesce
	l.frames = make([][]byte, 0, batch)
	l.pend = make([][]byte, 0, batch)
	l.dst = make([]*Port, 0, batch)
	l.grp = make([][]byte, 0, batch)
}

// readBatch reads up to l.batch frames from q into the arena, one read at
// a time, each at the next spot whose frame starts frameAlign past a
// 64-byte boundary, while room for a whole frameRoom is left. It returns
// the frames (each cut to its end, as forward takes it) and the error
// that ended the batch, if it had none to return.
func (l *lane) readBatch(q device.PollQueue) ([][]byte, error) {
	frames, pos := l.frames[:0], 0
	for len(frames) < l.batch && pos+bufSize <= len(l.arena) {
		b := l.arena[pos : pos+bufSize : pos+bufSize]
		l.rd[0] = b
		n, err := q.TryRead(l.rd[:], l.sizes[:1], headroom)
		if err != nil {
			if len(frames) > 0 {
				break // met again by the next read
			}
			return nil, err
		}
		if n == 0 {
			break
		}
		size := l.sizes[0]
		frames = append(frames, b[:headroom+size])
		pos += (headroom + size + 63) &^ 63
	}
	l.frames = frames
	return frames, nil
}

// forwardBatch routes frames read from port in and writes them, the
// unicast ones grouped by destination port (see the top of this file).
func (n *Network) forwardBatch(in *Port, l *lane, frames [][]byte) {
	for _, buf := range frames {
		out, why := n.route(in, l.qi, buf)
		// Observers see the frame before it goes out (as forward).
		if obs := n.observers.Load(); obs != nil {
			observe(*obs, in, out, why, buf)
		}
		switch {
		case why != noDrop:
			in.drop(why)
		case out != nil:
			l.pend = append(l.pend, buf)
			l.dst = append(l.dst, out)
		default:
			// A flooded frame goes out after what came before it.
			l.flush()
			n.flood(in, l, buf)
		}
	}
	l.flush()
}

// flush writes the pending unicast frames, each port's in the order they
// came, one port after another.
func (l *lane) flush() {
	for i, p := range l.dst {
		if p == nil {
			continue
		}
		grp := l.grp[:0]
		for j := i; j < len(l.dst); j++ {
			if l.dst[j] == p {
				grp = append(grp, l.pend[j])
				l.dst[j] = nil
			}
		}
		l.grp = grp
		if l.nsent < len(l.sent) {
			l.sent[l.nsent] = p
			l.nsent++
		}
		p.sendBatch(l, grp)
	}
	clear(l.pend)
	l.pend, l.dst = l.pend[:0], l.dst[:0]
}

// sendBatch writes frames to the port in order: runs of frames its
// device takes as they are with one Write each (coalesced first, where it
// takes super-frames), the others as send would.
func (p *Port) sendBatch(l *lane, frames [][]byte) {
	start := 0
	for i, buf := range frames {
		how := p.howToSend(buf)
		if how == sendAsIs {
			continue
		}
		p.sendRun(l, frames[start:i])
		start = i + 1
		if how == sendOversize {
			p.drop(DropOversize)
		} else {
			p.sendSegments(l, buf)
		}
	}
	p.sendRun(l, frames[start:])
}

// sendRun writes a run of frames the port's device takes as they are,
// merged by the lane's Coalescer first where the device takes a GSO type.
func (p *Port) sendRun(l *lane, run [][]byte) {
	switch {
	case len(run) == 0:
		return
	case len(run) > 1 && l.coalesce && p.caps.GSO != 0:
		out := l.coal.Coalesce(run, headroom, p.caps)
		p.writeRun(l, out, l.coal.Segs(), run)
	default:
		p.writeRun(l, run, nil, run)
	}
}

// writeRun writes out to the port's queue for the lane and counts it:
// out[j] carries segs[j] frames of run (1 each when segs is nil), in
// order. A frame the device refuses is counted as a tx_error drop (each
// of its frames) and the rest are still written, as they would be one by
// one.
func (p *Port) writeRun(l *lane, out [][]byte, segs []int, run [][]byte) {
	q := p.queue(l.qi)
	var frames, bytes, coalFrames, coalWrites uint64
	in := 0 // the first frame of run that out[i] carries
	for i := 0; i < len(out); {
		k, err := q.Write(out[i:], headroom)
		for j := i; j < i+k; j++ {
			s := 1
			if segs != nil {
				s = segs[j]
			}
			for _, b := range run[in : in+s] {
				bytes += uint64(len(b) - headroom)
			}
			frames += uint64(s)
			if s > 1 {
				coalFrames += uint64(s)
				coalWrites++
			}
			in += s
		}
		i += k
		if err == nil {
			break
		}
		if i == len(out) {
			break
		}
		if errors.Is(err, os.ErrClosed) {
			// Every later write fails alike.
			p.c.drops[DropTxError].Add(uint64(len(run) - in))
			break
		}
		s := 1
		if segs != nil {
			s = segs[i]
		}
		p.c.drops[DropTxError].Add(uint64(s))
		in += s
		i++
	}
	p.c.txFrames.Add(frames)
	p.c.txBytes.Add(bytes)
	if coalWrites > 0 {
		p.c.txCoalFrames.Add(coalFrames)
		p.c.txCoalWrites.Add(coalWrites)
	}
}

// wroteTo reports whether the lane wrote to p since resetSent.
func (l *lane) wroteTo(p *Port) bool {
	for _, q := range l.sent[:l.nsent] {
		if q == p {
			return true
		}
	}
	return false
}

// resetSent forgets the ports written to.
func (l *lane) resetSent() {
	clear(l.sent[:l.nsent])
	l.nsent = 0
}
