package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cmp"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/cluster"
	"github.com/tapswitch/tapswitch/internal/ipam"
)

// The cluster's store (tapswitchd --cluster). It holds the cluster
// networks, the addresses handed out in them, the hosts (under leases)
// and every port of a cluster network (its endpoint: host, MAC,
// addresses, VTEP). The daemon
//
//   - creates and removes cluster networks there first, which decides
//     the VNI and refuses overlaps and duplicates;
//   - takes a port's addresses from there (transactions: two hosts never
//     hand out one address) and publishes its endpoint, before the port
//     is made;
//   - follows the store's view (Watch) in a goroutine of its own, under
//     the daemon's lock: networks there and not here are made here,
//     cluster networks gone from there go from here (only while the
//     store is connected and the view is one read since this host
//     registered: never because etcd is down), the tunnels learn the
//     other hosts' VTEPs and their ports' MACs, and DNS their names.
//
// The data plane never waits for the store: the tunnels carry on with
// what they know while etcd is down. What a detach or a restart owes the
// store (deleting an endpoint, releasing addresses, publishing the
// endpoints of restored ports) is queued and done once it is reachable.

// storeTimeout bounds one change to the store made while a request
// waits.
const storeTimeout = 5 * time.Second

// storeRetry is how often the view is applied again and queued changes
// retried, besides whenever the view changes.
const storeRetry = 2 * time.Second

// storeWatch runs the goroutine that applies the store's views.
type storeWatch struct {
	mu     sync.Mutex
	latest *cluster.View
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// storeOp is a change owed to the store.
type storeOp struct {
	what string
	do   func(ctx context.Context, s *cluster.Store) error
	// owed is the change as data, for a hand-over to carry: set for
	// removals, which only this host knows it owes; nil for the
	// publication of restored ports, which a successor makes again of
	// its own.
	owed *owedRemoval
}

// owedRemoval is a removal owed to the store: an endpoint to delete, or
// an address to give back.
type owedRemoval struct {
	Network  string     `json:"network"`
	Endpoint string     `json:"endpoint,omitempty"`
	Addr     netip.Addr `json:"addr,omitzero"`
}

// queueRemovalLocked owes the store o.
func (d *Daemon) queueRemovalLocked(o owedRemoval) {
	network := o.Network
	switch {
	case o.Endpoint != "":
		name := o.Endpoint
		d.queueOpLocked(storeOp{what: "delete endpoint " + network + "/" + name, owed: &o, do: func(ctx context.Context, s *cluster.Store) error {
			return s.DeleteEndpoint(ctx, network, name)
		}})
	case o.Addr.IsValid():
		a := o.Addr
		d.queueOpLocked(storeOp{what: "release " + network + " " + a.String(), owed: &o, do: func(ctx context.Context, s *cluster.Store) error {
			return s.ReleaseAddr(ctx, network, a)
		}})
	}
}

// owedRemovalsLocked returns the removals still owed to the store.
func (d *Daemon) owedRemovalsLocked() []owedRemoval {
	var owed []owedRemoval
	for _, op := range d.ov.pending {
		if op.owed != nil {
			owed = append(owed, *op.owed)
		}
	}
	return owed
}

// openStore opens the store, carrying on lease (a predecessor's, see
// handover_overlay.go) if it is not 0, and with it the predecessor's
// connection to etcd, made at since (zero if it had none), so that the
// views of a store that never went away settle at once.
func (d *Daemon) openStore(lease int64, since time.Time) error {
	c := d.cfg.Overlay
	s, err := cluster.Open(context.Background(), cluster.Config{
		Lease:          lease,
		ConnectedSince: since,
		Endpoints:      c.Cluster,
		Host:           d.ov.host,
		Advertise:      c.Advertise,
		TTL:            c.TTL,
		TLS:            c.ClusterTLS,
		Username:       c.ClusterUser,
		Password:       c.ClusterPassword,
		Logger:         d.log.With("part", "cluster"),
	})
	if err != nil {
		return fmt.Errorf("cluster store: %w", err)
	}
	d.ov.store = s
	d.ov.watch.kick = make(chan struct{}, 1)
	return nil
}

// startStoreWatch follows the store once the daemon is up.
func (d *Daemon) startStoreWatch() {
	w := &d.ov.watch
	if d.ov.store == nil {
		return
	}
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go d.followStore()
	d.ov.store.Watch(func(v cluster.View) {
		w.mu.Lock()
		w.latest = &v
		w.mu.Unlock()
		select {
		case w.kick <- struct{}{}:
		default:
		}
	})
}

func (d *Daemon) stopStoreWatch() {
	w := &d.ov.watch
	if w.stop == nil {
		return
	}
	close(w.stop)
	<-w.done
	w.stop = nil
	// What is still owed, while the store is open: a detach just before
	// the stop, for instance.
	d.mu.Lock()
	d.flushStoreLocked()
	d.mu.Unlock()
}

// kickStore has the watch goroutine look again soon.
func (d *Daemon) kickStore() {
	select {
	case d.ov.watch.kick <- struct{}{}:
	default:
	}
}

func (d *Daemon) followStore() {
	w := &d.ov.watch
	defer close(w.done)
	t := time.NewTicker(storeRetry)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-t.C:
		}
		w.mu.Lock()
		v := w.latest
		w.mu.Unlock()
		d.mu.Lock()
		d.flushStoreLocked()
		if v != nil {
			d.applyViewLocked(*v)
		}
		d.mu.Unlock()
	}
}

