package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tapswitch/tapswitch/internal/etcdtest"
)

// testTTL keeps lease tests short: the shortest TTL etcd grants.
const testTTL = 2 * time.Second

// waitLimit bounds every wait for the store to reach a state; reaching it
// is what a test asserts, never how fast.
const waitLimit = 30 * time.Second

// openStore opens a Store for host on srv under the test's own prefix,
// closed when the test ends.
func openStore(t *testing.T, srv *etcdtest.Server, host string, vtep string) *Store {
	t.Helper()
	return openStoreLease(t, srv, host, vtep, 0, time.Time{})
}

// openStoreLease is openStore carrying on lease (Config.Lease).
func openStoreLease(t *testing.T, srv *etcdtest.Server, host string, vtep string, lease int64, since time.Time) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{
		Lease:          lease,
		ConnectedSince: since,
		Endpoints:      []string{srv.URL()},
		Host:           host,
		Advertise:      netip.MustParseAddr(vtep),
		Prefix:         "/tsc/" + t.Name() + "/",
		TTL:            testTTL,
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("store", host),
	})
	if err != nil {
		t.Fatalf("Open(%s): %v", host, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testWriter sends log lines to t.Log, so they show with a failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > waitLimit {
			t.Fatalf("%s: not reached within %v", what, waitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// waitView waits until s's view satisfies cond.
func waitView(t *testing.T, s *Store, what string, cond func(View) bool) View {
	t.Helper()
	var v View
	waitFor(t, what, func() bool { v = s.View(); return cond(v) })
	return v
}

func hasHost(v View, name string) bool {
	return slices.ContainsFunc(v.Hosts, func(h Host) bool { return h.Name == name })
}

func hasNetwork(v View, name string) bool {
	return slices.ContainsFunc(v.Networks, func(n Network) bool { return n.Name == name })
}

func hasEndpoint(v View, network, name string) bool {
	return slices.ContainsFunc(v.Endpoints, func(e Endpoint) bool { return e.Network == network && e.Name == name })
}

func mustCreate(t *testing.T, s *Store, n Network) Network {
	t.Helper()
	got, err := s.CreateNetwork(context.Background(), n)
	if err != nil {
		t.Fatalf("CreateNetwork(%s): %v", n.Name, err)
	}
	return got
}

func subnet(p string) Subnet { return Subnet{Prefix: netip.MustParsePrefix(p)} }

func mac(i int) net.HardwareAddr { return net.HardwareAddr{0x02, 0x74, 0x73, 0x63, 0, byte(i)} }

func TestOpenRefusesBadConfig(t *testing.T) {
	good := Config{Endpoints: []string{"http://127.0.0.1:2379"}, Host: "h1", Advertise: netip.MustParseAddr("10.0.0.1")}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"no endpoints", func(c *Config) { c.Endpoints = nil }},
		{"not a URL", func(c *Config) { c.Endpoints = []string{"127.0.0.1:2379"} }},
		{"no host", func(c *Config) { c.Host = "" }},
		{"slash in host", func(c *Config) { c.Host = "a/b" }},
		{"no advertise", func(c *Config) { c.Advertise = netip.Addr{} }},
		{"unspecified advertise", func(c *Config) { c.Advertise = netip.IPv4Unspecified() }},
		{"TTL too short", func(c *Config) { c.TTL = time.Second }},
		{"TTL not whole seconds", func(c *Config) { c.TTL = 2500 * time.Millisecond }},
		{"TLS with http", func(c *Config) { c.TLS = &tls.Config{} }},
		{"user without password", func(c *Config) { c.Username = "h1" }},
		{"password without user", func(c *Config) { c.Password = "secret" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			s, err := Open(context.Background(), c)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%+v) succeeded, want ErrInvalid", c)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Open(%+v) = %v, want ErrInvalid", c, err)
			}
		})
	}
}

