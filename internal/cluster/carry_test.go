package cluster

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tapswitch/tapswitch/internal/etcdtest"
)

// TestLeaseCarriedOver: a store that stops without revoking (Detach)
// hands its lease to a new store of the same host (Config.Lease), as a
// daemon does to its successor: the new store keeps that lease alive
// instead of granting one, the host's record stays as it was, and no
// record of the host is deleted, even after several TTLs. The new
// store's connection counts from the old one's (Config.ConnectedSince),
// so that its views are settled at once. A lease that is gone (revoked)
// is not carried on: the store registers anew, and its connection counts
// from its own.
func TestLeaseCarriedOver(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	b := openStore(t, srv, "tsc-b", "10.0.0.2")
	ctx := context.Background()
	n := mustCreate(t, a, Network{Name: "front", Subnets: []Subnet{subnet("10.52.0.0/24")}})
	addr, err := a.AllocateAddr(ctx, "front", n.Subnets[0], "web")
	if err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{Network: "front", Name: "web", MAC: mac(1), IPs: []netip.Addr{addr}}
	if err := a.PutEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	before := waitView(t, b, "b sees a and web", func(v View) bool { return hasHost(v, "tsc-a") && hasEndpoint(v, "front", "web") })
	var since time.Time
	for _, h := range before.Hosts {
		if h.Name == "tsc-a" {
			since = h.Since
		}
	}
	lease := a.Lease()
	if lease == 0 {
		t.Fatal("Lease() = 0 on a registered store")
	}

	// Every deletion under the prefix from now on.
	get, err := b.cli.Get(ctx, string(b.k))
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var mu sync.Mutex
	var deleted []string
	wch := b.cli.Watch(wctx, string(b.k), clientv3.WithPrefix(), clientv3.WithRev(get.Header.Revision+1))
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for r := range wch {
			for _, ev := range r.Events {
				if ev.Type == clientv3.EventTypeDelete {
					mu.Lock()
					deleted = append(deleted, string(ev.Kv.Key))
					mu.Unlock()
				}
			}
		}
	}()

	st := a.Status()
	if !st.Connected {
		t.Fatalf("a.Status() = %+v, want connected", st)
	}
	// Old enough to be settled already (a TTL ago and more).
	time.Sleep(testTTL + 100*time.Millisecond)
	a.Detach()
	a2 := openStoreLease(t, srv, "tsc-a", "10.0.0.1", lease, st.Since)
	waitFor(t, "a2 registered", func() bool { return a2.Lease() != 0 })
	if got := a2.Lease(); got != lease {
		t.Fatalf("a2.Lease() = %x, want the lease carried over, %x", got, lease)
	}
	waitFor(t, "a2 connected", func() bool { return a2.Status().Connected })
	if got := a2.Status().Since; !got.Equal(st.Since) {
		t.Errorf("a2.Status().Since = %v, want a's connection carried on, %v", got, st.Since)
	}
	// As a successor does for its restored ports.
	if err := a2.ReserveAddr(ctx, "front", addr, "web"); err != nil {
		t.Fatalf("ReserveAddr of its own address under the carried lease: %v", err)
	}
	if err := a2.PutEndpoint(ctx, ep); err != nil {
		t.Fatalf("PutEndpoint of its own endpoint under the carried lease: %v", err)
	}
	time.Sleep(3 * testTTL)
	v := b.View()
	if !hasHost(v, "tsc-a") || !hasEndpoint(v, "front", "web") {
		t.Fatalf("b's view %v after the lease was carried over, want a's host and endpoint", v)
	}
	for _, h := range v.Hosts {
		if h.Name == "tsc-a" && !h.Since.Equal(since) {
			t.Errorf("a's host record since %v, want %v: it was put again", h.Since, since)
		}
	}
	for _, key := range []string{b.k.host("tsc-a"), b.k.addr("front", addr), b.k.endpoint("front", "web")} {
		r, err := b.cli.Get(ctx, key)
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("Get %s = %v, %v", key, r, err)
		}
		if got := clientv3.LeaseID(r.Kvs[0].Lease); got != clientv3.LeaseID(lease) {
			t.Errorf("%s under lease %x, want %x", key, got, lease)
		}
	}
	wcancel()
	<-watched
	mu.Lock()
	for _, k := range deleted {
		if strings.Contains(k, "tsc-a") || strings.Contains(k, "/web") || strings.Contains(k, addr.String()) {
			t.Errorf("%s deleted during the hand-over of the lease", k)
		}
	}
	mu.Unlock()

	// A lease that is gone is not carried on.
	if err := a2.Close(); err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	a3 := openStoreLease(t, srv, "tsc-a", "10.0.0.1", lease, st.Since)
	waitFor(t, "a3 registered", func() bool { return a3.Lease() != 0 })
	if got := a3.Lease(); got == lease {
		t.Fatalf("a3.Lease() = %x, the revoked lease; want a new one", got)
	}
	waitFor(t, "a3 connected", func() bool { return a3.Status().Connected })
	if got := a3.Status().Since; got.Before(opened) {
		t.Errorf("a3.Status().Since = %v, before it was opened (%v): the connection of a lease not carried on was", got, opened)
	}
	waitView(t, b, "b sees a again", func(v View) bool { return hasHost(v, "tsc-a") })
}

// TestCarriedConnectionNotAfterFailure: a store handed a lease and its
// predecessor's connection (Config.ConnectedSince) that cannot reach
// etcd at first was away after all: once it connects, carrying the
// lease on, its connection counts from then, not from the predecessor's.
func TestCarriedConnectionNotAfterFailure(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	waitFor(t, "a registered", func() bool { return a.Lease() != 0 && a.Status().Connected })
	st, lease := a.Status(), a.Lease()
	a.Detach()

	srv.Stop()
	a2 := openStoreLease(t, srv, "tsc-a", "10.0.0.1", lease, st.Since)
	waitFor(t, "a2 told etcd is away", func() bool { return a2.Status().LastError != "not connected yet" })
	back := time.Now()
	srv.Restart()
	waitFor(t, "a2 connected", func() bool { return a2.Status().Connected })
	if got := a2.Lease(); got != lease {
		t.Fatalf("a2.Lease() = %x, want the lease carried over, %x (etcd extends leases when it restarts)", got, lease)
	}
	if got := a2.Status().Since; got.Before(back) {
		t.Errorf("a2.Status().Since = %v, before etcd came back (%v): a store that was away carried its predecessor's connection on", got, back)
	}
}

// TestLeaseGone: a member's "lease not found" is taken only once a
// linearizable read shows the host's record gone from under the lease.
func TestLeaseGone(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	waitFor(t, "a registered", func() bool { return a.Lease() != 0 })
	lease := clientv3.LeaseID(a.Lease())
	if a.leaseGone(lease) {
		t.Errorf("leaseGone(%x) = true for the live host lease", int64(lease))
	}
	if !a.leaseGone(lease + 1) {
		t.Errorf("leaseGone(%x) = false for a lease the host record is not under", int64(lease+1))
	}
}