// queueStoreLocked owes the store a change, made by the watch goroutine
// (or before the next attach to a cluster network) once it is reachable.
func (d *Daemon) queueStoreLocked(what string, do func(ctx context.Context, s *cluster.Store) error) {
	d.queueOpLocked(storeOp{what: what, do: do})
}

// queueOpLocked is queueStoreLocked of op.
func (d *Daemon) queueOpLocked(op storeOp) {
	if d.ov.store == nil {
		return
	}
	d.ov.pending = append(d.ov.pending, op)
	d.kickStore()
}

// flushStoreLocked makes the changes owed to the store, in order, while
// it is connected; those that fail for its being unreachable stay
// queued, others are logged and dropped (a network removed meanwhile).
func (d *Daemon) flushStoreLocked() {
	s := d.ov.store
	if s == nil || len(d.ov.pending) == 0 || !s.Status().Connected {
		return
	}
	for len(d.ov.pending) > 0 {
		op := d.ov.pending[0]
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err := op.do(ctx, s)
		cancel()
		switch {
		case errors.Is(err, cluster.ErrUnavailable):
			d.log.Warn("cluster store unreachable; retrying", "change", op.what, "err", err)
			return
		case errors.Is(err, cluster.ErrNotFound):
		case err != nil:
			d.log.Warn("change to the cluster store not made", "change", op.what, "err", err)
		}
		d.ov.pending = d.ov.pending[1:]
	}
}

