package vswitch

import (
	"net"
	"net/netip"
	"sync/atomic"
)

// Queue is one queue of a device. Each buffer starts with a virtio net
// header of HdrLen bytes (see package tap). Read is called from the
// queue's own loop only; Write from any port's loops, concurrently.
type Queue interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
}

// PollQueue is a Queue the switch can wait on with epoll, together with
// the same queue number of every other port (see worker_linux.go). Fd is
// for waiting only; TryRead returns 0 at once when nothing is queued.
type PollQueue interface {
	Queue
	Fd() int
	TryRead(b []byte) (int, error)
}

// Device is what a port reads frames from and writes frames to: one or
// more queues, each read by a loop of its own. Close must make blocked
// Reads return.
type Device interface {
	Queues() []Queue
	Close() error
}

// PortInfo describes where a port lives. It is fixed at attach.
type PortInfo struct {
	// Netns is the namespace as the user gave it (name, pid:N or path).
	Netns string
	// NetnsPath is the resolved namespace file.
	NetnsPath string
	Ifname    string
	MAC       net.HardwareAddr
	IPs       []netip.Prefix
	MTU       int
}

// DropReason says why a frame was not forwarded.
type DropReason int

// Drop reasons, counted per port.
const (
	// DropRunt: shorter than a virtio header and an Ethernet header.
	DropRunt DropReason = iota
	// DropOversize: filled the whole receive buffer, so it may be cut.
	DropOversize
	// DropBadSource: multicast or all-zero source MAC.
	DropBadSource
	// DropHairpin: the destination was learned on the ingress port.
	DropHairpin
	// DropTxError: writing to this port failed.
	DropTxError
	// DropRxError: reading from this port failed.
	DropRxError
	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropRunt:      "runt",
	DropOversize:  "oversize",
	DropBadSource: "bad_source",
	DropHairpin:   "hairpin",
	DropTxError:   "tx_error",
	DropRxError:   "rx_error",
}

func (r DropReason) String() string {
	if r >= 0 && r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Counters are a snapshot of a port's traffic.
type Counters struct {
	RxFrames, RxBytes uint64
	TxFrames, TxBytes uint64
	Drops             map[string]uint64
}

// counters are split by writer so that no two loops share a cache line
// needlessly: rx counters live in each queue's rxq, written by that
// queue's loop only; tx and drops are written by every loop that forwards
// to the port.
type counters struct {
	drops             [numDropReasons]atomic.Uint64
	_                 [64]byte
	txFrames, txBytes atomic.Uint64
	_                 [64]byte
}

// rxq is one receive queue of a port and its loop's counters, which only
// that loop writes (a plain load and store, no locked instruction).
type rxq struct {
	q                 Queue
	rxFrames, rxBytes atomic.Uint64
	_                 [64]byte
}

// Port is one device attached to a network.
type Port struct {
	id   uint32
	name string
	info PortInfo
	net  *Network
	dev  Device
	// txq are the device's queues, written to; rx the same queues with
	// their receive counters, one loop each.
	txq []Queue
	rx  []*rxq
	// slots are the port's queues as the workers serve them, when the
	// device's queues can be polled; otherwise each queue has a loop.
	slots []*slot

	c counters

	// done is closed when every receive loop has returned.
	done chan struct{}
}

// ID is the port's number, unique for the life of the switch.
func (p *Port) ID() uint32 { return p.id }

// Name is the port's name, unique in the switch.
func (p *Port) Name() string { return p.name }

// Info says where the port lives.
func (p *Port) Info() PortInfo { return p.info }

// Network is the network the port belongs to.
func (p *Port) Network() *Network { return p.net }

// Counters returns a snapshot of the port's counters.
func (p *Port) Counters() Counters {
	c := Counters{
		TxFrames: p.c.txFrames.Load(),
		TxBytes:  p.c.txBytes.Load(),
	}
	for _, r := range p.rx {
		c.RxFrames += r.rxFrames.Load()
		c.RxBytes += r.rxBytes.Load()
	}
	for r := DropReason(0); r < numDropReasons; r++ {
		if n := p.c.drops[r].Load(); n > 0 {
			if c.Drops == nil {
				c.Drops = make(map[string]uint64)
			}
			c.Drops[r.String()] = n
		}
	}
	return c
}

func (p *Port) drop(r DropReason) { p.c.drops[r].Add(1) }

// send writes one buffer (virtio header and frame) to the port, on the
// queue numbered like the ingress queue. The kernel remembers which queue
// a flow was written on and sends that flow's replies out on the same
// queue, so both directions of a flow stay with loops of one number.
func (p *Port) send(qi int, b []byte) {
	q := p.txq[0]
	if len(p.txq) > 1 {
		q = p.txq[qi%len(p.txq)]
	}
	if _, err := q.Write(b); err != nil {
		p.drop(DropTxError)
		return
	}
	p.c.txFrames.Add(1)
	p.c.txBytes.Add(uint64(len(b) - HdrLen))
}
