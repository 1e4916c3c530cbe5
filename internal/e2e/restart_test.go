package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/namespace"
)

// restartSoak makes the restart tests longer: TAPSWITCH_SOAK=1 runs a
// longer transfer through several restarts, and more attaches at once.
func restartSoak() bool { return os.Getenv("TAPSWITCH_SOAK") == "1" }

// newRestartEnv starts a tapswitchd that keeps its ports, gateways, pins
// and firewall table when it stops, as a production daemon does, so that
// the next one resumes them. At the end of the test a daemon with
// --remove-on-exit takes them all back and removes them, and whatever it
// missed is removed by hand and reported.
func newRestartEnv(t *testing.T, tools ...string) *testEnv {
	t.Helper()
	e := newEnvArgs(t, []string{"--remove-on-exit=false"}, tools...)
	// Cleanups run last first: this one before the namespaces go.
	t.Cleanup(e.removeKept)
	return e
}

// removeKept removes what the daemons of a restart test keep.
func (e *testEnv) removeKept() {
	e.t.Helper()
	// Read now: the daemon rewrites the file on the way.
	nets := e.stateNetworks()
	defer e.removeLeftovers(nets, e.t.Errorf)
	if err := e.stopDaemon(); err != nil {
		e.t.Errorf("stop tapswitchd: %v", err)
	}
	e.daemonArgs = nil
	e.stopped, e.stopErr = false, nil
	e.startDaemon()
	if err := e.stopDaemon(); err != nil {
		e.t.Errorf("stop tapswitchd --remove-on-exit: %v", err)
	}
}

// stateNames reads the names of the networks and the ports in the state
// file.
func (e *testEnv) stateNames() (nets, ports []string, err error) {
	var doc struct {
		Networks []struct {
			Name string `json:"name"`
		} `json:"networks"`
		Ports []struct {
			Name string `json:"name"`
		} `json:"ports"`
	}
	b, err := os.ReadFile(filepath.Join(e.stateDir(), "state.json"))
	if err == nil {
		err = json.Unmarshal(b, &doc)
	}
	for _, n := range doc.Networks {
		nets = append(nets, n.Name)
	}
	for _, p := range doc.Ports {
		ports = append(ports, p.Name)
	}
	return nets, ports, err
}

// stateNetworks names the networks of the state file; the default one
// while it cannot be read.
func (e *testEnv) stateNetworks() []string {
	nets, _, err := e.stateNames()
	if err != nil && len(nets) == 0 {
		return []string{api.DefaultNetwork}
	}
	return nets
}

// statePorts names the ports of the state file; none while it cannot be
// read.
func (e *testEnv) statePorts() []string {
	_, ports, err := e.stateNames()
	if err != nil {
		return nil
	}
	return ports
}

// removeLeftovers reports, and removes, what a daemon with
// --remove-on-exit should have removed: the gateways of nets, the
// firewall table and the pins under the state directory. (TAPs inside
// the test's namespaces go with the namespaces.)
func (e *testEnv) removeLeftovers(nets []string, report func(format string, args ...any)) {
	for _, n := range nets {
		gw := daemon.GatewayName(e.stateDir(), n)
		if _, err := run("ip", "link", "show", gw); err == nil {
			report("gateway %s of network %s left after tapswitchd --remove-on-exit", gw, n)
			run("ip", "link", "del", gw)
		}
	}
	table := daemon.TableName(e.stateDir())
	if nftTableExists(e.t, table) {
		report("nftables table inet %s left after tapswitchd --remove-on-exit", table)
		if c, err := nftables.New(); err == nil {
			c.DelTable(&nftables.Table{Name: table, Family: nftables.TableFamilyINet})
			c.Flush()
		}
	}
	for _, m := range e.pinMounts() {
		report("pin %s left after tapswitchd --remove-on-exit", m)
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// sweep removes what a daemon that died keeps, since its TAPs, gateways,
// pins and firewall table are persistent, so that a failed test leaves
// the host as it found it.
func (e *testEnv) sweep() {
	e.removeLeftovers(e.stateNetworks(), e.t.Logf)
}

// pinMounts lists the mounts under the state directory: the pins of
// namespaces.
func (e *testEnv) pinMounts() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		// The fifth field is the mount point.
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], e.stateDir()+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// killDaemon kills the daemon with SIGKILL, as a crash or the OOM killer
// would, and waits for it to be gone.
func (e *testEnv) killDaemon() {
	e.t.Helper()
	p := e.daemon
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		e.t.Fatalf("kill -9 tapswitchd (pid %d): %v", p.cmd.Process.Pid, err)
	}
	if err := p.wait(stopTimeout); err == nil {
		e.t.Fatalf("tapswitchd exited 0 after SIGKILL")
	}
	e.stopped, e.stopErr = false, nil
}