// clusterError gives an error of the store its API class and reason.
func clusterError(err error) error {
	switch {
	case errors.Is(err, cluster.ErrUnavailable):
		return fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	case errors.Is(err, cluster.ErrExists):
		return api.Errorf(api.ErrConflict, api.ReasonNetworkExists, "%w", err)
	case errors.Is(err, cluster.ErrOverlap):
		return api.Errorf(api.ErrConflict, api.ReasonSubnetOverlap, "%w", err)
	case errors.Is(err, cluster.ErrInUse):
		return api.Errorf(api.ErrConflict, api.ReasonAddressInUse, "%w", err)
	case errors.Is(err, cluster.ErrVNIInUse), errors.Is(err, cluster.ErrFull):
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	case errors.Is(err, cluster.ErrNotFound):
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case errors.Is(err, cluster.ErrInvalid):
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	return err
}

// clusterVNILocked decides the VNI of a new cluster network: in the
// store, which creates it there and refuses a duplicate or an overlap,
// or, without one, the asked VNI if no network here has it, else the
// lowest free one here.
func (d *Daemon) clusterVNILocked(req api.NetworkCreateRequest, subnets []*ipam.Subnet) (uint32, error) {
	if d.ov.ep == nil {
		return 0, invalid("a network of scope %q needs tapswitchd --advertise IP (this host's VXLAN tunnel address), with --cluster etcd=URL to span a cluster or --vxlan-peer IP for static peers", api.ScopeCluster)
	}
	if s := d.ov.store; s != nil {
		cn := cluster.Network{Name: req.Name, VNI: req.VNI, Internal: req.Internal}
		for _, sub := range subnets {
			cn.Subnets = append(cn.Subnets, cluster.Subnet{Prefix: sub.Prefix(), Gateway: sub.Gateway()})
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		got, err := s.CreateNetwork(ctx, cn)
		if err != nil {
			return 0, clusterError(err)
		}
		return got.VNI, nil
	}
	used := d.usedVNIsLocked()
	if req.VNI != 0 {
		if used[req.VNI] {
			return 0, conflict("VNI %d is network %q's; choose another, or none for a free one", req.VNI, d.networkOfVNILocked(req.VNI))
		}
		return req.VNI, nil
	}
	v := freeVNI(used)
	if v == 0 {
		return 0, conflict("no free VNI")
	}
	return v, nil
}

func (d *Daemon) networkOfVNILocked(vni uint32) string {
	for _, n := range d.nets {
		if n.scope == api.ScopeCluster && n.vni == vni {
			return n.name
		}
	}
	return ""
}

// unmakeInStoreLocked undoes clusterVNILocked's creation of a network
// in the store, for a network that did not start here.
func (d *Daemon) unmakeInStoreLocked(name string) {
	if s := d.ov.store; s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if err := s.RemoveNetwork(ctx, name); err != nil {
			d.log.Warn("cluster network made in the store but not here is left there; remove it with network rm", "network", name, "err", err)
		}
	}
}

// removeFromStoreLocked removes a cluster network from the store before
// it goes here: refused while it has ports on other hosts, unless
// force. The other hosts remove it when they see it gone.
func (d *Daemon) removeFromStoreLocked(n *network, force bool) error {
	s := d.ov.store
	if n.scope != api.ScopeCluster || s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	// Without --force, the store itself refuses while other hosts have
	// ports on the network: this host's view may not have a port
	// attached there a moment ago.
	remove := s.RemoveNetwork
	if !force {
		remove = s.RemoveUnusedNetwork
	}
	switch err := remove(ctx, n.name); {
	case errors.Is(err, cluster.ErrHasEndpoints):
		return api.Errorf(api.ErrConflict, api.ReasonNetworkHasPorts, "%v", err)
	case err != nil && !errors.Is(err, cluster.ErrNotFound):
		return clusterError(err)
	}
	// Its addresses and endpoints went with it.
	n.gone = true
	return nil
}

// portOwner names a port as the owner of its addresses in the store.
func (d *Daemon) portOwner(name string) string { return d.ov.host + "/" + name }

// inStore reports whether n's ports take their addresses from the store.
func (d *Daemon) inStore(n *network) bool {
	return n.scope == api.ScopeCluster && d.ov.store != nil
}

// clusterAddressesLocked is addresses for a cluster network with a
// store: each asked for inside a subnet is reserved there, and one of
// each other subnet allocated there (unless only addresses outside the
// subnets are asked for). The network's own IPAM holds them too, as it
// does for every port here. On failure nothing is held.
func (d *Daemon) clusterAddressesLocked(n *network, name string, asked []netip.Prefix) (ips []netip.Prefix, owned []netip.Addr, err error) {
	s := d.ov.store
	owner := d.portOwner(name)
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	var held []netip.Addr
	defer func() {
		if err != nil {
			for _, a := range owned {
				n.release(a)
			}
			d.releaseInStoreLocked(n, "", held)
			owned = nil
		}
	}()
	covered := make(map[*ipam.Subnet]bool)
	for _, ip := range asked {
		a := ip.Addr()
		sub := n.subnetFor(a)
		if sub == nil {
			continue
		}
		if bits := sub.Prefix().Bits(); ip.Bits() != bits {
			return nil, nil, invalid("address %s is in network %q's subnet %s: give it as %s", ip, n.name, sub.Prefix(), netip.PrefixFrom(a, bits))
		}
		if err := sub.Reserve(a); err != nil {
			if errors.Is(err, ipam.ErrInUse) {
				return nil, nil, api.Errorf(api.ErrConflict, api.ReasonAddressInUse, "address %s already in use in network %q", a, n.name)
			}
			return nil, nil, fmt.Errorf("network %q: %w", n.name, ipamError(err))
		}
		owned = append(owned, a)
		covered[sub] = true
		if err := s.ReserveAddr(ctx, n.name, a, owner); err != nil {
			return nil, nil, fmt.Errorf("network %q: address %s: %w", n.name, a, clusterError(err))
		}
		held = append(held, a)
	}
	ips = slices.Clone(asked)
	if len(asked) > 0 && len(owned) == 0 {
		return ips, nil, nil
	}
	for _, sub := range n.subnets {
		if covered[sub] {
			continue
		}
		a, err := s.AllocateAddr(ctx, n.name, cluster.Subnet{Prefix: sub.Prefix(), Gateway: sub.Gateway()}, owner)
		if err != nil {
			return nil, nil, fmt.Errorf("network %q: %w", n.name, clusterError(err))
		}
		held = append(held, a)
		if err := sub.Reserve(a); err != nil {
			return nil, nil, fmt.Errorf("network %q: address %s from the cluster store: %w", n.name, a, ipamError(err))
		}
		owned = append(owned, a)
		ips = append(ips, netip.PrefixFrom(a, sub.Prefix().Bits()))
	}
	return ips, owned, nil
}

// releaseInStoreLocked gives addrs back to the store and deletes the
// endpoint name (if not ""), now or once the store is reachable.
func (d *Daemon) releaseInStoreLocked(n *network, name string, addrs []netip.Addr) {
	if n.gone || !d.inStore(n) {
		return
	}
	if name != "" {
		d.queueRemovalLocked(owedRemoval{Network: n.name, Endpoint: name})
	}
	for _, a := range addrs {
		d.queueRemovalLocked(owedRemoval{Network: n.name, Addr: a})
	}
	d.flushStoreLocked()
}

// endpointOf is what the store records of a port on a cluster network.
func (d *Daemon) endpointOf(n *network, name string, mac net.HardwareAddr, ips []netip.Prefix) cluster.Endpoint {
	e := cluster.Endpoint{Network: n.name, Name: name, Host: d.ov.host, MAC: mac, VTEP: d.ov.cfg.Advertise}
	for _, ip := range ips {
		if n.contains(ip.Addr()) {
			e.IPs = append(e.IPs, ip.Addr())
		}
	}
	return e
}

// publishEndpointLocked records a new port's endpoint in the store.
func (d *Daemon) publishEndpointLocked(e cluster.Endpoint) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := d.ov.store.PutEndpoint(ctx, e); err != nil {
		if errors.Is(err, cluster.ErrExists) {
			// Another host's port of that name, put meanwhile.
			return api.Errorf(api.ErrConflict, api.ReasonPortNameInUse, "port name %q: %w", e.Name, err)
		}
		return fmt.Errorf("publish the port in the cluster store: %w", clusterError(err))
	}
	return nil
}

