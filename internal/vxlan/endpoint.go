package vxlan

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint is the VXLAN endpoint (VTEP) of one host: UDP sockets bound to
// the advertised address and the port that receive for every tunnel, one
// or a few sharing the port, each read by a goroutine of its own, and a
// few sending sockets, one per outer source port, shared by all tunnels.
type Endpoint struct {
	cfg      Config
	log      *slog.Logger
	overhead int // Overhead, or 70 over IPv6
	// underMTU is the MTU of the link holding Local when Listen ran, 0
	// if unknown.
	underMTU int
	sock     *sockets
	// free holds, per receiving socket, the receive buffers of its
	// goroutine that no tunnel holds frames in.
	free []chan *rxBuf

	// tunnels and members are read by the receiving goroutine and the
	// senders without a lock; they are replaced whole under mu.
	tunnels atomic.Pointer[map[uint32]*Tunnel]
	members atomic.Pointer[map[netip.Addr]*peer]

	mu sync.Mutex
	// peers holds every VTEP named to the endpoint, by address, so that
	// a VTEP is one *peer (and one set of counters) everywhere.
	peers  map[netip.Addr]*peer
	closed bool
	// paused says that reads are paused (PauseReads); it is read
	// without mu before each read. resume is closed by ResumeReads;
	// pauseAck, closed by the last of the pauseLeft receiving
	// goroutines to stop reading, tells PauseReads that all have.
	paused    atomic.Bool
	resume    chan struct{}
	pauseAck  chan struct{}
	pauseLeft int
	done      chan struct{}
	wg        sync.WaitGroup

	c counters
}

// counters are an Endpoint's Stats, kept atomically.
type counters struct {
	rxPackets, rxBytes, txPackets, txBytes       atomic.Uint64
	dropNotMember, dropUnknownVNI, dropMalformed atomic.Uint64
	dropHostOnly, txErrors                       atomic.Uint64
	// txGSO counts sends of more than one datagram (UDP_SEGMENT), rxGRO
	// reads of more than one (UDP_GRO): how much the offloads do.
	txGSO, rxGRO atomic.Uint64
}

// peer is one remote VTEP: its address, its socket address as the kernel
// takes it, and its counters.
type peer struct {
	addr netip.Addr
	sa   sockaddr
	// heard is when a packet from the peer last came, in Unix
	// nanoseconds; 0 if never.
	heard  atomic.Int64
	rx, tx atomic.Uint64
	// sums says that the peer puts a UDP checksum on every datagram it
	// sends (SetChecksummed).
	sums atomic.Bool
}

// agingTime is how long a learned MAC stays without a frame from it, as
// Linux's vxlan and bridge age theirs.
const agingTime = 300 * time.Second

// agingInterval is how often learned MACs are checked for age.
const agingInterval = 15 * time.Second

