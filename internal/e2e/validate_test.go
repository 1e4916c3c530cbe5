package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/tapswitch/tapswitch/api"
)

// The tests of this file attack the daemon's input checks: networks on
// ranges no network may use, ports attached into the daemon's own
// namespace, malformed and hostile requests, and requests whose client
// hung up while they waited. Their networks are in 10.150.0.0/16 and
// their namespaces are named val....

// valNetns creates a namespace named val, 4 hex digits and role, and
// deletes it when the test ends.
func (e *testEnv) valNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("val", role)
}

// hostLinkExists reports whether the host (the test's and the daemon's
// namespace) has an interface called name.
func hostLinkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// hostRoutesVia lists the host's routes through interface dev.
func hostRoutesVia(t *testing.T, dev string) string {
	t.Helper()
	out, _ := run("ip", "route", "show", "dev", dev)
	return strings.TrimSpace(out)
}

// TestUnsafeSubnets: networks on loopback, "this network", link-local,
// multicast, reserved and broadcast ranges, IPv4 and IPv6, are refused
// through the CLI with a message naming the range and what to use, and
// nothing of them is made; so are port addresses from those ranges.
// (Ranges that would cover the host's own routes, such as 0.0.0.0/0, are
// refused in the unit tests, not tried here on a shared host.)
func TestUnsafeSubnets(t *testing.T) {
	e := newEnv(t)
	subnets := []struct{ subnet, rng string }{
		{"0.150.0.0/24", "0.0.0.0/8"},
		{"127.150.0.0/24", "127.0.0.0/8"},
		{"169.254.150.0/24", "169.254.0.0/16"},
		{"224.150.0.0/24", "224.0.0.0/4"},
		{"240.150.0.0/24", "240.0.0.0/4"},
		{"255.255.255.0/24", "240.0.0.0/4"},
		{"fe80:150::/64", "fe80::/10"},
		{"ff15:150::/64", "ff00::/8"},
		{"::100/120", "::/96"},
	}
	for i, tt := range subnets {
		t.Run(tt.subnet, func(t *testing.T) {
			name := fmt.Sprintf("valu%d", i)
			r := runCLI(t, e.sock, "network", "create", name, "--subnet", tt.subnet)
			if r.code == 0 {
				t.Fatalf("tapswitch network create %s --subnet %s succeeded, want refused", name, tt.subnet)
			}
			for _, want := range []string{"subnet " + tt.subnet, tt.rng + ",", "use "} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("network create --subnet %s: stderr %q, want it to contain %q", tt.subnet, r.stderr, want)
				}
			}
		})
	}
	if n := len(e.networks()); n != 1 {
		t.Errorf("networks after the refusals: %d, want the default one only", n)
	}
	// No interface of the host took an address of a refused subnet
	// (other tests' daemons may add gateways meanwhile, so count none).
	if a := hostAddrsIn(t, subnetsOf(subnets)); len(a) > 0 {
		t.Errorf("the host has addresses %v of refused subnets", a)
	}

	// Port addresses from those ranges, by attach and connect.
	e.mustCLI("network", "create", "valsafe", "--subnet", "10.150.1.0/24")
	e.mustCLI("network", "create", "valsafe2", "--subnet", "10.150.2.0/24")
	ns := e.valNetns("u")
	for _, ip := range []string{"169.254.150.5/16", "240.150.0.5/24", "0.150.0.5/24", "fe80::5/64", "::a96:5/120"} {
		r := e.cli("attach", ns, "--network", "valsafe", "--ip", ip)
		if r.code == 0 || !strings.Contains(r.stderr, "is in ") || !strings.Contains(r.stderr, "give ") {
			t.Errorf("attach --ip %s: exit %d, stderr %q; want refused naming the range and what to give", ip, r.code, r.stderr)
		}
	}
	if got := leftovers(t, ns); len(got) != 0 {
		t.Errorf("refused attaches left %v in %s", got, ns)
	}
	port := e.attach(ns, "--network", "valsafe")
	r := e.cli("connect", port, "valsafe2", "--ip", "127.150.0.5/24")
	if r.code == 0 || !strings.Contains(r.stderr, "in 127.0.0.0/8") {
		t.Errorf("connect --ip 127.150.0.5/24: exit %d, stderr %q; want refused naming 127.0.0.0/8", r.code, r.stderr)
	}
	if n := len(e.ports()); n != 1 {
		t.Errorf("ports after the refusals: %d, want 1", n)
	}
}

func subnetsOf(in []struct{ subnet, rng string }) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range in {
		out = append(out, netip.MustParsePrefix(s.subnet))
	}
	return out
}

