package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/cluster"
)

func TestGatewayMAC(t *testing.T) {
	for _, tt := range []struct {
		vni  uint32
		want string
	}{
		{1, "02:74:73:00:00:01"},
		{4242, "02:74:73:00:10:92"},
		{api.MaxVNI, "02:74:73:ff:ff:ff"},
	} {
		m := gatewayMAC(tt.vni)
		if m.String() != tt.want {
			t.Errorf("gatewayMAC(%d) = %s, want %s", tt.vni, m, tt.want)
		}
		if m[0]&1 != 0 || m[0]&2 == 0 {
			t.Errorf("gatewayMAC(%d) = %s: want a locally administered unicast address", tt.vni, m)
		}
	}
	if gatewayMAC(1).String() == gatewayMAC(2).String() {
		t.Error("two VNIs have one gateway MAC")
	}
}

func TestFreeVNI(t *testing.T) {
	for _, tt := range []struct {
		used []uint32
		want uint32
	}{
		{nil, 1},
		{[]uint32{1, 2, 4}, 3},
		{[]uint32{2}, 1},
	} {
		used := make(map[uint32]bool)
		for _, v := range tt.used {
			used[v] = true
		}
		if got := freeVNI(used); got != tt.want {
			t.Errorf("freeVNI(%v) = %d, want %d", tt.used, got, tt.want)
		}
	}
}

func TestRandomMAC(t *testing.T) {
	seen := make(map[string]bool)
	for range 64 {
		m := randomMAC()
		if len(m) != 6 || m[0]&1 != 0 || m[0]&2 == 0 {
			t.Fatalf("randomMAC() = %s: want a locally administered unicast address", m)
		}
		seen[m.String()] = true
	}
	if len(seen) < 60 {
		t.Fatalf("64 random MACs hold only %d different ones", len(seen))
	}
}

func TestPlanNetworks(t *testing.T) {
	front := cluster.Network{Name: "front", VNI: 42}
	back := cluster.Network{Name: "back", VNI: 43}
	view := cluster.View{Networks: []cluster.Network{back, front}}
	tests := []struct {
		name       string
		local      map[string]localNet
		view       cluster.View
		fresh      bool
		wantCreate []string
		wantRemove []string
		wantClash  []string
	}{
		{name: "all new", local: map[string]localNet{"default": {scope: api.ScopeLocal}}, view: view, fresh: true,
			wantCreate: []string{"back", "front"}},
		{name: "all here", local: map[string]localNet{"front": {api.ScopeCluster, 42, true}, "back": {api.ScopeCluster, 43, true}}, view: view, fresh: true},
		{name: "gone from the store", local: map[string]localNet{"front": {api.ScopeCluster, 42, true}, "old": {api.ScopeCluster, 7, true}, "default": {scope: api.ScopeLocal}},
			view: view, fresh: true, wantCreate: []string{"back"}, wantRemove: []string{"old"}},
		{name: "store down: nothing removed", local: map[string]localNet{"old": {api.ScopeCluster, 7, true}},
			view: view, fresh: false, wantCreate: []string{"back", "front"}},
		{name: "empty view while down", local: map[string]localNet{"front": {api.ScopeCluster, 42, true}}, view: cluster.View{}, fresh: false},
		{name: "made here a moment ago, not in the view yet", local: map[string]localNet{"new": {api.ScopeCluster, 9, false}}, view: view, fresh: true,
			wantCreate: []string{"back", "front"}},
		{name: "local network of the name", local: map[string]localNet{"front": {scope: api.ScopeLocal}}, view: view, fresh: true,
			wantCreate: []string{"back"}, wantClash: []string{"front"}},
		{name: "other VNI", local: map[string]localNet{"front": {api.ScopeCluster, 99, true}}, view: view, fresh: true,
			wantCreate: []string{"back"}, wantClash: []string{"front"}},
		{name: "local networks never removed", local: map[string]localNet{"mine": {scope: api.ScopeLocal, seen: true}}, view: cluster.View{}, fresh: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planNetworks(tt.local, tt.view, tt.fresh)
			var create []string
			for _, c := range p.create {
				create = append(create, c.Name)
			}
			slices.Sort(create)
			var clash []string
			for name := range p.clash {
				clash = append(clash, name)
			}
			slices.Sort(clash)
			if !slices.Equal(create, tt.wantCreate) || !slices.Equal(p.remove, tt.wantRemove) || !slices.Equal(clash, tt.wantClash) {
				t.Fatalf("planNetworks() = create %v, remove %v, clash %v; want %v, %v, %v", create, p.remove, clash, tt.wantCreate, tt.wantRemove, tt.wantClash)
			}
		})
	}
}