// TestOpenWithoutEtcd: Open succeeds with nothing listening, Status says
// so, and a call that needs etcd fails with ErrUnavailable naming the
// URL, within its bound.
func TestOpenWithoutEtcd(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	s, err := Open(context.Background(), Config{Endpoints: []string{url}, Host: "h1", Advertise: netip.MustParseAddr("10.0.0.1"), TTL: testTTL})
	if err != nil {
		t.Fatalf("Open with etcd down: %v", err)
	}
	defer s.Close()
	if st := s.Status(); st.Connected || st.LastError == "" || !slices.Equal(st.Endpoints, []string{url}) {
		t.Fatalf("Status() = %+v, want not connected, with an error and the endpoint", st)
	}
	start := time.Now()
	_, err = s.CreateNetwork(context.Background(), Network{Name: "front"})
	t.Logf("CreateNetwork with etcd down failed after %v", time.Since(start))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "unaffected") {
		t.Fatalf("CreateNetwork with etcd down = %v, want ErrUnavailable naming %s and saying what still works", err, url)
	}
	_, err = s.AllocateAddr(context.Background(), "front", subnet("10.40.0.0/24"), "web")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AllocateAddr with etcd down = %v, want ErrUnavailable", err)
	}
}

// TestNetworks creates and removes networks from two hosts: VNIs picked
// and given, conflicts refused, removal seen by the other host with the
// network's addresses and endpoints.
func TestNetworks(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	b := openStore(t, srv, "tsc-b", "10.0.0.2")
	ctx := context.Background()

	front := mustCreate(t, a, Network{Name: "front", Subnets: []Subnet{subnet("10.40.0.0/24")}})
	if front.VNI != firstAutoVNI || front.Subnets[0].Gateway != netip.MustParseAddr("10.40.0.1") {
		t.Fatalf("CreateNetwork(front) = %+v, want VNI %d and gateway 10.40.0.1", front, firstAutoVNI)
	}
	back := mustCreate(t, b, Network{Name: "back", Subnets: []Subnet{subnet("10.41.0.0/24")}})
	if back.VNI != firstAutoVNI+1 {
		t.Fatalf("second network's VNI = %d, want %d", back.VNI, firstAutoVNI+1)
	}
	given := mustCreate(t, b, Network{Name: "given", VNI: 42, Internal: true})
	if given.VNI != 42 {
		t.Fatalf("CreateNetwork(VNI 42) = VNI %d", given.VNI)
	}

	for _, tc := range []struct {
		name string
		n    Network
		want error
	}{
		{"same name", Network{Name: "front", Subnets: []Subnet{subnet("10.50.0.0/24")}}, ErrExists},
		{"same VNI", Network{Name: "other", VNI: front.VNI}, ErrVNIInUse},
		{"overlapping subnet", Network{Name: "other", Subnets: []Subnet{subnet("10.40.0.128/25")}}, ErrOverlap},
		{"wider overlapping subnet", Network{Name: "other", Subnets: []Subnet{subnet("10.40.0.0/16")}}, ErrOverlap},
		{"VNI out of range", Network{Name: "other", VNI: 1 << 24}, ErrInvalid},
		{"subnet not a network address", Network{Name: "other", Subnets: []Subnet{subnet("10.60.0.1/24")}}, ErrInvalid},
		{"slash in name", Network{Name: "a/b"}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.CreateNetwork(ctx, tc.n)
			if !errors.Is(err, tc.want) {
				t.Fatalf("CreateNetwork(%+v) = %v, want %v", tc.n, err, tc.want)
			}
		})
	}

	v := waitView(t, b, "b sees front", func(v View) bool { return hasNetwork(v, "front") && len(v.Networks) == 3 })
	if got := v.Networks[slices.IndexFunc(v.Networks, func(n Network) bool { return n.Name == "front" })]; got.VNI != front.VNI || !slices.Equal(got.Subnets, front.Subnets) {
		t.Fatalf("b's view of front = %+v, want %+v", got, front)
	}

	addr, err := b.AllocateAddr(ctx, "front", front.Subnets[0], "db")
	if err != nil {
		t.Fatalf("AllocateAddr: %v", err)
	}
	if err := b.PutEndpoint(ctx, Endpoint{Network: "front", Name: "db", MAC: mac(1), IPs: []netip.Addr{addr}}); err != nil {
		t.Fatalf("PutEndpoint: %v", err)
	}
	waitView(t, a, "a sees db", func(v View) bool { return hasEndpoint(v, "front", "db") })

	if err := a.RemoveNetwork(ctx, "front"); err != nil {
		t.Fatalf("RemoveNetwork(front): %v", err)
	}
	waitView(t, b, "front and db gone from b's view", func(v View) bool {
		return !hasNetwork(v, "front") && !hasEndpoint(v, "front", "db") && hasNetwork(v, "back")
	})
	if err := a.RemoveNetwork(ctx, "front"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveNetwork of a removed network = %v, want ErrNotFound", err)
	}
	if _, err := b.AllocateAddr(ctx, "front", front.Subnets[0], "db2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AllocateAddr in a removed network = %v, want ErrNotFound", err)
	}
	if err := b.PutEndpoint(ctx, Endpoint{Network: "front", Name: "db", MAC: mac(1)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PutEndpoint in a removed network = %v, want ErrNotFound", err)
	}
	// The VNI and the subnet are free again, and no address survived.
	again := mustCreate(t, b, Network{Name: "front2", VNI: front.VNI, Subnets: []Subnet{subnet("10.40.0.0/24")}})
	a2, err := a.AllocateAddr(ctx, "front2", again.Subnets[0], "web")
	if err != nil || a2 != netip.MustParseAddr("10.40.0.2") {
		t.Fatalf("first AllocateAddr in a re-created subnet = %v, %v, want 10.40.0.2", a2, err)
	}
}

