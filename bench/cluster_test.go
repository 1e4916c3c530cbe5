package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/privtest"
)

func TestClusterRunOrder(t *testing.T) {
	tests := []struct {
		name    string
		systems []string
		bracket bool
		want    []string
	}{
		{"all", []string{"bridge", "tapswitch", "ovs"}, true,
			[]string{"bridge", "tapswitch", "ovs", "tapswitch", "bridge"}},
		{"no ovs", []string{"bridge", "tapswitch"}, true,
			[]string{"bridge", "tapswitch", "tapswitch", "bridge"}},
		{"kernel and ovs", []string{"bridge", "ovs"}, true, []string{"bridge", "ovs", "bridge"}},
		{"no bracket", []string{"bridge", "tapswitch", "ovs"}, false,
			[]string{"bridge", "tapswitch", "ovs", "tapswitch"}},
		{"tapswitch alone", []string{"tapswitch"}, true, []string{"tapswitch", "tapswitch"}},
		{"variants", []string{"bridge", "tapswitch a", "tapswitch b", "ovs"}, true,
			[]string{"bridge", "tapswitch a", "tapswitch b", "ovs", "tapswitch b", "tapswitch a", "bridge"}},
		{"static", []string{"bridge", "tapswitch", "tapswitch static", "ovs"}, true,
			[]string{"bridge", "tapswitch", "tapswitch static", "ovs", "tapswitch static", "tapswitch", "bridge"}},
		{"ab", []string{"bridge", baseSystem, "tapswitch"}, true,
			[]string{"bridge", baseSystem, "tapswitch", "tapswitch", baseSystem, "bridge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clusterRunOrder(tt.systems, tt.bracket); !slices.Equal(got, tt.want) {
				t.Errorf("clusterRunOrder(%q, %v) = %q, want %q", tt.systems, tt.bracket, got, tt.want)
			}
		})
	}
}

func TestParseFlagsCluster(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(*config) bool
		wantErr string
	}{
		{"cluster", []string{"-cluster"}, func(c *config) bool {
			return c.cluster && c.bracket && c.rows == nil && strings.HasPrefix(c.jsonPath, "bench/results/cluster-")
		}, ""},
		{"rows", []string{"-cluster", "-rows", "udp64,tcp1"}, func(c *config) bool {
			return c.cluster && slices.Equal(c.rows, []string{"tcp1", "udp64"})
		}, ""},
		// Without the kernel's path there is no second pass to bracket with.
		{"only tapswitch", []string{"-cluster", "-only", "tapswitch"}, func(c *config) bool {
			return c.cluster && !c.bracket && slices.Equal(c.only, []string{"tapswitch"})
		}, ""},
		{"variants", []string{"-cluster", "-variant", "q1=--queues 1", "-variant", "def="}, func(c *config) bool {
			return c.cluster && c.bracket && len(c.variants) == 2
		}, ""},
		{"static", []string{"-cluster", "-cluster-static"}, func(c *config) bool {
			return c.cluster && c.clusterStatic && c.bracket
		}, ""},
		{"static with tapswitch", []string{"-cluster", "-cluster-static", "-only", "bridge,tapswitch"}, func(c *config) bool {
			return c.clusterStatic && slices.Equal(c.only, []string{"bridge", "tapswitch"})
		}, ""},
		{"etcd", []string{"-cluster", "-etcd", "/opt/etcd"}, func(c *config) bool { return c.etcd == "/opt/etcd" }, ""},
		{"not cluster", nil, func(c *config) bool { return !c.cluster && !c.clusterStatic }, ""},
		{"static without cluster", []string{"-cluster-static"}, nil, "-cluster-static goes with -cluster"},
		{"etcd without cluster", []string{"-etcd", "/opt/etcd"}, nil, "-etcd goes with -cluster"},
		{"static without tapswitch", []string{"-cluster", "-cluster-static", "-only", "bridge,ovs"}, nil, "add tapswitch to -only"},
		{"variant called static", []string{"-cluster", "-cluster-static", "-variant", "static=--queues 1"}, nil, "name the variant otherwise"},
		{"with docker", []string{"-cluster", "-docker"}, nil, "drop -docker"},
		{"with scale", []string{"-cluster", "-scale"}, nil, "drop -scale"},
		{"with demo", []string{"-cluster", "-demo"}, nil, "drop -demo"},
		{"ab", []string{"-cluster", "-base-tapswitchd", "d", "-base-tapswitch", "c", "-only", "bridge,tapswitch"}, func(c *config) bool {
			return c.cluster && c.ab() && c.bracket
		}, ""},
		{"ab without the kernel's path", []string{"-cluster", "-base-tapswitchd", "d", "-base-tapswitch", "c", "-only", "tapswitch"}, nil, "A/B needs the bridge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q) error: %v", tt.args, err)
			}
			if !tt.check(c) {
				t.Errorf("parseFlags(%q) = %+v", tt.args, *c)
			}
		})
	}
}

