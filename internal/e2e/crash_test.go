package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/daemon"
)

// crashRounds is how many kills TestCrashRestartLeftovers makes: 100
// (about 15 s on a 2-core machine with the race detector), 1,000 with
// TAPSWITCH_SOAK=1, or TAPSWITCH_CRASH_ROUNDS. About one kill in ten
// lands where a daemon without the sweep leaves something.
func crashRounds(t *testing.T) int {
	if s := os.Getenv("TAPSWITCH_CRASH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("TAPSWITCH_CRASH_ROUNDS=%q: want a positive number", s)
		}
		return n
	}
	if restartSoak() {
		return 1000
	}
	return 100
}

// crashNS is one namespace of the crash test, attached by name or by the
// pid of a process inside it, always as port port.
type crashNS struct {
	name, spec, port string
}

// TestCrashRestartLeftovers kills the daemon (kill -9) at a random moment
// of an attach or a detach, many times, and after each restart checks
// that nothing of the interrupted operation is left that the state does
// not record: no TAP of the daemon's in the test's namespaces but those
// of its ports, each carrying its port's addresses; no address on two
// TAPs or two ports; no temporary resolv.conf, and no /etc/netns/NAME
// of a namespace without a port; no intent record, stale pin or
// temporary state file. What it finds is removed by hand, so that every
// round counts on its own, and reported with the count of rounds that
// left something.
//
// TAPSWITCH_CRASH_BIN=DIR runs the tapswitchd and tapswitch in DIR
// instead of this tree's, to measure another build.
func TestCrashRestartLeftovers(t *testing.T) {
	e := newRestartEnv(t)
	// Info, not debug: a log of hundreds of starts is read on failure.
	e.daemonArgs = append(e.daemonArgs, "--log-level", "info")
	e.useCrashBin()

	e.mustCLI("network", "create", "crash", "--subnet", "10.160.0.0/28")
	var nss []crashNS
	for i, role := range []string{"a", "b", "c"} {
		ns := e.newSwpNetns(role)
		nss = append(nss, crashNS{name: ns, spec: ns, port: fmt.Sprintf("swpc%d", i)})
	}
	pidNS := e.newSwpNetns("p")
	nss = append(nss, crashNS{name: pidNS, spec: fmt.Sprintf("pid:%d", e.startSleeper(pidNS)), port: "swpc3"})

	// How long an attach and a detach take here, uninterrupted: the kills
	// are spread over that, or 30 ms if longer.
	var took []time.Duration
	for range 2 {
		for _, ns := range nss {
			start := time.Now()
			e.mustCLI("attach", ns.spec, "--network", "crash", "--name", ns.port)
			took = append(took, time.Since(start))
		}
		for _, ns := range nss {
			start := time.Now()
			e.mustCLI("detach", ns.port)
			took = append(took, time.Since(start))
		}
	}
	slices.Sort(took)
	spread := max(30*time.Millisecond, took[len(took)/2]*3/2)
	t.Logf("attach or detach by the CLI takes %v (median of %d); kills come 0 to %v after the CLI starts", took[len(took)/2], len(took), spread)

	rounds := crashRounds(t)
	var (
		attaches, detaches, interrupted, dirty int
		kinds                                  = map[string]int{}
		first                                  []string
	)
	start := time.Now()
	for round := range rounds {
		ns := nss[rand.N(len(nss))]
		args := []string{"attach", ns.spec, "--network", "crash", "--name", ns.port}
		if findPort(e.ports(), ns.port) != nil {
			args = []string{"detach", ns.port}
			detaches++
		} else {
			attaches++
		}
		cmd := exec.Command(filepath.Join(binDir, "tapswitch"), append([]string{"--socket", e.sock}, args...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(rand.N(spread))
		e.killDaemon()
		if cmd.Wait() != nil {
			interrupted++
		}
		e.startDaemon()
		issues := e.crashLeftovers(nss)
		if len(issues) > 0 {
			dirty++
			for _, is := range issues {
				kinds[is.kind]++
				if len(first) < 20 {
					first = append(first, fmt.Sprintf("round %d (%s): %s", round, strings.Join(args, " "), is.what))
				}
			}
		}
	}
	removed := strings.Count(e.daemonLogText(), "removed a TAP no port holds")
	confs := strings.Count(e.daemonLogText(), "removed a resolv.conf no port holds")
	t.Logf("%d kills in %v: %d during an attach, %d during a detach, %d with the CLI cut off; the sweep removed %d TAPs and %d resolv.conf files; %d rounds left something: %v",
		rounds, time.Since(start).Round(time.Second), attaches, detaches, interrupted, removed, confs, dirty, kinds)
	if dirty > 0 {
		t.Errorf("%d of %d kills left something:\n%s", dirty, rounds, strings.Join(first, "\n"))
	}
}

// useCrashBin restarts the daemon, with the tapswitchd and tapswitch in
// TAPSWITCH_CRASH_BIN if set, for the rest of the test.
func (e *testEnv) useCrashBin() {
	e.t.Helper()
	e.killDaemon()
	if dir := os.Getenv("TAPSWITCH_CRASH_BIN"); dir != "" {
		old := binDir
		binDir = dir
		e.t.Cleanup(func() { binDir = old })
	}
	e.startDaemon()
}

// TestResolvConfSymlinks attaches and detaches namespaces whose
// /etc/netns/NAME is a symbolic link to another directory, or whose
// resolv.conf there is a symbolic link to a file: the daemon writes and
// removes nothing through them, says so in its log, and the ports work.
func TestResolvConfSymlinks(t *testing.T) {
	e := newEnv(t)
	e.useCrashBin()
	e.mustCLI("network", "create", "links", "--subnet", "10.160.1.0/28")
	// The directory a hostile link points at, standing for /etc, with a
	// file standing for /etc/shadow.
	outside := t.TempDir()
	shadow := filepath.Join(outside, "shadow")
	if err := os.WriteFile(shadow, []byte("root:$y$secret:20000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(netnsEtcDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dirLink := e.newSwpNetns("l")
	if err := os.Symlink(outside, filepath.Join(netnsEtcDir, dirLink)); err != nil {
		t.Fatal(err)
	}
	fileLink := e.newSwpNetns("f")
	if err := os.Mkdir(filepath.Join(netnsEtcDir, fileLink), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shadow, filepath.Join(netnsEtcDir, fileLink, "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	before := dirSnapshot(t, outside)
	for _, ns := range []string{dirLink, fileLink} {
		port := e.attach(ns, "--network", "links")
		if after := dirSnapshot(t, outside); !maps.Equal(before, after) {
			t.Errorf("attach %s changed the directory its link points at: before %v, after %v", ns, before, after)
		}
		e.mustCLI("detach", port)
		if after := dirSnapshot(t, outside); !maps.Equal(before, after) {
			t.Errorf("detach %s changed the directory its link points at: before %v, after %v", ns, before, after)
		}
	}
	for _, link := range []string{filepath.Join(netnsEtcDir, dirLink), filepath.Join(netnsEtcDir, fileLink, "resolv.conf")} {
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: %v, %v; want the symbolic link left as it was", link, fi, err)
		}
	}
	if n := strings.Count(e.daemonLogText(), "symbolic link"); n < 2 {
		t.Errorf("the daemon's log names a symbolic link %d times, want once per namespace", n)
	}
}

// dirSnapshot maps each file of dir to its content.
func dirSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, ent := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, ent.Name()))
		out[ent.Name()] = string(b)
	}
	return out
}

// newSwpNetns is newNetns with the name starting "swp".
func (e *testEnv) newSwpNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("swp", role)
}