// Listen opens the endpoint's sockets in the caller's network namespace:
// the receiving ones on cfg.Local and the port, the sending ones on
// cfg.Local and ports the kernel picks.
func Listen(cfg Config) (*Endpoint, error) {
	if !cfg.Local.IsValid() || cfg.Local.IsUnspecified() || cfg.Local.IsMulticast() {
		return nil, fmt.Errorf("vxlan: local address %v: give this host's own unicast address (the tunnel socket never binds to the wildcard)", cfg.Local)
	}
	cfg.Local = cfg.Local.Unmap()
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("vxlan: port %d out of range 1-65535", cfg.Port)
	}
	if cfg.Receivers == 0 {
		cfg.Receivers = 1
	}
	if cfg.Receivers < 1 || cfg.Receivers > MaxReceivers {
		return nil, fmt.Errorf("vxlan: %d receiving sockets out of range 1-%d", cfg.Receivers, MaxReceivers)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	e := &Endpoint{cfg: cfg, log: log, overhead: Overhead, peers: map[netip.Addr]*peer{}, done: make(chan struct{})}
	if cfg.Local.Is6() {
		e.overhead = Overhead + 20
	}
	tunnels := map[uint32]*Tunnel{}
	e.tunnels.Store(&tunnels)
	members := map[netip.Addr]*peer{}
	e.members.Store(&members)
	// The link is looked up here, in the namespace the sockets are
	// opened in, not in whichever namespace a later call runs in.
	e.underMTU, _ = UnderlayMTU(cfg.Local)
	s, a, err := openSockets(cfg.Local, cfg.Port, cfg.Receivers, cfg.Inherited)
	if a.refused != nil {
		log.Warn("vxlan: receiving sockets handed over refused; bound afresh", "err", a.refused)
	}
	if a.surplus > 0 {
		log.Warn("vxlan: more receiving sockets handed over than asked for; the surplus closed, and the datagrams waiting in them lost", "handed_over", a.taken+a.surplus, "receivers", cfg.Receivers)
	}
	if a.short != nil {
		log.Warn("vxlan: fewer receiving sockets than asked for", "receivers", a.taken+a.opened, "asked", cfg.Receivers, "err", a.short)
	}
	if err != nil {
		return nil, err
	}
	e.sock = s
	e.free = make([]chan *rxBuf, len(s.rx))
	for i := range e.free {
		e.free[i] = newFreeList()
	}
	if cfg.Paused {
		e.paused.Store(true)
		e.resume = make(chan struct{})
	}
	for i := range s.rx {
		e.wg.Go(func() { e.receive(i) })
	}
	e.wg.Go(e.age)
	log.Info("vxlan endpoint listening", "local", cfg.Local, "port", cfg.Port, "receivers", len(s.rx), "underlay_mtu", e.underMTU, "source_ports", s.sourcePorts(), "handed_over", a.taken, "opened_beside", a.opened)
	return e, nil
}

// ExportReceivers returns descriptors of the endpoint's receiving
// sockets, which the caller owns, for a successor (Config.Receivers):
// datagrams wait in the sockets while neither endpoint reads them.
func (e *Endpoint) ExportReceivers() ([]int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, os.ErrClosed
	}
	return e.sock.exportReceivers()
}

// pauseWait bounds PauseReads's wait for the receiving goroutines to
// finish the reads in progress: one batch of at most rxMsgs datagrams
// each.
const pauseWait = time.Second

// PauseReads stops the endpoint reading its receiving sockets, until
// ResumeReads: once it returns, no read is in progress, and datagrams
// wait in the sockets (for a successor that reads them through
// ExportReceivers' descriptors). Sending goes on.
func (e *Endpoint) PauseReads() {
	e.mu.Lock()
	if e.closed || e.paused.Load() {
		e.mu.Unlock()
		return
	}
	ack := make(chan struct{})
	e.resume, e.pauseAck, e.pauseLeft = make(chan struct{}), ack, len(e.sock.rx)
	e.paused.Store(true)
	e.mu.Unlock()
	// Wakes the reads blocked in the poller; the goroutines then find
	// the endpoint paused.
	for _, r := range e.sock.rx {
		r.conn.SetReadDeadline(time.Unix(1, 0))
	}
	t := time.NewTimer(pauseWait)
	defer t.Stop()
	select {
	case <-ack:
	case <-e.done:
	case <-t.C:
		e.log.Warn("vxlan: a read still in progress after pausing reads", "waited", pauseWait)
	}
}

// ResumeReads lets the endpoint read its receiving sockets again.
func (e *Endpoint) ResumeReads() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.paused.Load() {
		return
	}
	for _, r := range e.sock.rx {
		r.conn.SetReadDeadline(time.Time{})
	}
	e.paused.Store(false)
	e.pauseAck, e.pauseLeft = nil, 0
	close(e.resume)
}

// waitResumed is where the receiving goroutine waits while reads are
// paused; it reports false when the endpoint closes meanwhile.
func (e *Endpoint) waitResumed() bool {
	e.mu.Lock()
	if !e.paused.Load() {
		e.mu.Unlock()
		return true
	}
	// Each goroutine comes here once per pause: it leaves only once
	// resume is closed, and then the pause is over.
	resume := e.resume
	if e.pauseAck != nil {
		if e.pauseLeft--; e.pauseLeft == 0 {
			close(e.pauseAck)
			e.pauseAck = nil
		}
	}
	e.mu.Unlock()
	select {
	case <-resume:
		return true
	case <-e.done:
		return false
	}
}