// The cross-host setting stays in its own subnets and names.
func TestClusterAddressesAndNames(t *testing.T) {
	underlay := netip.MustParsePrefix("10.233.0.0/24")
	overlay := netip.MustParsePrefix("10.243.0.0/16")
	subnet := netip.MustParsePrefix(clusterSubnet)
	if !overlay.Contains(subnet.Addr()) || subnet.Bits() < overlay.Bits() {
		t.Errorf("network subnet %s not inside the overlay's %s", subnet, overlay)
	}
	for i, a := range underlayAddrs {
		if !underlay.Contains(netip.MustParseAddr(a)) {
			t.Errorf("host %d's underlay address %s not in %s", i+1, a, underlay)
		}
	}
	if underlayAddrs[0] == underlayAddrs[1] {
		t.Errorf("both hosts have the underlay address %s", underlayAddrs[0])
	}
	gateway := subnet.Addr().Next()
	for i, cidr := range containerAddrs {
		p := netip.MustParsePrefix(cidr)
		if p.Bits() != subnet.Bits() || !subnet.Contains(p.Addr()) {
			t.Errorf("container %d's address %s is not in the network's %s", i, cidr, subnet)
		}
		if p.Addr() == gateway {
			t.Errorf("container %d has the gateway's address %s", i, p.Addr())
		}
	}
	if containerAddrs[0] == containerAddrs[1] {
		t.Errorf("both containers have %s", containerAddrs[0])
	}
	if got := clusterTestbed(123).serverAddr; got != hostAddr(clusterAddrB) {
		t.Errorf("server address %s, want container B's %s", got, hostAddr(clusterAddrB))
	}
	if overlayMTU != underlayMTU-50 {
		t.Errorf("overlay MTU %d, want the underlay's %d less VXLAN's 50", overlayMTU, underlayMTU)
	}

	// The largest pid a Linux machine hands out.
	const pid = 4194304
	h, tb := newClusterHosts(pid), clusterTestbed(pid)
	names := []string{h.underlay, h.hosts[0], h.hosts[1], tb.nsA, tb.nsB}
	seen := map[string]bool{}
	for _, n := range names {
		if !strings.HasPrefix(n, clusterPrefix+"-4194304-") {
			t.Errorf("namespace %q does not start with %s-PID-", n, clusterPrefix)
		}
		if seen[n] {
			t.Errorf("namespace %q used twice", n)
		}
		seen[n] = true
	}
	if newTestbed(pid).nsA == tb.nsA {
		t.Errorf("the cross-host testbed shares %q with the namespaces' comparison", tb.nsA)
	}
	for _, l := range []string{underlayLink, bridgeLink, vxlanLink, containerLink, ovsPhysBridge, ovsIntBridge} {
		if len(l) > 15 {
			t.Errorf("link name %q is longer than the kernel's 15 bytes", l)
		}
	}
}

