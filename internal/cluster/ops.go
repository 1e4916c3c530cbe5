package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tapswitch/tapswitch/internal/ipam"
)

// CreateNetwork records n in the store, in one transaction that fails if
// its name is taken (ErrExists), its VNI is another network's
// (ErrVNIInUse) or a subnet overlaps another cluster network's
// (ErrOverlap). VNI 0 picks the lowest free one from 4096 up. A subnet's
// zero gateway becomes its first host address. It returns the network
// as recorded.
func (s *Store) CreateNetwork(ctx context.Context, n Network) (Network, error) {
	if err := checkName("network", n.Name); err != nil {
		return Network{}, err
	}
	if n.VNI != 0 {
		if err := checkVNI(n.VNI); err != nil {
			return Network{}, err
		}
	}
	n.Subnets = slices.Clone(n.Subnets)
	for i, sub := range n.Subnets {
		is, err := ipam.NewSubnet(sub.Prefix, sub.Gateway)
		if err != nil {
			return Network{}, fmt.Errorf("%w: network %q: %w", ErrInvalid, n.Name, err)
		}
		n.Subnets[i].Gateway = is.Gateway()
		for _, o := range n.Subnets[:i] {
			if o.Prefix.Overlaps(sub.Prefix) {
				return Network{}, fmt.Errorf("%w: network %q: subnets %s and %s overlap; give disjoint subnets", ErrInvalid, n.Name, o.Prefix, sub.Prefix)
			}
		}
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	for ctx.Err() == nil {
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(s.cfg.Prefix+networksDir, clientv3.WithPrefix()),
			clientv3.OpGet(s.cfg.Prefix+vniDir, clientv3.WithPrefix()),
			clientv3.OpGet(s.k.netrev()),
		).Commit()
		if err != nil {
			return Network{}, s.etcdErr(0, err)
		}
		usedVNI := map[uint32]string{}
		for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
			if v, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), s.cfg.Prefix+vniDir), 10, 32); err == nil {
				usedVNI[uint32(v)] = string(kv.Value)
			}
		}
		for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
			name := strings.TrimPrefix(string(kv.Key), s.cfg.Prefix+networksDir)
			if name == n.Name {
				return Network{}, fmt.Errorf("%w: network %q is already in the cluster; choose another name or remove it first", ErrExists, n.Name)
			}
			o, err := decodeNetwork(name, kv.Value)
			if err != nil {
				s.log.Warn("cluster store: ignoring a network record", "key", string(kv.Key), "err", err)
				continue
			}
			usedVNI[o.VNI] = o.Name
			for _, sub := range n.Subnets {
				for _, os := range o.Subnets {
					if sub.Prefix.Overlaps(os.Prefix) {
						return Network{}, fmt.Errorf("%w: subnet %s of network %q overlaps %s of cluster network %q; choose another subnet", ErrOverlap, sub.Prefix, n.Name, os.Prefix, o.Name)
					}
				}
			}
		}
		vni := n.VNI
		if vni == 0 {
			if vni = freeVNI(usedVNI); vni == 0 {
				return Network{}, fmt.Errorf("%w: every VNI is in use; remove a cluster network", ErrFull)
			}
		} else if holder, ok := usedVNI[vni]; ok {
			return Network{}, fmt.Errorf("%w: VNI %d belongs to cluster network %q; choose another or leave it to be picked", ErrVNIInUse, vni, holder)
		}
		var netrev int64
		if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
			netrev = kvs[0].ModRevision
		}
		rec := n
		rec.VNI = vni
		tr, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(s.k.network(n.Name)), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(s.k.vni(vni)), "=", 0),
			clientv3.Compare(clientv3.ModRevision(s.k.netrev()), "=", netrev),
		).Then(
			clientv3.OpPut(s.k.network(n.Name), string(encodeNetwork(rec))),
			clientv3.OpPut(s.k.vni(vni), n.Name),
			clientv3.OpPut(s.k.netrev(), ""),
		).Commit()
		if err != nil {
			return Network{}, s.etcdErr(0, err)
		}
		if tr.Succeeded {
			return rec, nil
		}
		// Another network changed between the read and the write: read again.
	}
	return Network{}, s.unavailable(ctx.Err())
}

