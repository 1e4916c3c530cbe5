package vswitch

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/fdb"
)

// DefaultPortMACLimit is how many MACs a network learns behind one port
// unless PortInfo.MACLimit says otherwise. A port with security on only
// ever sends from its own MAC; the limit is for ports with security off,
// such as a namespace holding a bridge of its own, and keeps any one of
// them to an eighth of a default-sized table (fdb.DefaultLimit).
const DefaultPortMACLimit = 1024

// PortInfo describes a port: where it lives, fixed at attach, and what it
// may send as, which SetAddresses, SetSecurity and SetMACLimit change
// later (Port.Info reports the current values).
type PortInfo struct {
	// Netns is the namespace as the user gave it (name, pid:N or path).
	Netns string
	// NetnsPath is the resolved namespace file.
	NetnsPath string
	Ifname    string
	// MAC is the port's address. With port security on it is the only
	// source MAC the port may send from, and AddPort refuses a MAC that
	// is not a unicast Ethernet address.
	MAC net.HardwareAddr
	// IPs are the port's addresses; with port security on, the only
	// source addresses it may send from (see security.go for the rules).
	IPs []netip.Prefix
	// MTU is the largest IP packet the port sends and receives: a frame
	// from it or to it that carries a larger one, or a super-frame whose
	// segments would, is dropped (oversize). 0 means no limit.
	MTU int
	// TakesAnySize exempts frames to the port from its MTU: for a
	// gateway, whose host stack takes a frame of any size and routes
	// it on by its own MTUs, as a Linux bridge delivers to its own
	// interface. Frames from the port are still held to it.
	TakesAnySize bool
	// NoSecurity turns port security off, letting the port send from any
	// source MAC and address: for a port that forwards others' traffic,
	// such as a router or a gateway that routes between the network and
	// the outside. The zero value leaves security on.
	NoSecurity bool
	// MACLimit is the most MACs the network learns behind the port; a
	// frame from one more source MAC is dropped (mac_limit). 0 means
	// DefaultPortMACLimit; less than 0 means only the network's table
	// limit applies.
	MACLimit int
	// Storm bounds the broadcast, multicast and unknown-unicast frames
	// the port may send; the zero value is DefaultStormRate for each.
	Storm StormLimits
}

// DropReason says why a frame was not forwarded.
type DropReason int

