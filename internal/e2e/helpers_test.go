package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
)

const (

	// startTimeout bounds how long tapswitchd may take to accept on its
	// socket, and stopTimeout how long it may take to exit on SIGTERM.
	startTimeout = 10 * time.Second
	stopTimeout  = 10 * time.Second
	// cmdTimeout bounds every short command (CLI, ip, ping).
	cmdTimeout = 30 * time.Second
)

// requirePrivileged skips t unless it runs as root with every tool on
// PATH; with TAPSWITCH_REQUIRE_PRIVILEGED=1 it fails t instead.
func requirePrivileged(t *testing.T, tools ...string) {
	t.Helper()
	privtest.Require(t, "create network namespaces and TAP devices", tools...)
	if binDir == "" {
		t.Fatal("tapswitchd and tapswitch were not built")
	}
}

// testEnv is one test's world: a tapswitchd of its own, the namespaces it
// attaches to, and the helper processes it started. Everything is torn
// down by a t.Cleanup, whether the test passed or not.
type testEnv struct {
	t *testing.T
	// dir holds the socket, the state directory and the daemon's log.
	dir     string
	sock    string
	logPath string

	daemon *proc
	// daemonArgs are added to tapswitchd's command line.
	daemonArgs []string
	// stopped is set once the daemon was asked to stop; stopErr is the
	// result of that.
	stopped bool
	stopErr error

	namespaces []string
	procs      []*proc
}

// newEnv starts a tapswitchd for t after checking privileges and that
// ip, ping and tools are installed.
func newEnv(t *testing.T, tools ...string) *testEnv {
	t.Helper()
	return newEnvArgs(t, nil, tools...)
}

// newEnvArgs is newEnv with daemonArgs added to tapswitchd's command line.
func newEnvArgs(t *testing.T, daemonArgs []string, tools ...string) *testEnv {
	t.Helper()
	requirePrivileged(t, append([]string{"ip", "ping"}, tools...)...)
	// A short directory keeps the socket path under the 108 bytes of
	// sun_path whatever TMPDIR is.
	dir, err := os.MkdirTemp("", "tsw")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{
		t:          t,
		dir:        dir,
		sock:       filepath.Join(dir, "sock"),
		logPath:    filepath.Join(dir, "tapswitchd.log"),
		daemonArgs: daemonArgs,
	}
	t.Cleanup(e.cleanup)
	e.startDaemon()
	return e
}

func (e *testEnv) startDaemon() {
	e.t.Helper()
	// Appended to, so that a restarted daemon's log follows the first's.
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	// --remove-on-exit, so that a test's daemon leaves nothing behind;
	// a test of restarts turns it off with --remove-on-exit=false in
	// daemonArgs, which come after.
	args := append([]string{
		"--socket", e.sock,
		"--state-dir", e.stateDir(),
		"--log-level", "debug",
		"--remove-on-exit"}, e.daemonArgs...)
	cmd := exec.Command(filepath.Join(binDir, "tapswitchd"), args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	p, err := startProc(cmd)
	if err != nil {
		e.t.Fatalf("start tapswitchd: %v", err)
	}
	e.daemon = p

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.done:
			e.t.Fatalf("tapswitchd exited before accepting on %s: %v\n%s", e.sock, p.err, e.daemonLog())
		default:
		}
		c, err := net.DialTimeout("unix", e.sock, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("dial %s: tapswitchd not accepting after %v: %v\n%s", e.sock, startTimeout, err, e.daemonLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stateDir is the daemon's state directory.
func (e *testEnv) stateDir() string { return filepath.Join(e.dir, "state") }

// restartDaemon stops the daemon with SIGTERM, failing the test unless it
// exits cleanly, and starts another with the same state directory.
func (e *testEnv) restartDaemon() {
	e.t.Helper()
	if err := e.stopDaemon(); err != nil {
		e.t.Fatalf("stop tapswitchd: %v", err)
	}
	e.stopped, e.stopErr = false, nil
	e.startDaemon()
}

// stopDaemon sends SIGTERM to the daemon, waits for it to exit (killing
// it after stopTimeout) and reports whether it exited cleanly. Only the
// first call does anything; later calls return the same result.
func (e *testEnv) stopDaemon() error {
	if e.stopped {
		return e.stopErr
	}
	e.stopped = true
	p := e.daemon
	select {
	case <-p.done:
		e.stopErr = fmt.Errorf("tapswitchd exited before it was stopped: %v", p.err)
		return e.stopErr
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		e.stopErr = fmt.Errorf("signal tapswitchd (pid %d): %w", p.cmd.Process.Pid, err)
		return e.stopErr
	}
	select {
	case <-p.done:
		if p.err != nil {
			e.stopErr = fmt.Errorf("tapswitchd after SIGTERM: %w", p.err)
		}
	case <-time.After(stopTimeout):
		p.kill()
		e.stopErr = fmt.Errorf("tapswitchd (pid %d) still running %v after SIGTERM; killed", p.cmd.Process.Pid, stopTimeout)
	}
	return e.stopErr
}

func (e *testEnv) daemonLog() string {
	b, err := os.ReadFile(e.logPath)
	if err != nil {
		return fmt.Sprintf("(no daemon log: %v)", err)
	}
	return "--- tapswitchd log ---\n" + string(b)
}

func (e *testEnv) cleanup() {
	if e.daemon != nil {
		if err := e.stopDaemon(); err != nil {
			e.t.Errorf("stop tapswitchd: %v", err)
		}
	}
	if e.t.Failed() {
		e.t.Log(e.daemonLog())
	}
	removeStarted(e.t, e.procs, e.namespaces)
	for _, ns := range e.namespaces {
		// The daemon removes the resolv.conf it wrote; this is for a
		// daemon that failed to.
		os.RemoveAll(filepath.Join(netnsEtcDir, ns))
	}
	e.sweep()
	os.RemoveAll(e.dir)
}

// removeStarted kills the processes and deletes the namespaces a test
// started, the latest first.
func removeStarted(t *testing.T, procs []*proc, namespaces []string) {
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].kill()
	}
	for i := len(namespaces) - 1; i >= 0; i-- {
		if out, err := run("ip", "netns", "del", namespaces[i]); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", namespaces[i], err, out)
		}
	}
}

