package daemon

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/docker"
)

// dualNet creates network "front" with an IPv4 and an IPv6 subnet, each
// with a gateway of its own choosing, as the Docker driver asks for one.
func dualNet(t *testing.T, d *Daemon) api.Network {
	t.Helper()
	n, err := d.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "front", Subnets: []api.SubnetRequest{
		{Subnet: "fd41:8::/64", Gateway: "fd41:8::fe"}, {Subnet: "10.141.8.0/24", Gateway: "10.141.8.254"}}})
	if err != nil {
		t.Fatalf("CreateNetwork(front, dual-stack) = %v", err)
	}
	return n
}

// TestDualStackNetwork: a network of an IPv4 and an IPv6 subnet has a
// gateway of both, firewall rules for both, and gives a port an address
// of each, named in DNS (A and AAAA), routed by default through each
// gateway; a restart keeps it all and a detach gives both back.
func TestDualStackNetwork(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHost()
	d := startDaemon(t, dir, h)
	n := dualNet(t, d)
	want := []api.NetworkSubnet{{Subnet: "10.141.8.0/24", Gateway: "10.141.8.254"}, {Subnet: "fd41:8::/64", Gateway: "fd41:8::fe"}}
	if !slices.Equal(n.Subnets, want) || n.Subnet != "10.141.8.0/24" || n.Gateway != "10.141.8.254" {
		t.Fatalf("CreateNetwork() = subnet %s gateway %s subnets %v; want the IPv4 one first of %v", n.Subnet, n.Gateway, n.Subnets, want)
	}
	fw := h.fw["front"]
	if fw.Subnet.String() != "10.141.8.0/24" || fw.Subnet6.String() != "fd41:8::/64" || fw.Gateway6.String() != "fd41:8::fe" {
		t.Fatalf("firewall got %+v, want both subnets", fw)
	}
	gw := d.nets["front"].gw.view()
	if !slices.Equal(gw.IPs, []string{"10.141.8.254/24", "fd41:8::fe/64"}) {
		t.Fatalf("gateway addresses %v, want both", gw.IPs)
	}
	p, err := attach(d, "web", "t0")
	if err != nil {
		t.Fatalf("Attach(web) = %v", err)
	}
	if !slices.Equal(p.IPs, []string{"10.141.8.1/24", "fd41:8::1/64"}) {
		t.Fatalf("Attach(web) addresses %v, want one of each family", p.IPs)
	}
	recs := d.nets["front"].records
	if a, _ := recs.Lookup("web.front.", mdns.TypeA); !slices.Equal(a, []netip.Addr{netip.MustParseAddr("10.141.8.1")}) {
		t.Fatalf("A web.front = %v", a)
	}
	if a, _ := recs.Lookup("web.", mdns.TypeAAAA); !slices.Equal(a, []netip.Addr{netip.MustParseAddr("fd41:8::1")}) {
		t.Fatalf("AAAA web = %v", a)
	}
	if !slices.Equal(h.routes, []string{"t0 via 10.141.8.254", "t0 via fd41:8::fe"}) {
		t.Fatalf("default routes %v, want one through each gateway", h.routes)
	}
	sp, _ := d.sw.Port("web")
	if ips := sp.Info().IPs; len(ips) != 2 {
		t.Fatalf("port security knows addresses %v, want both", ips)
	}
	data, err := os.ReadFile(d.state.path)
	if err != nil || !strings.Contains(string(data), `"subnet6"`) {
		t.Fatalf("state file %v:\n%s\nwant the IPv6 subnet recorded", err, data)
	}

	d.Close()
	d = startDaemon(t, dir, h)
	defer d.CloseAndRemove()
	v, err := d.InspectNetwork("front")
	if err != nil || !slices.Equal(v.Subnets, want) {
		t.Fatalf("after a restart InspectNetwork(front) = %v, %v; want subnets %v", v.Subnets, err, want)
	}
	if got := d.ports["web"].view().IPs; !slices.Equal(got, p.IPs) {
		t.Fatalf("after a restart web has %v, want %v", got, p.IPs)
	}
	p2, err := attach(d, "db", "t1")
	if err != nil || !slices.Equal(p2.IPs, []string{"10.141.8.2/24", "fd41:8::2/64"}) {
		t.Fatalf("Attach(db) after a restart = %v, %v; want the next address of each family", p2.IPs, err)
	}
	if err := d.Detach(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	for _, s := range d.nets["front"].subnets {
		if a := s.Allocated(); len(a) != 1 {
			t.Fatalf("after web's detach %s holds %v, want db's only", s.Prefix(), a)
		}
	}
}

// TestDualStackAttachErrors: an MTU IPv6 cannot have is refused on a
// dual-stack network before anything is made, and an address asked for
// in the IPv6 subnet must have its length.
func TestDualStackAttachErrors(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	dualNet(t, d)
	_, err := attach(d, "web", "t0", func(r *api.AttachRequest) { r.MTU = 1000 })
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "1280") {
		t.Fatalf("Attach(mtu 1000) = %v; want invalid, naming 1280", err)
	}
	nothingLeft(t, d, h, "web", "t0")
	if a := d.nets["front"].subnets[1].Allocated(); len(a) != 0 {
		t.Fatalf("the refused attach left %v allocated", a)
	}
	_, err = attach(d, "web", "t0", func(r *api.AttachRequest) { r.IPs = []string{"fd41:8::9/48"} })
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "fd41:8::9/64") {
		t.Fatalf("Attach(fd41:8::9/48) = %v; want invalid, saying fd41:8::9/64", err)
	}
	// 10.141.8.1 went to the refused attach, and the cursor moved past it.
	p, err := attach(d, "web", "t0", func(r *api.AttachRequest) { r.IPs = []string{"fd41:8::9/64"} })
	if err != nil || !slices.Equal(p.IPs, []string{"fd41:8::9/64", "10.141.8.2/24"}) {
		t.Fatalf("Attach(fd41:8::9/64) = %v, %v; want it and an IPv4 address", p.IPs, err)
	}
}