// prepareClusterAttachLocked readies an attach to a cluster network
// with a store: what is owed the store goes first (a port of the same
// name detached a moment ago), the name must be no other host's port's
// on the network, and the port gets a MAC now, to be published before
// the port is made.
func (d *Daemon) prepareClusterAttachLocked(n *network, s *attachSpec) error {
	d.flushStoreLocked()
	for _, e := range d.ov.view.Endpoints {
		if e.Network == n.name && e.Host != d.ov.host && strings.EqualFold(e.Name, s.name) {
			return api.Errorf(api.ErrConflict, api.ReasonPortNameInUse, "port name %q is taken on network %q by a port on host %s; choose another", s.name, n.name, e.Host)
		}
	}
	if s.mac == nil {
		s.mac = randomMAC()
	}
	return nil
}

// randomMAC is a random locally administered unicast MAC.
func randomMAC() net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	rand.Read(m)
	m[0] = m[0]&^0x01 | 0x02
	return m
}

// republishLocked queues the endpoints of the ports restored on cluster
// networks, for the store to have them again (after a restart the host
// registers under a new lease, and its endpoints went with the old).
func (d *Daemon) republishLocked() {
	for _, p := range d.ports {
		if p.kind != api.KindContainer || !d.inStore(p.net) {
			continue
		}
		e := d.endpointOf(p.net, p.name(), p.sw.Info().MAC, p.sw.Info().IPs)
		owner := d.portOwner(p.name())
		network := p.net.name
		owned := slices.Clone(p.owned)
		d.queueStoreLocked("publish endpoint "+network+"/"+e.Name, func(ctx context.Context, s *cluster.Store) error {
			for _, a := range owned {
				err := s.ReserveAddr(ctx, network, a, owner)
				if errors.Is(err, cluster.ErrInUse) {
					// Taken while this host was away.
					d.log.Error("a restored port's address is another port's in the cluster now: two ports share it; detach the port and attach it again", "network", network, "port", e.Name, "addr", a, "err", err)
					continue
				}
				if err != nil {
					return err
				}
			}
			return s.PutEndpoint(ctx, e)
		})
	}
}

