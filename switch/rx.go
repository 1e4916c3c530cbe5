package vswitch

// The path a frame takes, all on one thread: the worker of its queue
// number (worker_linux.go), which waits on that queue of every port with
// epoll, or, for devices that cannot be polled, the queue's own loop:
//
//	queue.Read(buf) ──▶ [vnet hdr | dst | src | ...]
//	                        │
//	                        ├─ runt, cut short, bad vnet header, bad source ──▶ drop
//	                        ├─ port security (in.guard, one atomic load)  ──▶ drop if spoofed
//	                        ├─ fdb.Learn(src, in)           refresh is one atomic store, or none;
//	                        │                               a new MAC over a limit ──▶ drop
//	                        ├─ dst unicast and learned ──▶ out.dev.Write(buf)   (whole buffer, header included)
//	                        └─ broadcast, multicast, unknown ──▶ every other port's dev.Write(buf)
//
// The buffer is the worker's own, allocated once; nothing on this path
// allocates, locks, or copies the frame in userspace. A frame read is
// counted either in rx or, dropped before that, under one drop reason;
// only a hairpin drop counts in both.

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"unsafe"

	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/device"
)

// HdrLen is the virtio net header in front of every frame.
const HdrLen = device.VnetHdrLen

const ethHdrLen = 14

// bufSize holds the largest frame a TAP hands over: a 64 KiB GSO
// super-frame (the TAP's gso_max_size), its Ethernet header and the
// virtio header, with room to spare. A read that fills the buffer whole
// may have been cut short and is dropped rather than forwarded.
const bufSize = HdrLen + 65536 + 1024

// frameOffset places every frame read so that the payload of an IPv4 TCP
// segment with timestamps, the bulk of what a TCP stream moves, starts on
// a 64-byte boundary: the virtio header (10 bytes), Ethernet (14), IPv4
// (20) and TCP with timestamps (32) put it 76 bytes in, and 52 + 76 is
// 128. The kernel copies a frame into this buffer and out of it again; the
// copy out, from an aligned source, measured a quarter cheaper in a perf
// profile of the daemon (_copy_from_iter from 15.7% to 11.5% of its
// samples at the same throughput). Other frames are no worse off than at
// any other offset.
const frameOffset = 52

// newFrameBuffer returns a buffer of bufSize bytes that starts
// frameOffset bytes past a 64-byte boundary.
func newFrameBuffer() []byte {
	b := make([]byte, bufSize+frameOffset+64)
	skip := (frameOffset - int(uintptr(unsafe.Pointer(&b[0]))%64) + 64) % 64
	return b[skip : skip+bufSize : skip+bufSize]
}

// rxLoop reads frames from queue qi of the port until its device is
// closed; it serves devices whose queues cannot be polled.
func (p *Port) rxLoop(qi int) {
	r := p.rx[qi]
	buf := newFrameBuffer()
	for {
		n, err := r.q.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) {
				return
			}
			p.drop(DropRxError)
			p.net.sw.portFailed(p, err)
			return
		}
		p.net.forward(p, qi, buf[:n])
	}
}

// forward sends one buffer read from queue qi of port in to where it is
// going.
func (n *Network) forward(in *Port, qi int, b []byte) {
	if len(b) < HdrLen+ethHdrLen {
		in.drop(DropRunt)
		return
	}
	if len(b) == bufSize {
		in.drop(DropOversize)
		return
	}
	// Flags, GSO type and header length all zero, the header of every
	// frame the kernel neither segments nor leaves a checksum to, is
	// valid whatever the rest; one load tells.
	if binary.LittleEndian.Uint32(b) != 0 && !validVnetHdr(b) {
		in.drop(DropBadVnetHdr)
		return
	}
	frame := b[HdrLen:]
	// A multicast source (group bit set) or the zero address is never a
	// real station; learning it would poison the table.
	src := fdb.Key(frame[6:12])
	if frame[6]&1 != 0 || src == 0 {
		in.drop(DropBadSource)
		return
	}
	if id := in.guard.Load(); id != nil && !id.allows(src, frame) {
		if why := id.check(src, frame); why != noDrop {
			in.drop(why)
			return
		}
	}
	// A source that cannot be learned is dropped, not flooded: a flood of
	// made-up source MACs would otherwise reach every port.
	switch n.fdb.Learn(src, in) {
	case fdb.LimitReached:
		in.drop(DropFDBFull)
		return
	case fdb.PortLimitReached:
		in.drop(DropMACLimit)
		return
	}
	r := in.rx[qi]
	r.rxFrames.Store(r.rxFrames.Load() + 1)
	r.rxBytes.Store(r.rxBytes.Load() + uint64(len(frame)))

	if frame[0]&1 == 0 {
		if out := n.fdb.Lookup(fdb.Key(frame[0:6])); out != nil {
			if out == in {
				in.drop(DropHairpin)
				return
			}
			out.send(qi, b)
			return
		}
	}
	n.flood(in, qi, b)
}
