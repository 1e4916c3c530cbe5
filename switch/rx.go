package vswitch

// The path a frame takes, all on one thread: the worker of its queue
// number (worker_linux.go), which waits on that queue of every port with
// epoll, or, for devices that cannot be polled, the queue's own loop:
//
//	queue.Read(bufs) ──▶ a batch of [headroom | vnet hdr | dst | src | ...], one per buffer
//	                        │
//	                        ├─ runt, cut short, bad vnet header, bad source ──▶ drop
//	                        ├─ to 01:80:c2:00:00:0X, over the port's MTU (mtu.go) ──▶ drop
//	                        ├─ port security (in.guard, one atomic load)  ──▶ drop if spoofed
//	                        ├─ fdb.Learn(src, in)           refresh is one atomic store, or none;
//	                        │                               a new MAC over a limit ──▶ drop
//	                        ├─ observers, if the network has any ──▶ a copy each, or a loss counted
//	                        ├─ dst unicast and learned ──▶ out.send   (tx.go)
//	                        └─ broadcast, multicast, unknown ──▶ storm control (storm.go) ──▶ every other port's send
//
//	send: over the port's MTU ──▶ drop
//	      the device takes the frame as it is (device.Caps) ──▶ Write, header and all, from the buffer
//	      else (a super-frame or a partial checksum it does not take) ──▶ segments in the lane's scratch ──▶ Write
//
// The buffers are the loop's own, allocated once; nothing on this path
// allocates, locks, or copies the frame in userspace, unless a port needs
// it segmented. A frame read is counted either in rx or, dropped before
// that, under one drop reason; only a hairpin drop counts in both.

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"unsafe"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/fdb"
)

// HdrLen is the virtio net header in front of every frame.
const HdrLen = device.VnetHdrLen

// headroom is where a frame starts in every buffer: its header is in the
// HdrLen bytes before, and a device may use the rest (device.Headroom).
const headroom = device.Headroom

const ethHdrLen = 14

// frameRoom holds the largest frame a TAP hands over: a 64 KiB GSO
// super-frame (the TAP's gso_max_size) and its Ethernet header, with room
// to spare. A frame that fills it whole may have been cut short and is
// dropped rather than forwarded.
const frameRoom = 65536 + 1024

// bufSize is a receive buffer: headroom and frame room.
const bufSize = headroom + frameRoom

// frameAlign places every frame read so that the payload of an IPv4 TCP
// segment with timestamps, the bulk of what a TCP stream moves, starts on
// a 64-byte boundary: Ethernet (14), IPv4 (20) and TCP with timestamps
// (32) put it 66 bytes in, and 62 + 66 is 128. The kernel copies a frame
// into this buffer and out of it again; the copy out, from an aligned
// source, measured a quarter cheaper in a perf profile of the daemon
// (_copy_from_iter from 15.7% to 11.5% of its samples at the same
// throughput). Other frames are no worse off than at any other offset.
const frameAlign = 62

// newFrameBuffer returns a buffer of bufSize bytes whose frame, at
// headroom, starts frameAlign bytes past a 64-byte boundary.
func newFrameBuffer() []byte { return alignedBuffer(bufSize) }

// alignedBuffer returns size bytes whose frame, at headroom, starts
// frameAlign bytes past a 64-byte boundary.
func alignedBuffer(size int) []byte {
	b := make([]byte, size+64)
	skip := (frameAlign - (int(uintptr(unsafe.Pointer(&b[0])))+headroom)%64 + 128) % 64
	return b[skip : skip+size : skip+size]
}

