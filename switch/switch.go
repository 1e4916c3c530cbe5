package vswitch

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/fdb"
)

// Errors.
var (
	ErrNoNetwork     = errors.New("no such network")
	ErrNetworkExists = errors.New("network already exists")
	ErrNetworkInUse  = errors.New("network still has ports")
	ErrNoPort        = errors.New("no such port")
	ErrPortExists    = errors.New("port already exists")
	ErrClosed        = errors.New("switch is closed")
	// ErrBadMAC: a port's MAC is not a unicast Ethernet address, which
	// port security needs to know what the port may send as.
	ErrBadMAC = errors.New("not a unicast Ethernet address")
	// ErrBadAddress: a port's IP prefix is not valid, or its address is
	// unspecified or multicast, which no port can be.
	ErrBadAddress = errors.New("not a unicast IP address")
)

// Config tunes a Switch.
type Config struct {
	// FDB configures every network's forwarding table.
	FDB fdb.Config
	// Logger receives events; nil means slog.Default().
	Logger *slog.Logger
	// PortFailed, if set, is called (on its own goroutine) when a port's
	// device fails for good, for example because its interface was
	// deleted from outside. The port is already detached.
	PortFailed func(p *Port, err error)
	// Dataplane tunes batching, coalescing and polling (dataplane.go).
	Dataplane Dataplane
}

// Switch is a set of isolated networks.
type Switch struct {
	cfg Config
	log *slog.Logger

	// mu guards everything below; the forwarding path never takes it.
	mu       sync.Mutex
	networks map[string]*Network
	ports    map[string]*Port
	nextID   uint32
	closed   bool

	// workers[i] serves queue i of every pollable port; made on demand.
	workers []*worker
	// spinners counts the workers busy polling now (poll_linux.go).
	spinners atomic.Int32

	stopAger chan struct{}
	agerDone chan struct{}
	// dlogMu serialises logDrops, which the ager calls (and tests).
	dlogMu sync.Mutex
}

// Network is one isolated Ethernet segment.
type Network struct {
	// name is replaced whole by RenameNetwork (under sw.mu).
	name atomic.Pointer[string]
	sw   *Switch
	fdb  *fdb.Table[Port]
	// ports is replaced whole on every attach and detach (under sw.mu).
	ports atomic.Pointer[[]*Port]
	// observers is replaced whole as observers come and go (under
	// sw.mu); nil when there are none, which is all the forwarding
	// path looks at then.
	observers atomic.Pointer[[]*Observer]
}

// New returns a switch with no networks. Close stops it.
func New(cfg Config) *Switch {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Switch{
		cfg:      cfg,
		log:      cfg.Logger,
		networks: make(map[string]*Network),
		ports:    make(map[string]*Port),
		stopAger: make(chan struct{}),
		agerDone: make(chan struct{}),
	}
	go s.ager()
	return s
}

// agerInterval is how often the tables' coarse clocks advance and expired
// entries go. One second is the resolution ageing is reported in.
const agerInterval = time.Second

func (s *Switch) ager() {
	defer close(s.agerDone)
	t := time.NewTicker(agerInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopAger:
			return
		case now := <-t.C:
			for _, n := range s.Networks() {
				if k := n.fdb.Expire(now); k > 0 {
					s.log.Debug("fdb entries aged out", "network", n.Name(), "count", k)
				}
			}
			s.logDrops(now)
		}
	}
}

// CreateNetwork adds an empty network.
func (s *Switch) CreateNetwork(name string) (*Network, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, ok := s.networks[name]; ok {
		return nil, fmt.Errorf("network %q: %w", name, ErrNetworkExists)
	}
	n := &Network{sw: s, fdb: fdb.NewWithQuota(s.cfg.FDB, (*Port).quota)}
	n.name.Store(&name)
	n.fdb.Tick(time.Now())
	n.ports.Store(&[]*Port{})
	s.networks[name] = n
	return n, nil
}

// RemoveNetwork deletes an empty network and its forwarding table. A
// network that still has ports is refused: removing it would leave their
// loops forwarding into a network nobody can reach any more.
func (s *Switch) RemoveNetwork(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.networks[name]
	if !ok {
		return fmt.Errorf("network %q: %w", name, ErrNoNetwork)
	}
	if k := len(*n.ports.Load()); k > 0 {
		return fmt.Errorf("network %q: %w (%d)", name, ErrNetworkInUse, k)
	}
	delete(s.networks, name)
	return nil
}

// Network returns the named network.
func (s *Switch) Network(name string) (*Network, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.networks[name]
	if !ok {
		return nil, fmt.Errorf("network %q: %w", name, ErrNoNetwork)
	}
	return n, nil
}

