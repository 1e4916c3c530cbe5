package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// TestPodmanCNI runs the podman session of the README: podman with the
// CNI backend puts busybox containers on a tapswitch network through
// tapswitch-cni, with portmap chained after it. Containers find each
// other by name through the network's DNS, which podman writes into
// their resolv.conf from the plugin's result; a published port is
// reached from the host; podman rm takes the port off the switch and
// portmap's rules away.
func TestPodmanCNI(t *testing.T) {
	requirePodman(t)
	start := time.Now()
	step := func(what string, since time.Time) {
		t.Logf("%-40s %v", what, time.Since(since).Round(time.Millisecond))
	}

	up := startUpstream(t)
	e := newEnvArgs(t, []string{"--dns-upstream", up.addr.String()})
	var front api.Network
	mustJSON(t, e.mustCLI("network", "create", "front", "--subnet", unroutedSubnet(t), "-o", "json"), &front)

	p := newPodman(t)
	// cniVersion 1.0.0, not 1.1.0: Debian's portmap (plugins 1.1.1)
	// supports up to 1.0.0, and podman 4.3 drops a conflist any of
	// whose plugins does not support its version ("network not found").
	p.writeConflist("front", map[string]any{
		"cniVersion": "1.0.0",
		"name":       "front",
		"plugins": []any{
			map[string]any{"type": "tapswitch-cni", "network": "front", "socket": e.sock},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	})
	t0 := time.Now()
	p.importImage()
	step("image built and imported", t0)
	if nets := strings.Fields(p.mustPodman("network", "ls", "--format", "{{.Name}}")); !slices.Contains(nets, "front") {
		t.Fatalf("podman network ls: %q, want front (a conflist podman rejects is only warned about)", nets)
	}

	// (1) A web server by name, through tapswitch's DNS.
	t0 = time.Now()
	p.mustRun("-d", "--name", "db", "--network", "front", "--cap-add", "NET_RAW", podmanImage, "httpd", "-f", "-p", "80", "-h", "/www")
	step("podman run -d db", t0)
	db := p.inspect("db")
	dbPort := p.checkPort(e, db, front)
	resolv := p.mustPodman("exec", "db", "cat", "/etc/resolv.conf")
	if ns := resolvField(resolv, "nameserver"); len(ns) == 0 || ns[0] != front.Gateway {
		t.Errorf("resolv.conf of db: nameservers %q, want the gateway %s first\n%s", ns, front.Gateway, resolv)
	}
	if s := resolvField(resolv, "search"); !slices.Contains(s, "front") {
		t.Errorf("resolv.conf of db: search %q, want front\n%s", s, resolv)
	}
	t0 = time.Now()
	for _, url := range []string{"http://db/", "http://db.front/"} {
		// No -T: busybox-static's wget crashes with it (exit 139).
		out, err := p.run("--rm", "--network", "front", podmanImage, "wget", "-qO-", url)
		if err != nil || out != podmanPage {
			t.Errorf("podman run --rm --network front wget -qO- %s: %v\n%q, want %q", url, err, out, podmanPage)
		}
	}
	step("podman run --rm wget http://db/ (twice)", t0)

	// (2) Two containers ping each other by name.
	hostPort := freeHostPort(t, 8081)
	t0 = time.Now()
	p.mustRun("-d", "--name", "web", "--network", "front", "--cap-add", "NET_RAW",
		"-p", fmt.Sprintf("%d:80", hostPort), podmanImage, "httpd", "-f", "-p", "80", "-h", "/www")
	step("podman run -d -p web", t0)
	web := p.inspect("web")
	webPort := p.checkPort(e, web, front)
	t0 = time.Now()
	for _, c := range [][2]string{{"db", "web"}, {"web", "db"}} {
		if out, err := p.podman("exec", c[0], "ping", "-c", "2", "-i", "0.2", "-W", "2", c[1]); err != nil {
			t.Errorf("podman exec %s ping %s: %v\n%s", c[0], c[1], err, out)
		}
	}
	step("ping db <-> web by name", t0)

	// (3) The published port, through portmap's DNAT: from the host on
	// loopback, and on the host's address on the network (the gateway).
	webIP := web.NetworkSettings.Networks["front"].IPAddress
	// portmap names the container in the comment of its jump rule, and
	// DNATs in a chain of its own.
	if rules := portmapRules(t, "iptables-save", ""); !slices.ContainsFunc(rules, func(r string) bool {
		return strings.Contains(r, web.ID) && strings.Contains(r, fmt.Sprintf("--dports %d", hostPort))
	}) || !slices.ContainsFunc(rules, func(r string) bool {
		return strings.Contains(r, fmt.Sprintf("--dport %d -j DNAT --to-destination %s:80", hostPort, webIP))
	}) {
		t.Errorf("iptables-save -t nat: no portmap rules for web (%s, %d -> %s:80):\n%s", web.ID, hostPort, webIP, strings.Join(rules, "\n"))
	}
	t0 = time.Now()
	for _, host := range []string{"127.0.0.1", front.Gateway} {
		url := fmt.Sprintf("http://%s/", net.JoinHostPort(host, fmt.Sprint(hostPort)))
		if body, err := httpGet(url); err != nil || body != podmanPage {
			t.Errorf("GET %s from the host: %v\n%q, want %q", url, err, body, podmanPage)
		}
	}
	step("GET the published port from the host", t0)

	// (4) podman rm: the port leaves the switch, portmap's rules and
	// the namespace go, and libcni's cached result with them.
	t0 = time.Now()
	p.mustPodman("rm", "-f", "-t", "0", "web")
	step("podman rm -f web", t0)
	p.checkGone(e, web, webPort)
	if rules := portmapRules(t, "iptables-save", ""); slices.ContainsFunc(rules, func(r string) bool {
		return strings.Contains(r, webIP) || strings.Contains(r, fmt.Sprintf("--dport %d ", hostPort))
	}) {
		t.Errorf("iptables-save -t nat after podman rm web: rules of web left:\n%s", strings.Join(rules, "\n"))
	}
	if body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); err == nil {
		t.Errorf("GET 127.0.0.1:%d after podman rm web: %q, want no answer", hostPort, body)
	}
	p.mustPodman("rm", "-f", "-t", "0", "db")
	p.checkGone(e, db, dbPort)
	if ports := e.ports(); len(ports) != 0 {
		t.Errorf("tapswitch ports after podman rm of every container: %+v, want none", ports)
	}
	if out := p.mustPodman("ps", "-aq"); out != "" {
		t.Errorf("podman ps -aq after podman rm: %q", out)
	}
	step("whole test", start)
}