// proc is a process a test started, with its exit published on done.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	// err is the result of Wait, valid once done is closed.
	err error
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// wait waits up to timeout for p to exit and returns its result.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("pid %d still running after %v", p.cmd.Process.Pid, timeout)
	}
}

// kill stops p by its pid if it is still running and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// run runs a command in the test's own namespace and returns its
// combined output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// nsRun runs a command inside the named namespace.
func nsRun(ns string, args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// netnsEtcDir holds the files `ip netns exec` bind-mounts over /etc.
const netnsEtcDir = "/etc/netns"

func nsPath(ns string) string {
	return filepath.Join(namespace.RunDir, ns)
}

// newNetns creates a namespace with a unique short name ending in role,
// brings its loopback up, and deletes it when the test ends.
func (e *testEnv) newNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("tst", role)
}

// newNetnsNamed is newNetns with names that start with prefix, so that a
// group of tests can tell its namespaces from others'.
func (e *testEnv) newNetnsNamed(prefix, role string) string {
	e.t.Helper()
	for range 20 {
		// Short names: the default port name is the namespace's name.
		name := fmt.Sprintf("%s%04x%s", prefix, rand.N(0x10000), role)
		if namespace.Exists(nsPath(name)) {
			continue
		}
		if out, err := run("ip", "netns", "add", name); err != nil {
			e.t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
		}
		e.namespaces = append(e.namespaces, name)
		if out, err := nsRun(name, "ip", "link", "set", "lo", "up"); err != nil {
			e.t.Fatalf("ip link set lo up in %s: %v\n%s", name, err, out)
		}
		return name
	}
	e.t.Fatal("no free namespace name")
	return ""
}