// Close closes the sockets and every tunnel: their Reads and Writes fail
// with an error wrapping os.ErrClosed.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return os.ErrClosed
	}
	e.closed = true
	close(e.done)
	tunnels := *e.tunnels.Load()
	e.mu.Unlock()
	for _, t := range tunnels {
		t.Close()
	}
	err := e.sock.close()
	e.wg.Wait()
	return err
}

// peerLocked returns the one peer of addr, made at the first need.
func (e *Endpoint) peerLocked(addr netip.Addr) *peer {
	addr = addr.Unmap()
	if p, ok := e.peers[addr]; ok {
		return p
	}
	p := &peer{addr: addr, sa: makeSockaddr(addr, e.cfg.Port)}
	e.peers[addr] = p
	return p
}

// SetMembers sets who may send to the endpoint (cluster hosts and static
// peers): packets from other addresses are dropped and counted
// (DropNotMember). The endpoint's own address may be in the list: it is
// left out.
func (e *Endpoint) SetMembers(vteps []netip.Addr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[netip.Addr]*peer, len(vteps))
	for _, a := range vteps {
		if a.IsValid() && a.Unmap() != e.cfg.Local {
			m[a.Unmap()] = e.peerLocked(a)
		}
	}
	e.members.Store(&m)
}

// SetChecksummed names the VTEPs known to put a UDP checksum on every
// datagram they send: tapswitch hosts (every cluster member), which
// always do, as UDP segmentation offload needs one. It is not for a
// Linux vxlan device, which over IPv4 sends none by default.
//
// The kernel hands a datagram with a checksum to the socket only once it
// verified it (or the datagram never left this host's memory), so the
// inner frame of such a datagram is covered end to end, and a frame from
// one of these VTEPs is handed up as known good: neither the switch's
// coalescer nor the container's stack checks its checksums again, as
// Linux's vxlan spares its inner frames the check. Both ends make use of
// it. Super-frames to these VTEPs alone are cut with the transport
// checksums left at the pseudo-header seed (segment.Splitter.Partial),
// as Linux leaves them for a device with checksum offload, which spares
// the sender a pass over the payload; and a TCP or UDP frame from one is
// handed up with the checksum left to fill (segment.Reseed), a merged
// run with it anyway, so that the seed is filled in wherever the frame
// leaves for a device that needs it; any other frame gets
// VnetFlagDataValid. A datagram
// without a checksum (0), which a checksummed peer never sends, is not
// told apart by the socket: what the endpoint relies on is the list.
// Frames from the others are handed up with no flag and checked where
// they merge. Calling it again replaces the list; addresses not members
// (SetMembers) are remembered but receive nothing.
func (e *Endpoint) SetChecksummed(vteps []netip.Addr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	on := make(map[*peer]bool, len(vteps))
	for _, a := range vteps {
		if a.IsValid() && a.Unmap() != e.cfg.Local {
			on[e.peerLocked(a)] = true
		}
	}
	for _, p := range e.peers {
		p.sums.Store(on[p])
	}
}