func TestKernelVXLANCommands(t *testing.T) {
	cmds := strings.Join(kernelVXLANCommands(0, "tsx-1-a"), "\n")
	for _, want := range []string{
		"link add vx0 type vxlan id 4243 dstport 4789 local 10.233.0.1 dev ul0 nolearning",
		"link set vx0 master br0 up",
		"link add c0 mtu 1450 type veth peer name eth0 netns tsx-1-a",
		"link set c0 master br0 up",
	} {
		if !strings.Contains(cmds, want) {
			t.Errorf("host 1's commands lack %q:\n%s", want, cmds)
		}
	}
	if got, want := strings.Join(kernelFDBArgs(0), " "), "fdb append 00:00:00:00:00:00 dev vx0 dst 10.233.0.2"; got != want {
		t.Errorf("host 1's fdb entry: %q, want %q", got, want)
	}
	if got, want := strings.Join(kernelFDBArgs(1), " "), "fdb append 00:00:00:00:00:00 dev vx0 dst 10.233.0.1"; got != want {
		t.Errorf("host 2's fdb entry: %q, want %q", got, want)
	}
	if got := batch([]string{"a b", "c"}); got != "a b\nc\n" {
		t.Errorf("batch = %q", got)
	}
}

func TestTapswitchClusterCommands(t *testing.T) {
	if got, want := strings.Join(tapswitchStoreArgs(1, "http://10.233.0.10:2379"), " "),
		"--advertise 10.233.0.2 --cluster etcd=http://10.233.0.10:2379 --cluster-host h2"; got != want {
		t.Errorf("host 2's daemon flags in a cluster: %q, want %q", got, want)
	}
	if got, want := strings.Join(tapswitchStaticArgs(1), " "), "--advertise 10.233.0.2 --vxlan-peer 10.233.0.1"; got != want {
		t.Errorf("host 2's daemon flags with static peers: %q, want %q", got, want)
	}
	for i := range 2 {
		if slices.Contains(tapswitchStoreArgs(i, "http://x:2379"), "--vxlan-peer") {
			t.Errorf("host %d's cluster flags name a static peer: %q", i+1, tapswitchStoreArgs(i, "http://x:2379"))
		}
		if slices.Contains(tapswitchStaticArgs(i), "--cluster") {
			t.Errorf("host %d's static flags name a store: %q", i+1, tapswitchStaticArgs(i))
		}
	}
	if hostNames[0] == hostNames[1] {
		t.Errorf("both hosts are called %q in the cluster", hostNames[0])
	}
	if got, want := strings.Join(networkCreateArgs(), " "), "network create tsxnet --subnet 10.243.0.0/24 --scope cluster --vni 4243"; got != want {
		t.Errorf("network create: %q, want %q", got, want)
	}
	if got, want := strings.Join(attachArgs("tsx-1-b", clusterAddrB), " "), "attach tsx-1-b --network tsxnet --ip 10.243.0.12/24"; got != want {
		t.Errorf("attach: %q, want %q", got, want)
	}
	for _, args := range [][]string{tapswitchStoreArgs(0, "http://x:2379"), tapswitchStaticArgs(0)} {
		for _, a := range args {
			if f, ok := longFlag(a); ok && slices.Contains(benchOwnedFlags, f) {
				t.Errorf("--%s is set by tapswitchSystem.start already", f)
			}
		}
	}
}