// localNet is what planNetworks needs of a network here.
type localNet struct {
	scope string
	vni   uint32
	// seen: in a view of the store before, or restored from the state
	// file as the store's; a network created here a moment ago may not
	// be in the view yet, and is not removed for it, nor is one made
	// with static peers only.
	seen bool
}

// networkPlan is what a view of the store asks of the networks here.
type networkPlan struct {
	// create are the store's networks not here.
	create []cluster.Network
	// remove are the cluster networks here gone from the store.
	remove []string
	// clash are the store's networks that a network here of another
	// scope or VNI has the name of, with why.
	clash map[string]string
}

// planNetworks decides what a view of the store changes here. Removal
// needs fresh: the store is connected and the view was read since this
// host registered, so that a network is never removed because etcd is
// down or not read yet.
func planNetworks(local map[string]localNet, v cluster.View, fresh bool) networkPlan {
	var p networkPlan
	inView := make(map[string]bool)
	for _, cn := range v.Networks {
		inView[cn.Name] = true
		l, ok := local[cn.Name]
		switch {
		case !ok:
			p.create = append(p.create, cn)
		case l.scope != api.ScopeCluster:
			if p.clash == nil {
				p.clash = make(map[string]string)
			}
			p.clash[cn.Name] = "a local network of this host has the name"
		case l.vni != cn.VNI:
			if p.clash == nil {
				p.clash = make(map[string]string)
			}
			p.clash[cn.Name] = fmt.Sprintf("this host has it with VNI %d, the store with VNI %d", l.vni, cn.VNI)
		}
	}
	if fresh {
		for name, l := range local {
			if l.scope == api.ScopeCluster && l.seen && !inView[name] {
				p.remove = append(p.remove, name)
			}
		}
	}
	slices.Sort(p.remove)
	return p
}

// viewFresh reports whether a view may remove networks here: the store
// is connected and the view holds this host.
func viewFresh(connected bool, v cluster.View, host string) bool {
	return connected && slices.ContainsFunc(v.Hosts, func(h cluster.Host) bool { return h.Name == host })
}

// applyViewLocked brings this host in line with a view of the store.
func (d *Daemon) applyViewLocked(v cluster.View) {
	ov := &d.ov
	s := ov.store
	if s == nil {
		return
	}
	d.applyViewAsLocked(v, s.Status(), time.Now())
}

