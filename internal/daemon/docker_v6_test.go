package daemon

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/internal/docker"
)

// dualNetwork is a Docker network with Docker's IPAM's IPv4 and IPv6
// data, as docker network create --ipv6 --subnet V4 --subnet V6 gives it.
func dualNetwork(id, v4, v6 string) docker.Network {
	n := docker.Network{ID: id, Subnet: netip.MustParsePrefix(v4), IPv6: true}
	n.Gateway = n.Subnet.Addr().Next()
	p6 := netip.MustParsePrefix(v6)
	n.V6 = []docker.Subnet{{Prefix: p6, Gateway: p6.Addr().Next()}}
	return n
}

func addrsOf(s interface{ Allocated() []netip.Addr }) []string {
	var out []string
	for _, a := range s.Allocated() {
		out = append(out, a.String())
	}
	return out
}

func TestDockerDualStackDockerIPAM(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	dir := t.TempDir()
	d := startDaemon(t, dir, h)
	defer func() { d.CloseAndRemove() }()
	b := d.Docker()
	dn := dualNetwork(dnID, "10.133.9.0/24", "fd33:0:0:9::/64")
	for range 2 {
		if err := b.CreateNetwork(ctx, dn); err != nil {
			t.Fatalf("CreateNetwork = %v", err)
		}
	}
	name := docker.ShortID(dnID)
	n := d.nets[name]
	if got := n.subnetsString() + " " + n.gatewaysString(); got != "10.133.9.0/24,fd33:0:0:9::/64 10.133.9.1,fd33:0:0:9::1" {
		t.Fatalf("network = %s, want Docker's subnets and gateways", got)
	}
	// Docker gives both addresses: both are held.
	e := docker.Endpoint{NetworkID: dnID, EndpointID: epID, Address: netip.MustParsePrefix("10.133.9.2/24"), AddressIPv6: netip.MustParsePrefix("fd33:0:0:9::2/64")}
	var ifc docker.EndpointInterface
	for range 2 {
		var err error
		if ifc, err = b.CreateEndpoint(ctx, e); err != nil {
			t.Fatalf("CreateEndpoint = %v", err)
		}
	}
	if ifc.Address != "10.133.9.2/24" || ifc.AddressIPv6 != "fd33:0:0:9::2/64" || ifc.MacAddress != "02:42:0a:85:09:02" {
		t.Errorf("CreateEndpoint = %+v, want both of Docker's addresses and the MAC of the IPv4 one", ifc)
	}
	if got := addrsOf(n.subnets[1]); !slices.Equal(got, []string{"fd33:0:0:9::2"}) {
		t.Errorf("the IPv6 subnet holds %v, want fd33:0:0:9::2", got)
	}
	// Another endpoint may not have the IPv6 address; its IPv4 address
	// is not kept when it is refused.
	e2 := docker.Endpoint{NetworkID: dnID, EndpointID: epID2, Address: netip.MustParsePrefix("10.133.9.3/24"), AddressIPv6: netip.MustParsePrefix("fd33:0:0:9::2/64")}
	if _, err := b.CreateEndpoint(ctx, e2); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("CreateEndpoint of a taken IPv6 address = %v, want in use", err)
	}
	if got := addrsOf(n.subnet); !slices.Equal(got, []string{"10.133.9.2"}) {
		t.Errorf("after the refusal the IPv4 subnet holds %v, want 10.133.9.2 only", got)
	}
	e2.AddressIPv6 = netip.MustParsePrefix("fd33:0:0:8::2/64")
	if _, err := b.CreateEndpoint(ctx, e2); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("CreateEndpoint outside the IPv6 subnet = %v, want a refusal", err)
	}
	// Docker gives no IPv6 address: the network hands one out and the
	// answer tells Docker.
	e2.AddressIPv6 = netip.Prefix{}
	ifc2, err := b.CreateEndpoint(ctx, e2)
	if err != nil || ifc2.AddressIPv6 == "" || !netip.MustParsePrefix("fd33:0:0:9::/64").Contains(netip.MustParsePrefix(ifc2.AddressIPv6).Addr()) {
		t.Fatalf("CreateEndpoint without an IPv6 address = %+v, %v; want one of the network's", ifc2, err)
	}

	j := docker.Join{NetworkID: dnID, EndpointID: epID, SandboxKey: "/var/run/docker/netns/x"}
	resp, err := b.Join(ctx, j)
	if err != nil {
		t.Fatalf("Join = %v", err)
	}
	if resp.Gateway != "10.133.9.1" || resp.GatewayIPv6 != "fd33:0:0:9::1" {
		t.Errorf("Join = %+v, want gateways 10.133.9.1 and fd33:0:0:9::1", resp)
	}
	port := docker.ShortID(epID)
	p := d.ports[port]
	var ips []string
	for _, ip := range p.sw.Info().IPs {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"10.133.9.2/24", "fd33:0:0:9::2/64"}) {
		t.Errorf("the port's addresses (port security's) are %v, want both", ips)
	}

	// A restart keeps both.
	d.Close()
	d = startDaemon(t, dir, h)
	b = d.Docker()
	n = d.nets[name]
	p, ok := d.ports[port]
	if !ok || len(p.sw.Info().IPs) != 2 || len(n.subnets) != 2 {
		t.Fatalf("after a restart port %q = %+v on %s, want it back with both addresses", port, p, n.subnetsString())
	}
	if got := addrsOf(n.subnets[1]); len(got) != 2 {
		t.Errorf("after a restart the IPv6 subnet holds %v, want both endpoints'", got)
	}
	for _, eid := range []string{epID, epID2} {
		if err := b.Leave(ctx, dnID, eid); err != nil {
			t.Fatal(err)
		}
		if err := b.DeleteEndpoint(ctx, dnID, eid); err != nil {
			t.Fatal(err)
		}
	}
	if a4, a6 := addrsOf(n.subnet), addrsOf(n.subnets[1]); len(a4)+len(a6) != 0 {
		t.Errorf("after DeleteEndpoint the subnets hold %v and %v", a4, a6)
	}
	if err := b.DeleteNetwork(ctx, dnID); err != nil {
		t.Fatal(err)
	}
}