// TestDualStackCreateErrors: what a dual-stack network may not be.
func TestDualStackCreateErrors(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	dualNet(t, d)
	tests := []struct {
		name    string
		req     api.NetworkCreateRequest
		class   error
		errText string
	}{
		{name: "IPv6 overlaps", req: api.NetworkCreateRequest{Name: "x", Subnet: "10.141.9.0/24", Subnets: []api.SubnetRequest{{Subnet: "fd41:8::/56"}}},
			class: api.ErrConflict, errText: `overlaps network "front" (its IPv6 subnet)`},
		{name: "two IPv4", req: api.NetworkCreateRequest{Name: "x", Subnets: []api.SubnetRequest{{Subnet: "10.141.9.0/24"}, {Subnet: "10.141.10.0/24"}}},
			class: api.ErrInvalid, errText: "two IPv4 subnets"},
		{name: "IPv6 gateway outside", req: api.NetworkCreateRequest{Name: "x", Subnets: []api.SubnetRequest{{Subnet: "ipv4"}, {Subnet: "fd41:9::/64", Gateway: "fd41:8::1"}}},
			class: api.ErrInvalid, errText: "not in fd41:9::/64"},
		{name: "unsafe IPv6", req: api.NetworkCreateRequest{Name: "x", Subnets: []api.SubnetRequest{{Subnet: "ipv4"}, {Subnet: "fe80::/64"}}},
			class: api.ErrInvalid, errText: "fe80::/10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.CreateNetwork(context.Background(), tt.req)
			if !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("CreateNetwork(%+v) = %v; want %v containing %q", tt.req, err, tt.class, tt.errText)
			}
			if _, ok := d.nets["x"]; ok {
				t.Fatal("the refused network exists")
			}
		})
	}
}

// TestDualStackPool: a network asking for an IPv6 subnet from the pool
// gets the first free /64 of the IPv6 pool, and an IPv4 one besides.
func TestDualStackPool(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	var got []string
	for _, name := range []string{"six1", "six2"} {
		n, err := d.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: name, Subnets: []api.SubnetRequest{{Subnet: "ipv4"}, {Subnet: "ipv6"}}})
		if err != nil {
			t.Fatalf("CreateNetwork(%s, from the pools) = %v", name, err)
		}
		if len(n.Subnets) != 2 || !strings.HasPrefix(n.Subnets[0].Subnet, "10.89.") {
			t.Fatalf("CreateNetwork(%s) subnets %v, want an IPv4 one of 10.89.0.0/16 first", name, n.Subnets)
		}
		got = append(got, n.Subnets[1].Subnet)
	}
	if want := []string{"fd89:7473:7700::/64", "fd89:7473:7700:1::/64"}; !slices.Equal(got, want) {
		t.Fatalf("IPv6 subnets from the pool %v, want %v", got, want)
	}
}

