package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	mdns "github.com/miekg/dns"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/namespace"
)

// TestNetworksSession runs the session of the networks documentation:
// two networks, ports on each, a namespace on both, names resolved by the
// networks' DNS, isolation between the networks at the Ethernet and IP
// layers, a published port reached from the host, and removal. The
// daemon forwards other names to a resolver the test runs on loopback,
// so no query leaves the machine.
func TestNetworksSession(t *testing.T) {
	up := startUpstream(t)
	e := newEnvArgs(t, []string{"--dns-upstream", up.addr.String()})
	nsWeb, nsDB, nsAPI, nsWeb2 := e.newNetns("web"), e.newNetns("db"), e.newNetns("api"), e.newNetns("web2")

	// tapswitch network create front --subnet 10.20.0.0/24
	if got := strings.TrimSpace(e.mustCLI("network", "create", "front", "--subnet", "10.20.0.0/24")); got != "front" {
		t.Fatalf("tapswitch network create front printed %q, want front", got)
	}
	// tapswitch network create back: a subnet from the pool.
	var back api.Network
	mustJSON(t, e.mustCLI("network", "create", "back", "-o", "json"), &back)
	nets := e.networks()
	subnets := map[string]netip.Prefix{}
	for _, n := range nets {
		subnets[n.Name] = netip.MustParsePrefix(n.Subnet)
	}
	for _, name := range []string{api.DefaultNetwork, "front", "back"} {
		if _, ok := subnets[name]; !ok {
			t.Fatalf("tapswitch network ls: no network %q in %+v", name, nets)
		}
	}
	for a, pa := range subnets {
		for b, pb := range subnets {
			if a < b && pa.Overlaps(pb) {
				t.Errorf("tapswitch network ls: %s (%s) overlaps %s (%s)", a, pa, b, pb)
			}
		}
	}
	table := e.mustCLI("network", "ls")
	for _, want := range []string{"NAME", "SUBNET", "GATEWAY", "INTERNAL", "PORTS", "BRIDGE", "10.20.0.0/24", back.Subnet, back.Bridge} {
		if !strings.Contains(table, want) {
			t.Errorf("tapswitch network ls: %q missing from\n%s", want, table)
		}
	}
	front := e.inspect("front")
	wantBridge := daemon.GatewayName(e.stateDir(), "front")
	if front.Subnet != "10.20.0.0/24" || front.Gateway != "10.20.0.1" || front.Bridge != wantBridge || front.DNS != "10.20.0.1:53" || front.Internal {
		t.Errorf("tapswitch network inspect front = %+v, want subnet 10.20.0.0/24, gateway 10.20.0.1, bridge %s, dns 10.20.0.1:53, not internal", front.Network, wantBridge)
	}
	if len(front.Ports) != 1 || front.Ports[0].Kind != api.KindGateway || front.Ports[0].Name != wantBridge {
		t.Errorf("tapswitch network inspect front: ports %+v, want only the gateway %s", front.Ports, wantBridge)
	}
	if out, err := run("ip", "-br", "addr", "show", "dev", wantBridge); err != nil || !strings.Contains(out, "10.20.0.1/24") {
		t.Errorf("ip addr show dev %s: %v\n%s\nwant the gateway interface with 10.20.0.1/24", wantBridge, err, out)
	}

	e.attach(nsWeb, "--network", "front", "--name", "web")
	e.attach(nsDB, "--network", "back", "--name", "db")
	e.attach(nsAPI, "--network", "front", "--name", "api")
	if got := strings.TrimSpace(e.mustCLI("connect", "api", "back")); got != "api-back" {
		t.Fatalf("tapswitch connect api back printed %q, want api-back", got)
	}

	ports := e.ports()
	web, db, apiFront, apiBack := findPort(ports, "web"), findPort(ports, "db"), findPort(ports, "api"), findPort(ports, "api-back")
	if web == nil || db == nil || apiFront == nil || apiBack == nil {
		t.Fatalf("tapswitch ports: want web, db, api and api-back, got %+v", ports)
	}
	backNet := netip.MustParsePrefix(back.Subnet)
	for _, c := range []struct {
		p      *api.Port
		subnet netip.Prefix
		ifname string
	}{
		{web, netip.MustParsePrefix("10.20.0.0/24"), "eth0"},
		{apiFront, netip.MustParsePrefix("10.20.0.0/24"), "eth0"},
		{db, backNet, "eth0"},
		{apiBack, backNet, "eth1"},
	} {
		if len(c.p.IPs) != 1 || !subnetHas(c.subnet, c.p.IPs[0]) || c.p.Ifname != c.ifname || c.p.Kind != api.KindContainer {
			t.Errorf("port %s = %+v, want a container port %s with one address in %s", c.p.Name, *c.p, c.ifname, c.subnet)
		}
	}
	if apiBack.DNSName != "api" || apiBack.Netns != nsAPI {
		t.Errorf("port api-back: dns name %q in netns %q, want api in %s", apiBack.DNSName, apiBack.Netns, nsAPI)
	}
	for _, p := range ports {
		if p.Kind == api.KindGateway {
			t.Errorf("tapswitch ports lists gateway %s; it belongs in --all only", p.Name)
		}
	}
	var all []api.Port
	mustJSON(t, e.mustCLI("ports", "--all", "-o", "json"), &all)
	if got := findPort(all, wantBridge); got == nil || got.Kind != api.KindGateway {
		t.Errorf("tapswitch ports --all: gateway %s = %+v, want it listed as a gateway", wantBridge, got)
	}
	// The first interface routes through its gateway, the second does not.
	if out, _ := nsRun(nsWeb, "ip", "route", "show", "default"); !strings.Contains(out, "via 10.20.0.1 dev eth0") {
		t.Errorf("ip route show default in %s = %q, want via 10.20.0.1 dev eth0", nsWeb, out)
	}
	if out, _ := nsRun(nsAPI, "ip", "route", "show", "default"); !strings.Contains(out, "via 10.20.0.1 dev eth0") || strings.Contains(out, "eth1") {
		t.Errorf("ip route show default in %s = %q, want only via 10.20.0.1 dev eth0", nsAPI, out)
	}
	resolv := filepath.Join(netnsEtcDir, nsWeb, "resolv.conf")
	if b, err := os.ReadFile(resolv); err != nil || !strings.Contains(string(b), "nameserver 10.20.0.1\n") {
		t.Errorf("%s: %v\n%s\nwant nameserver 10.20.0.1", resolv, err, b)
	}

	// ip netns exec web ping api: resolved through the resolv.conf above.
	t.Run("ping api by name", func(t *testing.T) {
		out, err := ping(nsWeb, "api")
		if err != nil {
			t.Fatalf("ping api from %s: %v\n%s", nsWeb, err, out)
		}
		if !strings.Contains(out, addr(apiFront.IPs[0])) {
			t.Errorf("ping api from %s went to another address than %s:\n%s", nsWeb, addr(apiFront.IPs[0]), out)
		}
	})
	t.Run("db does not resolve from front", func(t *testing.T) {
		if out, err := ping(nsWeb, "db"); err == nil {
			t.Errorf("ping db from %s: succeeded, want a failure to resolve\n%s", nsWeb, out)
		}
		r, err := dnsQuery(nsWeb, "10.20.0.1:53", "db", mdns.TypeA)
		if err != nil || r.Rcode != mdns.RcodeNameError {
			t.Errorf("DNS A db from %s = %v, %v; want NXDOMAIN", nsWeb, r, err)
		}
		// Not a name of front: forwarded, and the upstream knows nothing
		// of the networks.
		r, err = dnsQuery(nsWeb, "10.20.0.1:53", "db.back", mdns.TypeA)
		if err != nil || len(r.Answer) > 0 {
			t.Errorf("DNS A db.back from %s = %v, %v; want no answer", nsWeb, r, err)
		}
	})
	t.Run("names on each network", func(t *testing.T) {
		tests := []struct {
			from, server, name string
			want               string
		}{
			{nsWeb, "10.20.0.1:53", "api", addr(apiFront.IPs[0])},
			{nsWeb, "10.20.0.1:53", "api.front", addr(apiFront.IPs[0])},
			{nsDB, back.DNS, "api", addr(apiBack.IPs[0])},
			{nsDB, back.DNS, "api-back", addr(apiBack.IPs[0])},
			{nsAPI, back.DNS, "db", addr(db.IPs[0])},
		}
		for _, tt := range tests {
			r, err := dnsQuery(tt.from, tt.server, tt.name, mdns.TypeA)
			if err != nil || r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 || !strings.HasSuffix(r.Answer[0].String(), "\t"+tt.want) {
				t.Errorf("DNS A %s from %s via %s = %v, %v; want %s", tt.name, tt.from, tt.server, r, err, tt.want)
			}
		}
	})
	t.Run("other names go upstream", func(t *testing.T) {
		r, err := dnsQuery(nsWeb, "10.20.0.1:53", upstreamName, mdns.TypeA)
		if err != nil || len(r.Answer) != 1 || !strings.HasSuffix(r.Answer[0].String(), "\t"+upstreamAnswer) {
			t.Fatalf("DNS A upstream.test from %s = %v, %v; want %s from the test's resolver", nsWeb, r, err, upstreamAnswer)
		}
		if up.queries.Load() == 0 {
			t.Errorf("the test's resolver at %s saw no query", up.addr)
		}
	})
	t.Run("no IP path between networks", func(t *testing.T) {
		if out, err := ping(nsWeb, addr(db.IPs[0])); err == nil {
			t.Errorf("ping %s (db, network back) from %s (network front): replies came\n%s", addr(db.IPs[0]), nsWeb, out)
		}
		mustPing(t, nsDB, addr(apiBack.IPs[0]))
	})
	t.Run("no frames between networks", func(t *testing.T) {
		pcWeb := openPacketConn(t, nsWeb, "eth0")
		pcDB := openPacketConn(t, nsDB, "eth0")
		pcAPI := openPacketConn(t, nsAPI, "eth0")
		pcAPIBack := openPacketConn(t, nsAPI, "eth1")
		dbMAC := linkMAC(t, nsDB, "eth0")
		// db speaks, so the switch learns its MAC on back.
		if _, err := dnsQuery(nsDB, back.DNS, "api", mdns.TypeA); err != nil {
			t.Fatalf("DNS from %s: %v", nsDB, err)
		}
		token := fmt.Sprintf("tapswitch-e2e/%016x/", rand.Uint64())
		bcast, ucast := token+"broadcast/", token+"to-db/"
		if err := pcWeb.send(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, bcast); err != nil {
			t.Fatal(err)
		}
		if err := pcWeb.send(dbMAC, ucast); err != nil {
			t.Fatal(err)
		}
		got, err := pcAPI.collect(3*time.Second, bcast)
		if err != nil || len(got) != 1 {
			t.Fatalf("receive on front (%s eth0): %v, %v; want the broadcast from web", nsAPI, got, err)
		}
		for _, pc := range []*packetConn{pcDB, pcAPIBack} {
			got, err := pc.collect(500*time.Millisecond, bcast, ucast)
			if err != nil {
				t.Fatal(err)
			}
			for m := range got {
				t.Errorf("receive on back (%s): got frame %q sent on front", pc.ns, m)
			}
		}
	})

	t.Run("publish", func(t *testing.T) {
		hostPort := freeHostPort(t, 8080)
		marker := fmt.Sprintf("hello from web2 %016x", rand.Uint64())
		serveHTTP(t, nsWeb2, marker)
		out := e.mustCLI("attach", nsWeb2, "--network", "front", "--name", "web2", "--publish", fmt.Sprintf("%d:80", hostPort), "-o", "json")
		var web2 api.Port
		mustJSON(t, out, &web2)
		if want := fmt.Sprintf("%d:80/tcp", hostPort); !slices.Equal(web2.Publish, []string{want}) {
			t.Errorf("tapswitch attach --publish %d:80 -o json: publish %q, want [%s]", hostPort, web2.Publish, want)
		}
		body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", hostPort))
		if err != nil || body != marker {
			t.Fatalf("GET http://127.0.0.1:%d/ = %q, %v; want %q from the server in %s", hostPort, body, err, marker, nsWeb2)
		}

		// A host port in use: the attach fails and leaves nothing.
		taken, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		takenPort := taken.Addr().(*net.TCPAddr).Port
		nsWeb3 := e.newNetns("web3")
		before := e.allocated("front")
		r := e.cli("attach", nsWeb3, "--network", "front", "--publish", fmt.Sprintf("%d:80", takenPort))
		if r.code == 0 || !strings.Contains(r.stderr, "already in use") {
			t.Errorf("tapswitch attach --publish %d:80 with the port taken: exit %d, stderr %q; want an 'already in use' error", takenPort, r.code, r.stderr)
		}
		if got := leftovers(t, nsWeb3); len(got) != 0 {
			t.Errorf("failed attach left %v in %s", got, nsWeb3)
		}
		if after := e.allocated("front"); !slices.Equal(after, before) {
			t.Errorf("failed attach: front's allocated addresses %v, were %v: the address was not released", after, before)
		}
		if p := findPort(e.ports(), nsWeb3); p != nil {
			t.Errorf("failed attach left port %+v", *p)
		}

		e.mustCLI("detach", "web2")
		if _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); err == nil {
			t.Errorf("GET http://127.0.0.1:%d/ after detach web2: answered, want the port closed", hostPort)
		}
	})

	t.Run("network rm", func(t *testing.T) {
		r := e.cli("network", "rm", "back")
		if r.code == 0 || !strings.Contains(r.stderr, "still attached") || !strings.Contains(r.stderr, "--force") {
			t.Fatalf("tapswitch network rm back with ports: exit %d, stderr %q; want a refusal pointing at --force", r.code, r.stderr)
		}
		e.mustCLI("network", "rm", "--force", "back")
		for _, n := range e.networks() {
			if n.Name == "back" {
				t.Errorf("tapswitch network ls after rm --force back: still lists %+v", n)
			}
		}
		if got := leftovers(t, nsDB); len(got) != 0 {
			t.Errorf("rm --force back: %v left in %s", got, nsDB)
		}
		if links := nsLinks(t, nsAPI); slices.ContainsFunc(links, func(l ipLink) bool { return l.Ifname == "eth1" }) {
			t.Errorf("rm --force back: eth1 still in %s", nsAPI)
		}
		if out, err := run("ip", "link", "show", back.Bridge); err == nil {
			t.Errorf("rm --force back: gateway %s still there\n%s", back.Bridge, out)
		}
		if _, err := os.Stat(filepath.Join(netnsEtcDir, nsDB)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("rm --force back: %s/%s still there (%v)", netnsEtcDir, nsDB, err)
		}
		mustPing(t, nsWeb, "api")
	})

	t.Run("shutdown", func(t *testing.T) {
		tableName := daemon.TableName(e.stateDir())
		if !nftTableExists(t, tableName) {
			t.Fatalf("nftables table inet %s missing while tapswitchd runs", tableName)
		}
		if err := e.stopDaemon(); err != nil {
			t.Fatalf("kill -TERM tapswitchd: %v", err)
		}
		if nftTableExists(t, tableName) {
			t.Errorf("nftables table inet %s still there after tapswitchd exited", tableName)
		}
		if out, err := run("ip", "link", "show", wantBridge); err == nil {
			t.Errorf("gateway %s still there after tapswitchd exited\n%s", wantBridge, out)
		}
		for _, ns := range []string{nsWeb, nsAPI, nsWeb2} {
			if got := leftovers(t, ns); len(got) != 0 {
				t.Errorf("%v still in %s after tapswitchd exited", got, ns)
			}
			if _, err := os.Stat(filepath.Join(netnsEtcDir, ns)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s/%s still there after tapswitchd exited (%v)", netnsEtcDir, ns, err)
			}
		}
	})
}