func TestViewSettled(t *testing.T) {
	now := time.Now()
	ttl := 3 * time.Second
	if viewSettled(cluster.Status{Connected: true, Since: now.Add(-time.Second)}, ttl, now) {
		t.Error("connected 1s ago with a TTL of 3s: want not settled")
	}
	if !viewSettled(cluster.Status{Connected: true, Since: now.Add(-4 * time.Second)}, ttl, now) {
		t.Error("connected 4s ago with a TTL of 3s: want settled")
	}
	if viewSettled(cluster.Status{Since: now.Add(-time.Hour)}, ttl, now) {
		t.Error("not connected: want not settled")
	}
}

func TestViewFresh(t *testing.T) {
	v := cluster.View{Hosts: []cluster.Host{{Name: "h1"}, {Name: "h2"}}}
	if !viewFresh(true, v, "h1") {
		t.Error("a view holding this host, connected: want fresh")
	}
	if viewFresh(false, v, "h1") {
		t.Error("not connected: want not fresh")
	}
	if viewFresh(true, v, "h3") {
		t.Error("a view without this host (read before it registered): want not fresh")
	}
}

// freeUDPPort is a UDP port free on 127.0.0.1 a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startOverlayDaemon starts a daemon whose tunnel is on 127.0.0.1, with
// static peers and the store of ov.
func startOverlayDaemon(t *testing.T, dir string, h *fakeHost, ov OverlayConfig) *Daemon {
	t.Helper()
	ov.Advertise = netip.MustParseAddr("127.0.0.1")
	if ov.Port == 0 {
		ov.Port = freeUDPPort(t)
	}
	d, err := newDaemon(Config{StateDir: dir, TAPs: h.taps, Queues: 1, DNSUpstreams: []netip.AddrPort{},
		Logger: slog.New(slog.DiscardHandler), Overlay: ov}, h)
	if err != nil {
		t.Fatalf("newDaemon() = %v", err)
	}
	return d
}

func TestClusterNetworkNeedsAdvertise(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, "", h)
	defer d.CloseAndRemove()
	_, err := d.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "front", Subnet: "10.244.1.0/24", Scope: api.ScopeCluster})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "--advertise") {
		t.Fatalf("CreateNetwork(scope cluster) without an endpoint = %v, want an invalid request naming --advertise", err)
	}
	if _, ok := d.nets["front"]; ok {
		t.Fatal("the network was made anyway")
	}
	if got := d.Peers(); len(got) != 0 {
		t.Fatalf("Peers() without an endpoint = %v, want none", got)
	}
}

