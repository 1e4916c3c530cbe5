package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// Dual-stack Docker networks of the driver (docker network create
// --ipv6), with Docker's IPAM and with tapswitch's: two containers reach
// each other over IPv6 by name (Docker's embedded DNS answers AAAA) and
// by address, through tapswitch's TAPs; docker rm frees both addresses.

// d6Pool6 is the IPv6 pool the tests' tapswitchd hands /64s out of.
const d6Pool6 = "fd33:0:0:f000::/52"

func newDockerV6(t *testing.T, daemonArgs ...string) *dockerDriverEnv {
	t.Helper()
	return newDockerDriver(t, append([]string{"--ipv6-pool", d6Pool6}, daemonArgs...)...)
}

// networkSubnets is tapswitch's view of network: its subnets with their
// gateways, "SUBNET GATEWAY" each, the IPv4 one first.
func (e *dockerDriverEnv) networkSubnets(network string) []string {
	e.t.Helper()
	var n api.NetworkDetail
	if err := json.Unmarshal([]byte(e.mustCLI("network", "inspect", network, "-o", "json")), &n); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, s := range n.Subnets {
		out = append(out, s.Subnet+" "+s.Gateway)
	}
	return out
}

// v6Of is the container's IPv6 address on network as Docker has it.
func (e *dockerDriverEnv) v6Of(container, network string) netip.Addr {
	e.t.Helper()
	s := e.dk.Inspect(container, fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).GlobalIPv6Address}}`, network))
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		e.t.Fatalf("container %s has no IPv6 address on %s as Docker has it: %q", container, network, s)
	}
	return a
}

// waitDAD waits until the container's eth0 has addr and it is no longer
// tentative (duplicate address detection over): until then the kernel
// sends nothing from it. It fails the test if that does not happen
// within a generous bound.
func (e *dockerDriverEnv) waitDAD(container string, addr netip.Addr) string {
	e.t.Helper()
	var out string
	for range 100 {
		out = e.mustExec(container, "ip", "-6", "addr", "show", "dev", "eth0")
		if strings.Contains(out, addr.String()+"/") && !strings.Contains(out, "tentative") {
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("eth0 of %s never got %s out of duplicate address detection:\n%s", container, addr, out)
	return ""
}

// checkDualStack runs the checks both IPAM modes share on network (the
// Docker name), whose tapswitch name is tsNet: containers d6-a (httpd)
// and d6-b on it reach each other over IPv6 through tapswitch, and docker
// rm frees both of d6-a's addresses (and, when the network's subnets are
// the user's, where docker run --ip and --ip6 may be given, a new
// container gets them). It leaves d6-b running.
func checkDualStack(t *testing.T, e *dockerDriverEnv, network, tsNet string, userSubnets bool) {
	dk := e.dk
	dk.RunDetached("d6-a", []string{"--network", network}, HTTPServer...)
	dk.RunDetached("d6-b", []string{"--network", network})
	_, aPort := e.endpoint("d6-a", network)
	_, bPort := e.endpoint("d6-b", network)
	a6, b6 := e.v6Of("d6-a", network), e.v6Of("d6-b", network)
	a4 := dk.Inspect("d6-a", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, network))
	sub := e.networkSubnets(tsNet)
	if len(sub) != 2 {
		t.Fatalf("tapswitch network %s has subnets %v, want an IPv4 and an IPv6 one", tsNet, sub)
	}
	gw6 := strings.Fields(sub[1])[1]
	if got := dk.Inspect("d6-b", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPv6Gateway}}`, network)); got != gw6 {
		t.Errorf("d6-b's IPv6 gateway as Docker has it = %q, want tapswitch's %s", got, gw6)
	}

	// eth0 is tapswitch's TAP, with both addresses; tapswitch's port has
	// both as well.
	for _, c := range []string{"d6-a", "d6-b"} {
		if out := e.mustExec(c, "cat", "/sys/class/net/eth0/tun_flags"); strings.TrimSpace(out) == "" {
			t.Errorf("eth0 of %s has no tun_flags: not tapswitch's TAP", c)
		}
	}
	addrs := e.waitDAD("d6-a", a6)
	if !strings.Contains(e.mustExec("d6-a", "ip", "-4", "addr", "show", "dev", "eth0"), a4+"/") {
		t.Errorf("eth0 of d6-a lacks its IPv4 address %s", a4)
	}
	t.Logf("d6-a's eth0 (IPv6):\n%s", addrs)
	e.waitDAD("d6-b", b6)
	for _, c := range []struct{ port, a4 string }{{aPort, a4}, {bPort, ""}} {
		ips := e.port(c.port).IPs
		has6 := slices.ContainsFunc(ips, func(s string) bool { return strings.Contains(s, ":") })
		if len(ips) != 2 || !has6 || (c.a4 != "" && !strings.HasPrefix(ips[0], c.a4+"/")) {
			t.Errorf("tapswitch port %s has %v, want its IPv4 and IPv6 addresses", c.port, ips)
		}
	}
	// What Docker sets for IPv6 in the container's namespace.
	sysctls := e.mustExec("d6-b", "sh", "-c", "for f in all default lo eth0; do echo $f=$(cat /proc/sys/net/ipv6/conf/$f/disable_ipv6); done")
	t.Logf("disable_ipv6 in d6-b: %s", strings.Join(strings.Fields(sysctls), " "))
	if !strings.Contains(sysctls, "eth0=0") {
		t.Errorf("IPv6 is disabled on d6-b's eth0: %s", sysctls)
	}
	if out := e.mustExec("d6-b", "ip", "-6", "route"); !strings.Contains(out, "default via "+gw6) {
		t.Errorf("d6-b has no IPv6 default route via %s:\n%s", gw6, out)
	}

	// Docker's DNS answers AAAA; ping -6 by name and by address; wget
	// over IPv6. Frames cross tapswitch: d6-b's port counts them.
	if out, err := dk.Exec("d6-b", "nslookup", "-type=AAAA", "d6-a", "127.0.0.11"); err != nil || !strings.Contains(out, a6.String()) {
		t.Errorf("nslookup -type=AAAA d6-a in d6-b = %v\n%s\nwant %s", err, out, a6)
	} else {
		t.Logf("docker exec d6-b nslookup -type=AAAA d6-a 127.0.0.11:\n%s", out)
	}
	before := e.port(bPort).Stats
	for _, target := range []string{"d6-a", a6.String()} {
		if out, err := dk.Exec("d6-b", "ping", "-6", "-c", "3", "-W", "5", target); err != nil || !strings.Contains(out, a6.String()) {
			t.Errorf("ping -6 %s from d6-b: %v\n%s", target, err, out)
		} else {
			t.Logf("docker exec d6-b ping -6 -c 3 %s:\n%s", target, out)
		}
	}
	url := fmt.Sprintf("http://[%s]/", a6)
	if out, err := dk.Exec("d6-b", "wget", "-qO-", url); err != nil || out != dockerPage {
		t.Errorf("wget %s from d6-b = %q, %v; want the page", url, out, err)
	}
	after := e.port(bPort).Stats
	if after.TxFrames < before.TxFrames+6 || after.RxFrames < before.RxFrames+6 {
		t.Errorf("port %s (d6-b's eth0) counted %d frames to and %d from the container over ping -6 and wget, want 6 or more each", bPort, after.TxFrames-before.TxFrames, after.RxFrames-before.RxFrames)
	}
	t.Logf("d6-b's port: +%d frames from the container, +%d to it", after.RxFrames-before.RxFrames, after.TxFrames-before.TxFrames)

	// docker rm frees both addresses: tapswitch holds neither, and a new
	// container may have them.
	dk.MustDocker("rm", "-f", "d6-a")
	if p := findPort(e.ports(), aPort); p != nil {
		t.Errorf("port %s left after docker rm", aPort)
	}
	if held := e.allocated(tsNet); slices.Contains(held, a4) {
		t.Errorf("d6-a's IPv4 address %s still held on %s after docker rm: %v", a4, tsNet, held)
	}
	if held := e.allocated6(tsNet); slices.Contains(held, a6.String()) {
		t.Errorf("d6-a's IPv6 address %s still held on %s after docker rm: %v", a6, tsNet, held)
	}
	if !userSubnets {
		return
	}
	dk.RunDetached("d6-c", []string{"--network", network, "--ip", a4, "--ip6", a6.String()}, HTTPServer...)
	if got := e.v6Of("d6-c", network); got != a6 {
		t.Errorf("d6-c got %s, want %s, which docker rm of d6-a freed", got, a6)
	}
	e.waitDAD("d6-c", a6)
	if out, err := dk.Exec("d6-b", "wget", "-qO-", "http://d6-c/"); err != nil || out != dockerPage {
		t.Errorf("wget http://d6-c/ (on d6-a's addresses) = %q, %v", out, err)
	}
	dk.MustDocker("rm", "-f", "d6-c")
}