func TestDockerDualStackRefusals(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, t.TempDir(), newFakeHost())
	defer d.CloseAndRemove()
	b := d.Docker()
	two := dualNetwork(dnID, "10.133.10.0/24", "fd33:0:0:10::/64")
	two.V6 = append(two.V6, docker.Subnet{Prefix: netip.MustParsePrefix("fd33:0:0:11::/64")})
	noSubnet := dualNetwork(dnID, "10.133.10.0/24", "fd33:0:0:10::/64")
	noSubnet.V6 = nil
	mtu := dualNetwork(dnID, "10.133.10.0/24", "fd33:0:0:10::/64")
	mtu.Generic = map[string]string{OptionMTU: "1000"}
	for _, c := range []struct {
		n    docker.Network
		want string
	}{
		{two, "one of each family"},
		{noSubnet, "--ipv6 without an IPv6 subnet"},
		{mtu, "at least 1280"},
	} {
		if err := b.CreateNetwork(ctx, c.n); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CreateNetwork(%+v) = %v, want an error saying %q", c.n, err, c.want)
		}
	}
	if _, ok := d.nets[docker.ShortID(dnID)]; ok || len(d.docker.nets) != 0 {
		t.Errorf("refused networks left something: %v", d.nets)
	}
	// An IPv6 address on a network without IPv6.
	dockerNetwork(t, b, dnID2, "10.133.12.0/24")
	e := docker.Endpoint{NetworkID: dnID2, EndpointID: epID, AddressIPv6: netip.MustParsePrefix("fd33:0:0:12::2/64")}
	if _, err := b.CreateEndpoint(ctx, e); err == nil || !strings.Contains(err.Error(), "no IPv6 subnet") {
		t.Errorf("CreateEndpoint with IPv6 on an IPv4 network = %v, want a refusal", err)
	}
	if got := d.nets[docker.ShortID(dnID2)].subnet.Allocated(); len(got) != 0 {
		t.Errorf("the refused endpoint left %v held", got)
	}
	// An IPv4 network's endpoint gets no IPv6 address.
	e.AddressIPv6 = netip.Prefix{}
	ifc, err := b.CreateEndpoint(ctx, e)
	if err != nil || ifc.AddressIPv6 != "" || ifc.Address == "" {
		t.Errorf("CreateEndpoint on an IPv4 network = %+v, %v; want an IPv4 address only", ifc, err)
	}
}