// Networks lists the networks by name.
func (s *Switch) Networks() []*Network {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Network, 0, len(s.networks))
	for _, n := range s.networks {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *Network) int { return cmp.Compare(a.Name(), b.Name()) })
	return out
}

// AddPort attaches dev to the named network under name and starts
// forwarding its frames: through the workers when every queue of dev is
// a device.PollQueue, else with a loop per queue. Frames go to dev as its
// Caps allow. The switch owns dev from then on, and closes it when the
// port is removed, even if AddPort fails.
//
// Port security is on unless info.NoSecurity is set, and then info.MAC
// must be a unicast address (else ErrBadMAC). Prefixes in info.IPs that
// are invalid or hold an unspecified or multicast address are refused
// (ErrBadAddress).
func (s *Switch) AddPort(network, name string, dev device.Device, info PortInfo) (*Port, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(err error) (*Port, error) {
		dev.Close()
		return nil, err
	}
	if s.closed {
		return fail(ErrClosed)
	}
	n, ok := s.networks[network]
	if !ok {
		return fail(fmt.Errorf("network %q: %w", network, ErrNoNetwork))
	}
	if _, ok := s.ports[name]; ok {
		return fail(fmt.Errorf("port %q: %w", name, ErrPortExists))
	}
	if !info.NoSecurity && !isUnicastMAC(info.MAC) {
		return fail(fmt.Errorf("port %q: MAC %q: %w; port security needs the port's own address, or set NoSecurity", name, info.MAC, ErrBadMAC))
	}
	id, err := newIdentity(info.MAC, info.IPs)
	if err != nil {
		return fail(fmt.Errorf("port %q: %w", name, err))
	}
	info.MAC = bytes.Clone(info.MAC)
	info.IPs = slices.Clone(info.IPs)
	s.nextID++
	p := &Port{id: s.nextID, info: info, ident: id, net: n, dev: dev, caps: dev.Caps(), done: make(chan struct{}),
		mtu: info.MTU, maxFrame: maxFrameFor(info.MTU), maxTx: maxFrameFor(info.MTU)}
	p.name.Store(&name)
	if info.TakesAnySize {
		p.maxTx = maxFrameFor(0)
	}
	p.publishLocked()
	p.SetMACLimit(info.MACLimit)
	p.SetStormLimits(info.Storm)
	p.txq = dev.Queues()
	if len(p.txq) == 0 {
		return fail(fmt.Errorf("port %q: device has no queues", name))
	}
	for _, q := range p.txq {
		p.rx = append(p.rx, &rxq{q: q})
	}
	if err := s.serveLocked(p); err != nil {
		return fail(fmt.Errorf("port %q: %w", name, err))
	}
	s.ports[name] = p
	old := *n.ports.Load()
	next := append(slices.Clip(old), p)
	n.ports.Store(&next)
	s.log.Info("port attached", "port", name, "id", p.id, "network", network, "netns", info.Netns, "ifname", info.Ifname, "mac", info.MAC.String(),
		"security", !info.NoSecurity, "mac_limit", p.MACLimit(), "mtu", info.MTU, "storm", p.StormLimits())
	return p, nil
}

// serveLocked starts reading p's queues: through the workers when every
// queue can be polled, else with a loop per queue.
func (s *Switch) serveLocked(p *Port) error {
	pollable := make([]device.PollQueue, 0, len(p.txq))
	for _, q := range p.txq {
		if pq, ok := q.(device.PollQueue); ok {
			pollable = append(pollable, pq)
		}
	}
	if len(pollable) == len(p.txq) {
		err := s.addToWorkersLocked(p, pollable)
		if err == nil {
			close(p.done)
			return nil
		}
		s.log.Warn("queues cannot be polled together; reading each with its own loop", "port", p.Name(), "err", err)
	}
	var wg sync.WaitGroup
	for i := range p.rx {
		wg.Go(func() { p.rxLoop(i) })
	}
	go func() {
		wg.Wait()
		close(p.done)
	}()
	return nil
}

func (s *Switch) addToWorkersLocked(p *Port, qs []device.PollQueue) error {
	for len(s.workers) < len(qs) {
		w, err := newWorker(len(s.workers), s.cfg.Dataplane, &s.spinners)
		if err != nil {
			return err
		}
		s.workers = append(s.workers, w)
	}
	for i, q := range qs {
		sl, err := s.workers[i].add(p, i, q)
		if err != nil {
			s.removeFromWorkers(p)
			return err
		}
		p.slots = append(p.slots, sl)
	}
	return nil
}