func (e *testEnv) daemonLogText() string {
	b, _ := os.ReadFile(e.logPath)
	return string(b)
}

// crashIssue is one thing a killed daemon left: its kind, for the count,
// and what.
type crashIssue struct{ kind, what string }

// tapLink is an interface as `ip -j -d addr show` reports it.
type tapLink struct {
	Ifname   string `json:"ifname"`
	Ifalias  string `json:"ifalias"`
	Linkinfo *struct {
		InfoKind string `json:"info_kind"`
	} `json:"linkinfo"`
	AddrInfo []struct {
		Local     string `json:"local"`
		Prefixlen int    `json:"prefixlen"`
		Scope     string `json:"scope"`
	} `json:"addr_info"`
}

// crashLeftovers checks the running daemon and the host against each
// other (see TestCrashRestartLeftovers), removes what should not be
// there, and reports it.
func (e *testEnv) crashLeftovers(nss []crashNS) []crashIssue {
	e.t.Helper()
	var issues []crashIssue
	report := func(kind, format string, args ...any) {
		issues = append(issues, crashIssue{kind, fmt.Sprintf(format, args...)})
	}
	ports := e.ports()
	onPorts := map[string]string{}
	for _, p := range ports {
		for _, ip := range p.IPs {
			a := addr(ip)
			if o, ok := onPorts[a]; ok {
				report("address on two ports", "address %s on ports %s and %s", a, o, p.Name)
			}
			onPorts[a] = p.Name
		}
	}
	// The addresses the network's IPAM holds, from the state file the
	// restarted daemon wrote.
	allocated := e.allocated("crash")
	onTAPs := map[string]string{}
	for _, ns := range nss {
		var port *api.Port
		for i := range ports {
			if ports[i].Netns == ns.spec {
				port = &ports[i]
			}
		}
		// nsenter, not ip netns exec or ip -n, which a stray file in
		// /etc/netns/NAME makes fail (they bind-mount each over /etc).
		out, err := nsenter(nsPath(ns.name), "ip", "-j", "-d", "addr", "show")
		if err != nil {
			e.t.Fatalf("ip -j -d addr show in %s: %v\n%s", ns.name, err, out)
		}
		var links []tapLink
		if err := json.Unmarshal([]byte(out), &links); err != nil {
			e.t.Fatalf("ip -j -d addr show in %s: %v\n%s", ns.name, err, out)
		}
		found := false
		for _, l := range links {
			if l.Linkinfo == nil || l.Linkinfo.InfoKind != "tun" || !strings.HasPrefix(l.Ifalias, "tapswitch") {
				continue
			}
			var addrs []string
			for _, a := range l.AddrInfo {
				if a.Scope == "global" {
					addrs = append(addrs, a.Local)
					if o, ok := onTAPs[a.Local]; ok {
						report("address on two TAPs", "address %s on %s and %s/%s", a.Local, o, ns.name, l.Ifname)
					}
					onTAPs[a.Local] = ns.name + "/" + l.Ifname
				}
			}
			if port == nil || port.Ifname != l.Ifname {
				report("TAP no port holds", "TAP %s in %s (alias %q, addresses %v) that no port holds", l.Ifname, ns.name, l.Ifalias, addrs)
				for _, a := range addrs {
					if !slices.Contains(allocated, a) {
						report("address on a TAP, free in the IPAM", "address %s of TAP %s in %s is free in the IPAM: the next attach may get it", a, l.Ifname, ns.name)
					}
				}
				nsenter(nsPath(ns.name), "ip", "link", "del", l.Ifname)
				continue
			}
			found = true
			for _, ip := range port.IPs {
				if !slices.Contains(addrs, addr(ip)) {
					report("port without its address", "port %s's TAP %s in %s holds %v, not its %s", port.Name, l.Ifname, ns.name, addrs, ip)
				}
			}
		}
		if port != nil && !found {
			report("port without its TAP", "port %s has no TAP %s in %s", port.Name, port.Ifname, ns.name)
		}
		etc := filepath.Join(netnsEtcDir, ns.name)
		entries, err := os.ReadDir(etc)
		if err != nil {
			continue
		}
		for _, ent := range entries {
			if strings.HasPrefix(ent.Name(), ".resolv.conf") {
				report("temporary resolv.conf", "temporary file %s/%s", etc, ent.Name())
				os.Remove(filepath.Join(etc, ent.Name()))
			}
		}
		if port == nil {
			report("/etc/netns of a namespace without a port", "%s left with no port in %s", etc, ns.name)
			os.RemoveAll(etc)
		}
	}
	// The state directory: temporary state files, intent records, pins.
	state := e.stateDir()
	if left, _ := filepath.Glob(filepath.Join(state, ".state-*")); len(left) > 0 {
		report("temporary state file", "temporary state files %v", left)
	}
	if left, _ := os.ReadDir(filepath.Join(state, "intents")); len(left) > 0 {
		report("intent record", "%d intent records left", len(left))
	}
	pins, _ := os.ReadDir(filepath.Join(state, "netns"))
	for _, pin := range pins {
		if findPort(ports, pin.Name()) == nil {
			report("stale pin", "pin %s of no port", pin.Name())
		}
	}
	// Every port's address in the subnet is held by the IPAM.
	for a, p := range onPorts {
		if pa, err := netip.ParseAddr(a); err == nil && netip.MustParsePrefix("10.160.0.0/28").Contains(pa) && !slices.Contains(allocated, a) {
			report("address IPAM holds free", "address %s of port %s is free in the IPAM", a, p)
		}
	}
	return issues
}