// TestNetworkErrors checks that requests the networks cannot honour fail
// with a message that says why, and leave nothing behind.
func TestNetworkErrors(t *testing.T) {
	e := newEnv(t)
	// A host route the daemon must keep clear of.
	host, _ := e.newOutside()
	nsA, nsB := e.newNetns("a"), e.newNetns("b")
	e.mustCLI("network", "create", "front", "--subnet", "10.20.0.0/24")
	e.mustCLI("network", "create", "tiny", "--subnet", "10.20.9.0/30")
	e.mustCLI("network", "create", "vault", "--internal")
	e.attach(nsA, "--network", "front", "--name", "a", "--ip", "10.20.0.10/24")
	e.attach(nsA, "--network", "tiny", "--name", "a-tiny", "--ifname", "eth1")

	tests := []struct {
		name string
		args []string
		want []string // in stderr
		// clean is a namespace that must be left without a TAP.
		clean string
	}{
		{"overlaps a network", []string{"network", "create", "x", "--subnet", "10.20.0.0/16"}, []string{"overlaps", `network "front"`}, ""},
		{"overlaps a host route", []string{"network", "create", "x", "--subnet", "198.51.100.0/25"}, []string{"overlaps", "host route", host}, ""},
		{"exists", []string{"network", "create", "front"}, []string{"already exists"}, ""},
		{"not a network address", []string{"network", "create", "x", "--subnet", "10.30.0.1/24"}, []string{"10.30.0.0/24"}, ""},
		{"gateway outside", []string{"network", "create", "x", "--subnet", "10.30.0.0/24", "--gateway", "10.31.0.1"}, []string{"not in 10.30.0.0/24"}, ""},
		{"name with a dot", []string{"network", "create", "x.y"}, []string{"network name"}, ""},
		{"subnet full", []string{"attach", nsB, "--network", "tiny"}, []string{"no free address", "10.20.9.0/30"}, nsB},
		{"address in use", []string{"attach", nsB, "--network", "front", "--ip", "10.20.0.10/24"}, []string{"already in use"}, nsB},
		{"gateway address", []string{"attach", nsB, "--network", "front", "--ip", "10.20.0.1/24"}, []string{"gateway"}, nsB},
		{"internal refuses publish", []string{"attach", nsB, "--network", "vault", "--publish", "18080:80"}, []string{"internal", "cannot be published"}, nsB},
		{"publish without a subnet address", []string{"attach", nsB, "--ip", "10.77.10.1/24", "--publish", "18080:80"}, []string{"published ports need an address", "leave --ip out"}, nsB},
		{"no such network", []string{"attach", nsB, "--network", "nope"}, []string{`network "nope" does not exist`}, nsB},
		{"port name with a dot", []string{"attach", nsB, "--network", "front", "--name", "b.front"}, []string{"port name"}, nsB},
		{"connect twice", []string{"connect", "a", "tiny"}, []string{"already on network"}, ""},
		{"rm default", []string{"network", "rm", "default"}, []string{"cannot be removed"}, ""},
		{"rm with ports", []string{"network", "rm", "front"}, []string{"still attached", "a"}, ""},
		{"detach a gateway", []string{"detach", daemon.GatewayName(e.stateDir(), "front")}, []string{"gateway"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.cli(tt.args...)
			cmd := "tapswitch " + strings.Join(tt.args, " ")
			if r.code == 0 {
				t.Fatalf("%s: exit code 0, want failure\nstdout: %s", cmd, r.stdout)
			}
			if !strings.HasPrefix(r.stderr, "tapswitch: ") {
				t.Errorf("%s: stderr %q, want it to start with %q", cmd, r.stderr, "tapswitch: ")
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("%s: stderr %q, want it to contain %q", cmd, r.stderr, w)
				}
			}
			if tt.clean != "" {
				if got := leftovers(t, tt.clean); len(got) != 0 {
					t.Errorf("%s: left %v behind in namespace %s", cmd, got, tt.clean)
				}
			}
		})
	}
	var names []string
	for _, n := range e.networks() {
		names = append(names, n.Name)
	}
	if want := []string{"default", "front", "tiny", "vault"}; !slices.Equal(names, want) {
		t.Errorf("tapswitch network ls after the failures: %v, want %v", names, want)
	}
	// The full subnet has room again once its port goes.
	e.mustCLI("detach", "a-tiny")
	e.attach(nsB, "--network", "tiny", "--name", "b-tiny")
}