// Drop reasons, counted per port.
const (
	// DropRunt: shorter than a virtio header and an Ethernet header.
	DropRunt DropReason = iota
	// DropOversize: filled the whole receive buffer, so it may be cut;
	// or larger than the MTU of the port that sent it (counted on that
	// port) or of a port it was for (counted on that one). See mtu.go.
	DropOversize
	// DropBadSource: multicast or all-zero source MAC.
	DropBadSource
	// DropHairpin: the destination was learned on the ingress port.
	DropHairpin
	// DropTxError: writing to this port failed.
	DropTxError
	// DropRxError: reading from this port failed.
	DropRxError
	// DropBadVnetHdr: the virtio net header does not fit the frame or
	// names an unknown GSO type (see validVnetHdr).
	DropBadVnetHdr
	// DropSrcMAC: port security; the source MAC is not the port's.
	DropSrcMAC
	// DropARPSpoof: port security; ARP sender not the port's MAC or IPv4.
	DropARPSpoof
	// DropIPSpoof: port security; IPv4 or IPv6 source not the port's.
	DropIPSpoof
	// DropNDSpoof: port security; a Neighbor Discovery message claims an
	// address or a link-layer address that is not the port's.
	DropNDSpoof
	// DropRAGuard: port security; an ICMPv6 Router Advertisement.
	DropRAGuard
	// DropMalformed: port security; an ARP, IPv4, IPv6, Neighbor Discovery
	// or VLAN header too short or invalid to check.
	DropMalformed
	// DropMACLimit: a new source MAC from a port at its MACLimit.
	DropMACLimit
	// DropFDBFull: a new source MAC while the network's table is full.
	DropFDBFull
	// DropSegment: a super-frame or a frame with a partial checksum
	// that this port does not take could not be segmented or completed
	// for it (device.Caps); counted on the port it was for.
	DropSegment
	// DropEtherType: port security; an Ethertype it does not let
	// through (see security.go).
	DropEtherType
	// DropLinkLocal: sent to one of the IEEE 802.1D reserved link-local
	// group addresses, 01:80:c2:00:00:00 to 0f (STP, pause, LACP,
	// 802.1X, LLDP, ...), which a bridge never forwards.
	DropLinkLocal
	// DropStorm: a broadcast, multicast or unknown-unicast frame over
	// the port's storm control rate (see storm.go).
	DropStorm
	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropRunt:       "runt",
	DropOversize:   "oversize",
	DropBadSource:  "bad_source",
	DropHairpin:    "hairpin",
	DropTxError:    "tx_error",
	DropRxError:    "rx_error",
	DropBadVnetHdr: "bad_vnet_hdr",
	DropSrcMAC:     "src_mac",
	DropARPSpoof:   "arp_spoof",
	DropIPSpoof:    "ip_spoof",
	DropNDSpoof:    "nd_spoof",
	DropRAGuard:    "ra_guard",
	DropMalformed:  "malformed",
	DropMACLimit:   "mac_limit",
	DropFDBFull:    "fdb_full",
	DropSegment:    "segment",
	DropEtherType:  "ethertype",
	DropLinkLocal:  "link_local",
	DropStorm:      "storm",
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
	// TxCoalescedFrames are the frames (counted in TxFrames) that left
	// inside a super-frame the switch made by coalescing, and
	// TxCoalescedWrites those super-frames.
	TxCoalescedFrames, TxCoalescedWrites uint64
	Drops                                map[string]uint64
}

// counters are split by writer so that no two loops share a cache line
// needlessly: rx counters live in each queue's rxq, written by that
// queue's loop only; tx and drops are written by every loop that forwards
// to the port.
type counters struct {
	drops             [numDropReasons]atomic.Uint64
	_                 [64]byte
	txFrames, txBytes atomic.Uint64
	// txCoalFrames and txCoalWrites are Counters' TxCoalescedFrames and
	// TxCoalescedWrites.
	txCoalFrames, txCoalWrites atomic.Uint64
	_                          [64]byte
}

// rxq is one receive queue of a port and its loop's counters, which only
// that loop writes (a plain load and store, no locked instruction).
type rxq struct {
	q                 device.Queue
	rxFrames, rxBytes atomic.Uint64
	_                 [64]byte
}

// Port is one device attached to a network.
type Port struct {
	// The fields every frame reads, from the port or to it, come first,
	// in one 64-byte line, so sending to a port costs that line and its
	// tx counters' only.
	net *Network
	// txq are the device's queues, written to; rx the same queues with
	// their receive counters, one loop each.
	txq []device.Queue
	rx  []*rxq
	// caps are what the device takes on write; a frame it does not take
	// is segmented or its checksum completed for it (tx.go).
	caps device.Caps
	// guard is what the port may send as, loaded once per frame by the
	// forwarding path; nil while port security is off.
	guard atomic.Pointer[identity]
	// maxFrame is the longest frame the port sends without a look at
	// its headers, maxTx the longest it is sent: its MTU and an Ethernet
	// header (math.MaxInt without an MTU, or for maxTx with
	// TakesAnySize); mtu is the MTU, for a longer one (mtu.go). All are
	// fixed at attach.
	maxFrame, maxTx, mtu int

	id uint32
	// name is replaced whole by RenamePort (under the switch's mu).
	name atomic.Pointer[string]
	dev  device.Device
	// slots are the port's queues as the workers serve them, when the
	// device's queues can be polled; otherwise each queue has a loop.
	slots []*slot

	c counters

	// dlog is the ager's record of the port's logged drops.
	dlog dropLog

	// storm is the port's storm control, written by every loop that
	// floods a frame from it.
	storm storm

	// macs counts and bounds the port's entries in its network's table;
	// written only when the port gains or loses a MAC.
	macs fdb.Quota

	// mu serialises changes to info and ident; the forwarding path never
	// takes it.
	mu sync.Mutex
	// info is the port's description, its MAC, IPs, NoSecurity and
	// MACLimit kept current by the setters.
	info PortInfo
	// ident is the port's identity, published in guard while security
	// is on.
	ident *identity
	// stormNow are the storm control rates in force (StormLimits).
	stormNow StormLimits

	// failed is set by the first loop that finds the device failed for
	// good: the others, and a worker that polls the failed queue again
	// before the port is taken out, neither count nor report it again.
	failed atomic.Bool

	// done is closed when every receive loop has returned.
	done chan struct{}
}