// freeVNI returns the lowest VNI not in used, from firstAutoVNI up and
// then below it, or 0 if there is none.
func freeVNI(used map[uint32]string) uint32 {
	for v := uint32(firstAutoVNI); v <= maxVNI; v++ {
		if _, ok := used[v]; !ok {
			return v
		}
	}
	for v := uint32(1); v < firstAutoVNI; v++ {
		if _, ok := used[v]; !ok {
			return v
		}
	}
	return 0
}

// RemoveNetwork deletes a cluster network with its VNI, its addresses
// and its endpoints, on every host, in one transaction.
func (s *Store) RemoveNetwork(ctx context.Context, name string) error {
	if err := checkName("network", name); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	for ctx.Err() == nil {
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(s.k.network(name)),
			clientv3.OpGet(s.cfg.Prefix+vniDir, clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return s.etcdErr(0, err)
		}
		nets := resp.Responses[0].GetResponseRange().Kvs
		if len(nets) == 0 {
			return fmt.Errorf("%w: no cluster network %q", ErrNotFound, name)
		}
		ops := []clientv3.Op{
			clientv3.OpDelete(s.k.network(name)),
			clientv3.OpDelete(s.k.addrs(name), clientv3.WithPrefix()),
			clientv3.OpDelete(s.k.endpoints(name), clientv3.WithPrefix()),
			clientv3.OpPut(s.k.netrev(), ""),
		}
		for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
			if string(kv.Value) == name {
				ops = append(ops, clientv3.OpDelete(string(kv.Key)))
			}
		}
		tr, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(s.k.network(name)), "=", nets[0].ModRevision),
		).Then(ops...).Commit()
		if err != nil {
			return s.etcdErr(0, err)
		}
		if tr.Succeeded {
			s.forgetNetwork(name)
			return nil
		}
	}
	return s.unavailable(ctx.Err())
}

// forgetNetwork drops this host's records of a removed network. opMu held.
func (s *Store) forgetNetwork(name string) {
	for k, a := range s.own.addrs {
		if a.network == name {
			delete(s.own.addrs, k)
		}
	}
	for k, e := range s.own.endpoints {
		if e.Network == name {
			delete(s.own.endpoints, k)
		}
	}
}

// getNetwork reads one network.
func (s *Store) getNetwork(ctx context.Context, name string) (Network, error) {
	resp, err := s.cli.Get(ctx, s.k.network(name))
	if err != nil {
		return Network{}, s.etcdErr(0, err)
	}
	if len(resp.Kvs) == 0 {
		return Network{}, fmt.Errorf("%w: no cluster network %q", ErrNotFound, name)
	}
	return decodeNetwork(name, resp.Kvs[0].Value)
}