func TestEtcdArgs(t *testing.T) {
	args := strings.Join(etcdArgs("/tmp/x/data", clusterEtcdAddr), " ")
	for _, want := range []string{
		"--data-dir /tmp/x/data",
		"--listen-client-urls http://10.233.0.10:2379",
		"--advertise-client-urls http://10.233.0.10:2379",
		"--listen-peer-urls http://10.233.0.10:2380",
		"--initial-cluster tsx=http://10.233.0.10:2380",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("etcd's flags lack %q: %s", want, args)
		}
	}
	// Only the underlay address: nothing on the machine's own.
	for _, bad := range []string{"0.0.0.0", "127.0.0.1", "localhost"} {
		if strings.Contains(args, bad) {
			t.Errorf("etcd listens on %s: %s", bad, args)
		}
	}
	e := &etcdServer{addr: clusterEtcdAddr}
	if got, want := e.clientURL(), "http://10.233.0.10:2379"; got != want {
		t.Errorf("client URL %q, want %q", got, want)
	}
	underlay := netip.MustParsePrefix("10.233.0.0/24")
	if a := netip.MustParseAddr(clusterEtcdAddr); !underlay.Contains(a) || slices.Contains(underlayAddrs[:], clusterEtcdAddr) {
		t.Errorf("etcd's address %s: want one of %s that neither host has", a, underlay)
	}
}

func TestFindEtcd(t *testing.T) {
	dir := t.TempDir()
	bin := dir + "/etcd"
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := dir + "/etcd.txt"
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	t.Setenv("GOBIN", "")
	t.Setenv(etcdEnvBinary, "")
	t.Setenv("GOPATH", empty)

	if got, err := findEtcd(bin); err != nil || got != bin {
		t.Errorf("findEtcd(%q) = %q, %v", bin, got, err)
	}
	if _, err := findEtcd(notExec); err == nil || !strings.Contains(err.Error(), "-etcd") {
		t.Errorf("findEtcd of a file that is no program: %v, want an error about -etcd", err)
	}
	t.Setenv("GOBIN", dir)
	if got, err := findEtcd(""); err != nil || got != bin {
		t.Errorf("findEtcd with GOBIN=%s: %q, %v", dir, got, err)
	}
	t.Setenv(etcdEnvBinary, notExec)
	if _, err := findEtcd(""); err == nil || !strings.Contains(err.Error(), etcdEnvBinary) {
		t.Errorf("findEtcd with $%s not a program: %v, want an error naming it", etcdEnvBinary, err)
	}
	t.Setenv(etcdEnvBinary, "")
	t.Setenv("GOBIN", "")
	if got, err := findEtcd(""); err == nil {
		t.Errorf("findEtcd with none about: %q, want an error", got)
	}
}

func TestClusterTapswitchSystems(t *testing.T) {
	found := func(string) (string, error) { return "/x/etcd", nil }
	missing := func(string) (string, error) { return "", errors.New("no etcd binary") }
	tests := []struct {
		name     string
		static   bool
		explicit bool
		find     func(string) (string, error)
		want     []string
		note     string
		wantErr  string
	}{
		{"store", false, false, found, []string{"tapswitch"}, "", ""},
		{"store and static", true, false, found, []string{"tapswitch", "tapswitch static"}, "", ""},
		{"no etcd", false, false, missing, nil, "make etcd", ""},
		{"no etcd, static", true, false, missing, []string{"tapswitch static"}, "make etcd", ""},
		{"no etcd, named", false, true, missing, nil, "", "make etcd"},
		{"no etcd, named with static", true, true, missing, nil, "", "make etcd"},
		{"-etcd not there", false, false, missing, nil, "", "make etcd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config{cluster: true, clusterStatic: tt.static}
			if strings.HasPrefix(tt.name, "-etcd") {
				cfg.etcd = "/nonexistent/etcd"
			}
			got, note, err := clusterTapswitchSystems(cfg, tt.explicit, tt.find)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("systems %q, want %q", got, tt.want)
			}
			if (tt.note == "") != (note == "") || !strings.Contains(note, tt.note) {
				t.Errorf("note %q, want one saying %q", note, tt.note)
			}
			if note != "" && !strings.Contains(note, "tapswitch skipped") {
				t.Errorf("note %q does not say tapswitch is skipped", note)
			}
			if tt.find != nil && err == nil && slices.Contains(got, "tapswitch") && cfg.etcdBin != "/x/etcd" {
				t.Errorf("etcd binary %q, want the one found", cfg.etcdBin)
			}
		})
	}
}