// TestDockerV6DockerIPAM: docker network create --ipv6 with Docker's
// IPAM; the network is dual-stack with Docker's subnets and gateways;
// published ports work; a tapswitchd killed and started again takes the
// ports back with both addresses.
func TestDockerV6DockerIPAM(t *testing.T) {
	e := newDockerV6(t, "--remove-on-exit=false")
	dk := e.dk
	id := dk.MustDocker("network", "create", "-d", e.plugin, "--ipv6", "--subnet", "10.133.1.0/24", "--subnet", "fd33:0:0:1::/64", "d6dual")
	tsNet := id[:12]
	want := []string{"10.133.1.0/24 10.133.1.1", "fd33:0:0:1::/64 fd33:0:0:1::1"}
	if got := e.networkSubnets(tsNet); !slices.Equal(got, want) {
		t.Fatalf("tapswitch network %s has %v, want %v", tsNet, got, want)
	}
	t.Logf("tapswitch network ls:\n%s", e.mustCLI("network", "ls"))
	t.Logf("docker network inspect d6dual (IPAM): %s", dk.Inspect("d6dual", `{{json .EnableIPv6}} {{json .IPAM.Config}}`))
	checkDualStack(t, e, "d6dual", tsNet, true)

	// A published port on a dual-stack network, on the host's IPv4 and
	// IPv6 loopback; both reach the container (at its IPv4 address).
	hostPort, hostPort6 := freeHostPort(t, 18330), freeHostPort(t, 18331)
	dk.RunDetached("d6-web", []string{"--network", "d6dual", "-p", fmt.Sprintf("127.0.0.1:%d:80", hostPort), "-p", fmt.Sprintf("[::1]:%d:80", hostPort6)}, HTTPServer...)
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
	url6 := fmt.Sprintf("http://[::1]:%d/", hostPort6)
	for _, u := range []string{url, url6} {
		if out, err := httpGet(u); err != nil || out != dockerPage {
			t.Errorf("GET %s = %q, %v; want the page", u, out, err)
		}
	}
	_, bPort := e.endpoint("d6-b", "d6dual")
	webV6 := e.v6Of("d6-web", "d6dual")
	e.waitDAD("d6-web", webV6)
	t.Logf("tapswitch ports:\n%s", e.mustCLI("ports"))

	// kill -9 and a new tapswitchd: both addresses stay, traffic resumes.
	e.killDaemon()
	e.stopped = false
	e.startDaemon()
	if st := e.status(); st.RestoredPorts != 2 || st.DroppedPorts != 0 {
		t.Errorf("after kill -9: %d ports restored, %d dropped; want 2 and 0\n%s", st.RestoredPorts, st.DroppedPorts, e.daemonLog())
	}
	if ips := e.port(bPort).IPs; len(ips) != 2 {
		t.Errorf("after kill -9, port %s has %v, want both addresses", bPort, ips)
	}
	if got := e.networkSubnets(tsNet); !slices.Equal(got, want) {
		t.Errorf("after kill -9, tapswitch network %s has %v, want %v", tsNet, got, want)
	}
	before := e.port(bPort).Stats.TxFrames
	if out, err := dk.Exec("d6-b", "wget", "-qO-", fmt.Sprintf("http://[%s]/", webV6)); err != nil || out != dockerPage {
		t.Errorf("after kill -9, wget over IPv6 = %q, %v", out, err)
	}
	if out, err := dk.Exec("d6-b", "ping", "-6", "-c", "1", "-W", "5", "d6-web"); err != nil {
		t.Errorf("after kill -9, ping -6 d6-web: %v\n%s", err, out)
	}
	if after := e.port(bPort).Stats.TxFrames; after <= before {
		t.Errorf("after kill -9, port %s forwarded no frames", bPort)
	}
	if out, err := httpGet(url); err != nil || out != dockerPage {
		t.Errorf("after kill -9, GET %s = %q, %v", url, out, err)
	}
	dk.MustDocker("rm", "-f", "d6-b", "d6-web")
	dk.MustDocker("network", "rm", "d6dual")
	if r := e.cli("network", "inspect", tsNet); r.code == 0 {
		t.Errorf("network %s left after docker network rm", tsNet)
	}

	// --ipv6 without an IPv6 subnet: Docker's IPAM has no IPv6 pool of
	// its own and refuses. An IPv6 --subnet without --ipv6: Docker
	// leaves IPv6 out (no IPv6 data reaches the driver), as with its
	// bridge driver: the network and its containers are IPv4 only.
	if out, err := dk.Docker("network", "create", "-d", e.plugin, "--ipv6", "--subnet", "10.133.6.0/24", "d6nov6"); err == nil {
		t.Errorf("docker network create --ipv6 without an IPv6 subnet succeeded: %s", out)
		dk.Docker("network", "rm", "d6nov6")
	} else {
		t.Logf("--ipv6 without an IPv6 subnet, Docker's IPAM: %s", strings.TrimSpace(out))
	}
	id = dk.MustDocker("network", "create", "-d", e.plugin, "--subnet", "10.133.7.0/24", "--subnet", "fd33:0:0:7::/64", "d6noflag")
	if got := e.networkSubnets(id[:12]); len(got) != 1 || got[0] != "10.133.7.0/24 10.133.7.1" {
		t.Errorf("an IPv6 --subnet without --ipv6 made tapswitch network %v, want 10.133.7.0/24 only, as Docker leaves IPv6 out", got)
	}
	dk.RunDetached("d6-p", []string{"--network", "d6noflag"})
	_, pPort := e.endpoint("d6-p", "d6noflag")
	if ips := e.port(pPort).IPs; len(ips) != 1 {
		t.Errorf("a container on a network without --ipv6 has %v in tapswitch, want its IPv4 address only", ips)
	}
	dk.MustDocker("rm", "-f", "d6-p")
	dk.MustDocker("network", "rm", "d6noflag")
}