// removeFromWorkers stops the workers serving p; when it returns no
// worker touches p any more.
func (s *Switch) removeFromWorkers(p *Port) {
	for _, sl := range p.slots {
		sl.w.remove(sl)
	}
	p.slots = nil
}

// Port finds a port by name, or by id in decimal.
func (s *Switch) Port(nameOrID string) (*Port, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.portLocked(nameOrID)
}

func (s *Switch) portLocked(nameOrID string) (*Port, error) {
	if p, ok := s.ports[nameOrID]; ok {
		return p, nil
	}
	for _, p := range s.ports {
		if fmt.Sprint(p.id) == nameOrID {
			return p, nil
		}
	}
	return nil, fmt.Errorf("port %q: %w", nameOrID, ErrNoPort)
}

// Ports lists every port, by id.
func (s *Switch) Ports() []*Port {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Port, 0, len(s.ports))
	for _, p := range s.ports {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Port) int { return cmp.Compare(a.id, b.id) })
	return out
}

// RemovePort detaches a port: no frame is forwarded to it after it
// returns, its device is closed and its learned MACs are gone.
func (s *Switch) RemovePort(p *Port) error {
	s.mu.Lock()
	if s.ports[p.Name()] != p {
		s.mu.Unlock()
		return fmt.Errorf("port %q: %w", p.Name(), ErrNoPort)
	}
	s.unlinkLocked(p)
	s.mu.Unlock()
	s.stopPort(p, false)
	return nil
}

// unlinkLocked takes p out of the switch's and its network's port sets.
func (s *Switch) unlinkLocked(p *Port) {
	delete(s.ports, p.Name())
	old := *p.net.ports.Load()
	next := make([]*Port, 0, len(old))
	for _, q := range old {
		if q != p {
			next = append(next, q)
		}
	}
	p.net.ports.Store(&next)
}

// stopPort closes the device (or, with release, lets go of it if it can
// be let go, see device.Releaser), waits for the loop to end, then
// forgets the port's MACs: after the loop has ended nothing can learn
// them again.
func (s *Switch) stopPort(p *Port, release bool) {
	if p.slots != nil {
		s.removeFromWorkers(p)
	}
	if r, ok := p.dev.(device.Releaser); ok && release {
		r.Release()
	} else {
		p.dev.Close()
	}
	<-p.done
	k := p.net.fdb.FlushPort(p)
	s.log.Info("port detached", "port", p.Name(), "id", p.id, "network", p.net.Name(), "macs_flushed", k)
}

// portFailed is called by a port's loop when its device fails for good.
// Only the first call for a port counts an rx error, logs and detaches
// it: every queue of the device fails alike, and a worker's poll of a
// failed queue keeps reporting it ready until the port is taken out.
func (s *Switch) portFailed(p *Port, err error) {
	if !p.failed.CompareAndSwap(false, true) {
		return
	}
	p.drop(DropRxError)
	s.log.Warn("port device failed; detaching it", "port", p.Name(), "err", err)
	go func() {
		s.mu.Lock()
		owned := s.ports[p.Name()] == p
		if owned {
			s.unlinkLocked(p)
		}
		s.mu.Unlock()
		if !owned {
			return
		}
		s.stopPort(p, false)
		if s.cfg.PortFailed != nil {
			s.cfg.PortFailed(p, err)
		}
	}()
}

// Close detaches every port, closing its device, and stops the switch.
func (s *Switch) Close() { s.shutdown(false) }

// Release stops the switch like Close, but lets go of the devices that
// can be let go (device.Releaser: a persistent TAP stays in its namespace
// for the next daemon to take back) rather than closing them.
func (s *Switch) Release() { s.shutdown(true) }

func (s *Switch) shutdown(release bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ports := make([]*Port, 0, len(s.ports))
	for _, p := range s.ports {
		ports = append(ports, p)
		s.unlinkLocked(p)
	}
	s.mu.Unlock()
	// Removing a device waits for the kernel's grace period; waiting for
	// all of them at once makes a daemon with many ports stop in about
	// the time of one.
	var wg sync.WaitGroup
	for _, p := range ports {
		wg.Go(func() { s.stopPort(p, release) })
	}
	wg.Wait()
	for _, w := range s.workers {
		w.close()
	}
	close(s.stopAger)
	<-s.agerDone
}

// Name is the network's name.
func (n *Network) Name() string { return *n.name.Load() }

// Ports is the network's current port snapshot; do not modify it.
func (n *Network) Ports() []*Port { return *n.ports.Load() }

// FDB is the network's forwarding table.
func (n *Network) FDB() *fdb.Table[Port] { return n.fdb }