// hostAddrsIn lists the host's interface addresses inside prefixes.
func hostAddrsIn(t *testing.T, prefixes []netip.Prefix) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		for _, p := range prefixes {
			if p.Contains(ip.Unmap()) {
				out = append(out, a.String())
			}
		}
	}
	return out
}

// TestHostNetnsRefused: the daemon's own namespace, the host's, is
// refused by every spelling of it, with a message naming
// --allow-host-netns; with that flag the port is made, and detaching it
// leaves the host as it was.
func TestHostNetnsRefused(t *testing.T) {
	e := newEnv(t)
	e.mustCLI("network", "create", "valhost", "--subnet", "10.150.3.0/24")
	e.mustCLI("network", "create", "valhost2", "--subnet", "10.150.4.0/24")
	dpid := e.daemon.cmd.Process.Pid

	// A /run/netns entry bound to the daemon's namespace, as `ip netns
	// attach NAME PID` makes.
	bound := fmt.Sprintf("valh%04x", rand.N(0x10000))
	boundPath := nsPath(bound)
	if out, err := run("ip", "netns", "attach", bound, fmt.Sprint(dpid)); err != nil {
		t.Fatalf("ip netns attach %s %d: %v\n%s", bound, dpid, err, out)
	}
	t.Cleanup(func() {
		if out, err := run("ip", "netns", "del", bound); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", bound, err, out)
		}
	})

	const ifname = "valh0"
	spellings := []string{
		fmt.Sprintf("pid:%d", dpid),
		fmt.Sprintf("pid:%d", os.Getpid()), // the test runs in the host's namespace too
		"/proc/self/ns/net",                // as the daemon reads it: its own
		fmt.Sprintf("/proc/%d/ns/net", dpid),
		fmt.Sprintf("/proc/%d/task/%d/ns/net", dpid, dpid),
		bound,
		boundPath,
		filepath.Join("/var/run/netns", bound),
	}
	if sameNetns("/proc/1/ns/net", "/proc/self/ns/net") {
		spellings = append(spellings, "pid:1")
	} else {
		t.Logf("pid:1 not tried: /proc/1/ns/net cannot be read here or is another namespace")
	}
	for _, spec := range spellings {
		t.Run(strings.ReplaceAll(spec, "/", "_"), func(t *testing.T) {
			r := e.cli("attach", spec, "--network", "valhost", "--ifname", ifname, "--name", "valh0")
			if r.code == 0 {
				e.cli("detach", "valh0")
				t.Fatalf("tapswitch attach %s succeeded, want refused as the host's namespace", spec)
			}
			if !strings.Contains(r.stderr, "--allow-host-netns") || !strings.Contains(r.stderr, "own") {
				t.Errorf("attach %s: stderr %q, want it to say it is the daemon's own namespace and name --allow-host-netns", spec, r.stderr)
			}
			if hostLinkExists(ifname) {
				t.Errorf("attach %s: the host has an interface %s", spec, ifname)
			}
		})
	}

	// Asked for explicitly, it is done, and undone by detach.
	port := e.attach(fmt.Sprintf("pid:%d", dpid), "--network", "valhost", "--ifname", ifname, "--name", "valh0", "--allow-host-netns")
	if !hostLinkExists(ifname) || !strings.Contains(hostRoutesVia(t, ifname), "10.150.3.0/24") {
		t.Errorf("attach --allow-host-netns: interface %s with a route for 10.150.3.0/24 in the host: %v, routes %q", ifname, hostLinkExists(ifname), hostRoutesVia(t, ifname))
	}
	if r := e.cli("connect", port, "valhost2"); r.code == 0 || !strings.Contains(r.stderr, "--allow-host-netns") {
		t.Errorf("connect %s valhost2 without --allow-host-netns: exit %d, stderr %q; want refused naming the flag", port, r.code, r.stderr)
	}
	e.mustCLI("detach", port)
	if hostLinkExists(ifname) {
		t.Errorf("after detach the host still has %s", ifname)
	}
	if n := len(e.ports()); n != 0 {
		t.Errorf("ports after detach: %d, want none", n)
	}
}

// sameNetns reports whether two namespace files are one namespace.
func sameNetns(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// apiClient is an HTTP client of the daemon's socket, for requests the
// CLI would not send.
func (e *testEnv) apiClient() *http.Client {
	return &http.Client{Timeout: cmdTimeout, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, "unix", e.sock)
	}}}
}

