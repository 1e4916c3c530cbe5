package vswitch

import (
	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/segment"
)

// lane is what one receive loop (a worker, or a queue's own loop) keeps
// to forward with: its receive buffers and its scratch for the frames it
// rewrites for a port, all allocated once, so forwarding allocates
// nothing.
type lane struct {
	// qi is the queue number the loop serves; frames go out on the same
	// number (see send).
	qi int
	// bufs are the receive buffers, one frame each at headroom, and
	// sizes their frames' lengths after a Read.
	bufs  [][]byte
	sizes []int
	// one is a batch of one frame, for writing a frame where it lies.
	one [1][]byte

	// split cuts super-frames for ports that do not take them; scratch
	// holds the segments of one write (made at the first need), and segs
	// points into it.
	split   segment.Splitter
	scratch []byte
	segs    [][]byte

	// batch is the most frames read before they are written, and
	// coalesce whether runs of one flow are merged (Dataplane).
	batch    int
	coalesce bool
	// The batched path's state (batch.go), made by newBatchLane: arena
	// holds the frames of one batch back to back, frames points at
	// them, rd is the one-buffer batch a read fills; pend and dst are
	// the unicast frames waiting to be written and their ports, grp one
	// port's share of them; coal merges a run before its write.
	arena  []byte
	frames [][]byte
	rd     [1][]byte
	pend   [][]byte
	dst    []*Port
	// sent are the first ports the batched path wrote to since the
	// worker's last pass began, for its poller to tell a reply from
	// more of a one-way flow.
	sent  [4]*Port
	nsent int
	grp   [][]byte
	coal  segment.Coalescer
}

// scratchSize holds the segments of one write: a 64 KiB super-frame cut
// into 1500-byte frames is about 46 of them, each with its headroom, and
// a larger batch would only delay the first.
const (
	scratchSize = 256 << 10
	maxSegs     = 64
)

func newLane(qi, batch int) *lane {
	l := &lane{qi: qi, bufs: make([][]byte, batch), sizes: make([]int, batch)}
	for i := range l.bufs {
		l.bufs[i] = newFrameBuffer()
	}
	return l
}

// Caps are what the port's device takes on write.
func (p *Port) Caps() device.Caps { return p.caps }

// queue is the queue a frame from ingress queue qi goes out on: the one
// numbered alike. The kernel remembers which queue a flow was written on
// and sends that flow's replies out on the same queue, so both directions
// of a flow stay with loops of one number.
func (p *Port) queue(qi int) device.Queue {
	if len(p.txq) == 1 {
		return p.txq[0]
	}
	return p.txq[qi%len(p.txq)]
}

// send writes one frame (buf[headroom:], its header before it) to the
// port: from where it lies if the device takes it as it is, else cut into
// segments, or with its checksum completed, in the lane's scratch.
func (p *Port) send(l *lane, buf []byte) {
	switch p.howToSend(buf) {
	case sendOversize:
		p.drop(DropOversize)
		return
	case sendCut:
		p.sendSegments(l, buf)
		return
	}
	l.one[0] = buf
	if _, err := p.queue(l.qi).Write(l.one[:], headroom); err != nil {
		p.drop(DropTxError)
		return
	}
	p.c.txFrames.Add(1)
	p.c.txBytes.Add(uint64(len(buf) - headroom))
}

// How a frame goes out to a port (howToSend).
const (
	sendAsIs     = iota // written as it is, header and all
	sendCut             // cut into segments, or its checksum filled in (sendSegments)
	sendOversize        // over the port's MTU: dropped
)

// howToSend says how the frame in buf (buf[headroom:], its header before
// it) goes out to the port: as it is if the device takes it so.
func (p *Port) howToSend(buf []byte) int {
	if len(buf)-headroom > p.maxTx && p.tooBig(buf[headroom-HdrLen:]) {
		return sendOversize
	}
	flags, gso := buf[headroom-HdrLen], buf[headroom-HdrLen+1]
	if (flags != 0 || gso != 0) && !p.caps.Takes(flags, gso) {
		return sendCut
	}
	return sendAsIs
}

// sendSegments writes the frame in buf as frames the port takes: the
// segments of a super-frame, at most the device's MTU each, or the frame
// with its checksum filled in. Segments are written in batches as the
// scratch fills.
func (p *Port) sendSegments(l *lane, buf []byte) {
	h, err := device.ParseVnetHdr(buf[headroom-HdrLen:])
	if err == nil {
		err = l.split.Reset(h, buf[headroom:], p.caps.MTU)
	}
	if err != nil {
		p.drop(DropSegment)
		return
	}
	if l.scratch == nil {
		l.scratch = make([]byte, scratchSize)
		l.segs = make([][]byte, 0, maxSegs)
	}
	q := p.queue(l.qi)
	segs, pos := l.segs[:0], 0
	for {
		need := headroom + l.split.MaxSegment()
		if pos+need > len(l.scratch) || len(segs) == cap(segs) {
			if !p.writeSegments(q, segs) {
				return
			}
			segs, pos = segs[:0], 0
		}
		b := l.scratch[pos : pos+need]
		n, err := l.split.Next(b[headroom:])
		if err != nil {
			p.drop(DropSegment)
			return
		}
		if n == 0 {
			break
		}
		clear(b[headroom-HdrLen : headroom])
		segs = append(segs, b[:headroom+n])
		// The next segment starts on a cache line of its own.
		pos += (headroom + n + 63) &^ 63
	}
	p.writeSegments(q, segs)
}

// writeSegments writes a batch of segments and counts them; it reports
// whether every one was written.
func (p *Port) writeSegments(q device.Queue, segs [][]byte) bool {
	if len(segs) == 0 {
		return true
	}
	n, err := q.Write(segs, headroom)
	var bytes int
	for _, s := range segs[:n] {
		bytes += len(s) - headroom
	}
	p.c.txFrames.Add(uint64(n))
	p.c.txBytes.Add(uint64(bytes))
	if err != nil {
		p.drop(DropTxError)
		return false
	}
	return true
}