// TestDockerV6TapswitchIPAM: --ipam-driver of tapswitch with --ipv6: the
// IPv6 subnet is a /64 of tapswitch's IPv6 pool, its gateway the pool's,
// the addresses Docker's containers get come from the network's own IPv6
// subnet; a requested IPv6 subnet is checked against tapswitch's
// networks.
func TestDockerV6TapswitchIPAM(t *testing.T) {
	e := newDockerV6(t)
	dk := e.dk
	id := dk.MustDocker("network", "create", "-d", e.plugin, "--ipam-driver", e.plugin, "--ipv6", "--subnet", "10.133.2.0/24", "d6pool")
	tsNet := id[:12]
	sub := e.networkSubnets(tsNet)
	pool := netip.MustParsePrefix(d6Pool6)
	if len(sub) != 2 || sub[0] != "10.133.2.0/24 10.133.2.1" {
		t.Fatalf("tapswitch network %s has %v, want 10.133.2.0/24 and an IPv6 /64 of %s", tsNet, sub, d6Pool6)
	}
	p6, err := netip.ParsePrefix(strings.Fields(sub[1])[0])
	if err != nil || p6.Bits() != 64 || !pool.Contains(p6.Addr()) || strings.Fields(sub[1])[1] != p6.Addr().Next().String() {
		t.Fatalf("IPv6 subnet of %s = %q, want a /64 of %s with its first address as gateway", tsNet, sub[1], d6Pool6)
	}
	cfg := dk.Inspect("d6pool", `{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}};{{end}}`)
	if !strings.Contains(cfg, p6.String()+" "+p6.Addr().Next().String()) {
		t.Errorf("docker network inspect d6pool: IPAM config %q, want %s with gateway %s", cfg, p6, p6.Addr().Next())
	}
	checkDualStack(t, e, "d6pool", tsNet, false)
	// d6-b's IPv6 address came from the network's own subnet: tapswitch's
	// IPAM holds it.
	b6 := e.v6Of("d6-b", "d6pool")
	if held := e.allocated6(tsNet); !slices.Contains(held, b6.String()) {
		t.Errorf("tapswitch's IPAM of %s holds %v, not d6-b's %s", tsNet, held, b6)
	}
	dk.MustDocker("rm", "-f", "d6-b")

	// A requested IPv6 subnet is checked: one that overlaps is refused.
	out, err := dk.Docker("network", "create", "-d", e.plugin, "--ipam-driver", e.plugin, "--ipv6", "--subnet", "10.133.3.0/24", "--subnet", p6.String(), "d6clash")
	if err == nil || !strings.Contains(out, "overlap") {
		t.Errorf("a second network on %s = %v\n%s, want a refusal saying it overlaps", p6, err, out)
		dk.Docker("network", "rm", "d6clash")
	} else {
		t.Logf("docker network create on %s again: %s", p6, strings.TrimSpace(out))
	}
	id2 := dk.MustDocker("network", "create", "-d", e.plugin, "--ipam-driver", e.plugin, "--ipv6", "--subnet", "10.133.4.0/24", "--subnet", "fd33:0:0:4::/64", "d6req")
	if got := e.networkSubnets(id2[:12]); !slices.Equal(got, []string{"10.133.4.0/24 10.133.4.1", "fd33:0:0:4::/64 fd33:0:0:4::1"}) {
		t.Errorf("network d6req = %v, want 10.133.4.0/24 and fd33:0:0:4::/64", got)
	}
	checkDualStack(t, e, "d6req", id2[:12], true)
	dk.MustDocker("rm", "-f", "d6-b")
	dk.MustDocker("network", "rm", "d6pool", "d6req")
	if len(e.ports()) != 0 {
		t.Errorf("ports left after every container was removed:\n%s", e.mustCLI("ports"))
	}
	// The IPv6 /64 went back to the pool: a new network may have it.
	id3 := dk.MustDocker("network", "create", "-d", e.plugin, "--ipam-driver", e.plugin, "--ipv6", "--subnet", "10.133.5.0/24", "--subnet", p6.String(), "d6again")
	if got := e.networkSubnets(id3[:12]); len(got) != 2 || !strings.HasPrefix(got[1], p6.String()+" ") {
		t.Errorf("network d6again = %v, want %s again", got, p6)
	}
	dk.MustDocker("network", "rm", "d6again")
}

