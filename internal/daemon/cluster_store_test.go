package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/cluster"
	"github.com/tapswitch/tapswitch/internal/etcdtest"
)

// waitUntil polls cond until it holds, failing t with what after a
// generous deadline (not a timed assertion: only a bound on a hang).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not so after 20s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A daemon with a real etcd as its store, and a second host played by a
// Store of the test's own: networks, addresses and endpoints go through
// the store both ways.
func TestClusterStore(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	h := newFakeHost()
	d := startOverlayDaemon(t, t.TempDir(), h, OverlayConfig{Host: "h1", Cluster: []string{srv.URL()}, TTL: 2 * time.Second})
	defer d.CloseAndRemove()
	ctx := context.Background()
	waitUntil(t, "the daemon's store connected", func() bool { s := d.Status(); return s.Cluster != nil && s.Cluster.Connected })

	h2VTEP := netip.MustParseAddr("127.0.0.2")
	other, err := cluster.Open(ctx, cluster.Config{Endpoints: []string{srv.URL()}, Host: "h2", Advertise: h2VTEP, TTL: 2 * time.Second})
	if err != nil {
		t.Fatalf("cluster.Open(h2) = %v", err)
	}
	defer other.Close()

	n, err := d.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "front", Subnet: "10.244.9.0/24", Scope: api.ScopeCluster, VNI: 909})
	if err != nil || n.VNI != 909 {
		t.Fatalf("CreateNetwork(front, VNI 909) = %+v, %v", n, err)
	}
	if _, err := d.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "dup", Subnet: "10.244.10.0/24", Scope: api.ScopeCluster, VNI: 909}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("CreateNetwork(dup, VNI 909) = %v, want a conflict from the store", err)
	}
	if _, ok := d.nets["dup"]; ok {
		t.Fatal("the refused network was made here")
	}
	waitUntil(t, "h2 sees front and h1", func() bool {
		v := other.View()
		return slices.ContainsFunc(v.Networks, func(n cluster.Network) bool { return n.Name == "front" && n.VNI == 909 }) &&
			slices.ContainsFunc(v.Hosts, func(h cluster.Host) bool { return h.Name == "h1" })
	})

	// An attach takes its address from the store and publishes the port.
	p, err := attach(d, "web", "t0")
	if err != nil {
		t.Fatalf("attach(web) = %v", err)
	}
	webIP := netip.MustParsePrefix(p.IPs[0]).Addr()
	waitUntil(t, "h2 sees web's endpoint", func() bool {
		return slices.ContainsFunc(other.View().Endpoints, func(e cluster.Endpoint) bool {
			return e.Name == "web" && e.Host == "h1" && e.MAC.String() == p.MAC && slices.Contains(e.IPs, webIP)
		})
	})
	if err := other.ReserveAddr(ctx, "front", webIP, "h2/x"); !errors.Is(err, cluster.ErrInUse) {
		t.Fatalf("h2 reserving web's %s = %v, want cluster.ErrInUse", webIP, err)
	}

	// A port of h2: its MAC goes into the tunnel, its name into DNS.
	dbMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x09, 0x07}
	dbIP, err := other.AllocateAddr(ctx, "front", cluster.Subnet{Prefix: netip.MustParsePrefix("10.244.9.0/24"), Gateway: netip.MustParseAddr("10.244.9.1")}, "h2/db")
	if err != nil || dbIP == webIP {
		t.Fatalf("h2 AllocateAddr = %v, %v (web has %s)", dbIP, err, webIP)
	}
	if err := other.PutEndpoint(ctx, cluster.Endpoint{Network: "front", Name: "db", Host: "h2", MAC: dbMAC, IPs: []netip.Addr{dbIP}, VTEP: h2VTEP}); err != nil {
		t.Fatalf("h2 PutEndpoint(db) = %v", err)
	}
	waitUntil(t, "h1 answers db and has its MAC behind h2", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		fn := d.nets["front"]
		addrs, _ := fn.records.Lookup("db.front.", 1)
		return len(addrs) == 1 && addrs[0] == dbIP && fn.remotes[dbMAC.String()] == h2VTEP
	})
	peers := d.Peers()
	if len(peers) != 2 || peers[1].Name != "h2" || peers[1].VTEP != h2VTEP.String() {
		t.Fatalf("Peers() = %+v, want self then h2", peers)
	}
	if _, err := d.Attach(ctx, api.AttachRequest{Netns: self, Network: "front", Name: "db", Ifname: "t1"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("attach db on h1 = %v, want a conflict: db is h2's", err)
	}

	// A network made by h2 appears here; removed by h2, it goes.
	if _, err := other.CreateNetwork(ctx, cluster.Network{Name: "back", Subnets: []cluster.Subnet{
		{Prefix: netip.MustParsePrefix("10.244.11.0/24"), Gateway: netip.MustParseAddr("10.244.11.1")}}}); err != nil {
		t.Fatalf("h2 CreateNetwork(back) = %v", err)
	}
	waitUntil(t, "back made on h1", func() bool { _, err := d.InspectNetwork("back"); return err == nil })
	if b, _ := d.InspectNetwork("back"); b.Scope != api.ScopeCluster || b.VNI == 0 || b.Gateway != "10.244.11.1" {
		t.Fatalf("back on h1 = %+v", b.Network)
	}
	// A port here on back: it goes with the network.
	if _, err := d.Attach(ctx, api.AttachRequest{Netns: self, Network: "back", Name: "api", Ifname: "t2"}); err != nil {
		t.Fatalf("attach api on back = %v", err)
	}
	if err := other.RemoveNetwork(ctx, "back"); err != nil {
		t.Fatalf("h2 RemoveNetwork(back) = %v", err)
	}
	waitUntil(t, "back gone from h1", func() bool { _, err := d.InspectNetwork("back"); return err != nil })
	if _, err := d.sw.Port("api"); err == nil {
		t.Fatal("port api outlived its network, removed on another host")
	}
	if h.taps.Exists(selfPath, "t2") {
		t.Fatal("api's TAP outlived its network, removed on another host")
	}

	// A detach gives the endpoint and the address back.
	if err := d.Detach(ctx, "web"); err != nil {
		t.Fatalf("Detach(web) = %v", err)
	}
	waitUntil(t, "web's endpoint gone from the store", func() bool {
		return !slices.ContainsFunc(other.View().Endpoints, func(e cluster.Endpoint) bool { return e.Name == "web" })
	})
	if err := other.ReserveAddr(ctx, "front", webIP, "h2/y"); err != nil {
		t.Fatalf("h2 reserving web's old %s = %v, want it free", webIP, err)
	}
	other.ReleaseAddr(ctx, "front", webIP)

	// front has a port on h2: rm is refused without --force.
	if err := d.RemoveNetwork(ctx, "front", false); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("RemoveNetwork(front) with db on h2 = %v, want a conflict", err)
	}
	if err := d.RemoveNetwork(ctx, "front", true); err != nil {
		t.Fatalf("RemoveNetwork(front, force) = %v", err)
	}
	waitUntil(t, "front gone from the store", func() bool {
		return !slices.ContainsFunc(other.View().Networks, func(n cluster.Network) bool { return n.Name == "front" })
	})
}