// TestOutboundAccess pings a namespace outside tapswitch, reached from
// the host over a veth pair and with no route back to the networks: a
// container on an ordinary network gets there through the gateway's
// masquerade, one on an internal network does not.
func TestOutboundAccess(t *testing.T) {
	e := newEnv(t)
	_, outside := e.newOutside()
	nsOpen, nsClosed := e.newNetns("open"), e.newNetns("shut")
	e.mustCLI("network", "create", "open")
	e.mustCLI("network", "create", "closed", "--internal")
	var closed api.NetworkDetail
	mustJSON(t, e.mustCLI("network", "inspect", "closed"), &closed)
	if !closed.Internal {
		t.Fatalf("tapswitch network inspect closed = %+v, want internal", closed.Network)
	}
	e.attach(nsOpen, "--network", "open", "--name", "open")
	e.attach(nsClosed, "--network", "closed", "--name", "shut")

	mustPing(t, nsOpen, outside)
	if out, err := ping(nsClosed, outside); err == nil {
		t.Errorf("ping %s from %s on internal network closed: replies came\n%s", outside, nsClosed, out)
	}
	// The internal network still has its gateway, for DNS.
	mustPing(t, nsClosed, closed.Gateway)
	mustPing(t, nsClosed, "shut")
}

// TestNetworkRestart stops the daemon and starts it again on the same
// state: the networks come back with their subnets and gateways, and an
// address handed out before is not handed out again at once.
func TestNetworkRestart(t *testing.T) {
	e := newEnv(t)
	nsA, nsB := e.newNetns("a"), e.newNetns("b")
	e.mustCLI("network", "create", "front", "--subnet", "10.20.0.0/24", "--gateway", "10.20.0.254")
	e.mustCLI("network", "create", "vault", "--internal")
	e.attach(nsA, "--network", "front", "--name", "a")
	first := findPort(e.ports(), "a")
	before := e.networks()

	e.restartDaemon()
	after := e.networks()
	for i := range after {
		after[i].MACs = 0
	}
	for i := range before {
		before[i].MACs, before[i].Ports = 0, 0
	}
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("tapswitch network ls after a restart:\n%+v\nwant\n%+v", after, before)
	}
	if len(e.ports()) != 0 {
		t.Fatalf("tapswitch ports after a restart: %+v, want none (SIGTERM detached them)", e.ports())
	}
	e.attach(nsB, "--network", "front", "--name", "b")
	second := findPort(e.ports(), "b")
	if first == nil || second == nil || len(second.IPs) != 1 || second.IPs[0] == first.IPs[0] {
		t.Fatalf("addresses before and after a restart: %+v then %+v, want two different ones", first, second)
	}
	mustPing(t, nsB, "10.20.0.254")
	if out, _ := nsRun(nsB, "ip", "route", "show", "default"); !strings.Contains(out, "via 10.20.0.254") {
		t.Errorf("ip route show default in %s = %q, want via 10.20.0.254", nsB, out)
	}
}