// TestDockerV6DockerdRestart: a dual-stack network with the names
// tapswitchd takes from dockerd; dockerd restarted with --live-restore
// while a ping -6 runs (every reply comes), then killed while one
// container dies: both of its addresses are freed once dockerd is back,
// and the other two still reach each other over IPv6.
func TestDockerV6DockerdRestart(t *testing.T) {
	e := newDockerLife(t, "--live-restore")
	dk := e.dk
	dk.MustDocker("network", "create", "-d", e.plugin, "--ipv6", "--subnet", "10.133.20.0/24", "--subnet", "fd33:0:0:20::/64", "d6live")
	for _, c := range []string{"d6-la", "d6-lb", "d6-lc"} {
		dk.RunDetached(c, []string{"--network", "d6live"})
	}
	e.waitPorts(30*time.Second, "d6-la", "d6-lb", "d6-lc")
	v6 := func(c string) string {
		return dk.Inspect(c, `{{(index .NetworkSettings.Networks "d6live").GlobalIPv6Address}}`)
	}
	b6, c6, c4 := v6("d6-lb"), v6("d6-lc"), e.ipOf("d6-lc", "d6live")
	if ips := e.port("d6-lb").IPs; len(ips) != 2 || ips[1] != b6+"/64" {
		t.Fatalf("port d6-lb has %v, want its IPv4 address and %s/64", ips, b6)
	}

	const pings = 100 // 20 s, longer than the restart
	dk.PingThroughRestart("d6-la", pings, "-6", b6)

	// dockerd killed, and d6-lc dies meanwhile: both its addresses go
	// once dockerd is back.
	pidC := dk.ContainerPid("d6-lc")
	dk.Kill()
	if err := killPid(pidC); err != nil {
		t.Fatalf("kill d6-lc's process %d: %v", pidC, err)
	}
	dk.Start()
	e.waitPorts(60*time.Second, "d6-la", "d6-lb")
	eventually(t, 30*time.Second, "d6-lc's addresses freed", func() (bool, string) {
		a4, a6 := e.allocated("d6live"), e.allocated6("d6live")
		return !slices.Contains(a4, c4) && !slices.Contains(a6, c6), fmt.Sprint(a4, a6)
	})
	if out, err := dk.Exec("d6-la", "ping", "-6", "-c", "3", "-W", "5", "d6-lb"); err != nil {
		t.Errorf("ping -6 d6-lb after dockerd's kill: %v\n%s", err, out)
	}
	dk.MustDocker("rm", "-f", "d6-la", "d6-lb")
	dk.MustDocker("network", "rm", "d6live")
}