// TestAllocateRace: two hosts allocate 50 addresses each from one /24 at
// once. No address is handed out twice, and together they hold the 100
// lowest host addresses after the gateway.
func TestAllocateRace(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	b := openStore(t, srv, "tsc-b", "10.0.0.2")
	n := mustCreate(t, a, Network{Name: "race", Subnets: []Subnet{subnet("10.42.0.0/24")}})

	var mu sync.Mutex
	got := map[netip.Addr]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for _, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				owner := fmt.Sprintf("%s-%d", s.cfg.Host, i)
				addr, err := s.AllocateAddr(context.Background(), "race", n.Subnets[0], owner)
				if err != nil {
					errs <- fmt.Errorf("%s: AllocateAddr: %w", owner, err)
					return
				}
				mu.Lock()
				if prev, dup := got[addr]; dup {
					errs <- fmt.Errorf("%s handed to both %s and %s", addr, prev, owner)
				}
				got[addr] = owner
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(got) != 100 {
		t.Fatalf("%d distinct addresses, want 100", len(got))
	}
	want := netip.MustParseAddr("10.42.0.2")
	for range 100 {
		if _, ok := got[want]; !ok {
			t.Errorf("%s not handed out; want the 100 lowest after the gateway (10.42.0.2 to 10.42.0.101)", want)
		}
		want = want.Next()
	}
}

// TestReserveRelease: static addresses are held per host and owner;
// allocation skips them; the network, broadcast and gateway addresses are
// refused.
func TestReserveRelease(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	b := openStore(t, srv, "tsc-b", "10.0.0.2")
	ctx := context.Background()
	n := mustCreate(t, a, Network{Name: "front", Subnets: []Subnet{{Prefix: netip.MustParsePrefix("10.43.0.0/24"), Gateway: netip.MustParseAddr("10.43.0.254")}}})
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }

	if err := a.ReserveAddr(ctx, "front", ip("10.43.0.1"), "web"); err != nil {
		t.Fatalf("ReserveAddr(.1): %v", err)
	}
	if err := b.ReserveAddr(ctx, "front", ip("10.43.0.1"), "db"); !errors.Is(err, ErrInUse) {
		t.Fatalf("ReserveAddr of a's address by b = %v, want ErrInUse", err)
	}
	if err := a.ReserveAddr(ctx, "front", ip("10.43.0.1"), "other"); !errors.Is(err, ErrInUse) {
		t.Fatalf("ReserveAddr of web's address for another owner = %v, want ErrInUse", err)
	}
	if err := a.ReserveAddr(ctx, "front", ip("10.43.0.1"), "web"); err != nil {
		t.Fatalf("ReserveAddr again by the same host and owner (a restart) = %v, want nil", err)
	}
	for _, bad := range []string{"10.43.0.0", "10.43.0.255", "10.43.0.254", "10.44.0.1"} {
		if err := a.ReserveAddr(ctx, "front", ip(bad), "x"); !errors.Is(err, ErrInvalid) {
			t.Errorf("ReserveAddr(%s) = %v, want ErrInvalid", bad, err)
		}
	}
	if got, err := b.AllocateAddr(ctx, "front", n.Subnets[0], "db"); err != nil || got != ip("10.43.0.2") {
		t.Fatalf("AllocateAddr beside a reserved .1 = %v, %v, want 10.43.0.2", got, err)
	}
	if err := b.ReleaseAddr(ctx, "front", ip("10.43.0.1")); !errors.Is(err, ErrInUse) {
		t.Fatalf("ReleaseAddr of a's address by b = %v, want ErrInUse", err)
	}
	if err := a.ReleaseAddr(ctx, "front", ip("10.43.0.1")); err != nil {
		t.Fatalf("ReleaseAddr: %v", err)
	}
	if err := a.ReleaseAddr(ctx, "front", ip("10.43.0.1")); err != nil {
		t.Fatalf("ReleaseAddr again = %v, want nil", err)
	}
	if err := b.ReserveAddr(ctx, "front", ip("10.43.0.1"), "db2"); err != nil {
		t.Fatalf("ReserveAddr of a released address: %v", err)
	}
}

