package daemon

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/docker"
)

// These tests drive the Docker driver's calls on in-memory TAPs, in the
// order Docker makes them, each call twice where Docker may replay it.

// findDockerTAP finds a TAP the fake host holds: Docker moves nothing
// here, so it is in the test's own namespace under its own name.
func (h *fakeHost) findDockerTAP(sandbox, mac, ownName string) (string, string, error) {
	if h.taps.Exists("", ownName) {
		return "", ownName, nil
	}
	return "", "", errNoDockerTAP
}

const (
	dnID  = "edd206efe708a4c7b4d0f772faf94e67ea7bde7b2e61834c67adec6638d92b5e"
	dnID2 = "eecbd741fd53e0bf860a814fe69375805cdeb2b60a8d2a12430265ee695b8663"
	epID  = "6a06dcd670ae0a4c7b4d0f772faf94e67ea7bde7b2e61834c67adec6638d92b5"
	epID2 = "38bb2f5a7501b0a4c7b4d0f772faf94e67ea7bde7b2e61834c67adec6638d92b"
)

func dockerNetwork(t *testing.T, b docker.Backend, id, subnet string) {
	t.Helper()
	n := docker.Network{ID: id, Subnet: netip.MustParsePrefix(subnet)}
	n.Gateway = n.Subnet.Addr().Next()
	for range 2 {
		if err := b.CreateNetwork(context.Background(), n); err != nil {
			t.Fatalf("CreateNetwork(%s) = %v", subnet, err)
		}
	}
}