// Tunnel opens the tunnel of vni, the port of one network; an error if
// the VNI's tunnel is open already.
func (e *Endpoint) Tunnel(vni uint32, opt TunnelOptions) (*Tunnel, error) {
	if vni >= 1<<24 {
		return nil, fmt.Errorf("vxlan: VNI %d out of range 0-16777215", vni)
	}
	mtu := opt.MTU
	if mtu == 0 {
		if e.underMTU == 0 {
			return nil, fmt.Errorf("vxlan: VNI %d: the MTU of the link holding %v is unknown: give the tunnel's MTU", vni, e.cfg.Local)
		}
		mtu = e.OverlayMTU()
	}
	// One segment and its headers must fit in one UDP datagram.
	if maxMTU := maxDatagram - HeaderLen - ethHdrLen; mtu < 68 || mtu > maxMTU {
		return nil, fmt.Errorf("vxlan: VNI %d: overlay MTU %d out of range 68-%d", vni, mtu, maxMTU)
	}
	t := newTunnel(e, vni, mtu, tunnelQueue)
	for _, m := range opt.HostOnly {
		if len(m) == 6 {
			t.hostOnly = append(t.hostOnly, macKey(m))
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("vxlan: VNI %d: endpoint %w", vni, os.ErrClosed)
	}
	old := *e.tunnels.Load()
	if _, ok := old[vni]; ok {
		return nil, fmt.Errorf("vxlan: VNI %d is open already: close its tunnel first", vni)
	}
	next := make(map[uint32]*Tunnel, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[vni] = t
	e.tunnels.Store(&next)
	return t, nil
}

// OverlayMTU returns the overlay MTU a tunnel opened without one gets:
// the underlay MTU less Overhead (70 over IPv6); 0 if the underlay MTU is
// unknown.
func (e *Endpoint) OverlayMTU() int {
	if e.underMTU == 0 {
		return 0
	}
	return min(e.underMTU-e.overhead, maxDatagram-HeaderLen-ethHdrLen)
}

// removeTunnel takes t out of the endpoint's table, if it is there.
func (e *Endpoint) removeTunnel(t *Tunnel) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := *e.tunnels.Load()
	if old[t.vni] != t {
		return false
	}
	next := make(map[uint32]*Tunnel, len(old))
	for k, v := range old {
		if v != t {
			next[k] = v
		}
	}
	e.tunnels.Store(&next)
	return true
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	return Stats{
		RxPackets:      e.c.rxPackets.Load(),
		RxBytes:        e.c.rxBytes.Load(),
		TxPackets:      e.c.txPackets.Load(),
		TxBytes:        e.c.txBytes.Load(),
		DropNotMember:  e.c.dropNotMember.Load(),
		DropUnknownVNI: e.c.dropUnknownVNI.Load(),
		DropMalformed:  e.c.dropMalformed.Load(),
		DropHostOnly:   e.c.dropHostOnly.Load(),
		TxErrors:       e.c.txErrors.Load(),
	}
}

// Peers returns the VTEPs the endpoint knows now: members, the
// replication lists of its tunnels and the VTEPs of their MAC tables, by
// address.
func (e *Endpoint) Peers() []Peer {
	known := map[*peer]bool{}
	for _, p := range *e.members.Load() {
		known[p] = true
	}
	for _, t := range *e.tunnels.Load() {
		for _, p := range *t.vteps.Load() {
			known[p] = true
		}
		for _, r := range *t.remotes.Load() {
			known[r.peer.Load()] = true
		}
	}
	out := make([]Peer, 0, len(known))
	for p := range known {
		var heard time.Time
		if ns := p.heard.Load(); ns != 0 {
			heard = time.Unix(0, ns)
		}
		out = append(out, Peer{VTEP: p.addr, LastHeard: heard, RxPackets: p.rx.Load(), TxPackets: p.tx.Load(), Checksummed: p.sums.Load()})
	}
	slices.SortFunc(out, func(a, b Peer) int { return a.VTEP.Compare(b.VTEP) })
	return out
}

// age forgets learned MACs unseen for agingTime, until Close.
func (e *Endpoint) age() {
	tk := time.NewTicker(agingInterval)
	defer tk.Stop()
	for {
		select {
		case <-e.done:
			return
		case now := <-tk.C:
			for _, t := range *e.tunnels.Load() {
				t.expire(now)
			}
		}
	}
}

// UnderlayMTU returns the MTU of the link that holds local, in the
// caller's network namespace.
func UnderlayMTU(local netip.Addr) (int, error) {
	local = local.Unmap()
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, fmt.Errorf("vxlan: list links: %w", err)
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == local {
				return ifc.MTU, nil
			}
		}
	}
	return 0, errors.New("vxlan: no link of this network namespace holds " + local.String() + ": add the address to the underlay link, or advertise one that is")
}