// startSleeper starts a process inside namespace ns, waits until it has
// entered it, and returns its pid. The process is killed when the test
// ends.
func (e *testEnv) startSleeper(ns string) int {
	e.t.Helper()
	p, err := startProc(exec.Command("ip", "netns", "exec", ns, "sleep", "600"))
	if err != nil {
		e.t.Fatalf("ip netns exec %s sleep: %v", ns, err)
	}
	e.procs = append(e.procs, p)
	pid := p.cmd.Process.Pid
	want, err := os.Stat(nsPath(ns))
	if err != nil {
		e.t.Fatal(err)
	}
	// ip netns exec enters the namespace and then execs sleep, keeping
	// its pid; until then the process is still in ours.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err == nil && os.SameFile(got, want) {
			return pid
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("pid %d did not enter namespace %s: %v", pid, ns, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cliResult is what one run of the tapswitch CLI did.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs tapswitch against the test's daemon.
func (e *testEnv) cli(args ...string) cliResult {
	e.t.Helper()
	return runCLI(e.t, e.sock, args...)
}

// runCLI runs tapswitch against the daemon listening on sock.
func runCLI(t *testing.T, sock string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "tapswitch"), append([]string{"--socket", sock}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
	default:
		t.Fatalf("tapswitch %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("tapswitch %s: no answer within %v\n%s", strings.Join(args, " "), cmdTimeout, stderr.String())
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// mustCLI runs tapswitch and fails the test unless it succeeds.
func (e *testEnv) mustCLI(args ...string) string {
	e.t.Helper()
	r := e.cli(args...)
	if r.code != 0 {
		e.t.Fatalf("tapswitch %s: exit code %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// attach attaches namespace spec with the extra CLI args and returns the
// port name the CLI prints.
func (e *testEnv) attach(spec string, args ...string) string {
	e.t.Helper()
	out := strings.TrimSpace(e.mustCLI(append([]string{"attach", spec}, args...)...))
	if out == "" || strings.ContainsAny(out, " \n") {
		e.t.Fatalf("tapswitch attach %s %s printed %q, want a port name", spec, strings.Join(args, " "), out)
	}
	return out
}

func (e *testEnv) ports() []api.Port {
	e.t.Helper()
	var ports []api.Port
	out := e.mustCLI("ports", "-o", "json")
	if err := json.Unmarshal([]byte(out), &ports); err != nil {
		e.t.Fatalf("tapswitch ports -o json: %v\n%s", err, out)
	}
	return ports
}

// status is the daemon's tapswitch status -o json.
func (e *testEnv) status() api.Status {
	e.t.Helper()
	var s api.Status
	out := e.mustCLI("status", "-o", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		e.t.Fatalf("tapswitch status -o json: %v\n%s", err, out)
	}
	return s
}

func (e *testEnv) fdb() []api.FDBEntry {
	e.t.Helper()
	var entries []api.FDBEntry
	out := e.mustCLI("fdb", "-o", "json")
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		e.t.Fatalf("tapswitch fdb -o json: %v\n%s", err, out)
	}
	return entries
}

// findPort returns the port called name, or nil.
func findPort(ports []api.Port, name string) *api.Port {
	for i := range ports {
		if ports[i].Name == name {
			return &ports[i]
		}
	}
	return nil
}

// fdbPort returns the port the table maps mac to, or "".
func fdbPort(entries []api.FDBEntry, mac net.HardwareAddr) string {
	for _, ent := range entries {
		if sameMAC(ent.MAC, mac) {
			return ent.Port
		}
	}
	return ""
}

// waitFDB polls the forwarding table until mac maps to port.
func (e *testEnv) waitFDB(mac net.HardwareAddr, port string) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries := e.fdb()
		got := fdbPort(entries, mac)
		if got == port {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("tapswitch fdb: %s on port %q, want %q\n%+v", mac, got, port, entries)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sameMAC(s string, mac net.HardwareAddr) bool {
	m, err := net.ParseMAC(s)
	return err == nil && bytes.Equal(m, mac)
}

// samePrefix reports whether two CIDR strings name the same address and
// prefix length.
func samePrefix(a, b string) bool {
	pa, err1 := netip.ParsePrefix(a)
	pb, err2 := netip.ParsePrefix(b)
	return err1 == nil && err2 == nil && pa == pb
}

// ipLink is one interface as `ip -j -d link show` reports it.
type ipLink struct {
	Ifname   string `json:"ifname"`
	Address  string `json:"address"`
	Linkinfo *struct {
		InfoKind string `json:"info_kind"`
	} `json:"linkinfo"`
}

// nsLinks lists the interfaces of namespace ns.
func nsLinks(t *testing.T, ns string) []ipLink {
	t.Helper()
	out, err := nsRun(ns, "ip", "-j", "-d", "link", "show")
	if err != nil {
		t.Fatalf("ip -j -d link show in %s: %v\n%s", ns, err, out)
	}
	var links []ipLink
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -j -d link show in %s: %v\n%s", ns, err, out)
	}
	return links
}

// linkMAC returns the hardware address of ifname inside ns.
func linkMAC(t *testing.T, ns, ifname string) net.HardwareAddr {
	t.Helper()
	for _, l := range nsLinks(t, ns) {
		if l.Ifname == ifname {
			mac, err := net.ParseMAC(l.Address)
			if err != nil {
				t.Fatalf("address of %s in %s: %v", ifname, ns, err)
			}
			return mac
		}
	}
	t.Fatalf("ip link show %s in %s: no such device", ifname, ns)
	return nil
}

// leftovers names the interfaces of ns that tapswitch may have made: eth0
// or any TUN/TAP device. After a failed attach or a shutdown there must
// be none.
func leftovers(t *testing.T, ns string) []string {
	t.Helper()
	var names []string
	for _, l := range nsLinks(t, ns) {
		if l.Ifname == "eth0" || (l.Linkinfo != nil && l.Linkinfo.InfoKind == "tun") {
			names = append(names, l.Ifname)
		}
	}
	return names
}

// ping sends a few echo requests from ns to ip and fails unless replies
// come back.
func ping(ns, ip string) (string, error) {
	return nsRun(ns, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", ip)
}

func mustPing(t *testing.T, ns, ip string) {
	t.Helper()
	if out, err := ping(ns, ip); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", ip, ns, err, out)
	}
}

// addr strips the prefix length off a CIDR string.
func addr(cidr string) string {
	return netip.MustParsePrefix(cidr).Addr().String()
}

func sameMACString(a, b string) bool {
	m, err := net.ParseMAC(b)
	return err == nil && sameMAC(a, m)
}