// TestAllocateFull: a /30 holds one address besides its gateway.
func TestAllocateFull(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	n := mustCreate(t, a, Network{Name: "tiny", Subnets: []Subnet{subnet("10.45.0.0/30")}})
	if got, err := a.AllocateAddr(context.Background(), "tiny", n.Subnets[0], "p1"); err != nil || got != netip.MustParseAddr("10.45.0.2") {
		t.Fatalf("AllocateAddr = %v, %v, want 10.45.0.2", got, err)
	}
	if _, err := a.AllocateAddr(context.Background(), "tiny", n.Subnets[0], "p2"); !errors.Is(err, ErrFull) {
		t.Fatalf("AllocateAddr in a full subnet = %v, want ErrFull", err)
	}
	if _, err := a.AllocateAddr(context.Background(), "tiny", subnet("10.46.0.0/24"), "p2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AllocateAddr in a subnet the network lacks = %v, want ErrNotFound", err)
	}
}

// TestEndpointWatch: an endpoint put and deleted on one host reaches the
// other's Watch function; a name taken on one host is refused on another.
func TestEndpointWatch(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	b := openStore(t, srv, "tsc-b", "10.0.0.2")
	ctx := context.Background()
	mustCreate(t, a, Network{Name: "front", Subnets: []Subnet{subnet("10.47.0.0/24")}})

	views := make(chan View, 100)
	calls := 0
	b.Watch(func(v View) {
		calls++
		select {
		case views <- v:
		default:
		}
	})
	if calls != 1 {
		t.Fatalf("Watch returned after %d calls, want 1 (the current view)", calls)
	}
	await := func(what string, cond func(View) bool) View {
		t.Helper()
		deadline := time.After(waitLimit)
		for {
			select {
			case v := <-views:
				if cond(v) {
					return v
				}
			case <-deadline:
				t.Fatalf("Watch: %s not seen within %v", what, waitLimit)
			}
		}
	}

	web := Endpoint{Network: "front", Name: "web", MAC: mac(7), IPs: []netip.Addr{netip.MustParseAddr("10.47.0.2")}}
	if err := a.PutEndpoint(ctx, web); err != nil {
		t.Fatalf("PutEndpoint: %v", err)
	}
	v := await("web", func(v View) bool { return hasEndpoint(v, "front", "web") })
	e := v.Endpoints[slices.IndexFunc(v.Endpoints, func(e Endpoint) bool { return e.Name == "web" })]
	if e.Host != "tsc-a" || e.VTEP != netip.MustParseAddr("10.0.0.1") || e.MAC.String() != web.MAC.String() || !slices.Equal(e.IPs, web.IPs) {
		t.Fatalf("b's view of web = %+v, want host tsc-a, VTEP 10.0.0.1, %s, %v", e, web.MAC, web.IPs)
	}
	if !hasHost(v, "tsc-a") || !hasHost(v, "tsc-b") || hostVTEP(v, "tsc-b") != netip.MustParseAddr("10.0.0.2") {
		t.Fatalf("b's view of the hosts = %+v, want tsc-a and tsc-b (10.0.0.2)", v.Hosts)
	}

	if err := b.PutEndpoint(ctx, Endpoint{Network: "front", Name: "web", MAC: mac(8)}); !errors.Is(err, ErrExists) {
		t.Fatalf("PutEndpoint of a's web on b = %v, want ErrExists", err)
	}
	if err := b.DeleteEndpoint(ctx, "front", "web"); !errors.Is(err, ErrInUse) {
		t.Fatalf("DeleteEndpoint of a's web on b = %v, want ErrInUse", err)
	}
	web.MAC = mac(9)
	if err := a.PutEndpoint(ctx, web); err != nil {
		t.Fatalf("PutEndpoint again (a new MAC): %v", err)
	}
	await("web's new MAC", func(v View) bool {
		i := slices.IndexFunc(v.Endpoints, func(e Endpoint) bool { return e.Name == "web" })
		return i >= 0 && v.Endpoints[i].MAC.String() == mac(9).String()
	})
	if err := a.DeleteEndpoint(ctx, "front", "web"); err != nil {
		t.Fatalf("DeleteEndpoint: %v", err)
	}
	await("web gone", func(v View) bool { return !hasEndpoint(v, "front", "web") })
	if err := a.DeleteEndpoint(ctx, "front", "web"); err != nil {
		t.Fatalf("DeleteEndpoint again = %v, want nil", err)
	}
}