// applyViewAsLocked is applyViewLocked with the store in state st at
// now.
func (d *Daemon) applyViewAsLocked(v cluster.View, st cluster.Status, now time.Time) {
	ov := &d.ov
	ov.view = v
	// Right after the store (re)connects, hosts that lost their leases
	// while etcd was away register again one by one, and put their
	// endpoints again: what is missing from the view then is kept a
	// while, so that traffic between them goes on.
	settled := viewSettled(st, cmp.Or(ov.cfg.TTL, cluster.DefaultTTL), now)
	// Who may send to us; where each network's floods go is set below,
	// by network (applyViewToNetworkLocked).
	others := make(map[netip.Addr]bool)
	for _, h := range v.Hosts {
		if h.Name != ov.host && h.VTEP != ov.cfg.Advertise && h.VTEP.IsValid() {
			others[h.VTEP] = true
		}
	}
	gone := make([]netip.Addr, 0)
	for vt := range ov.others {
		switch {
		case others[vt]:
		case !settled:
			others[vt] = true
		case !slices.Contains(ov.cfg.Peers, vt):
			gone = append(gone, vt)
		}
	}
	changed := len(gone) > 0 || len(others) != len(ov.others)
	ov.others = others
	if changed {
		members := d.vtepsLocked()
		ov.ep.SetMembers(members)
		// Cluster hosts are tapswitch daemons, which put a UDP checksum
		// on every datagram: their frames need no second check. Static
		// peers may be Linux vxlan devices, which send none.
		ov.ep.SetChecksummed(slices.Collect(maps.Keys(others)))
		for _, n := range d.nets {
			if n.tunnel != nil {
				for _, vt := range gone {
					n.tunnel.ForgetVTEP(vt)
				}
			}
		}
		d.log.Info("cluster hosts changed", "hosts", len(v.Hosts), "vteps", members, "gone", gone)
	}

	local := make(map[string]localNet, len(d.nets))
	for _, n := range d.nets {
		local[n.name] = localNet{scope: n.scope, vni: n.vni, seen: n.seen}
	}
	plan := planNetworks(local, v, settled && viewFresh(st.Connected, v, ov.host))
	// Each view is applied again every storeRetry: what cannot be done
	// is told once, until it changes.
	told := make(map[string]string)
	tell := func(name, why string, args ...any) {
		told[name] = why
		if ov.told[name] != why {
			d.log.Error("cluster network not made here", append([]any{"network", name, "why", why}, args...)...)
		}
	}
	for name, why := range plan.clash {
		tell(name, why+"; remove one of them")
	}
	for _, name := range plan.remove {
		if n, ok := d.nets[name]; ok {
			d.dropClusterNetworkLocked(n)
		}
	}
	for _, cn := range plan.create {
		if err := d.adoptClusterNetworkLocked(cn); err != nil {
			tell(cn.Name, err.Error(), "vni", cn.VNI)
		}
	}
	ov.told = told
	save := false
	for _, cn := range v.Networks {
		if n, ok := d.nets[cn.Name]; ok && n.scope == api.ScopeCluster && n.vni == cn.VNI && !(n.seen && n.stored) {
			n.seen, n.stored, save = true, true, true
		}
	}
	if save {
		d.saveLocked()
	}
	for _, n := range d.nets {
		d.applyViewToNetworkLocked(n, settled)
	}
}

// viewSettled reports whether views of a store in state st may remove
// what they lack: it has been connected for longer than a host's lease,
// so that every live host has registered again and put its endpoints
// again since it connected.
func viewSettled(st cluster.Status, ttl time.Duration, now time.Time) bool {
	return st.Connected && now.Sub(st.Since) > ttl
}