// ID is the port's number, unique for the life of the switch.
func (p *Port) ID() uint32 { return p.id }

// Name is the port's name, unique in the switch.
func (p *Port) Name() string { return *p.name.Load() }

// Info says where the port lives and what it may send as.
func (p *Port) Info() PortInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	info := p.info
	info.MAC = bytes.Clone(info.MAC)
	info.IPs = slices.Clone(info.IPs)
	return info
}

// Security reports whether port security is on.
func (p *Port) Security() bool { return p.guard.Load() != nil }

// SetSecurity turns port security on or off; the next frame the port
// sends is checked, or not, accordingly. A port without a MAC (attached
// with NoSecurity and no PortInfo.MAC) sends nothing with security on
// until SetAddresses gives it one.
func (p *Port) SetSecurity(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.info.NoSecurity = !on
	p.publishLocked()
}

// SetAddresses replaces the port's MAC and IP addresses, the identity
// port security lets it send as, as when the daemon adds an address to
// the port's interface. The next frame the port sends is checked against
// them. mac must be a unicast Ethernet address (else ErrBadMAC) and every
// prefix a valid unicast address (else ErrBadAddress); on error nothing
// changes.
func (p *Port) SetAddresses(mac net.HardwareAddr, ips []netip.Prefix) error {
	if !isUnicastMAC(mac) {
		return fmt.Errorf("port %q: MAC %q: %w", p.Name(), mac, ErrBadMAC)
	}
	id, err := newIdentity(mac, ips)
	if err != nil {
		return fmt.Errorf("port %q: %w", p.Name(), err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.info.MAC = bytes.Clone(mac)
	p.info.IPs = slices.Clone(ips)
	p.ident = id
	p.publishLocked()
	return nil
}

// publishLocked makes the forwarding path see p.ident, or no identity at
// all when security is off.
func (p *Port) publishLocked() {
	if p.info.NoSecurity {
		p.guard.Store(nil)
		return
	}
	p.guard.Store(p.ident)
}

// MACs returns how many MACs the network has learned behind the port.
func (p *Port) MACs() int { return p.macs.Len() }

// MACLimit returns the most MACs the network learns behind the port.
func (p *Port) MACLimit() int { return p.macs.Limit() }

// SetMACLimit sets the most MACs the network learns behind the port, with
// the meaning of PortInfo.MACLimit: 0 for DefaultPortMACLimit, less than
// 0 for the network's table limit. Lowering it forgets no MAC; the port
// learns no new one until it is back under the limit.
func (p *Port) SetMACLimit(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.info.MACLimit = n
	switch {
	case n == 0:
		n = DefaultPortMACLimit
	case n < 0:
		n = p.net.fdb.Limit()
	}
	p.macs.SetLimit(n)
}

// quota is the port's entry count for its network's table.
func (p *Port) quota() *fdb.Quota { return &p.macs }

// Network is the network the port belongs to.
func (p *Port) Network() *Network { return p.net }

// Counters returns a snapshot of the port's counters.
func (p *Port) Counters() Counters {
	c := Counters{
		TxFrames:          p.c.txFrames.Load(),
		TxBytes:           p.c.txBytes.Load(),
		TxCoalescedFrames: p.c.txCoalFrames.Load(),
		TxCoalescedWrites: p.c.txCoalWrites.Load(),
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