// TestDefaultNetwork checks the default network's two kinds of port: one
// with addresses of its own outside the subnet (a plain wire, as before
// networks existed: no reservation, no route, no resolv.conf) and one
// given an address from the subnet.
func TestDefaultNetwork(t *testing.T) {
	e := newEnv(t)
	nsA, nsB, nsC := e.newNetns("a"), e.newNetns("b"), e.newNetns("c")
	e.attach(nsA, "--ip", "10.77.9.1/24")
	e.attach(nsB, "--ip", "10.77.9.2/24")
	mustPing(t, nsA, "10.77.9.2")
	if out, _ := nsRun(nsA, "ip", "route", "show", "default"); out != "" {
		t.Errorf("ip route show default in %s = %q, want none for an address outside the subnet", nsA, out)
	}
	if _, err := os.Stat(filepath.Join(netnsEtcDir, nsA)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s/%s: %v, want none for an address outside the subnet", netnsEtcDir, nsA, err)
	}
	if got := e.allocated(api.DefaultNetwork); len(got) != 0 {
		t.Errorf("default network's allocated addresses = %v, want none", got)
	}

	e.attach(nsC, "--name", "c")
	def := e.inspect(api.DefaultNetwork)
	c := findPort(def.Ports, "c")
	if c == nil || len(c.IPs) != 1 || !subnetHas(netip.MustParsePrefix(def.Subnet), c.IPs[0]) {
		t.Fatalf("tapswitch network inspect default: port c = %+v, want one address in %s", c, def.Subnet)
	}
	mustPing(t, nsC, def.Gateway)
	mustPing(t, nsC, "c")
	r := e.cli("attach", nsA, "--name", "a2", "--ifname", "eth1", "--ip", c.IPs[0])
	if r.code == 0 || !strings.Contains(r.stderr, "already in use") {
		t.Errorf("tapswitch attach --ip %s (c's): exit %d, stderr %q; want 'already in use'", c.IPs[0], r.code, r.stderr)
	}
}