func TestClusterNetworkStatic(t *testing.T) {
	h := newFakeHost()
	dir := t.TempDir()
	peer := netip.MustParseAddr("127.0.0.2")
	ov := OverlayConfig{Peers: []netip.Addr{peer}, Host: "h1"}
	ov.Port = freeUDPPort(t)
	d := startOverlayDaemon(t, dir, h, ov)
	closed := false
	defer func() {
		if !closed {
			d.CloseAndRemove()
		}
	}()
	ctx := context.Background()
	n, err := d.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "front", Subnet: "10.244.1.0/24", Scope: api.ScopeCluster})
	if err != nil {
		t.Fatalf("CreateNetwork(front, cluster) = %v", err)
	}
	mtu := d.ov.ep.OverlayMTU()
	if n.Scope != api.ScopeCluster || n.VNI != 1 || n.MTU != mtu {
		t.Fatalf("front = scope %q VNI %d MTU %d; want cluster, the lowest free VNI 1, MTU %d", n.Scope, n.VNI, n.MTU, mtu)
	}
	if _, err := d.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "back", Subnet: "10.244.2.0/24", Scope: api.ScopeCluster, VNI: 1}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("CreateNetwork(back, VNI 1) = %v, want a conflict: front has VNI 1", err)
	}
	b, err := d.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "back", Subnet: "10.244.2.0/24", Scope: api.ScopeCluster, VNI: 4242})
	if err != nil || b.VNI != 4242 {
		t.Fatalf("CreateNetwork(back, VNI 4242) = %+v, %v", b, err)
	}
	// The gateway: anycast MAC, overlay MTU.
	cfg, ok := h.taps.Config("", d.nets["front"].bridge)
	if !ok || cfg.MAC.String() != "02:74:73:00:00:01" || cfg.MTU != mtu {
		t.Fatalf("front's gateway TAP = %+v (found %v), want MAC 02:74:73:00:00:01 and MTU %d", cfg, ok, mtu)
	}
	// The tunnel port.
	var tunnel *api.Port
	for _, p := range d.Ports(false) {
		if p.Name == "vxlan.front" {
			tunnel = &p
		}
	}
	if tunnel == nil || tunnel.Kind != api.KindTunnel || tunnel.Network != "front" || tunnel.MTU != mtu || tunnel.PortSecurity ||
		tunnel.MACLimit != d.nets["front"].vn.FDB().Limit() || tunnel.StormBroadcast != api.NoStormLimit || tunnel.StormUnknown != api.NoStormLimit {
		t.Fatalf("ports = %+v, want front's tunnel port vxlan.front of kind tunnel, MTU %d, no port security, no MAC limit but the network's, no storm limits", d.Ports(false), mtu)
	}
	if err := d.Detach(ctx, "vxlan.front"); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "tunnel") {
		t.Fatalf("Detach(vxlan.front) = %v, want refused: it is the tunnel", err)
	}
	// A port gets the overlay MTU, and no more.
	if _, err := attach(d, "big", "t9", func(r *api.AttachRequest) { r.MTU = mtu + 1 }); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("attach with MTU %d over the overlay's %d = %v, want invalid", mtu+1, mtu, err)
	}
	p, err := attach(d, "web", "t0")
	if err != nil {
		t.Fatalf("attach(web) = %v", err)
	}
	if p.MTU != mtu {
		t.Fatalf("web's MTU = %d, want the overlay's %d", p.MTU, mtu)
	}
	if c, _ := h.taps.Config(selfPath, "t0"); c.MTU != mtu {
		t.Fatalf("web's TAP was made with MTU %d, want %d", c.MTU, mtu)
	}
	// Peers: this host and the static peer.
	peers := d.Peers()
	if len(peers) != 2 || !peers[0].Self || peers[0].Name != "h1" || peers[0].VTEP != "127.0.0.1" || !peers[1].Static || peers[1].VTEP != peer.String() {
		t.Fatalf("Peers() = %+v, want self h1 127.0.0.1, then static %s", peers, peer)
	}
	if s := d.Status(); s.Tunnel == nil || s.Tunnel.Advertise != "127.0.0.1" || s.Tunnel.Port != ov.Port || s.Cluster != nil {
		t.Fatalf("Status() tunnel %+v cluster %+v, want the tunnel on 127.0.0.1:%d and no cluster", s.Tunnel, s.Cluster, ov.Port)
	}

	// A restart brings front back with its VNI, its tunnel and its port.
	d.Close()
	closed = true
	d = startOverlayDaemon(t, dir, h, ov)
	closed = false
	nd, err := d.InspectNetwork("front")
	if err != nil || nd.Scope != api.ScopeCluster || nd.VNI != 1 || nd.MTU != mtu {
		t.Fatalf("front after a restart = %+v, %v; want scope cluster, VNI 1, MTU %d", nd.Network, err, mtu)
	}
	var kinds []string
	for _, p := range nd.Ports {
		kinds = append(kinds, p.Kind)
	}
	if !slices.Equal(kinds, []string{api.KindGateway, api.KindTunnel, api.KindContainer}) {
		t.Fatalf("front's ports after a restart are of kinds %v, want gateway, tunnel, container", kinds)
	}

	// Removed, it takes its tunnel with it, and frees its VNI.
	if err := d.RemoveNetwork(ctx, "front", true); err != nil {
		t.Fatalf("RemoveNetwork(front) = %v", err)
	}
	if _, err := d.sw.Port("vxlan.front"); err == nil {
		t.Fatal("the tunnel port outlived its network")
	}
	again, err := d.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "front2", Subnet: "10.244.3.0/24", Scope: api.ScopeCluster})
	if err != nil || again.VNI != 1 {
		t.Fatalf("CreateNetwork(front2) = %+v, %v; want VNI 1 again", again, err)
	}
}