func TestNetworkListed(t *testing.T) {
	good := api.Network{Name: clusterNetwork, Scope: api.ScopeCluster, VNI: clusterVNI, Subnet: clusterSubnet}
	local := good
	local.Scope, local.VNI = api.ScopeLocal, 0
	for _, tt := range []struct {
		name string
		nets []api.Network
		want string
	}{
		{"there", []api.Network{{Name: "other"}, good}, ""},
		{"not yet", []api.Network{{Name: "other"}}, "no network tsxnet"},
		{"local", []api.Network{local}, "scope \"local\""},
	} {
		if got := networkListed(tt.nets, clusterNetwork); (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: networkListed = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestPeerHasEndpoint(t *testing.T) {
	const mac = "02:00:00:00:00:0b"
	// As tapswitch peers -o json has it.
	const out = `[{"name":"h1","vtep":"10.233.0.1","self":true,"rx_packets":0,"tx_packets":0,"macs":[]},
	{"name":"h2","vtep":"10.233.0.2","since":"2026-12-07T01:00:00Z","rx_packets":3,"tx_packets":4,
	 "macs":[{"mac":"02:00:00:00:00:0B","network":"tsxnet","static":true}]}]`
	var peers []api.Peer
	if err := json.Unmarshal([]byte(out), &peers); err != nil {
		t.Fatal(err)
	}
	if why := peerHasEndpoint(peers, "h2", "10.233.0.2", mac, clusterNetwork); why != "" {
		t.Errorf("h2 with %s published: %s", mac, why)
	}
	for _, tt := range []struct {
		name    string
		peers   func([]api.Peer) []api.Peer
		wantWhy string
	}{
		{"no peer", func(ps []api.Peer) []api.Peer { return ps[:1] }, "no peer 10.233.0.2"},
		{"static peer", func(ps []api.Peer) []api.Peer { ps[1].Static, ps[1].Name = true, ""; return ps }, "want the cluster host h2"},
		{"learned, not published", func(ps []api.Peer) []api.Peer { ps[1].MACs[0].Static = false; return ps }, "from the store"},
		{"other network", func(ps []api.Peer) []api.Peer { ps[1].MACs[0].Network = "x"; return ps }, "from the store"},
	} {
		var ps []api.Peer
		if err := json.Unmarshal([]byte(out), &ps); err != nil {
			t.Fatal(err)
		}
		why := peerHasEndpoint(tt.peers(ps), "h2", "10.233.0.2", mac, clusterNetwork)
		if !strings.Contains(why, tt.wantWhy) || why == "" {
			t.Errorf("%s: %q, want it to say %q", tt.name, why, tt.wantWhy)
		}
	}
}

func TestOVSVXLANPort(t *testing.T) {
	got := strings.Join(ovsVXLANPort(0), " ")
	want := "add-port brint vx0 -- set Interface vx0 type=vxlan options:remote_ip=10.233.0.2 options:local_ip=10.233.0.1 options:key=4243 options:dst_port=4789"
	if got != want {
		t.Errorf("host 1's vxlan port:\n%s\nwant:\n%s", got, want)
	}
}

func TestClusterNotes(t *testing.T) {
	notes := strings.Join(clusterNotes([]string{"bridge", "tapswitch", "ovs", "tapswitch", "bridge"}), "\n")
	for _, want := range []string{"tapswitch ran twice", "sums both hosts' processes", "ovs: userspace TSO off"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "bridge ran twice") {
		t.Errorf("the bridge's second pass has the -bracket note already:\n%s", notes)
	}
	if !strings.Contains(notes, "cluster on one etcd") || strings.Contains(notes, "tapswitch static:") {
		t.Errorf("notes do not say tapswitch ran on a store, or speak of static peers that did not run:\n%s", notes)
	}
	notes = strings.Join(clusterNotes([]string{"bridge", "tapswitch a", "tapswitch a", "bridge"}), "\n")
	if strings.Contains(notes, "ran twice") || strings.Contains(notes, "ovs:") {
		t.Errorf("variants have a note of their own and ovs did not run:\n%s", notes)
	}
	if !strings.Contains(notes, "cluster on one etcd") {
		t.Errorf("variants run on the store too:\n%s", notes)
	}
	notes = strings.Join(clusterNotes([]string{"bridge", "tapswitch static", "tapswitch static", "bridge"}), "\n")
	for _, want := range []string{"tapswitch static ran twice", "static peers (--vxlan-peer, no store)"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "cluster on one etcd") {
		t.Errorf("a run of static peers alone speaks of etcd:\n%s", notes)
	}
	notes = strings.Join(clusterNotes([]string{"bridge", baseSystem, "tapswitch", "tapswitch", baseSystem, "bridge"}), "\n")
	if strings.Contains(notes, "ran twice") || !strings.Contains(notes, "cluster on one etcd") {
		t.Errorf("an A/B's builds have a note of their own, and both run on the store:\n%s", notes)
	}
}

// linkStats reads a link's packet counters in namespace ns.
func linkStats(t *testing.T, ns, link string) (mtu int, rx, tx uint64) {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "-s", "link", "show", "dev", link).Output()
	if err != nil {
		t.Fatalf("ip -n %s -s link show %s: %v", ns, link, err)
	}
	var links []struct {
		MTU     int `json:"mtu"`
		Stats64 struct {
			RX struct{ Packets uint64 } `json:"rx"`
			TX struct{ Packets uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j -s link show %s: %v: %s", link, err, out)
	}
	return links[0].MTU, links[0].Stats64.RX.Packets, links[0].Stats64.TX.Packets
}

// testClusterSystem sets sys up between two fresh containers, checks
// that a ping crosses the underlay and that the containers have the
// overlay's MTU, and that teardown leaves none of the namespaces.
func testClusterSystem(t *testing.T, sys system, hosts *clusterHosts, pid int) {
	testClusterSystemThen(t, sys, hosts, pid, nil)
}

// testClusterSystemThen is testClusterSystem with then, when not nil,
// called after the checks and before teardown.
func testClusterSystemThen(t *testing.T, sys system, hosts *clusterHosts, pid int, then func()) {
	tb := sys.(testbedMaker).testbed(pid)
	names := []string{tb.nsA, tb.nsB, hosts.underlay, hosts.hosts[0], hosts.hosts[1]}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	torn := false
	teardown := func() {
		if torn {
			return
		}
		torn = true
		if err := sys.teardown(); err != nil {
			t.Errorf("teardown: %v", err)
		}
		if err := tb.destroy(); err != nil {
			t.Errorf("destroy: %v", err)
		}
	}
	t.Cleanup(teardown)
	if err := tb.create(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sys.setup(ctx, tb); err != nil {
		t.Fatalf("setup: %v", err)
	}
	_, _, txBefore := linkStats(t, hosts.hosts[0], underlayLink)
	if err := tb.waitReachable(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	_, _, txAfter := linkStats(t, hosts.hosts[0], underlayLink)
	if txAfter <= txBefore {
		t.Errorf("host 1's underlay link sent %d packets before the ping and %d after: the ping did not cross it", txBefore, txAfter)
	}
	for _, ns := range []string{tb.nsA, tb.nsB} {
		if mtu, _, _ := linkStats(t, ns, "eth0"); mtu != overlayMTU {
			t.Errorf("%s's eth0 has MTU %d, want the overlay's %d", ns, mtu, overlayMTU)
		}
	}
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil {
		for _, ns := range []string{hosts.underlay, hosts.hosts[0], hosts.hosts[1]} {
			out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-n", "net.bridge.bridge-nf-call-iptables").Output()
			if err != nil || strings.TrimSpace(string(out)) != "0" {
				t.Errorf("%s: bridge-nf-call-iptables = %q, %v; want 0", ns, out, err)
			}
		}
	}
	if then != nil {
		then()
	}
	teardown()
	for _, ns := range names {
		if nsExists(ns) {
			t.Errorf("namespace %s left behind", ns)
		}
	}
}

func TestClusterKernelSetup(t *testing.T) {
	privtest.Require(t, "create network namespaces", "ip", "bridge", "ping")
	pid := os.Getpid()
	hosts := newClusterHosts(pid)
	testClusterSystem(t, &clusterKernel{hosts: hosts}, hosts, pid)
}

func TestClusterOVSSetup(t *testing.T) {
	privtest.Require(t, "create network namespaces", "ip", "ping")
	if err := ovsAvailable(); err != nil {
		t.Skipf("Open vSwitch: %v", err)
	}
	pid := os.Getpid()
	hosts := newClusterHosts(pid)
	testClusterSystem(t, &clusterOVS{pid: pid, hosts: hosts}, hosts, pid)
}

// A set-up that fails halfway is undone by teardown, which removes what
// it made and nothing else.
func TestClusterHostsFailedSetup(t *testing.T) {
	privtest.Require(t, "create network namespaces", "ip")
	pid := os.Getpid()
	hosts := newClusterHosts(pid)
	// Host 2's namespace is someone else's: create must stop there.
	privtest.Netns(t, hosts.hosts[1])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := hosts.create(ctx)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("create with host 2's namespace taken: %v, want an error saying it exists", err)
	}
	if err := hosts.destroy(); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	for _, ns := range []string{hosts.underlay, hosts.hosts[0]} {
		if nsExists(ns) {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	if !nsExists(hosts.hosts[1]) {
		t.Errorf("destroy removed %s, which it did not make", hosts.hosts[1])
	}
}

// buildTapswitch builds tapswitchd and the CLI into a temporary
// directory and returns it.
func buildTapswitch(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	// go test puts the go command of its own toolchain first in PATH.
	build := exec.Command("go", "build", "-o", bin+"/", "../cmd/tapswitchd", "../cmd/tapswitch")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// peerLines returns, for each host, the lines of its peers listing that
// name the other host's VTEP.
func peerLines(t *testing.T, peers []listing) [2][]string {
	t.Helper()
	if len(peers) != 2 {
		t.Fatalf("got %d listings of peers, want one per host: %v", len(peers), peers)
	}
	var out [2][]string
	for i, l := range peers {
		for _, line := range strings.Split(l.Output, "\n") {
			if slices.Contains(strings.Fields(line), underlayAddrs[other(i)]) {
				out[i] = append(out[i], line)
			}
		}
		if len(out[i]) == 0 {
			t.Errorf("host %d's peers do not show %s:\n%s", i+1, underlayAddrs[other(i)], l.Output)
		}
	}
	return out
}

// TestClusterTapswitchSetup builds tapswitchd and the CLI, then checks
// tapswitch's cross-host set-up like the others': the hosts form a
// cluster on an etcd of the pass's own, each sees the other as a
// cluster host (not a static peer) that carried the ping, and teardown
// stops etcd and removes its directory.
func TestClusterTapswitchSetup(t *testing.T) {
	privtest.Require(t, "create network namespaces and TAP devices", "ip", "ping")
	etcd, err := findEtcd("")
	if err != nil {
		cannot := t.Skipf
		if privtest.Required() {
			cannot = t.Fatalf
		}
		cannot("%v; %s", err, etcdHowTo)
	}
	bin := buildTapswitch(t)
	pid := os.Getpid()
	hosts := newClusterHosts(pid)
	sys := &clusterTapswitch{label: "tapswitch", daemonPath: bin + "/tapswitchd", cliPath: bin + "/tapswitch", etcdBin: etcd, hosts: hosts}
	var peers []listing
	var etcdDir string
	var etcdPID int
	testClusterSystemThen(t, sys, hosts, pid, func() {
		peers = sys.listings()
		if sys.etcd == nil || sys.etcd.p == nil {
			t.Fatal("no etcd ran")
		}
		etcdDir, etcdPID = sys.etcd.dir, sys.etcd.p.pid()
		for i, d := range sys.daemons {
			if !slices.Contains(d.extraArgs, "--cluster") || slices.Contains(d.extraArgs, "--vxlan-peer") {
				t.Errorf("host %d's daemon ran with %q, want --cluster and no --vxlan-peer", i+1, d.extraArgs)
			}
		}
	})
	for i, lines := range peerLines(t, peers) {
		for _, line := range lines {
			f := strings.Fields(line)
			if slices.Contains(f, "static") || !slices.Contains(f, hostNames[other(i)]) {
				t.Errorf("host %d lists %s as %q, want the cluster host %s", i+1, underlayAddrs[other(i)], line, hostNames[other(i)])
			}
		}
	}
	if _, err := os.Stat(etcdDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("etcd's directory %s left behind: %v", etcdDir, err)
	}
	if err := syscall.Kill(etcdPID, 0); err == nil {
		t.Errorf("etcd (pid %d) still runs after teardown", etcdPID)
	}
}

// TestClusterTapswitchStaticSetup checks -cluster-static's set-up: each
// daemon sees the other host as a static peer that carried the ping,
// and no etcd runs.
func TestClusterTapswitchStaticSetup(t *testing.T) {
	privtest.Require(t, "create network namespaces and TAP devices", "ip", "ping")
	bin := buildTapswitch(t)
	pid := os.Getpid()
	hosts := newClusterHosts(pid)
	sys := &clusterTapswitch{label: staticSystem, daemonPath: bin + "/tapswitchd", cliPath: bin + "/tapswitch", static: true, hosts: hosts}
	var peers []listing
	testClusterSystemThen(t, sys, hosts, pid, func() {
		peers = sys.listings()
		if sys.etcd != nil {
			t.Errorf("an etcd ran for static peers")
		}
	})
	for i, lines := range peerLines(t, peers) {
		for _, line := range lines {
			if !slices.Contains(strings.Fields(line), "static") {
				t.Errorf("host %d lists %s as %q, want a static peer", i+1, underlayAddrs[other(i)], line)
			}
		}
	}
}

// With -cluster the switch forwards in one process per host: the
// switch's share is their sum, and neither counts among the others.
func TestCPUSplitTwoSwitchProcesses(t *testing.T) {
	w := newCPUWatch(3, "iperf3", 100, 200, 300)
	var roles []string
	for _, o := range w.others {
		roles = append(roles, o.role)
	}
	if want := []string{roleReceiver, roleSwitch, roleSwitch + roleInstance + "2"}; !slices.Equal(roles, want) {
		t.Fatalf("watched roles %q, want %q", roles, want)
	}
	if w := newCPUWatch(3, "iperf3", 100, 200, 0); len(w.others) != 2 {
		t.Errorf("a second switch process of pid 0 is watched: %v", w.others)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	second := roleSwitch + roleInstance + "2"
	a := cpuSample{at: t0, cpus: 2, procs: map[string]procCPU{
		roleSwitch: {comm: "tapswitchd", state: 'S', ticks: 1000},
		second:     {comm: "tapswitchd", state: 'S', ticks: 5000},
	}, others: map[procKey]uint64{}}
	b := cpuSample{
		at:      t0.Add(time.Second),
		machine: machineCPU{user: 100, system: 100},
		cpus:    2,
		procs: map[string]procCPU{
			roleSwitch: {comm: "tapswitchd", state: 'S', ticks: 1060},
			second:     {comm: "tapswitchd", state: 'S', ticks: 5050},
		},
		others: map[procKey]uint64{},
	}
	got, err := cpuSplit(a, b, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got["cpu_switch_pct"] != 110 {
		t.Errorf("cpu_switch_pct = %v, want 60 + 50", got["cpu_switch_pct"])
	}
	for k := range got {
		if strings.Contains(k, roleInstance) {
			t.Errorf("figure %q names a process of a role, not the role", k)
		}
	}
}
