package cluster

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// coalesce is how long a watcher waits after a change for more before it
// calls its function: a host joining or a network being removed arrives
// as a burst of events, and one call with the result is what the daemon
// wants. Short enough that nobody waits for it.
const coalesce = 20 * time.Millisecond

// cache holds the decoded hosts, networks and endpoints, by key.
type cache struct {
	hosts     map[string]Host
	networks  map[string]Network
	endpoints map[string]Endpoint
}

func newCache() cache {
	return cache{hosts: map[string]Host{}, networks: map[string]Network{}, endpoints: map[string]Endpoint{}}
}

// apply records one key's new value (nil: deleted) and reports whether
// the view changed. Values that do not decode are logged and dropped.
func (s *Store) apply(c *cache, key, value []byte, deleted bool) bool {
	rel, ok := strings.CutPrefix(string(key), s.cfg.Prefix)
	if !ok {
		return false
	}
	pk := parseKey(rel)
	switch pk.kind {
	case kindHost:
		_, had := c.hosts[pk.name]
		delete(c.hosts, pk.name)
		if deleted {
			return had
		}
		h, err := decodeHost(pk.name, value)
		if err != nil {
			s.log.Warn("cluster store: ignoring a host record", "key", string(key), "err", err)
			return had
		}
		c.hosts[pk.name] = h
		return true
	case kindNetwork:
		_, had := c.networks[pk.name]
		delete(c.networks, pk.name)
		if deleted {
			return had
		}
		n, err := decodeNetwork(pk.name, value)
		if err != nil {
			s.log.Warn("cluster store: ignoring a network record", "key", string(key), "err", err)
			return had
		}
		c.networks[pk.name] = n
		return true
	case kindEndpoint:
		k := pk.network + "/" + pk.name
		_, had := c.endpoints[k]
		delete(c.endpoints, k)
		if deleted {
			return had
		}
		e, err := decodeEndpoint(pk.network, pk.name, value)
		if err != nil {
			s.log.Warn("cluster store: ignoring an endpoint record", "key", string(key), "err", err)
			return had
		}
		c.endpoints[k] = e
		return true
	}
	return false
}

// View returns the cached view: every host, network and endpoint as last
// read, sorted by name. While etcd is unreachable it is the last one read.
// The caller owns the returned slices.
func (s *Store) View() View {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v View
	for _, h := range s.cache.hosts {
		v.Hosts = append(v.Hosts, h)
	}
	for _, n := range s.cache.networks {
		n.Subnets = slices.Clone(n.Subnets)
		v.Networks = append(v.Networks, n)
	}
	for _, e := range s.cache.endpoints {
		e.MAC = slices.Clone(e.MAC)
		e.IPs = slices.Clone(e.IPs)
		v.Endpoints = append(v.Endpoints, e)
	}
	slices.SortFunc(v.Hosts, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(v.Networks, func(a, b Network) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(v.Endpoints, func(a, b Endpoint) int {
		return cmp.Or(strings.Compare(a.Network, b.Network), strings.Compare(a.Name, b.Name))
	})
	return v
}

// watchLoop follows the prefix from a revision.
type watchLoop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *watchLoop) stop() {
	w.cancel()
	<-w.done
}

// startWatch reads everything under the prefix, replaces the cache with
// it and follows changes from the revision read.
func (s *Store) startWatch() (*watchLoop, error) {
	ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	resp, err := s.cli.Get(ctx, s.cfg.Prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return nil, err
	}
	c := newCache()
	for _, kv := range resp.Kvs {
		s.apply(&c, kv.Key, kv.Value, false)
	}
	s.mu.Lock()
	s.cache = c
	s.mu.Unlock()
	s.notify()

	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(s.ctx))
	w := &watchLoop{cancel: wcancel, done: make(chan struct{})}
	wch := s.cli.Watch(wctx, s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1), clientv3.WithPrevKV())
	go func() {
		defer close(w.done)
		for wr := range wch {
			if err := wr.Err(); err != nil {
				if wctx.Err() == nil {
					s.log.Warn("cluster store watch ended; reading the store again", "err", err)
					s.askResync()
				}
				return
			}
			s.mu.Lock()
			changed := false
			for _, ev := range wr.Events {
				changed = s.apply(&s.cache, ev.Kv.Key, ev.Kv.Value, ev.Type == mvccpb.DELETE) || changed
			}
			s.mu.Unlock()
			if changed {
				s.notify()
			}
		}
		if wctx.Err() == nil {
			s.askResync()
		}
	}()
	return w, nil
}

func (s *Store) askResync() {
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// watcher calls one Watch function.
type watcher struct {
	fn   func(View)
	wake chan struct{}
}

// Watch calls fn with the whole view before it returns, and again after
// every change, bursts of changes coalesced into one call. Calls to one
// fn never overlap; fn must not call Close. While etcd is unreachable
// the last view stands and fn is not called. Watching ends when the
// store closes.
func (s *Store) Watch(fn func(View)) {
	w := &watcher{fn: fn, wake: make(chan struct{}, 1)}
	s.mu.Lock()
	s.watchFns = append(s.watchFns, w)
	s.mu.Unlock()
	first := make(chan struct{})
	s.watchers.Add(1)
	go func() {
		defer s.watchers.Done()
		fn(s.View())
		close(first)
		t := time.NewTimer(coalesce)
		t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-w.wake:
			}
			t.Reset(coalesce)
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
			select {
			case <-w.wake:
			default:
			}
			fn(s.View())
		}
	}()
	<-first
}

// notify wakes every watcher.
func (s *Store) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.watchFns {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}