func TestApplyView(t *testing.T) {
	h := newFakeHost()
	// A store whose etcd is not there: it never connects, so the view
	// can come from the test alone, and nothing is ever removed for it.
	ov := OverlayConfig{Host: "h1", Cluster: []string{"http://127.0.0.1:9"}, TTL: 2 * time.Second}
	d := startOverlayDaemon(t, t.TempDir(), h, ov)
	defer d.CloseAndRemove()
	d.stopStoreWatch()
	if s := d.Status(); s.Cluster == nil || s.Cluster.Connected || s.Cluster.Host != "h1" {
		t.Fatalf("Status().Cluster = %+v, want host h1, not connected", s.Cluster)
	}
	h2 := netip.MustParseAddr("127.0.0.2")
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x22}
	view := cluster.View{
		Hosts: []cluster.Host{{Name: "h1", VTEP: netip.MustParseAddr("127.0.0.1")}, {Name: "h2", VTEP: h2}},
		Networks: []cluster.Network{{Name: "front", VNI: 42, Subnets: []cluster.Subnet{
			{Prefix: netip.MustParsePrefix("10.244.5.0/24"), Gateway: netip.MustParseAddr("10.244.5.1")}}}},
		Endpoints: []cluster.Endpoint{{Network: "front", Name: "db", Host: "h2", MAC: mac,
			IPs: []netip.Addr{netip.MustParseAddr("10.244.5.7")}, VTEP: h2}},
	}
	// As the store connected long ago would have it.
	up := cluster.Status{Connected: true, Since: time.Now().Add(-time.Hour)}
	apply := func(v cluster.View, st cluster.Status) {
		d.mu.Lock()
		d.applyViewAsLocked(v, st, time.Now())
		d.mu.Unlock()
	}
	apply(view, up)
	n, err := d.InspectNetwork("front")
	if err != nil || n.Scope != api.ScopeCluster || n.VNI != 42 || n.Gateway != "10.244.5.1" {
		t.Fatalf("front after the view = %+v, %v; want it made here with VNI 42 and gateway 10.244.5.1", n.Network, err)
	}
	fn := d.nets["front"]
	if addrs, _ := fn.records.Lookup("db.front.", 1); len(addrs) != 1 || addrs[0].String() != "10.244.5.7" {
		t.Fatalf("DNS answers db.front with %v, want 10.244.5.7 (db is on h2)", addrs)
	}
	if got := fn.remotes[mac.String()]; got != h2 {
		t.Fatalf("front's tunnel has %s behind %v, want %s", mac, got, h2)
	}
	if got := d.vtepsLocked(); !slices.Equal(got, []netip.Addr{h2}) {
		t.Fatalf("VTEPs = %v, want h2's %s only", got, h2)
	}
	peers := d.Peers()
	if len(peers) != 2 || peers[1].Name != "h2" || peers[1].VTEP != h2.String() {
		t.Fatalf("Peers() = %+v, want self, then h2", peers)
	}
	// A port here may not take db's name on front.
	if _, err := d.Attach(context.Background(), api.AttachRequest{Netns: self, Network: "front", Name: "db", Ifname: "t1"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("attach db on front = %v, want a conflict: db is h2's", err)
	}
	// With the store unreachable, an attach to a cluster network fails,
	// and says so.
	_, err = d.Attach(context.Background(), api.AttachRequest{Netns: self, Network: "front", Name: "web", Ifname: "t2"})
	if api.StatusOf(err) != 503 || !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("attach web on front with the store down = %v, want 503 and cluster.ErrUnavailable", err)
	}
	if _, err := d.sw.Port("web"); err == nil {
		t.Fatal("the failed attach left its port")
	}
	// db leaves, then h2: its MAC, name and VTEP go; but not while the
	// store has just reconnected, when hosts and ports come back one by
	// one.
	view.Endpoints = nil
	apply(view, cluster.Status{Connected: true, Since: time.Now()})
	if addrs, _ := fn.records.Lookup("db.front.", 1); len(addrs) != 1 {
		t.Fatalf("DNS answers db.front with %v right after the store reconnected, want its address kept", addrs)
	}
	if _, ok := fn.remotes[mac.String()]; !ok {
		t.Fatal("the tunnel forgot db's MAC right after the store reconnected")
	}
	apply(view, up)
	if addrs, _ := fn.records.Lookup("db.front.", 1); len(addrs) != 0 {
		t.Fatalf("DNS still answers db.front with %v", addrs)
	}
	if _, ok := fn.remotes[mac.String()]; ok {
		t.Fatal("the tunnel still has db's MAC")
	}
	view.Hosts = view.Hosts[:1]
	apply(view, cluster.Status{Connected: true, Since: time.Now()})
	d.mu.Lock()
	vteps := d.vtepsLocked()
	d.mu.Unlock()
	if len(vteps) != 1 {
		t.Fatalf("VTEPs right after the store reconnected = %v, want h2's kept", vteps)
	}
	apply(view, up)
	d.mu.Lock()
	vteps = d.vtepsLocked()
	d.mu.Unlock()
	if len(vteps) != 0 {
		t.Fatalf("VTEPs after h2 left = %v, want none", vteps)
	}
	// The store is down: an empty view removes nothing.
	apply(cluster.View{}, cluster.Status{Since: time.Now().Add(-time.Hour)})
	if _, ok := d.nets["front"]; !ok {
		t.Fatal("front removed on a view read while the store is down")
	}
	// Connected, with this host in the view and front gone: front goes.
	apply(cluster.View{Hosts: view.Hosts}, up)
	if _, ok := d.nets["front"]; ok {
		t.Fatal("front still here after a settled view without it")
	}
}