// rawRequest sends one request and returns its status and Error body.
func rawRequest(t *testing.T, hc *http.Client, method, path, body string) (int, api.Error) {
	t.Helper()
	req, err := http.NewRequest(method, "http://tapswitchd"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e api.Error
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(data, &e); err != nil {
			t.Errorf("%s %s: status %d, body %q is no Error", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, e
}

// TestBadRequests400: requests the real daemon cannot carry out because
// of what they ask, including what only the kernel finds wrong (an IPv6
// address where IPv6 is off, an interface name the kernel takes as a
// pattern, a host address that is not the host's, a host port in use),
// are answered 4xx with the reason, never 500, and leave nothing.
func TestBadRequests400(t *testing.T) {
	e := newEnv(t)
	e.mustCLI("network", "create", "valbad", "--subnet", "10.150.5.0/24")
	ns := e.valNetns("b")
	noV6 := e.valNetns("6")
	for _, k := range []string{"all", "default"} {
		if out, err := nsRun(noV6, "sysctl", "-qw", "net.ipv6.conf."+k+".disable_ipv6=1"); err != nil {
			t.Fatalf("turn IPv6 off in %s: %v\n%s", noV6, err, out)
		}
	}
	// A host port in use.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port

	hc := e.apiClient()
	attach := func(fields string) string {
		return `{"netns":"` + ns + `","network":"valbad","name":"valbad"` + fields + `}`
	}
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"IPv6 where IPv6 is off", "POST", "/v1/ports", `{"netns":"` + noV6 + `","network":"valbad","ips":["fd00:150::5/64"]}`, 400},
		{"ifname pattern", "POST", "/v1/ports", attach(`,"ifname":"eth%d"`), 400},
		{"ifname all", "POST", "/v1/ports", attach(`,"ifname":"all"`), 400},
		{"ifname default", "POST", "/v1/ports", attach(`,"ifname":"default"`), 400},
		{"ifname taken", "POST", "/v1/ports", attach(`,"ifname":"lo"`), 409},
		{"publish on an address not the host's", "POST", "/v1/ports", attach(`,"publish":["10.150.99.1:18080:80"]`), 400},
		{"publish on a host port in use", "POST", "/v1/ports", attach(fmt.Sprintf(`,"publish":["127.0.0.1:%d:80"]`, busy)), 409},
		{"link-local address", "POST", "/v1/ports", attach(`,"ips":["169.254.150.5/16"]`), 400},
		{"host namespace", "POST", "/v1/ports", `{"netns":"/proc/self/ns/net","network":"valbad","name":"valbad","ifname":"valb0"}`, 400},
		{"not a namespace", "POST", "/v1/ports", `{"netns":"/dev/null"}`, 400},
		{"no such namespace", "POST", "/v1/ports", `{"netns":"valnone` + fmt.Sprint(rand.N(1<<20)) + `"}`, 404},
		{"no such network", "POST", "/v1/ports", `{"netns":"` + ns + `","network":"valnone"}`, 404},
		{"multicast subnet", "POST", "/v1/networks", `{"name":"valm","subnet":"224.150.0.0/24"}`, 400},
		{"IPv6 link-local subnet", "POST", "/v1/networks", `{"name":"valm","subnet":"fe80:150::/64"}`, 400},
		{"IPv6 multicast subnet", "POST", "/v1/networks", `{"name":"valm","subnet":"ff15:150::/64"}`, 400},
		{"overlapping subnet", "POST", "/v1/networks", `{"name":"valm","subnet":"10.150.5.128/25"}`, 409},
		{"truncated body", "POST", "/v1/networks", `{"name":`, 400},
		{"unknown field", "POST", "/v1/ports", `{"netns":"x","nets":"y"}`, 400},
		{"body too large", "POST", "/v1/ports", `{"netns":"` + strings.Repeat("n", 70000) + `"}`, 400},
		{"no such port", "DELETE", "/v1/ports/valnone", "", 404},
		{"connect unknown port", "POST", "/v1/networks/valbad/connect", `{"port":"valnone"}`, 404},
		{"wrong method", "PUT", "/v1/ports", "", 405},
		{"no endpoint", "GET", "/v1/nothing", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawRequest(t, hc, tt.method, tt.path, tt.body)
			if status >= 500 || status != tt.want || body.Message == "" {
				t.Errorf("%s %s %.80s = %d %q, want %d with a message", tt.method, tt.path, tt.body, status, body.Message, tt.want)
			}
		})
	}
	if n := len(e.ports()); n != 0 {
		t.Errorf("ports after the refusals: %d, want none", n)
	}
	for _, n := range []string{ns, noV6} {
		if got := leftovers(t, n); len(got) != 0 {
			t.Errorf("refused requests left %v in %s", got, n)
		}
	}
	if hostLinkExists("valb0") {
		t.Error("the host has interface valb0")
	}
}