// TestCloseLeaves: a closed store's host, endpoints and addresses leave
// at once (its lease is revoked).
func TestCloseLeaves(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	b := openStore(t, srv, "tsc-b", "10.0.0.2")
	ctx := context.Background()
	n := mustCreate(t, a, Network{Name: "front", Subnets: []Subnet{subnet("10.48.0.0/24")}})
	addr, err := a.AllocateAddr(ctx, "front", n.Subnets[0], "web")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PutEndpoint(ctx, Endpoint{Network: "front", Name: "web", MAC: mac(1), IPs: []netip.Addr{addr}}); err != nil {
		t.Fatal(err)
	}
	waitView(t, b, "b sees a and web", func(v View) bool { return hasHost(v, "tsc-a") && hasEndpoint(v, "front", "web") })

	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close again: %v", err)
	}
	if _, err := a.CreateNetwork(ctx, Network{Name: "late"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("CreateNetwork after Close = %v, want ErrUnavailable", err)
	}
	took := waitFor(t, "a and web gone from b's view", func() bool {
		v := b.View()
		return !hasHost(v, "tsc-a") && !hasEndpoint(v, "front", "web") && hasNetwork(v, "front")
	})
	t.Logf("host gone from the other's view %v after Close (TTL %v)", took, testTTL)
	if err := b.ReserveAddr(ctx, "front", addr, "db"); err != nil {
		t.Fatalf("ReserveAddr of the closed host's address: %v", err)
	}
}

// TestDeadHostExpires: a store that stops without revoking (its process
// died) leaves when its lease expires.
func TestDeadHostExpires(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	b := openStore(t, srv, "tsc-b", "10.0.0.2")
	mustCreate(t, a, Network{Name: "front"})
	if err := a.PutEndpoint(context.Background(), Endpoint{Network: "front", Name: "web", MAC: mac(1)}); err != nil {
		t.Fatal(err)
	}
	waitView(t, b, "b sees a", func(v View) bool { return hasHost(v, "tsc-a") && hasEndpoint(v, "front", "web") })
	a.Detach()
	took := waitFor(t, "dead host gone from b's view", func() bool {
		v := b.View()
		return !hasHost(v, "tsc-a") && !hasEndpoint(v, "front", "web")
	})
	t.Logf("dead host gone from the other's view %v after it stopped (TTL %v)", took, testTTL)
}

// TestLeaseLostRepublishes: when etcd loses the host's lease (here:
// revoked from outside), the store registers again and puts its
// endpoints and addresses back, except an address another host took in
// the meantime.
func TestLeaseLostRepublishes(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	b := openStore(t, srv, "tsc-b", "10.0.0.2")
	ctx := context.Background()
	n := mustCreate(t, a, Network{Name: "front", Subnets: []Subnet{subnet("10.49.0.0/24")}})
	kept, err := a.AllocateAddr(ctx, "front", n.Subnets[0], "web")
	if err != nil {
		t.Fatal(err)
	}
	taken, err := a.AllocateAddr(ctx, "front", n.Subnets[0], "web2")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PutEndpoint(ctx, Endpoint{Network: "front", Name: "web", MAC: mac(1), IPs: []netip.Addr{kept}}); err != nil {
		t.Fatal(err)
	}
	waitView(t, b, "b sees web", func(v View) bool { return hasEndpoint(v, "front", "web") })

	// Hold a's records still, so that b takes one of a's addresses before
	// a can put them back.
	a.opMu.Lock()
	old := a.currentLease()
	if _, err := b.cli.Revoke(ctx, old); err != nil {
		a.opMu.Unlock()
		t.Fatalf("Revoke a's lease: %v", err)
	}
	waitView(t, b, "a's host and endpoint gone", func(v View) bool { return !hasHost(v, "tsc-a") && !hasEndpoint(v, "front", "web") })
	if err := b.ReserveAddr(ctx, "front", taken, "db"); err != nil {
		a.opMu.Unlock()
		t.Fatalf("ReserveAddr of a's expired address by b: %v", err)
	}
	a.opMu.Unlock()

	waitView(t, b, "a and web back", func(v View) bool { return hasHost(v, "tsc-a") && hasEndpoint(v, "front", "web") })
	lease := a.currentLease()
	if lease == 0 || lease == old {
		t.Fatalf("a's lease after re-registering = %x, want a new one (old %x)", lease, old)
	}
	for _, tc := range []struct {
		addr netip.Addr
		host string
	}{{kept, "tsc-a"}, {taken, "tsc-b"}} {
		resp, err := b.cli.Get(ctx, b.k.addr("front", tc.addr))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("Get address %s = %v, %v", tc.addr, resp, err)
		}
		rec, _ := decodeAddr(resp.Kvs[0].Value)
		if rec.Host != tc.host {
			t.Errorf("address %s held by %q, want %q", tc.addr, rec.Host, tc.host)
		}
		if tc.host == "tsc-a" && clientv3.LeaseID(resp.Kvs[0].Lease) != lease {
			t.Errorf("address %s under lease %x, want a's new lease %x", tc.addr, resp.Kvs[0].Lease, lease)
		}
	}
	a.opMu.Lock()
	_, stillOwn := a.own.addrs[a.k.addr("front", taken)]
	a.opMu.Unlock()
	if stillOwn {
		t.Errorf("a still counts %s, which b took, as its own", taken)
	}
}