// upstreamName is the one name the test's resolver knows, and
// upstreamAnswer its address.
const (
	upstreamName   = "upstream.test"
	upstreamAnswer = "192.0.2.77"
)

// upstream is a resolver the test runs on a loopback address of the host,
// for the daemon to forward to.
type upstream struct {
	addr    netip.AddrPort
	queries atomic.Int64
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	// A loopback address of its own keeps clear of any resolver the host
	// runs on 127.0.0.1 or 127.0.0.53.
	ip := netip.AddrFrom4([4]byte{127, 77, byte(rand.N(250) + 1), byte(rand.N(250) + 1)})
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	u.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		u.queries.Add(1)
		m := new(mdns.Msg)
		m.SetReply(req)
		switch {
		case len(req.Question) != 1 || !strings.EqualFold(req.Question[0].Name, upstreamName+"."):
			m.Rcode = mdns.RcodeNameError
		case req.Question[0].Qtype == mdns.TypeA:
			if rr, err := mdns.NewRR(upstreamName + ". 60 IN A " + upstreamAnswer); err == nil {
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return u
}

// dnsQuery asks server for name, from inside namespace ns.
func dnsQuery(ns, server, name string, qtype uint16) (*mdns.Msg, error) {
	var r *mdns.Msg
	err := namespace.Do(nsPath(ns), func() error {
		// The socket is made here, so it belongs to the namespace.
		c := &mdns.Client{Net: "udp", Timeout: 3 * time.Second}
		m := new(mdns.Msg)
		m.SetQuestion(mdns.Fqdn(name), qtype)
		var err error
		r, _, err = c.Exchange(m, server)
		return err
	})
	return r, err
}

// serveHTTP serves body on port 80 of namespace ns until the test ends.
func serveHTTP(t *testing.T, ns, body string) {
	t.Helper()
	var ln net.Listener
	err := namespace.Do(nsPath(ns), func() error {
		// A listening socket made here accepts in the namespace.
		var err error
		ln, err = net.Listen("tcp", ":80")
		return err
	})
	if err != nil {
		t.Fatalf("listen on port 80 in %s: %v", ns, err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s", resp.Status)
	}
	return string(b), err
}

// freeHostPort returns want if no socket holds it on the host, else a
// free port.
func freeHostPort(t *testing.T, want int) int {
	t.Helper()
	if ln, err := net.Listen("tcp", fmt.Sprintf(":%d", want)); err == nil {
		ln.Close()
		return want
	}
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newOutside makes a namespace standing for the world outside, reached
// from the host over a veth pair: the host's end has 198.51.100.1/24
// (TEST-NET-2), the namespace's 198.51.100.2/24, and the namespace has no
// route to anything else. It returns the host end's name and the
// namespace's address.
func (e *testEnv) newOutside() (hostIf, outside string) {
	e.t.Helper()
	ns := e.newNetns("out")
	id := rand.N(0x10000)
	// Not "tsw-": the daemon's isolation rules cover that prefix.
	hostIf, peer := fmt.Sprintf("tso%04x", id), fmt.Sprintf("tsp%04x", id)
	if out, err := run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", peer, "netns", ns); err != nil {
		e.t.Fatalf("ip link add %s type veth: %v\n%s", hostIf, err, out)
	}
	e.t.Cleanup(func() { run("ip", "link", "del", hostIf) })
	for _, c := range [][]string{
		{"ip", "addr", "add", "198.51.100.1/24", "dev", hostIf},
		{"ip", "link", "set", hostIf, "up"},
		{"ip", "netns", "exec", ns, "ip", "addr", "add", "198.51.100.2/24", "dev", peer},
		{"ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"},
	} {
		if out, err := run(c[0], c[1:]...); err != nil {
			e.t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return hostIf, "198.51.100.2"
}

func (e *testEnv) networks() []api.Network {
	e.t.Helper()
	var nets []api.Network
	mustJSON(e.t, e.mustCLI("network", "ls", "-o", "json"), &nets)
	return nets
}

func (e *testEnv) inspect(name string) api.NetworkDetail {
	e.t.Helper()
	var n api.NetworkDetail
	mustJSON(e.t, e.mustCLI("network", "inspect", name), &n)
	return n
}

// allocated returns the addresses the state file records as handed out
// in network.
func (e *testEnv) allocated(network string) []string {
	e.t.Helper()
	return e.stateNetwork(network).Subnet.Allocated
}

// allocated6 is what the state file says network's IPv6 subnet holds
// (its second subnet, on a dual-stack network).
func (e *testEnv) allocated6(network string) []string {
	e.t.Helper()
	n := e.stateNetwork(network)
	if n.Subnet6 == nil {
		e.t.Fatalf("network %s has no IPv6 subnet in the state file", network)
	}
	return n.Subnet6.Allocated
}

// stateSubnet is a subnet as the state file keeps it.
type stateSubnet struct {
	Allocated []string `json:"allocated"`
}

// stateNet is a network as the state file keeps it: its subnets'
// addresses held.
type stateNet struct {
	Name    string       `json:"name"`
	Subnet  stateSubnet  `json:"subnet"`
	Subnet6 *stateSubnet `json:"subnet6"`
}

// stateNetwork is network as the state file keeps it.
func (e *testEnv) stateNetwork(network string) stateNet {
	e.t.Helper()
	var doc struct {
		Networks []stateNet `json:"networks"`
	}
	b, err := os.ReadFile(filepath.Join(e.stateDir(), "state.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	mustJSON(e.t, string(b), &doc)
	for _, n := range doc.Networks {
		if n.Name == network {
			return n
		}
	}
	e.t.Fatalf("state file: no network %q", network)
	return stateNet{}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, s)
	}
}

// subnetHas reports whether the CIDR string cidr is an address of p with
// p's length.
func subnetHas(p netip.Prefix, cidr string) bool {
	a, err := netip.ParsePrefix(cidr)
	return err == nil && a.Bits() == p.Bits() && p.Contains(a.Addr())
}

// nftTableExists reports whether the host has the inet table name.
func nftTableExists(t *testing.T, name string) bool {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatalf("nftables: %v", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list nftables tables: %v", err)
	}
	return slices.ContainsFunc(tables, func(tb *nftables.Table) bool { return tb.Name == name })
}