// TestAbandonedAttaches: attaches whose clients hung up while they
// waited are not carried out when their turn comes. The daemon is
// stopped (SIGSTOP) so that every request waits; each CLI sends its
// attach and is killed; the daemon, let go on, must attach none of them.
func TestAbandonedAttaches(t *testing.T) {
	e := newEnv(t)
	e.mustCLI("network", "create", "valgone", "--subnet", "10.150.6.0/24")
	ns := e.valNetns("g")
	const n = 12
	// The time a CLI has to start and send its request before it is
	// killed; measured, the CLI needs tens of milliseconds.
	const sendTime = 3 * time.Second

	d := e.daemon.cmd.Process
	if err := d.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			d.Signal(syscall.SIGCONT)
			resumed = true
		}
	}
	t.Cleanup(resume)
	logBefore := strings.Count(e.daemonLog(), "request dropped")

	type result struct {
		name string
		err  error
	}
	results := make(chan result, n)
	for i := range n {
		name := fmt.Sprintf("valg%d", i)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), sendTime)
			defer cancel()
			cmd := exec.CommandContext(ctx, filepath.Join(binDir, "tapswitch"), "--socket", e.sock,
				"attach", ns, "--network", "valgone", "--name", name, "--ifname", name)
			_, err := cmd.CombinedOutput()
			results <- result{name, err}
		}()
	}
	var failed []string
	for range n {
		r := <-results
		if r.err == nil {
			t.Fatalf("tapswitch attach --name %s succeeded against a stopped daemon", r.name)
		}
		failed = append(failed, r.name)
	}
	resume()

	// Every request is read and dropped; wait for the daemon to say so.
	deadline := time.Now().Add(cmdTimeout)
	dropped := 0
	for {
		dropped = strings.Count(e.daemonLog(), "request dropped") - logBefore
		if dropped >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	ports := e.ports()
	for _, name := range failed {
		if findPort(ports, name) != nil {
			t.Errorf("port %s exists, though its client was told the attach failed (killed before an answer)", name)
		}
	}
	if got := leftovers(t, ns); len(got) != 0 {
		t.Errorf("abandoned attaches left %v in %s", got, ns)
	}
	t.Logf("%d attaches whose clients hung up: %d ports made, %d requests dropped at their turn", n, len(ports), dropped)
	if dropped != n {
		t.Errorf("the daemon dropped %d requests, want %d (one per client that hung up)", dropped, n)
	}
	// The daemon serves the next client as usual.
	e.attach(ns, "--network", "valgone", "--name", "valafter")
}

// TestCNIHostNetnsRefused: the CNI plugin's requests get the same
// refusals: CNI_NETNS naming the host's namespace (code 4), an IPAM
// plugin's address from an unsafe range (code 7); nothing is made.
func TestCNIHostNetnsRefused(t *testing.T) {
	c := newCNIEnv(t, newEnv(t))
	dpid := c.daemon.cmd.Process.Pid
	for _, netns := range []string{fmt.Sprintf("/proc/%d/ns/net", dpid), "/proc/self/ns/net"} {
		_, cerr := c.execPlugin(c.pluginConf1(nil), "CNI_COMMAND=ADD", "CNI_CONTAINERID=valhost1", "CNI_NETNS="+netns, "CNI_IFNAME=valc0")
		if cerr == nil || cerr.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(cerr.Msg, "host's own") {
			t.Errorf("ADD with CNI_NETNS=%s = %+v, want code %d saying it is the host's namespace", netns, cerr, types.ErrInvalidEnvironmentVariables)
		}
	}
	if hostLinkExists("valc0") {
		t.Error("the host has interface valc0")
	}

	ns := c.valNetns("c")
	static := map[string]any{"ipam": map[string]any{"type": "static", "addresses": []any{map[string]any{"address": "169.254.150.5/16"}}}}
	_, cerr := c.execPlugin(c.pluginConf1(static), "CNI_COMMAND=ADD", "CNI_CONTAINERID=valunsafe1", "CNI_NETNS="+nsPath(ns), "CNI_IFNAME=eth0")
	if cerr == nil || cerr.Code != types.ErrInvalidNetworkConfig || !strings.Contains(cerr.Details, "169.254.0.0/16") {
		t.Errorf("ADD with a static address 169.254.150.5/16 = %+v, want code %d naming 169.254.0.0/16", cerr, types.ErrInvalidNetworkConfig)
	}
	if got := leftovers(t, ns); len(got) != 0 {
		t.Errorf("refused ADD left %v in %s", got, ns)
	}
	if n := len(c.ports()); n != 0 {
		t.Errorf("ports after the refused ADDs: %d, want none", n)
	}
}