func TestDockerDualStackIPAM(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	dir := t.TempDir()
	d := startDaemon(t, dir, h)
	defer func() { d.CloseAndRemove() }()
	b := d.Docker()
	id4, p4, err := b.RequestPool(ctx, docker.Pool{Prefix: netip.MustParsePrefix("10.133.13.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	id6, p6, err := b.RequestPool(ctx, docker.Pool{V6: true})
	if err != nil || !p6.Addr().Is6() || p6.Bits() != 64 || !netip.MustParsePrefix("fd89:7473:7700::/48").Contains(p6.Addr()) {
		t.Fatalf("RequestPool(V6) = %s %v %v, want a /64 of the IPv6 pool", id6, p6, err)
	}
	if _, _, err := b.RequestPool(ctx, docker.Pool{V6: true, Prefix: p6}); err == nil {
		t.Errorf("RequestPool of a held IPv6 pool = nil, want an overlap")
	}
	gw6, err := b.RequestAddress(ctx, id6, netip.Addr{}, true)
	if err != nil || gw6 != netip.PrefixFrom(p6.Addr().Next(), 64) {
		t.Fatalf("RequestAddress(IPv6 gateway) = %v %v", gw6, err)
	}
	gw4, _ := b.RequestAddress(ctx, id4, netip.Addr{}, true)
	dn := docker.Network{ID: dnID, Subnet: p4, Gateway: gw4.Addr(), IPv6: true, V6: []docker.Subnet{{Prefix: p6, Gateway: gw6.Addr()}}}
	if err := b.CreateNetwork(ctx, dn); err != nil {
		t.Fatalf("CreateNetwork = %v", err)
	}
	n := d.nets[docker.ShortID(dnID)]
	if n.subnets[1] != d.docker.pools[id6].sub || n.subnet != d.docker.pools[id4].sub {
		t.Errorf("the network's subnets are not the pools'")
	}
	a6, err := b.RequestAddress(ctx, id6, netip.Addr{}, false)
	if err != nil || !p6.Contains(a6.Addr()) {
		t.Fatalf("RequestAddress(IPv6) = %v %v", a6, err)
	}
	a4, _ := b.RequestAddress(ctx, id4, netip.Addr{}, false)
	if _, err := b.CreateEndpoint(ctx, docker.Endpoint{NetworkID: dnID, EndpointID: epID, Address: a4, AddressIPv6: a6}); err != nil {
		t.Fatalf("CreateEndpoint with the IPAM's addresses = %v", err)
	}
	// tapswitch's own ports draw from the same IPv6 addresses.
	if got, err := n.subnets[1].Allocate(); err != nil || got == a6.Addr() {
		t.Errorf("the network's IPAM handed out %v (%v), which Docker's IPAM call holds", got, err)
	} else {
		n.subnets[1].Release(got)
	}
	// A restart: the pool is the network's IPv6 subnet again.
	d.Close()
	d = startDaemon(t, dir, h)
	b = d.Docker()
	n = d.nets[docker.ShortID(dnID)]
	if p := d.docker.pools[id6]; p == nil || p.sub != n.subnets[1] || !slices.Contains(addrsOf(p.sub), a6.Addr().String()) {
		t.Fatalf("after a restart the IPv6 pool is %+v, want the network's IPv6 subnet holding %s", p, a6)
	}
	if err := b.DeleteEndpoint(ctx, dnID, epID); err != nil {
		t.Fatal(err)
	}
	if err := b.ReleaseAddress(ctx, id6, a6.Addr()); err != nil {
		t.Fatal(err)
	}
	if got := addrsOf(n.subnets[1]); len(got) != 0 {
		t.Errorf("after ReleaseAddress the IPv6 subnet holds %v", got)
	}
	if err := b.DeleteNetwork(ctx, dnID); err != nil {
		t.Fatal(err)
	}
	if len(d.docker.pools) != 0 {
		t.Errorf("pools left after DeleteNetwork: %v", d.docker.pools)
	}
	// The /64 is free again.
	if _, again, err := b.RequestPool(ctx, docker.Pool{V6: true, Prefix: p6}); err != nil || again != p6 {
		t.Errorf("RequestPool(%s) after DeleteNetwork = %v %v", p6, again, err)
	}
}

// TestDockerDualStackForgotten: a dual-stack network of the IPAM driver
// that dockerd no longer has lets both its pools go.
func TestDockerDualStackForgotten(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, t.TempDir(), newFakeHost())
	defer d.CloseAndRemove()
	b := d.Docker()
	_, p4, err := b.RequestPool(ctx, docker.Pool{Prefix: netip.MustParsePrefix("10.133.14.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	_, p6, err := b.RequestPool(ctx, docker.Pool{V6: true, Prefix: netip.MustParsePrefix("fd33:0:0:14::/64")})
	if err != nil {
		t.Fatal(err)
	}
	dn := docker.Network{ID: dnID, Subnet: p4, IPv6: true, V6: []docker.Subnet{{Prefix: p6}}}
	if err := b.CreateNetwork(ctx, dn); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.dropDockerNetworkLocked(dnID)
	d.mu.Unlock()
	if len(d.docker.pools) != 0 || len(d.docker.nets) != 0 {
		t.Errorf("after dockerd forgot the network: pools %v, networks %v; want none", d.docker.pools, d.docker.nets)
	}
}