// applyViewToNetworkLocked gives a cluster network's tunnel the MACs of
// the other hosts' ports on it and the hosts to flood to (floodVTEPs),
// and its DNS their names; what the view lacks goes only once settled
// (see viewSettled).
func (d *Daemon) applyViewToNetworkLocked(n *network, settled bool) {
	if n.tunnel == nil || d.ov.store == nil {
		return
	}
	var keep []netip.Addr
	if !settled {
		keep = d.ov.flood[n.name]
	}
	d.setFloodLocked(n, d.floodVTEPsLocked(n, keep))
	wantMAC := make(map[string]netip.Addr)
	wantName := make(map[string][]netip.Addr)
	for _, e := range d.ov.view.Endpoints {
		if e.Network != n.name || e.Host == d.ov.host {
			continue
		}
		if len(e.MAC) == 6 && e.VTEP.IsValid() {
			wantMAC[e.MAC.String()] = e.VTEP
		}
		if len(e.IPs) > 0 {
			wantName[strings.ToLower(e.Name)] = e.IPs
		}
	}
	for mac, vt := range n.remotes {
		if want, ok := wantMAC[mac]; !ok && !settled {
			continue
		} else if !ok || want != vt {
			if hw, err := net.ParseMAC(mac); err == nil {
				n.tunnel.ForgetRemote(hw)
			}
			delete(n.remotes, mac)
		}
	}
	for mac, vt := range wantMAC {
		if _, ok := n.remotes[mac]; ok {
			continue
		}
		if hw, err := net.ParseMAC(mac); err == nil {
			n.tunnel.SetRemote(hw, vt)
			n.remotes[mac] = vt
		}
	}
	// Names: a port of this host keeps its name.
	for name := range n.remoteNames {
		if _, ok := wantName[name]; !ok && settled {
			if p, local := d.ports[name]; !local || p.net != n {
				n.records.Remove(name)
			}
			delete(n.remoteNames, name)
		}
	}
	for name, ips := range wantName {
		if p, local := d.ports[name]; local && p.net == n {
			continue
		}
		key := addrsKey(ips)
		if n.remoteNames[name] == key {
			continue
		}
		if err := n.records.Set(name, nil, ips); err != nil {
			d.log.Warn("name of a port on another host not served", "network", n.name, "port", name, "err", err)
			continue
		}
		n.remoteNames[name] = key
	}
}

func addrsKey(ips []netip.Addr) string {
	var b strings.Builder
	for _, a := range ips {
		b.WriteString(a.String())
		b.WriteByte(' ')
	}
	return b.String()
}

// adoptClusterNetworkLocked makes here a cluster network of the store.
func (d *Daemon) adoptClusterNetworkLocked(cn cluster.Network) error {
	if err := checkNetworkName(cn.Name); err != nil {
		return err
	}
	if len(cn.Subnets) == 0 {
		return fmt.Errorf("no subnet in the store")
	}
	if used := d.networkOfVNILocked(cn.VNI); used != "" {
		return conflict("VNI %d is network %q's here", cn.VNI, used)
	}
	var subnets []*ipam.Subnet
	inUse, err := d.inUseLocked()
	if err != nil {
		return err
	}
	for _, s := range cn.Subnets {
		if err := ipam.CheckOverlap(s.Prefix, inUse); err != nil {
			return ipamError(err)
		}
		sub, err := ipam.NewSubnet(s.Prefix, s.Gateway)
		if err != nil {
			return ipamError(err)
		}
		subnets = append(subnets, sub)
	}
	if len(subnets) > 1 && subnets[0].Prefix().Addr().Is6() {
		subnets[0], subnets[1] = subnets[1], subnets[0]
	}
	n := d.newNetwork(cn.Name, cn.Internal, subnets)
	n.scope, n.vni, n.stored, n.seen = api.ScopeCluster, cn.VNI, true, true
	if err := d.startNetworkLocked(n, false); err != nil {
		return startError(err)
	}
	d.saveLocked()
	d.events.Publish(api.Event{Type: api.EventNetworkCreate, Network: n.name, Reason: "cluster", Attrs: map[string]string{
		"subnet": n.subnetsString(), "gateway": n.gatewaysString(), "internal": strconv.FormatBool(n.internal),
		"scope": n.scope, "vni": strconv.FormatUint(uint64(n.vni), 10)}})
	d.log.Info("cluster network made here, from the store", "network", n.name, "vni", n.vni)
	return nil
}

// dropClusterNetworkLocked removes here a cluster network gone from the
// store: its ports are detached, as network rm --force does, with an
// event saying why.
func (d *Daemon) dropClusterNetworkLocked(n *network) {
	n.gone = true
	ports := d.portsOfLocked(n)
	d.detachForRemovalLocked(ports, "network_removed_in_cluster")
	err := d.stopNetworkLocked(n)
	d.saveLocked()
	d.events.Publish(api.Event{Type: api.EventNetworkRemove, Network: n.name, Reason: "removed_in_cluster", Counts: map[string]int64{"ports": int64(len(ports))}})
	if err != nil {
		d.log.Error("remove network gone from the cluster", "network", n.name, "err", err)
	}
	d.log.Warn("cluster network removed here: it is gone from the cluster store", "network", n.name, "ports_detached", len(ports))
}