// ReserveAddr takes a, an address of one of the network's subnets, for
// owner (the port's name), under this host's lease. Taking an address
// this host already holds for the same owner succeeds, so that a
// restarted daemon reclaims its ports' addresses.
func (s *Store) ReserveAddr(ctx context.Context, network string, a netip.Addr, owner string) error {
	if err := checkName("network", network); err != nil {
		return err
	}
	if owner == "" {
		return fmt.Errorf("%w: no owner given for %s", ErrInvalid, a)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	lease, err := s.leaseFor(ctx)
	if err != nil {
		return err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	n, err := s.getNetwork(ctx, network)
	if err != nil {
		return err
	}
	var sub *Subnet
	for i := range n.Subnets {
		if n.Subnets[i].Prefix.Contains(a) {
			sub = &n.Subnets[i]
		}
	}
	if sub == nil {
		return fmt.Errorf("%w: %s is in no subnet of cluster network %q; choose an address inside one", ErrInvalid, a, network)
	}
	is, err := ipam.NewSubnet(sub.Prefix, sub.Gateway)
	if err == nil {
		err = is.Reserve(a)
	}
	if err != nil {
		return fmt.Errorf("%w: cluster network %q: %w", ErrInvalid, network, err)
	}
	key := s.k.addr(network, a)
	rec := addrRecord{Owner: owner, Host: s.cfg.Host}
	if err := s.putOwned(ctx, network, key, encodeAddr(rec), lease, s.sameAddrHolder(network, a, owner)); err != nil {
		return err
	}
	s.own.addrs[key] = ownAddr{network: network, addr: a, owner: owner}
	return nil
}

// AllocateAddr takes the lowest free address of sub, a subnet of the
// network, for owner, under this host's lease: never the network,
// broadcast or gateway address, as for local networks. Two hosts
// allocating at once never get the same address: each takes it in a
// transaction that fails if the address was taken since it looked.
func (s *Store) AllocateAddr(ctx context.Context, network string, sub Subnet, owner string) (netip.Addr, error) {
	if err := checkName("network", network); err != nil {
		return netip.Addr{}, err
	}
	if owner == "" {
		return netip.Addr{}, fmt.Errorf("%w: no owner given for an address of %s", ErrInvalid, sub.Prefix)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	lease, err := s.leaseFor(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	netKey := s.k.network(network)
	for ctx.Err() == nil {
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(netKey),
			clientv3.OpGet(s.k.addrs(network), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		).Commit()
		if err != nil {
			return netip.Addr{}, s.etcdErr(lease, err)
		}
		nets := resp.Responses[0].GetResponseRange().Kvs
		if len(nets) == 0 {
			return netip.Addr{}, fmt.Errorf("%w: no cluster network %q", ErrNotFound, network)
		}
		n, err := decodeNetwork(network, nets[0].Value)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%w: cluster network %q: %w", ErrInvalid, network, err)
		}
		i := slices.IndexFunc(n.Subnets, func(x Subnet) bool { return x.Prefix == sub.Prefix })
		if i < 0 {
			return netip.Addr{}, fmt.Errorf("%w: cluster network %q has no subnet %s", ErrNotFound, network, sub.Prefix)
		}
		is, err := ipam.NewSubnet(n.Subnets[i].Prefix, n.Subnets[i].Gateway)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%w: cluster network %q: %w", ErrInvalid, network, err)
		}
		for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
			if a, err := netip.ParseAddr(strings.TrimPrefix(string(kv.Key), s.k.addrs(network))); err == nil && is.Contains(a) {
				_ = is.Reserve(a) // the gateway or a reserved address: taken anyway
			}
		}
		a, err := is.Allocate()
		if errors.Is(err, ipam.ErrFull) {
			return netip.Addr{}, fmt.Errorf("%w: no free address left in %s of cluster network %q; release one or use a larger subnet", ErrFull, sub.Prefix, network)
		} else if err != nil {
			return netip.Addr{}, fmt.Errorf("cluster network %q: %w", network, err)
		}
		key := s.k.addr(network, a)
		tr, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(netKey), "=", nets[0].ModRevision),
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		).Then(
			clientv3.OpPut(key, string(encodeAddr(addrRecord{Owner: owner, Host: s.cfg.Host})), clientv3.WithLease(lease)),
		).Commit()
		if err != nil {
			return netip.Addr{}, s.etcdErr(lease, err)
		}
		if tr.Succeeded {
			s.own.addrs[key] = ownAddr{network: network, addr: a, owner: owner}
			return a, nil
		}
		// Another host took a meanwhile: look again.
	}
	return netip.Addr{}, s.unavailable(ctx.Err())
}

// ReleaseAddr gives back an address this host holds. Releasing one that
// nobody holds does nothing, so a retried detach is harmless; one held
// by another host is refused (ErrInUse).
func (s *Store) ReleaseAddr(ctx context.Context, network string, a netip.Addr) error {
	if err := checkName("network", network); err != nil {
		return err
	}
	key := s.k.addr(network, a)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	delete(s.own.addrs, key)
	return s.deleteOwned(ctx, key, func(v []byte) error {
		r, err := decodeAddr(v)
		if err == nil && r.Host == s.cfg.Host {
			return nil
		}
		return fmt.Errorf("%w: %s of cluster network %q is held by host %q, which releases it", ErrInUse, a, network, r.Host)
	})
}