// startUnshared starts a sleeper in a network namespace of its own, one
// with no name (unshare -n), and brings its loopback up.
func (e *testEnv) startUnshared() *proc {
	e.t.Helper()
	p, err := startProc(exec.Command("unshare", "-n", "sleep", "600"))
	if err != nil {
		e.t.Fatalf("unshare -n sleep: %v", err)
	}
	e.procs = append(e.procs, p)
	pid := p.cmd.Process.Pid
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		e.t.Fatal(err)
	}
	nsFile := fmt.Sprintf("/proc/%d/ns/net", pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		// unshare enters the new namespace, then execs sleep.
		if fi, err := os.Stat(nsFile); err == nil && !os.SameFile(fi, self) {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("pid %d never left the test's namespace", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out, err := nsenter(nsFile, "ip", "link", "set", "lo", "up"); err != nil {
		e.t.Fatalf("ip link set lo up in %s: %v\n%s", nsFile, err, out)
	}
	return p
}

// serveHTTPAt serves body on port of the network namespace file nsFile
// until the test ends.
func serveHTTPAt(t *testing.T, nsFile string, port int, body string) {
	t.Helper()
	var ln net.Listener
	err := namespace.Do(nsFile, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listen on port %d in %s: %v", port, nsFile, err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// waitFirstForward polls the daemon's status until it has forwarded a
// frame.
func (e *testEnv) waitFirstForward() api.Status {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := e.status()
		if s.FirstForwardMs >= 0 {
			return s
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("tapswitch status: no frame forwarded 10s after a restart: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRestartKill kills the daemon with SIGKILL in the middle of an
// iperf3 transfer between a namespace attached by name and one attached
// by pid, and starts it again at once: the transfer completes, and every
// port comes back with its MAC, address, DNS name and published port.
func TestRestartKill(t *testing.T) {
	testRestart(t, "kill -9", (*testEnv).killDaemon)
}

// TestRestartClean does the same with a clean stop (SIGTERM), as
// systemctl restart does.
func TestRestartClean(t *testing.T) {
	testRestart(t, "SIGTERM", func(e *testEnv) {
		if err := e.stopDaemon(); err != nil {
			e.t.Fatalf("kill -TERM tapswitchd: %v", err)
		}
		e.stopped, e.stopErr = false, nil
	})
}

func testRestart(t *testing.T, how string, stop func(*testEnv)) {
	e := newRestartEnv(t, "iperf3", "ss", "unshare", "nsenter")
	nsA := e.newNetns("a")
	sleeperB := e.startUnshared()
	hostPort := freeHostPort(t, 18080)
	e.attach(nsA, "--name", "a")
	e.attach(fmt.Sprintf("pid:%d", sleeperB.cmd.Process.Pid), "--name", "b", "--publish", fmt.Sprintf("127.0.0.1:%d:8080", hostPort))
	before := e.ports()
	a, b := findPort(before, "a"), findPort(before, "b")
	if a == nil || b == nil || len(b.IPs) != 1 {
		t.Fatalf("tapswitch ports = %+v, want ports a and b with an address each", before)
	}
	ipB := addr(b.IPs[0])
	// B has no name: from here on it is reached through its pin, which
	// outlives the sleeper that made it.
	pinB := filepath.Join(e.stateDir(), "netns", "b")
	if !slices.Contains(e.pinMounts(), pinB) {
		t.Fatalf("mounts under %s = %v, want the pin %s", e.stateDir(), e.pinMounts(), pinB)
	}
	const body = "hello from b"
	serveHTTPAt(t, pinB, 8080, body)
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
	if got, err := httpGet(url); err != nil || got != body {
		t.Fatalf("GET %s = %q, %v; want %q", url, got, err, body)
	}
	mustPing(t, nsA, "b")
	srv := e.startIperfServer(pinB, ipB, "-J", "-i", "0.1")

	// What iperf3 sees without a restart, to compare.
	base := e.startIperf(nsA, srv, "--get-server-output", "-t", "3", "-i", "0.1").result(t, time.Minute)

	seconds, restarts := 8, 1
	if restartSoak() {
		seconds, restarts = 40, 5
	}
	client := e.startIperf(nsA, srv, "--get-server-output", "-t", strconv.Itoa(seconds), "-i", "0.1")
	var downs []time.Duration
	var firsts, restores []float64
	for range restarts {
		time.Sleep(time.Duration(seconds) * time.Second / time.Duration(restarts+1))
		select {
		case <-client.p.done:
			t.Fatalf("%s ended before the restart: %v\n%s%s", client.desc, client.p.err, client.stdout.String(), client.stderr.String())
		default:
		}
		start := time.Now()
		stop(e)
		// The pid B was attached by dies: only the pin (and the
		// iperf3 server in it) holds the namespace now.
		sleeperB.kill()
		e.startDaemon()
		downs = append(downs, time.Since(start))
		s := e.waitFirstForward()
		firsts, restores = append(firsts, s.FirstForwardMs), append(restores, s.RestoreMs)
		if s.RestoredPorts != 2 || s.DroppedPorts != 0 {
			t.Fatalf("tapswitch status after %s: restored %d ports, dropped %d; want 2 and 0", how, s.RestoredPorts, s.DroppedPorts)
		}
	}
	r := client.result(t, time.Duration(seconds)*time.Second+time.Minute)

	sent, got := r.End.SumSent.Bytes, r.End.SumReceived.Bytes
	gap, after := r.gap()
	t.Logf("iperf3 through %d %s restart(s): %d bytes sent, %d received in %.1fs (%.2f Gbit/s), %d retransmits; without a restart %d retransmits in 3s",
		restarts, how, sent, got, r.End.SumReceived.Seconds, r.End.SumReceived.BitsPerSecond/1e9, r.End.SumSent.Retransmits, base.End.SumSent.Retransmits)
	t.Logf("outage: tapswitchd down to accepting %v; first frame forwarded %v ms after start (state restored %v ms after start); longest gap seen by the receiver %v (in 0.1s intervals)",
		downs, firsts, restores, gap)
	if sent == 0 || got < sent-sent/10 {
		t.Errorf("%s: %d bytes sent, %d received; want the transfer whole (within 10%% for what was in flight at the end)", client.desc, sent, got)
	}
	if after == 0 {
		t.Errorf("%s: nothing received after the restart's gap of %v: the connection did not resume", client.desc, gap)
	}

	// Every port came back as it was.
	afterPorts := e.ports()
	for _, want := range []*api.Port{a, b} {
		p := findPort(afterPorts, want.Name)
		if p == nil {
			t.Errorf("tapswitch ports after %s: no port %s in %+v", how, want.Name, afterPorts)
			continue
		}
		if p.MAC != want.MAC || !slices.Equal(p.IPs, want.IPs) || p.Netns != want.Netns || !slices.Equal(p.Publish, want.Publish) {
			t.Errorf("port %s after %s = %+v, want MAC %s, IPs %v, netns %s, publish %v as before", want.Name, how, p, want.MAC, want.IPs, want.Netns, want.Publish)
		}
	}
	if mac := linkMAC(t, nsA, "eth0"); !sameMAC(a.MAC, mac) {
		t.Errorf("eth0 in %s after %s has MAC %s, want %s", nsA, how, mac, a.MAC)
	}
	mustPing(t, nsA, "b")
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := httpGet(url)
		if err == nil && got == body {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s after %s = %q, %v; want %q from the published port", url, how, got, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRestartDuringAttach kills the daemon while a burst of attaches is
// under way, some with their state writes in flight, and leaves a torn
// temporary state file as a write cut short would. The next daemon
// starts, and what it lists is consistent: every attach that succeeded
// is there, every port listed has its TAP and a distinct address the
// network's IPAM holds and no other, the ports talk, and a namespace
// whose attach was cut short can be attached again.
func TestRestartDuringAttach(t *testing.T) {
	e := newRestartEnv(t)
	n := 10
	if restartSoak() {
		n = 40
	}
	nss := make([]string, n)
	for i := range nss {
		nss[i] = e.newNetns(fmt.Sprintf("c%d", i))
	}
	type result struct {
		i    int
		code int
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i, ns := range nss {
		wg.Go(func() {
			cmd := exec.Command(filepath.Join(binDir, "tapswitch"), "--socket", e.sock, "attach", ns, "--name", fmt.Sprintf("p%d", i))
			err := cmd.Run()
			code := 0
			if err != nil {
				code = -1
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					code = ee.ExitCode()
				}
			}
			results <- result{i, code}
		})
	}
	// Kill once the state file holds a few ports, a different number
	// each run: the other attaches are queued, under way, or writing
	// the state.
	k := 1 + rand.N(n/2)
	deadline := time.Now().Add(30 * time.Second)
	for len(e.statePorts()) < k {
		if time.Now().After(deadline) {
			t.Fatalf("no port in the state file 30s after %d attaches began", n)
		}
		time.Sleep(100 * time.Microsecond)
	}
	e.killDaemon()
	wg.Wait()
	close(results)
	succeeded := map[int]bool{}
	for r := range results {
		if r.code == 0 {
			succeeded[r.i] = true
		}
	}
	torn := filepath.Join(e.stateDir(), ".state-torn.json")
	if err := os.WriteFile(torn, []byte(`{"version":3,"networks":[{"name":"def`), 0o600); err != nil {
		t.Fatal(err)
	}

	e.startDaemon()
	if _, err := os.Stat(torn); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after a start: %v, want it removed", torn, err)
	}
	ports := e.ports()
	t.Logf("%d attaches at once, killed once %d were in the state file: %d succeeded, %d ports after the restart", n, k, len(succeeded), len(ports))
	listed := map[int]*api.Port{}
	for i := range ports {
		p := &ports[i]
		var k int
		if _, err := fmt.Sscanf(p.Name, "p%d", &k); err != nil || k < 0 || k >= n {
			t.Fatalf("tapswitch ports after the restart lists %q, which no attach asked for", p.Name)
		}
		listed[k] = p
	}
	for i := range succeeded {
		if listed[i] == nil {
			t.Errorf("attach of %s (p%d) succeeded before the kill, but the restarted daemon does not list it", nss[i], i)
		}
	}
	if s := e.status(); s.RestoredPorts != len(ports) || s.DroppedPorts != 0 {
		t.Errorf("tapswitch status: restored %d, dropped %d; want %d and 0", s.RestoredPorts, s.DroppedPorts, len(ports))
	}
	var ips []string
	for i, p := range listed {
		if len(p.IPs) != 1 {
			t.Fatalf("port %s: addresses %v, want one", p.Name, p.IPs)
		}
		if mac := linkMAC(t, nss[i], "eth0"); !sameMAC(p.MAC, mac) {
			t.Errorf("eth0 in %s has MAC %s, tapswitch lists %s", nss[i], mac, p.MAC)
		}
		ips = append(ips, addr(p.IPs[0]))
	}
	slices.Sort(ips)
	if len(slices.Compact(slices.Clone(ips))) != len(ips) {
		t.Errorf("addresses of the ports after the restart = %v, want distinct", ips)
	}
	held := slices.Sorted(slices.Values(e.allocated(api.DefaultNetwork)))
	if !slices.Equal(held, ips) {
		t.Errorf("addresses the network holds = %v, want those of the ports listed, %v", held, ips)
	}

	// The ports work, and a namespace whose attach was cut short (its
	// TAP may have been made and never recorded) can be attached again.
	for i := range nss {
		if listed[i] == nil {
			e.attach(nss[i], "--name", fmt.Sprintf("p%d", i))
		}
	}
	if ports := e.ports(); len(ports) != n {
		t.Fatalf("tapswitch ports after attaching the rest: %d ports, want %d", len(ports), n)
	}
	mustPing(t, nss[0], fmt.Sprintf("p%d", n-1))
	mustPing(t, nss[n-1], "p0")
}

// TestRestartDropsGone stops the daemon, and while it is down takes away
// what three of its four ports need: one's TAP is deleted, one's named
// namespace is deleted, and one attached by pid loses its pin (as after
// a reboot) and its process. The next daemon takes the fourth back and
// drops the three: their addresses are released, their pins and
// resolv.conf files removed.
func TestRestartDropsGone(t *testing.T) {
	e := newRestartEnv(t, "unshare", "nsenter")
	nsA, nsB := e.newNetns("a"), e.newNetns("b")
	sleeperC, sleeperD := e.startUnshared(), e.startUnshared()
	e.attach(nsA, "--name", "a")
	e.attach(nsB, "--name", "b")
	e.attach(fmt.Sprintf("pid:%d", sleeperC.cmd.Process.Pid), "--name", "c")
	e.attach(fmt.Sprintf("pid:%d", sleeperD.cmd.Process.Pid), "--name", "d")
	d := findPort(e.ports(), "d")
	for _, ns := range []string{nsA, nsB} {
		if _, err := os.Stat(filepath.Join(netnsEtcDir, ns, "resolv.conf")); err != nil {
			t.Fatalf("resolv.conf of %s after attach: %v", ns, err)
		}
	}
	if err := e.stopDaemon(); err != nil {
		t.Fatalf("kill -TERM tapswitchd: %v", err)
	}
	e.stopped, e.stopErr = false, nil

	if out, err := nsRun(nsA, "ip", "link", "del", "eth0"); err != nil {
		t.Fatalf("ip link del eth0 in %s: %v\n%s", nsA, err, out)
	}
	if out, err := run("ip", "netns", "del", nsB); err != nil {
		t.Fatalf("ip netns del %s: %v\n%s", nsB, err, out)
	}
	e.namespaces = slices.DeleteFunc(e.namespaces, func(ns string) bool { return ns == nsB })
	pinC := filepath.Join(e.stateDir(), "netns", "c")
	if err := syscall.Unmount(pinC, 0); err != nil {
		t.Fatalf("umount %s: %v", pinC, err)
	}
	sleeperC.kill()

	e.startDaemon()
	s := e.status()
	if s.RestoredPorts != 1 || s.DroppedPorts != 3 {
		t.Errorf("tapswitch status after the restart: restored %d, dropped %d; want 1 and 3", s.RestoredPorts, s.DroppedPorts)
	}
	ports := e.ports()
	if len(ports) != 1 || ports[0].Name != "d" || ports[0].MAC != d.MAC || !slices.Equal(ports[0].IPs, d.IPs) {
		t.Fatalf("tapswitch ports after the restart = %+v, want only d as it was (%+v)", ports, d)
	}
	if held := e.allocated(api.DefaultNetwork); !slices.Equal(held, []string{addr(d.IPs[0])}) {
		t.Errorf("addresses the network holds after the restart = %v, want only d's %s", held, addr(d.IPs[0]))
	}
	if got := e.statePorts(); !slices.Equal(got, []string{"d"}) {
		t.Errorf("ports of the state file after the restart = %v, want [d]", got)
	}
	if got, want := e.pinMounts(), []string{filepath.Join(e.stateDir(), "netns", "d")}; !slices.Equal(got, want) {
		t.Errorf("pins after the restart = %v, want %v", got, want)
	}
	if _, err := os.Stat(pinC); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after the restart: %v, want it removed", pinC, err)
	}
	for _, ns := range []string{nsA, nsB} {
		if _, err := os.Stat(filepath.Join(netnsEtcDir, ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s/%s after its port was dropped: %v, want it removed", netnsEtcDir, ns, err)
		}
	}
	gw := e.inspect(api.DefaultNetwork).Gateway
	if out, err := nsenter(filepath.Join(e.stateDir(), "netns", "d"), "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", gw); err != nil {
		t.Fatalf("ping %s from d's namespace after the restart: %v\n%s", gw, err, out)
	}
	// The namespace of a port dropped can be attached again.
	e.attach(nsA, "--name", "a")
}