// checkPort finds the tapswitch port of container c and checks it
// against what podman says of the container, and returns its name.
func (p *podmanEnv) checkPort(e *testEnv, c podmanContainer, nw api.Network) string {
	p.t.Helper()
	ports := e.ports()
	i := slices.IndexFunc(ports, func(pt api.Port) bool { return pt.ContainerID == c.ID })
	if i < 0 {
		p.t.Fatalf("tapswitch ports: no port with container id %s (%s)\n%+v", c.ID, c.Name, ports)
	}
	pt := ports[i]
	pn, ok := c.NetworkSettings.Networks[nw.Name]
	switch {
	case !ok:
		p.t.Errorf("podman inspect %s: not on network %s: %+v", c.Name, nw.Name, c.NetworkSettings.Networks)
	case pt.Network != nw.Name || pt.Netns != c.NetworkSettings.SandboxKey || pt.Ifname != "eth0":
		p.t.Errorf("port %s = %+v, want network %s, netns %s, eth0", pt.Name, pt, nw.Name, c.NetworkSettings.SandboxKey)
	case len(pt.IPs) != 1 || pt.IPs[0] != fmt.Sprintf("%s/%d", pn.IPAddress, pn.IPPrefixLen) || !sameMACString(pt.MAC, pn.MacAddress):
		p.t.Errorf("port %s has %v and %s; podman says %s/%d and %s", pt.Name, pt.IPs, pt.MAC, pn.IPAddress, pn.IPPrefixLen, pn.MacAddress)
	case pn.Gateway != nw.Gateway:
		p.t.Errorf("podman inspect %s: gateway %s, want %s", c.Name, pn.Gateway, nw.Gateway)
	}
	if name := pt.DNSName; name != c.Name {
		p.t.Errorf("port %s: DNS name %q, want the container's name %q (K8S_POD_NAME)", pt.Name, name, c.Name)
	}
	return pt.Name
}

// checkGone checks that a removed container left nothing: no tapswitch
// port, no namespace, no cached CNI result.
func (p *podmanEnv) checkGone(e *testEnv, c podmanContainer, port string) {
	p.t.Helper()
	for _, pt := range e.ports() {
		if pt.Name == port || pt.ContainerID == c.ID {
			p.t.Errorf("tapswitch ports after podman rm %s: port %s still there", c.Name, pt.Name)
		}
	}
	if _, err := os.Stat(c.NetworkSettings.SandboxKey); err == nil {
		p.t.Errorf("namespace %s of %s still there after podman rm", c.NetworkSettings.SandboxKey, c.Name)
	}
	if m, _ := filepath.Glob(filepath.Join(cniCacheDir, "results", "*"+c.ID+"*")); len(m) > 0 {
		p.t.Errorf("libcni's cached results of %s still there after podman rm: %v", c.Name, m)
	}
}

// resolvField returns the values of every line of resolv.conf starting
// with key.
func resolvField(resolv, key string) []string {
	var out []string
	for _, l := range strings.Split(resolv, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == key {
			out = append(out, f[1:]...)
		}
	}
	return out
}

// unroutedSubnet picks a /24 of 10.128.0.0/9 that no route of the host
// overlaps. portmap DNATs to a container's address and the host routes
// it, so a subnet another daemon (another test, run beside this one)
// also has would send the published port's traffic astray.
func unroutedSubnet(t *testing.T) string {
	t.Helper()
	out, err := run("ip", "-4", "route", "show", "table", "all")
	if err != nil {
		t.Fatalf("ip route: %v\n%s", err, out)
	}
	var routes []netip.Prefix
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && (f[0] == "local" || f[0] == "broadcast" || f[0] == "unicast") {
			f = f[1:]
		}
		if len(f) == 0 {
			continue
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil {
			routes = append(routes, p)
		} else if a, err := netip.ParseAddr(f[0]); err == nil {
			routes = append(routes, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	for range 100 {
		s := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + rand.N(128)), byte(rand.N(256)), 0}), 24)
		if !slices.ContainsFunc(routes, func(r netip.Prefix) bool { return r.Bits() > 0 && r.Overlaps(s) }) {
			return s.String()
		}
	}
	t.Fatal("no unrouted /24 in 10.128.0.0/9")
	return ""
}