// PutEndpoint publishes e, a port of a cluster network on this host,
// under this host's lease; the store puts it again under a new lease
// after losing one. e.Host "" and e.VTEP zero mean this host's. The name
// must be free in the network or this host's already (ErrExists).
func (s *Store) PutEndpoint(ctx context.Context, e Endpoint) error {
	if err := checkName("network", e.Network); err != nil {
		return err
	}
	if err := checkName("endpoint", e.Name); err != nil {
		return err
	}
	if e.Host == "" {
		e.Host = s.cfg.Host
	}
	if e.Host != s.cfg.Host {
		return fmt.Errorf("%w: endpoint %q names host %q; a host publishes only its own endpoints", ErrInvalid, e.Name, e.Host)
	}
	if !e.VTEP.IsValid() {
		e.VTEP = s.cfg.Advertise
	}
	if len(e.MAC) != 6 {
		return fmt.Errorf("%w: endpoint %q: MAC %q is not an Ethernet address", ErrInvalid, e.Name, e.MAC)
	}
	for _, ip := range e.IPs {
		if !ip.IsValid() {
			return fmt.Errorf("%w: endpoint %q has an invalid address", ErrInvalid, e.Name)
		}
	}
	e.MAC = slices.Clone(e.MAC)
	e.IPs = slices.Clone(e.IPs)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	lease, err := s.leaseFor(ctx)
	if err != nil {
		return err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	key := s.k.endpoint(e.Network, e.Name)
	if err := s.putOwned(ctx, e.Network, key, encodeEndpoint(e), lease, s.sameEndpointHost(e.Network, e.Name)); err != nil {
		return err
	}
	s.own.endpoints[key] = e
	return nil
}

// DeleteEndpoint withdraws an endpoint of this host. Withdrawing one
// that is not there does nothing; one of another host is refused
// (ErrInUse).
func (s *Store) DeleteEndpoint(ctx context.Context, network, name string) error {
	if err := checkName("network", network); err != nil {
		return err
	}
	if err := checkName("endpoint", name); err != nil {
		return err
	}
	key := s.k.endpoint(network, name)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	delete(s.own.endpoints, key)
	return s.deleteOwned(ctx, key, func(v []byte) error {
		e, err := decodeEndpoint(network, name, v)
		if err == nil && e.Host == s.cfg.Host {
			return nil
		}
		return fmt.Errorf("%w: endpoint %q of cluster network %q is on host %q, which withdraws it", ErrInUse, name, network, e.Host)
	})
}

// sameAddrHolder accepts an address record of this host for owner.
func (s *Store) sameAddrHolder(network string, a netip.Addr, owner string) func([]byte) error {
	return func(v []byte) error {
		r, err := decodeAddr(v)
		if err == nil && r.Host == s.cfg.Host && r.Owner == owner {
			return nil
		}
		return fmt.Errorf("%w: %s of cluster network %q is held by %q on host %q; choose another address or let one be assigned", ErrInUse, a, network, r.Owner, r.Host)
	}
}

// sameEndpointHost accepts an endpoint record of this host.
func (s *Store) sameEndpointHost(network, name string) func([]byte) error {
	return func(v []byte) error {
		e, err := decodeEndpoint(network, name, v)
		if err == nil && e.Host == s.cfg.Host {
			return nil
		}
		return fmt.Errorf("%w: cluster network %q already has an endpoint %q, on host %q; choose another name", ErrExists, network, name, e.Host)
	}
}

// putOwned puts key under lease if the network exists and the key is
// absent or mine accepts its value, in a transaction on both: a record
// another host wrote meanwhile is never overwritten.
func (s *Store) putOwned(ctx context.Context, network, key string, val []byte, lease clientv3.LeaseID, mine func([]byte) error) error {
	netKey := s.k.network(network)
	for ctx.Err() == nil {
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(netKey), clientv3.OpGet(key)).Commit()
		if err != nil {
			return s.etcdErr(lease, err)
		}
		nets := resp.Responses[0].GetResponseRange().Kvs
		if len(nets) == 0 {
			return fmt.Errorf("%w: no cluster network %q", ErrNotFound, network)
		}
		var mod int64
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			if err := mine(kvs[0].Value); err != nil {
				return err
			}
			mod = kvs[0].ModRevision
		}
		tr, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(netKey), "=", nets[0].ModRevision),
			clientv3.Compare(clientv3.ModRevision(key), "=", mod),
		).Then(clientv3.OpPut(key, string(val), clientv3.WithLease(lease))).Commit()
		if err != nil {
			return s.etcdErr(lease, err)
		}
		if tr.Succeeded {
			return nil
		}
	}
	return s.unavailable(ctx.Err())
}

// deleteOwned deletes key if it is absent (nothing to do) or mine
// accepts its value.
func (s *Store) deleteOwned(ctx context.Context, key string, mine func([]byte) error) error {
	for ctx.Err() == nil {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return s.etcdErr(0, err)
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		if err := mine(resp.Kvs[0].Value); err != nil {
			return err
		}
		tr, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision),
		).Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return s.etcdErr(0, err)
		}
		if tr.Succeeded {
			return nil
		}
	}
	return s.unavailable(ctx.Err())
}