func TestDockerNetworkEndpointJoin(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	dir := t.TempDir()
	d := startDaemon(t, dir, h)
	defer func() { d.CloseAndRemove() }()
	b := d.Docker()
	dockerNetwork(t, b, dnID, "10.131.7.0/24")
	name := docker.ShortID(dnID)
	n, ok := d.nets[name]
	if !ok || n.subnet.Gateway().String() != "10.131.7.1" {
		t.Fatalf("network %q = %v, want one on 10.131.7.0/24 with gateway 10.131.7.1", name, n)
	}
	if err := d.RemoveNetwork(ctx, name, false); err == nil || !strings.Contains(err.Error(), "docker network rm") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("RemoveNetwork(%s) = %v, want a refusal naming docker network rm and --force", name, err)
	}

	e := docker.Endpoint{NetworkID: dnID, EndpointID: epID, Address: netip.MustParsePrefix("10.131.7.2/24"),
		PortMap: []docker.PortBinding{{Proto: docker.ProtoTCP, Port: 80}}}
	var ifc docker.EndpointInterface
	for range 2 {
		var err error
		if ifc, err = b.CreateEndpoint(ctx, e); err != nil {
			t.Fatalf("CreateEndpoint = %v", err)
		}
	}
	if ifc.MacAddress != "02:42:0a:83:07:02" {
		t.Errorf("MAC = %s, want 02:42:0a:83:07:02, made of the address", ifc.MacAddress)
	}
	if got := n.subnet.Allocated(); len(got) != 1 || got[0].String() != "10.131.7.2" {
		t.Errorf("IPAM holds %v, want 10.131.7.2", got)
	}
	// Another endpoint may not have the address.
	e2 := docker.Endpoint{NetworkID: dnID, EndpointID: epID2, Address: netip.MustParsePrefix("10.131.7.2/24")}
	if _, err := b.CreateEndpoint(ctx, e2); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("CreateEndpoint of a taken address = %v, want in use", err)
	}

	j := docker.Join{NetworkID: dnID, EndpointID: epID, SandboxKey: "/var/run/docker/netns/x"}
	var resp docker.JoinResponse
	for range 2 {
		var err error
		if resp, err = b.Join(ctx, j); err != nil {
			t.Fatalf("Join = %v", err)
		}
	}
	ifname := dockerIfname(epID)
	if resp.InterfaceName.SrcName != ifname || len(ifname) > 15 || resp.InterfaceName.DstPrefix != "eth" || resp.Gateway != "10.131.7.1" {
		t.Errorf("Join = %+v, want SrcName %s, eth, gateway 10.131.7.1", resp, ifname)
	}
	if !h.taps.Exists("", ifname) {
		t.Fatalf("no TAP %s in the daemon's namespace", ifname)
	}
	port := docker.ShortID(epID)
	p, ok := d.ports[port]
	if !ok || p.kind != api.KindDocker || p.dev.MAC().String() != ifc.MacAddress || len(p.proxies) != 1 {
		t.Fatalf("port %q = %+v, want a docker port with MAC %s and a published port", port, p, ifc.MacAddress)
	}
	if len(d.Ports(false)) != 1 {
		t.Errorf("Ports() lists %d ports, want the Docker one", len(d.Ports(false)))
	}
	if !p.sw.Security() {
		t.Errorf("port security is off")
	}
	info, err := b.EndpointInfo(ctx, dnID, epID)
	if err != nil {
		t.Fatalf("EndpointInfo = %v", err)
	}
	pm := info[docker.OptionPortMap].([]docker.PortBinding)
	if len(pm) != 1 || pm[0].HostPort == 0 || pm[0].Port != 80 {
		t.Errorf("EndpointInfo portmap = %+v, want 80 on a host port chosen", pm)
	}
	hostPort := pm[0].HostPort
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(hostPort))); err != nil {
		t.Errorf("host port %d is not served: %v", hostPort, err)
	} else {
		c.Close()
	}
	if err := d.Detach(ctx, port); err == nil || !strings.Contains(err.Error(), "docker rm") {
		t.Errorf("Detach(%s) = %v, want a refusal naming docker rm", port, err)
	}
	data, _ := os.ReadFile(d.state.path)
	for _, want := range []string{dnID, epID, `"sandbox_key": "/var/run/docker/netns/x"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the state file does not record %s", want)
		}
	}

	// A restart takes the port back.
	d.Close()
	d = startDaemon(t, dir, h)
	b = d.Docker()
	if p, ok := d.ports[port]; !ok || p.kind != api.KindDocker || len(p.proxies) != 1 {
		t.Fatalf("after a restart, port %q = %+v, want it back with its published port", port, p)
	}
	n = d.nets[name]

	for range 2 {
		if err := b.RevokeExternal(ctx, dnID, epID); err != nil {
			t.Fatalf("RevokeExternal = %v", err)
		}
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(hostPort))); err == nil {
		c.Close()
		t.Errorf("host port %d still served after RevokeExternal", hostPort)
	}
	if err := b.DeleteNetwork(ctx, dnID); err == nil {
		t.Errorf("DeleteNetwork with a port = nil, want a refusal")
	}
	for range 2 {
		if err := b.Leave(ctx, dnID, epID); err != nil {
			t.Fatalf("Leave = %v", err)
		}
	}
	if h.taps.Exists("", ifname) {
		t.Errorf("TAP %s left after Leave", ifname)
	}
	if _, ok := d.ports[port]; ok {
		t.Errorf("port %s left after Leave", port)
	}
	for range 2 {
		if err := b.DeleteEndpoint(ctx, dnID, epID); err != nil {
			t.Fatalf("DeleteEndpoint = %v", err)
		}
	}
	if got := n.subnet.Allocated(); len(got) != 0 {
		t.Errorf("IPAM holds %v after DeleteEndpoint", got)
	}
	for range 2 {
		if err := b.DeleteNetwork(ctx, dnID); err != nil {
			t.Fatalf("DeleteNetwork = %v", err)
		}
	}
	if _, ok := d.nets[name]; ok {
		t.Errorf("network %s left after DeleteNetwork", name)
	}
	if d.dockerDocLocked() != nil {
		t.Errorf("the driver keeps %+v after everything was deleted", d.dockerDocLocked())
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestDockerIPAM(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	b := d.Docker()
	frontNet(t, d) // 10.250.7.0/24
	if _, _, err := b.RequestPool(ctx, docker.Pool{Prefix: netip.MustParsePrefix("10.250.7.0/25")}); err == nil || !strings.Contains(err.Error(), "front") {
		t.Errorf("RequestPool over network front = %v, want an overlap naming it", err)
	}
	id, prefix, err := b.RequestPool(ctx, docker.Pool{Prefix: netip.MustParsePrefix("10.131.8.0/24")})
	if err != nil || prefix.String() != "10.131.8.0/24" {
		t.Fatalf("RequestPool(10.131.8.0/24) = %s %v %v", id, prefix, err)
	}
	if _, _, err := b.RequestPool(ctx, docker.Pool{Prefix: netip.MustParsePrefix("10.131.8.0/24")}); err == nil {
		t.Errorf("RequestPool of a held pool = nil, want an overlap")
	}
	free, freePrefix, err := b.RequestPool(ctx, docker.Pool{})
	if err != nil || freePrefix.Overlaps(prefix) || freePrefix.Overlaps(netip.MustParsePrefix("10.250.7.0/24")) {
		t.Fatalf("RequestPool() = %s %v %v, want a free one", free, freePrefix, err)
	}
	if err := b.ReleasePool(ctx, free); err != nil {
		t.Fatalf("ReleasePool = %v", err)
	}
	gw, err := b.RequestAddress(ctx, id, netip.Addr{}, true)
	if err != nil || gw.String() != "10.131.8.1/24" {
		t.Fatalf("RequestAddress(gateway) = %v %v", gw, err)
	}
	dockerNetwork(t, b, dnID2, "10.131.8.0/24")
	a, err := b.RequestAddress(ctx, id, netip.Addr{}, false)
	if err != nil || a.String() != "10.131.8.2/24" {
		t.Fatalf("RequestAddress() = %v %v", a, err)
	}
	n := d.nets[docker.ShortID(dnID2)]
	// The same address asked for again (docker run --ip of a running
	// container's address) is another container's: refused, and the
	// ReleaseAddress Docker makes for the refused one frees nothing.
	if again, err := b.RequestAddress(ctx, id, a.Addr(), false); err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "--ip") {
		t.Fatalf("RequestAddress(%s) again = %v %v, want a refusal naming --ip", a.Addr(), again, err)
	}
	if !slices.Contains(d.docker.pools[id].Given, a.Addr().String()) {
		t.Fatalf("after a refused RequestAddress, the pool gave %v, want %s still", d.docker.pools[id].Given, a.Addr())
	}
	if err := n.subnet.Reserve(a.Addr()); err == nil {
		t.Fatalf("after a refused RequestAddress, %s is free in the network's IPAM", a.Addr())
	}
	if _, err := b.CreateEndpoint(ctx, docker.Endpoint{NetworkID: dnID2, EndpointID: epID, Address: a}); err != nil {
		t.Fatalf("CreateEndpoint with the IPAM's address = %v", err)
	}
	// tapswitch's own ports draw from the same addresses.
	if got, err := n.subnet.Allocate(); err != nil || got.String() == "10.131.8.2" {
		t.Errorf("the network's IPAM handed out %v (%v), which Docker's IPAM call holds", got, err)
	} else {
		n.subnet.Release(got)
	}
	if err := b.DeleteEndpoint(ctx, dnID2, epID); err != nil {
		t.Fatal(err)
	}
	if got := n.subnet.Allocated(); len(got) != 1 {
		t.Errorf("after DeleteEndpoint the IPAM holds %v, want the address until ReleaseAddress", got)
	}
	if err := b.ReleaseAddress(ctx, id, a.Addr()); err != nil {
		t.Fatal(err)
	}
	if got := n.subnet.Allocated(); len(got) != 0 {
		t.Errorf("after ReleaseAddress the IPAM holds %v", got)
	}
	if err := b.DeleteNetwork(ctx, dnID2); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{b.ReleaseAddress(ctx, id, gw.Addr()), b.ReleasePool(ctx, id), b.ReleasePool(ctx, id)} {
		if err != nil {
			t.Errorf("release after DeleteNetwork = %v, want nil", err)
		}
	}
	if len(d.docker.pools) != 0 {
		t.Errorf("pools left: %v", d.docker.pools)
	}
}

func TestDockerInternalRefusesPublish(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	d := startDaemon(t, "", h)
	defer d.CloseAndRemove()
	b := d.Docker()
	n := docker.Network{ID: dnID, Subnet: netip.MustParsePrefix("10.131.9.0/24"), Internal: true}
	if err := b.CreateNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	if !d.nets[docker.ShortID(dnID)].internal {
		t.Fatalf("the network is not internal")
	}
	// Named as docker network ls names it, once the sync has renamed it.
	d.mu.Lock()
	err := d.renameNetworkLocked(d.nets[docker.ShortID(dnID)], "inside")
	d.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.CreateEndpoint(ctx, docker.Endpoint{NetworkID: dnID, EndpointID: epID, Address: netip.MustParsePrefix("10.131.9.2/24"),
		PortMap: []docker.PortBinding{{Proto: docker.ProtoTCP, Port: 80, HostPort: 8080}}})
	if err == nil || !strings.Contains(err.Error(), `network "inside" is internal`) {
		t.Errorf("CreateEndpoint with -p on an internal network = %v, want a refusal naming the network", err)
	}
	if _, err := b.CreateEndpoint(ctx, docker.Endpoint{NetworkID: dnID, EndpointID: epID, Address: netip.MustParsePrefix("10.131.9.2/24")}); err != nil {
		t.Fatal(err)
	}
	// As docker run -p gives it: the map at Join.
	if _, err := b.CreateEndpoint(ctx, docker.Endpoint{NetworkID: dnID, EndpointID: epID2, Address: netip.MustParsePrefix("10.131.9.3/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, docker.Join{NetworkID: dnID, EndpointID: epID2, SandboxKey: "/x",
		PortMap: []docker.PortBinding{{Proto: docker.ProtoTCP, Port: 80, HostPort: 8080}}}); err == nil || !strings.Contains(err.Error(), `network "inside" is internal`) {
		t.Errorf("Join with -p on an internal network = %v, want a refusal naming the network", err)
	}
	if err := b.DeleteEndpoint(ctx, dnID, epID2); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Join(ctx, docker.Join{NetworkID: dnID, EndpointID: epID, SandboxKey: "/x"})
	if err != nil || resp.Gateway != "" {
		t.Errorf("Join on an internal network = %+v %v, want no gateway", resp, err)
	}
	if err := b.CreateNetwork(ctx, docker.Network{ID: dnID2, Subnet: netip.MustParsePrefix("10.131.10.0/24"), IPv6: true}); err == nil || !strings.Contains(err.Error(), "IPv6") {
		t.Errorf("CreateNetwork --ipv6 = %v, want a clear refusal", err)
	}
	if _, err := b.Join(ctx, docker.Join{NetworkID: dnID, EndpointID: epID2, SandboxKey: "/x"}); err == nil || !strings.Contains(err.Error(), "not one tapswitch has") {
		t.Errorf("Join of an unknown endpoint = %v, want a clear refusal", err)
	}
}

func TestDockerJoinHostPortInUse(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	b := d.Docker()
	dockerNetwork(t, b, dnID, "10.131.11.0/24")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	e := docker.Endpoint{NetworkID: dnID, EndpointID: epID, Address: netip.MustParsePrefix("10.131.11.2/24"),
		PortMap: []docker.PortBinding{{Proto: docker.ProtoTCP, Port: 80, HostIP: "127.0.0.1", HostPort: taken, HostPortEnd: taken}}}
	if _, err := b.CreateEndpoint(ctx, e); err != nil {
		t.Fatal(err)
	}
	_, err = b.Join(ctx, docker.Join{NetworkID: dnID, EndpointID: epID, SandboxKey: "/x"})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Join publishing a host port in use = %v, want in use", err)
	}
	if h.taps.Exists("", dockerIfname(epID)) {
		t.Errorf("the failed Join left its TAP")
	}
	if _, ok := d.ports[docker.ShortID(epID)]; ok {
		t.Errorf("the failed Join left its port")
	}
	// Freed, the same Join succeeds: nothing of the first try is in the way.
	l.Close()
	if _, err := b.Join(ctx, docker.Join{NetworkID: dnID, EndpointID: epID, SandboxKey: "/x"}); err != nil {
		t.Fatalf("Join once the host port is free = %v", err)
	}
}

// TestDockerConnectPublished: a container with -p connected to a second
// network (docker network connect) gets the port map on both endpoints,
// as Docker gives it. The second Join publishes nothing (the first
// endpoint has the host ports), and the ports move with Docker's gateway:
// RevokeExternal of the first, ProgramExternal of the second.
func TestDockerConnectPublished(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	b := d.Docker()
	dockerNetwork(t, b, dnID, "10.131.12.0/24")
	dockerNetwork(t, b, dnID2, "10.131.13.0/24")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pm := []docker.PortBinding{{Proto: docker.ProtoTCP, Port: 80, HostIP: "127.0.0.1", HostPort: hostPort}}
	const sandbox = "/var/run/docker/netns/c"
	for _, e := range []docker.Endpoint{
		{NetworkID: dnID, EndpointID: epID, Address: netip.MustParsePrefix("10.131.12.2/24"), PortMap: pm},
		{NetworkID: dnID2, EndpointID: epID2, Address: netip.MustParsePrefix("10.131.13.2/24"), PortMap: pm},
	} {
		if _, err := b.CreateEndpoint(ctx, e); err != nil {
			t.Fatalf("CreateEndpoint(%s) = %v", docker.ShortID(e.EndpointID), err)
		}
	}
	if _, err := b.Join(ctx, docker.Join{NetworkID: dnID, EndpointID: epID, SandboxKey: sandbox, PortMap: pm}); err != nil {
		t.Fatalf("Join of the first network = %v", err)
	}
	if err := b.ProgramExternal(ctx, dnID, epID, pm); err != nil {
		t.Fatalf("ProgramExternal of the first network = %v", err)
	}
	first := d.ports[docker.ShortID(epID)]
	served := func() bool {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(hostPort)))
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	if len(first.proxies) != 1 || !served() {
		t.Fatalf("the first endpoint publishes %d ports, host port served %v; want 1, true", len(first.proxies), served())
	}
	// docker network connect: the second Join, with the same map.
	for range 2 {
		if _, err := b.Join(ctx, docker.Join{NetworkID: dnID2, EndpointID: epID2, SandboxKey: sandbox, PortMap: pm}); err != nil {
			t.Fatalf("Join of the second network, of a container that publishes on the first = %v, want it joined", err)
		}
	}
	second := d.ports[docker.ShortID(epID2)]
	if second == nil || len(second.proxies) != 0 || len(first.proxies) != 1 {
		t.Fatalf("after the second Join: second port %v, first publishes %d; want the second joined publishing nothing, the first 1", second, len(first.proxies))
	}
	// Docker's gateway moves to the second network.
	if err := b.RevokeExternal(ctx, dnID, epID); err != nil {
		t.Fatal(err)
	}
	if err := b.ProgramExternal(ctx, dnID2, epID2, pm); err != nil {
		t.Fatalf("ProgramExternal of the second network = %v", err)
	}
	if len(first.proxies) != 0 || len(second.proxies) != 1 || !served() {
		t.Fatalf("after the gateway moved: first publishes %d, second %d, served %v; want 0, 1, true", len(first.proxies), len(second.proxies), served())
	}
	// docker network disconnect of the first, docker stop: nothing left.
	for _, ep := range []struct{ n, e string }{{dnID, epID}, {dnID2, epID2}} {
		if err := b.RevokeExternal(ctx, ep.n, ep.e); err != nil {
			t.Fatal(err)
		}
		if err := b.Leave(ctx, ep.n, ep.e); err != nil {
			t.Fatal(err)
		}
		if err := b.DeleteEndpoint(ctx, ep.n, ep.e); err != nil {
			t.Fatal(err)
		}
	}
	if served() {
		t.Errorf("host port %d served after every endpoint left", hostPort)
	}
}

// TestDockerNetworkForceRemove: a network of Docker's that dockerd no
// longer has can be removed with --force, its endpoints and ports with
// it; Docker's own later calls for them find nothing, and succeed.
func TestDockerNetworkForceRemove(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer func() { d.CloseAndRemove() }()
	b := d.Docker()
	dockerNetwork(t, b, dnID, "10.131.8.0/24")
	name := docker.ShortID(dnID)
	e := docker.Endpoint{NetworkID: dnID, EndpointID: epID, Address: netip.MustParsePrefix("10.131.8.2/24")}
	if _, err := b.CreateEndpoint(ctx, e); err != nil {
		t.Fatalf("CreateEndpoint = %v", err)
	}
	if _, err := b.Join(ctx, docker.Join{NetworkID: dnID, EndpointID: epID, SandboxKey: "/var/run/docker/netns/y"}); err != nil {
		t.Fatalf("Join = %v", err)
	}
	if err := d.RemoveNetwork(ctx, name, true); err != nil {
		t.Fatalf("RemoveNetwork(%s, force) = %v", name, err)
	}
	if _, ok := d.nets[name]; ok {
		t.Errorf("network %s still there", name)
	}
	if len(d.Ports(false)) != 0 {
		t.Errorf("ports left: %+v", d.Ports(false))
	}
	if h.taps.Exists("", dockerIfname(epID)) {
		t.Errorf("TAP %s left", dockerIfname(epID))
	}
	if len(d.docker.nets) != 0 || len(d.docker.endpoints) != 0 || len(d.docker.pools) != 0 {
		t.Errorf("Docker records left: %d networks, %d endpoints, %d pools", len(d.docker.nets), len(d.docker.endpoints), len(d.docker.pools))
	}
	if err := b.Leave(ctx, dnID, epID); err != nil {
		t.Errorf("Leave after the removal = %v", err)
	}
	if err := b.DeleteEndpoint(ctx, dnID, epID); err != nil {
		t.Errorf("DeleteEndpoint after the removal = %v", err)
	}
	if err := b.DeleteNetwork(ctx, dnID); err != nil {
		t.Errorf("DeleteNetwork after the removal = %v", err)
	}
	// The subnet is free again.
	dockerNetwork(t, b, dnID2, "10.131.8.0/24")
}