// TestEtcdOutage: etcd stops for longer than the TTL. Meanwhile calls fail
// fast with ErrUnavailable, the view stands and Status says so; when etcd
// is back, the store reconnects, and its host and endpoint are in the
// other host's view again.
func TestEtcdOutage(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	b := openStore(t, srv, "tsc-b", "10.0.0.2")
	ctx := context.Background()
	mustCreate(t, a, Network{Name: "front", Subnets: []Subnet{subnet("10.51.0.0/24")}})
	if err := a.PutEndpoint(ctx, Endpoint{Network: "front", Name: "web", MAC: mac(1)}); err != nil {
		t.Fatal(err)
	}
	waitView(t, b, "b sees web", func(v View) bool { return hasEndpoint(v, "front", "web") })
	waitFor(t, "a connected", func() bool { return a.Status().Connected })
	if st := a.Status(); !st.Connected || st.LastError != "" {
		t.Fatalf("Status() before the outage = %+v, want connected", st)
	}

	stopped := time.Now()
	srv.Stop()
	t.Logf("etcd took %v to stop", time.Since(stopped))
	waitFor(t, "a notices the outage", func() bool { return !a.Status().Connected })
	st := a.Status()
	t.Logf("outage noticed after %v: %+v", time.Since(stopped), st)
	if st.LastError == "" || !st.Since.After(stopped) {
		t.Fatalf("Status() during the outage = %+v, want an error and Since after the stop", st)
	}
	start := time.Now()
	err := a.PutEndpoint(ctx, Endpoint{Network: "front", Name: "web2", MAC: mac(2)})
	t.Logf("PutEndpoint during the outage failed after %v", time.Since(start))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("PutEndpoint during the outage = %v, want ErrUnavailable", err)
	}
	if v := b.View(); !hasEndpoint(v, "front", "web") || !hasHost(v, "tsc-a") {
		t.Fatalf("b's view during the outage = %+v, want the last one read", v)
	}
	// Longer than the TTL: the client gives the lease up on its side.
	time.Sleep(2 * testTTL)

	srv.Restart()
	restarted := time.Now()
	waitFor(t, "a reconnects", func() bool { return a.Status().Connected })
	t.Logf("reconnected %v after the restart", time.Since(restarted))
	if st := a.Status(); st.LastError != "" || !st.Since.After(restarted) {
		t.Fatalf("Status() after the restart = %+v, want connected since the restart with no error", st)
	}
	waitView(t, b, "a and web in b's view after the restart", func(v View) bool { return hasHost(v, "tsc-a") && hasEndpoint(v, "front", "web") })
	if err := a.PutEndpoint(ctx, Endpoint{Network: "front", Name: "web2", MAC: mac(2)}); err != nil {
		t.Fatalf("PutEndpoint after the restart: %v", err)
	}
	waitView(t, b, "web2 in b's view", func(v View) bool { return hasEndpoint(v, "front", "web2") })
}

func hostVTEP(v View, name string) netip.Addr {
	for _, h := range v.Hosts {
		if h.Name == name {
			return h.VTEP
		}
	}
	return netip.Addr{}
}
