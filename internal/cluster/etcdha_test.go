package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/etcdtest"
)

// haTTL is the lease TTL of the tests on a cluster of three members: as
// the multi-host tests use, and longer than an election (etcd's default
// election timeout is 1 s).
const haTTL = 3 * time.Second

// hungTTL is the lease TTL of TestEtcdClusterMemberHung. A hung
// leader takes longer to leave behind than a dead one: the others must
// miss it and elect a leader, the store must find it silent (a /health
// round) and move its streams, under a machine as loaded as CI's. The
// README asks for 10 s with several members; 6 s is still well under
// the 10 s and more gRPC alone takes to give up on a silent connection.
const hungTTL = 6 * time.Second

// openClusterStore opens a Store for host with every member's URL, under
// the test's own prefix, with lease TTL ttl, closed when the test ends.
func openClusterStore(t *testing.T, cl *etcdtest.Cluster, host, vtep string, ttl time.Duration) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{
		Endpoints: cl.URLs(),
		Host:      host,
		Advertise: netip.MustParseAddr(vtep),
		Prefix:    "/tsc/" + t.Name() + "/",
		TTL:       ttl,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("store", host),
	})
	if err != nil {
		t.Fatalf("Open(%s): %v", host, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// haWorld is two hosts' stores on a three-member etcd, and what each
// saw.
type haWorld struct {
	t     *testing.T
	ttl   time.Duration
	cl    *etcdtest.Cluster
	a, b  *Store
	net   Network
	views chan View
	// vanished is set when b's view, once it had host tsc-a and its
	// endpoint web, lacks either.
	vanished atomic.Value
	// addrs are every address allocated, by owner.
	mu    sync.Mutex
	addrs map[netip.Addr]string
	n     int
	// killed is set once a member was killed (see call).
	killed atomic.Bool
}

func newHAWorld(t *testing.T) *haWorld { return newHAWorldTTL(t, haTTL) }

// newHAWorldTTL is newHAWorld with the stores' lease TTL ttl.
func newHAWorldTTL(t *testing.T, ttl time.Duration) *haWorld {
	t.Helper()
	w := &haWorld{t: t, ttl: ttl, cl: etcdtest.StartCluster(t, etcdtest.ClusterOptions{Members: 3}), views: make(chan View, 1000), addrs: map[netip.Addr]string{}}
	w.a = openClusterStore(t, w.cl, "tsc-a", "10.0.0.1", ttl)
	w.b = openClusterStore(t, w.cl, "tsc-b", "10.0.0.2", ttl)
	w.net = mustCreate(t, w.a, Network{Name: "front", Subnets: []Subnet{subnet("10.61.0.0/24")}})
	if err := w.a.PutEndpoint(context.Background(), Endpoint{Network: "front", Name: "web", MAC: mac(1)}); err != nil {
		t.Fatalf("PutEndpoint(web): %v", err)
	}
	waitView(t, w.b, "b sees tsc-a and web", func(v View) bool { return hasHost(v, "tsc-a") && hasEndpoint(v, "front", "web") })
	w.b.Watch(func(v View) {
		if !hasHost(v, "tsc-a") || !hasEndpoint(v, "front", "web") {
			w.vanished.CompareAndSwap(nil, fmt.Sprintf("b's view lacks tsc-a or web: %+v", v))
		}
		select {
		case w.views <- v:
		default:
		}
	})
	waitFor(t, "both connected", func() bool { return w.a.Status().Connected && w.b.Status().Connected })
	return w
}

// leases are a's and b's host leases.
func (w *haWorld) leases() [2]int64 {
	return [2]int64{int64(w.a.currentLease()), int64(w.b.currentLease())}
}

// allocate has a and b allocate n addresses each, at once, and checks
// that no address went to two owners.
func (w *haWorld) allocate(n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for _, s := range []*Store{w.a, w.b} {
		wg.Go(func() {
			for range n {
				w.mu.Lock()
				w.n++
				owner := fmt.Sprintf("%s-%d", s.cfg.Host, w.n)
				w.mu.Unlock()
				var addr netip.Addr
				err := w.call(fmt.Sprintf("AllocateAddr(%s)", owner), func() (err error) {
					addr, err = s.AllocateAddr(context.Background(), "front", w.net.Subnets[0], owner)
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("%s: AllocateAddr: %w", owner, err)
					return
				}
				w.mu.Lock()
				if prev, dup := w.addrs[addr]; dup {
					errs <- fmt.Errorf("%s handed to both %s and %s", addr, prev, owner)
				}
				w.addrs[addr] = owner
				w.mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// works creates a network, allocates addresses on both hosts and
// publishes an endpoint that b's watch must see, all named after step;
// each call must succeed at its first attempt.
func (w *haWorld) works(step string) {
	t := w.t
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	name := "n-" + step
	if err := w.call("CreateNetwork("+name+")", func() error {
		_, err := w.a.CreateNetwork(ctx, Network{Name: name})
		return err
	}); err != nil {
		t.Fatalf("%s: CreateNetwork(%s): %v", step, name, err)
	}
	if err := w.allocate(5); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	ep := Endpoint{Network: "front", Name: "ep-" + step, MAC: mac(len(w.addrs))}
	if err := w.call("PutEndpoint("+ep.Name+")", func() error { return w.a.PutEndpoint(ctx, ep) }); err != nil {
		t.Fatalf("%s: PutEndpoint(%s): %v", step, ep.Name, err)
	}
	w.await(step+": b's watch sees "+ep.Name+" and network "+name, func(v View) bool {
		return hasEndpoint(v, "front", ep.Name) && hasNetwork(v, name)
	})
	t.Logf("%s: network, %d addresses in all, endpoint and watch in %v", step, len(w.addrs), time.Since(start))
}

// call makes a store call. Right after a member was killed (w.killed),
// a call the client had already put on that member's connection fails
// with the connection (EOF or a reset, not a refusal for want of a
// leader): etcd's client retries no write whose fate it cannot know, nor
// does the store. Such a failure is made once more, and logged; any other
// is returned as it is.
func (w *haWorld) call(what string, f func() error) error {
	err := f()
	if err == nil || !w.killed.Load() || !errors.Is(err, ErrUnavailable) || noLeader(err) {
		return err
	}
	w.t.Logf("%s failed on the connection to the member killed, made again: %v", what, err)
	return f()
}

// await waits for a view of b's watch that satisfies cond.
func (w *haWorld) await(what string, cond func(View) bool) {
	w.t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case v := <-w.views:
			if cond(v) {
				return
			}
		case <-deadline:
			w.t.Fatalf("%s: not seen within %v", what, waitLimit)
		}
	}
}

// intact fails the test if a record of tsc-a vanished from b's view, or
// a host lease changed since before.
func (w *haWorld) intact(step string, before [2]int64) {
	w.t.Helper()
	if v := w.vanished.Load(); v != nil {
		w.t.Fatalf("%s: %s", step, v)
	}
	if after := w.leases(); after != before {
		w.t.Fatalf("%s: host leases %x, before %x: a lease was lost", step, after, before)
	}
	v := w.b.View()
	if !hasHost(v, "tsc-a") || !hasHost(v, "tsc-b") || !hasEndpoint(v, "front", "web") {
		w.t.Fatalf("%s: b's view %+v lacks a host or web", step, v)
	}
}

// TestEtcdClusterLeaderLoss: with the etcd leader killed, a Store given
// all three members goes on: a call made during the election waits for
// it; once another member leads, networks,
// addresses (no duplicates), endpoints and the watch work (a call caught
// on the killed member's connection made once more, see call), and no record of a host vanished (its lease lived through the
// change of leader). Then the same with a follower killed, which does not
// even interrupt the store.
func TestEtcdClusterLeaderLoss(t *testing.T) {
	w := newHAWorld(t)
	w.works("before")
	before := w.leases()

	l := w.cl.Leader()
	leader := w.cl.Member(l)
	killed := time.Now()
	w.killed.Store(true)
	leader.Kill()
	// A call made during the election waits for it, within its bound.
	if _, err := w.a.CreateNetwork(context.Background(), Network{Name: "n-election"}); err != nil {
		t.Fatalf("leader %s killed; CreateNetwork right after it: %v", leader.Name(), err)
	}
	t.Logf("leader %s killed; a CreateNetwork right after it succeeded after %v", leader.Name(), time.Since(killed))
	nl := w.cl.Leader()
	t.Logf("%s leads %v after the kill", w.cl.Member(nl).Name(), time.Since(killed))
	w.works("leader-killed")
	// Longer than the TTL since the kill: an expired lease would show.
	time.Sleep(time.Until(killed.Add(2 * haTTL)))
	w.intact("leader killed", before)
	if st := w.a.Status(); !st.Connected || st.LastError != "" {
		t.Fatalf("a's Status() with the leader killed = %+v, want connected", st)
	}

	leader.Restart()
	w.cl.WaitHealthy()
	w.works("leader-back")

	f := w.cl.Followers()[0]
	follower := w.cl.Member(f)
	w.outage("follower-killed", follower, follower.Kill, follower.Restart, before)
	w.intact("follower back", before)
}

// outage takes member m out with lose, checks that the store works
// meanwhile (step) and that after longer than a TTL no record vanished,
// no lease changed and a's Status is connected, then brings m back with
// back and checks that the store works again.
func (w *haWorld) outage(step string, m *etcdtest.Server, lose, back func(), before [2]int64) {
	t := w.t
	t.Helper()
	start := time.Now()
	lose()
	t.Logf("%s: member %s out", step, m.Name())
	w.works(step)
	t.Logf("%s: the store worked %v after", step, time.Since(start))
	// Longer than the TTL since: an expired lease would show.
	time.Sleep(time.Until(start.Add(2 * w.ttl)))
	w.intact(step, before)
	if st := w.a.Status(); !st.Connected || st.LastError != "" {
		t.Fatalf("%s: a's Status() = %+v, want connected", step, st)
	}
	back()
	w.cl.WaitHealthy()
	w.works(step + "-back")
}

// TestEtcdClusterMemberHung: a member that stops answering without
// closing its connections (paused, as when a partition cuts it off) is
// left out as one that died is (members.go): with the leader hung,
// another member leads, and networks, addresses, endpoints and the watch
// work (a call caught on the hung member's connection made once more,
// see call); no host lease is lost, nor does a's Status show the store
// disconnected. The leader, restarted, catches up; a follower hung and
// let run again changes nothing either.
func TestEtcdClusterMemberHung(t *testing.T) {
	w := newHAWorldTTL(t, hungTTL)
	w.works("before")
	before := w.leases()
	// Calls in flight on the hung member's connections fail with it.
	w.killed.Store(true)
	leader := w.cl.Member(w.cl.Leader())
	// The hung leader is not let run again but restarted: one that runs
	// again after a pause of several TTLs may still take itself for the
	// leader for a moment, and the hosts may have to register again once
	// (see the README), which is not what this test is about.
	w.outage("leader-hung", leader, leader.Pause, func() { leader.Kill(); leader.Restart() }, before)
	follower := w.cl.Member(w.cl.Followers()[0])
	w.outage("follower-hung", follower, follower.Pause, follower.Resume, before)
	w.intact("follower back", before)
}

// TestEtcdClusterNoQuorum: with two of three members killed, etcd has no
// quorum: the store's calls fail within their bound with ErrUnavailable
// saying etcd has no leader and what it needs, Status shows it, and b's view stays the last one read. With one
// member back (quorum again) everything works, and no record vanished,
// however long the outage: without a leader no lease expires.
func TestEtcdClusterNoQuorum(t *testing.T) {
	w := newHAWorld(t)
	w.works("before")
	before := w.leases()

	l := w.cl.Leader()
	down := []*etcdtest.Server{w.cl.Member(l), w.cl.Member(w.cl.Followers()[0])}
	killed := time.Now()
	w.killed.Store(true)
	for _, m := range down {
		m.Kill()
	}
	t.Logf("%s (the leader) and %s killed", down[0].Name(), down[1].Name())
	waitFor(t, "a sees the store down", func() bool { return !w.a.Status().Connected })
	st := w.a.Status()
	t.Logf("a's Status() %v after the kill: %+v", time.Since(killed), st)
	if st.LastError == "" || !st.Since.After(killed) {
		t.Fatalf("a's Status() without quorum = %+v, want not connected with an error, since the kill", st)
	}
	calls := []struct {
		what string
		do   func(ctx context.Context) error
	}{
		{"CreateNetwork", func(ctx context.Context) error {
			_, err := w.a.CreateNetwork(ctx, Network{Name: "n-noquorum"})
			return err
		}},
		{"AllocateAddr", func(ctx context.Context) error {
			_, err := w.b.AllocateAddr(ctx, "front", w.net.Subnets[0], "noquorum")
			return err
		}},
		{"PutEndpoint", func(ctx context.Context) error {
			return w.a.PutEndpoint(ctx, Endpoint{Network: "front", Name: "ep-noquorum", MAC: mac(200)})
		}},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.do(context.Background())
		took := time.Since(start)
		t.Logf("%s without quorum after %v: %v", c.what, took, err)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s without quorum = %v, want ErrUnavailable", c.what, err)
		}
		for _, want := range []string{strings.Join(w.cl.URLs(), ","), "has no leader", "a majority of its members must be up"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("%s without quorum = %v, want it to say %q", c.what, err, want)
			}
		}
		if took > opTimeout+2*time.Second {
			t.Fatalf("%s without quorum took %v, want it to fail within its bound of %v", c.what, took, opTimeout)
		}
	}
	waitFor(t, "a's Status() says etcd has no leader", func() bool { return strings.Contains(w.a.Status().LastError, "etcd has no leader") })
	t.Logf("a's Status() without quorum: %+v", w.a.Status())
	if v := w.b.View(); !hasHost(v, "tsc-a") || !hasEndpoint(v, "front", "web") || !hasNetwork(v, "n-before") {
		t.Fatalf("b's view without quorum = %+v, want the last one read", v)
	}
	// Longer than the TTL: a lease could expire if etcd let it.
	time.Sleep(time.Until(killed.Add(3 * haTTL)))
	if st := w.b.Status(); st.Connected {
		t.Fatalf("b's Status() without quorum = %+v, want not connected", st)
	}

	back := time.Now()
	down[1].Restart()
	waitFor(t, "a and b connected again", func() bool { return w.a.Status().Connected && w.b.Status().Connected })
	t.Logf("quorum back (%s restarted): both connected %v after", down[1].Name(), time.Since(back))
	if st := w.a.Status(); st.LastError != "" || !st.Since.After(back) {
		t.Fatalf("a's Status() with quorum back = %+v, want connected since then, no error", st)
	}
	w.works("quorum-back")
	w.intact("quorum back", before)
	if !slices.ContainsFunc(w.a.View().Hosts, func(h Host) bool { return h.Name == "tsc-b" }) {
		t.Fatalf("a's view lacks tsc-b with quorum back")
	}
	down[0].Restart()
	w.cl.WaitHealthy()
	w.works("all-back")
}