// rxLoop reads frames from queue qi of the port until its device is
// closed; it serves devices whose queues cannot be polled.
func (p *Port) rxLoop(qi int) {
	r := p.rx[qi]
	l := newLane(qi, r.q.BatchSize())
	dp := p.net.sw.cfg.Dataplane
	if dp.batch() > 1 {
		// A queue's own Read is its batch.
		l.group(len(l.bufs), !dp.NoCoalesce)
	}
	for {
		n, err := r.q.Read(l.bufs, l.sizes, headroom)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) {
				return
			}
			p.net.sw.portFailed(p, err)
			return
		}
		if l.batch > 1 {
			frames := l.frames[:0]
			for i := range n {
				frames = append(frames, l.bufs[i][:headroom+l.sizes[i]])
			}
			p.net.forwardBatch(p, l, frames)
			continue
		}
		for i := range n {
			p.net.forward(p, l, l.bufs[i][:headroom+l.sizes[i]])
		}
	}
}

// forward sends one frame read from port in to where it is going: the
// frame is buf[headroom:], its virtio net header the HdrLen bytes before.
func (n *Network) forward(in *Port, l *lane, buf []byte) {
	out, why := n.route(in, l.qi, buf)
	// Observers see the frame before it goes out, so that a capture
	// never shows a frame after one its delivery caused (a reply).
	if obs := n.observers.Load(); obs != nil {
		observe(*obs, in, out, why, buf)
	}
	switch {
	case why != noDrop:
		in.drop(why)
	case out != nil:
		out.send(l, buf)
	default:
		n.flood(in, l, buf)
	}
}

// route checks, learns and looks up a frame from port in: it returns the
// port the frame is for, nil to flood it, or why it is dropped.
func (n *Network) route(in *Port, qi int, buf []byte) (*Port, DropReason) {
	if len(buf) < headroom+ethHdrLen {
		return nil, DropRunt
	}
	if len(buf) == bufSize {
		return nil, DropOversize
	}
	b := buf[headroom-HdrLen:]
	// Flags, GSO type and header length all zero, the header of every
	// frame the kernel neither segments nor leaves a checksum to, is
	// valid whatever the rest; one load tells.
	if binary.LittleEndian.Uint32(b) != 0 && !validVnetHdr(b) {
		return nil, DropBadVnetHdr
	}
	frame := buf[headroom:]
	// A multicast source (group bit set) or the zero address is never a
	// real station; learning it would poison the table.
	src := fdb.Key(frame[6:12])
	if frame[6]&1 != 0 || src == 0 {
		return nil, DropBadSource
	}
	dst := fdb.Key(frame[0:6])
	if frame[0]&1 != 0 && dst&^0xf == linkLocalGroups {
		return nil, DropLinkLocal
	}
	if len(frame) > in.maxFrame && in.tooBig(b) {
		return nil, DropOversize
	}
	if id := in.guard.Load(); id != nil && !id.allows(src, frame) {
		if why := id.check(src, frame); why != noDrop {
			return nil, why
		}
	}
	// A source that cannot be learned is dropped, not flooded: a flood of
	// made-up source MACs would otherwise reach every port.
	switch n.fdb.Learn(src, in) {
	case fdb.LimitReached:
		return nil, DropFDBFull
	case fdb.PortLimitReached:
		return nil, DropMACLimit
	}
	var out *Port
	class := stormUnknown
	switch {
	case frame[0]&1 == 0:
		out = n.fdb.Lookup(dst)
	case dst == broadcast:
		class = stormBroadcast
	default:
		class = stormMulticast
	}
	if out == nil && !in.storm.b[class].allow() {
		return nil, DropStorm
	}
	r := in.rx[qi]
	r.rxFrames.Store(r.rxFrames.Load() + 1)
	r.rxBytes.Store(r.rxBytes.Load() + uint64(len(frame)))
	if out == in {
		return nil, DropHairpin
	}
	return out, noDrop
}

// linkLocalGroups is 01:80:c2:00:00:00, the first of the sixteen IEEE
// 802.1D reserved link-local group addresses (STP, pause, LACP, 802.1X,
// LLDP, ...), which a bridge never forwards: what is sent to them is for
// the bridge itself, and a pause frame forwarded would stop its
// receivers' traffic. broadcast is ff:ff:ff:ff:ff:ff.
const (
	linkLocalGroups = 0x0180c2000000
	broadcast       = 0xffffffffffff
)