// TestSweepFirstStart starts a daemon on a state directory that has no
// intent records yet (as after an upgrade from a daemon that wrote none)
// where persistent TAPs are left in a named namespace: the one carrying
// the daemon's alias goes, the one of another state directory stays.
func TestSweepFirstStart(t *testing.T) {
	e := newRestartEnv(t)
	// Answered once the daemon is up, with its default network's gateway.
	e.status()
	e.killDaemon()
	var gw []struct {
		Ifalias string `json:"ifalias"`
	}
	out, err := run("ip", "-j", "-d", "link", "show", "dev", daemon.GatewayName(e.stateDir(), api.DefaultNetwork))
	if err != nil || json.Unmarshal([]byte(out), &gw) != nil || len(gw) != 1 || !strings.HasPrefix(gw[0].Ifalias, "tapswitch ") {
		t.Fatalf("the daemon's alias, from its default gateway: %v\n%s", err, out)
	}
	alias := gw[0].Ifalias
	if err := os.RemoveAll(filepath.Join(e.stateDir(), "intents")); err != nil {
		t.Fatal(err)
	}
	ns := e.newSwpNetns("u")
	for name, a := range map[string]string{"eth0": alias, "eth1": "tapswitch 00000000"} {
		for _, args := range [][]string{
			{"ip", "tuntap", "add", "dev", name, "mode", "tap"},
			{"ip", "link", "set", name, "alias", a},
			{"ip", "addr", "add", "10.160.3.2/28", "dev", name},
		} {
			if out, err := nsenter(nsPath(ns), args...); err != nil {
				t.Fatalf("%s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
			}
		}
	}
	e.startDaemon()
	e.status()
	var names []string
	for _, l := range nsLinks(t, ns) {
		names = append(names, l.Ifname)
	}
	if slices.Contains(names, "eth0") || !slices.Contains(names, "eth1") {
		t.Fatalf("interfaces in %s after the first start: %v; want eth1 (another daemon's) and not eth0 (this one's, held by no port)", ns, names)
	}
	if fi, err := os.Stat(filepath.Join(e.stateDir(), "intents")); err != nil || !fi.IsDir() {
		t.Fatalf("intents/ after the first start: %v; want it made, so that later starts do not scan again", err)
	}
	if !strings.Contains(e.daemonLogText(), "scanned_run_netns=true") {
		t.Error("the daemon's log does not say it scanned /run/netns")
	}
}