// TestPeerNames: the DNS server of each network a namespace is on
// answers it the names of its other networks; an asker on one network
// only gets no other network's, and a port's leaving takes them away.
func TestPeerNames(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	ctx := context.Background()
	frontNet(t, d)
	if _, err := d.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "back", Subnet: "10.141.20.0/24"}); err != nil {
		t.Fatal(err)
	}
	web, err := attach(d, "web", "t0")
	if err != nil {
		t.Fatal(err)
	}
	webBack, err := d.Connect(ctx, "back", api.ConnectRequest{Port: "web"})
	if err != nil {
		t.Fatalf("Connect(web, back) = %v", err)
	}
	// A namespace of its own is not available here: db's port is in
	// this process's namespace too, so only its network tells it apart.
	front, back := d.nets["front"], d.nets["back"]
	addrOf := func(p api.Port) netip.Addr { return netip.MustParsePrefix(p.IPs[0]).Addr() }
	if got := d.peers.lookup("front", addrOf(web)); len(got) != 1 || got[0] != back.records {
		t.Fatalf("front's server answers web (%s) the names of %v, want back's", addrOf(web), got)
	}
	if got := d.peers.lookup("back", addrOf(webBack)); len(got) != 1 || got[0] != front.records {
		t.Fatalf("back's server answers web-back (%s) the names of %v, want front's", addrOf(webBack), got)
	}
	if got := d.peers.lookup("front", netip.MustParseAddr("10.250.7.99")); got != nil {
		t.Fatalf("front's server answers an address no port has the names of %v, want none", got)
	}
	if got := d.peers.lookup("back", addrOf(web)); got != nil {
		t.Fatalf("back's server answers front's address %s the names of %v, want none", addrOf(web), got)
	}
	if err := d.Detach(ctx, webBack.Name); err != nil {
		t.Fatal(err)
	}
	if got := d.peers.lookup("front", addrOf(web)); got != nil {
		t.Fatalf("after web left back, front's server answers it the names of %v, want none", got)
	}
}

// TestDockerPoolIsTheNetworksSubnet: a network made on a pool of the
// Docker IPAM driver hands out, and takes back, addresses of the pool's
// subnet, whichever way a port comes and goes: its first subnet is the
// pool's.
func TestDockerPoolIsTheNetworksSubnet(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	b := d.Docker()
	id, _, err := b.RequestPool(ctx, docker.Pool{Prefix: netip.MustParsePrefix("10.141.40.0/24")})
	if err != nil {
		t.Fatalf("RequestPool = %v", err)
	}
	if _, err := b.RequestAddress(ctx, id, netip.Addr{}, true); err != nil {
		t.Fatalf("RequestAddress(gateway) = %v", err)
	}
	dockerNetwork(t, b, dnID2, "10.141.40.0/24")
	n := d.nets[docker.ShortID(dnID2)]
	if n.subnets[0] != n.subnet || n.subnet != d.docker.pools[id].sub {
		t.Fatalf("network on a Docker pool: subnets[0] %p, subnet %p, pool %p; want one subnet", n.subnets[0], n.subnet, d.docker.pools[id].sub)
	}
	if _, err := d.Attach(ctx, api.AttachRequest{Netns: self, Network: n.name, Name: "web", Ifname: "t0"}); err != nil {
		t.Fatalf("Attach to the Docker network = %v", err)
	}
	if got := d.docker.pools[id].sub.Allocated(); len(got) != 1 {
		t.Fatalf("the pool holds %v after an attach, want the port's address", got)
	}
	if err := d.Detach(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if got := d.docker.pools[id].sub.Allocated(); len(got) != 0 {
		t.Fatalf("the pool holds %v after the detach, want nothing", got)
	}
}
