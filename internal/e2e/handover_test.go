package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/internal/sdnotify/sdnotifytest"
)

// The tests of a restart without loss: a hand-over to a successor
// (tapswitchd --upgrade), every way it can fail, and a crash under a
// service manager that keeps the daemon's descriptors (FDSTORE).

// handoverHelperEnv makes the test binary a stand-in for one side of a
// hand-over that misbehaves (see handoverHelper); handoverDirEnv gives
// it the state directory.
const (
	handoverHelperEnv = "TAPSWITCH_E2E_HANDOVER_HELPER"
	handoverDirEnv    = "TAPSWITCH_E2E_HANDOVER_DIR"
)

func init() {
	// Before TestMain, which would build the binaries again.
	if mode := os.Getenv(handoverHelperEnv); mode != "" {
		os.Exit(handoverHelper(mode, os.Getenv(handoverDirEnv)))
	}
}

// handoverHelper plays a side of a hand-over that dies in the middle:
//
//	successor-dies     asks the daemon to hand over, receives its
//	                   descriptors, and exits without a word
//	predecessor-dies   listens on the hand-over socket in place of a
//	                   daemon, takes a successor's request, and exits
//	                   without handing anything over
func handoverHelper(mode, dir string) int {
	switch mode {
	case "successor-dies":
		p, set, err := daemon.TakeOver(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "take over:", err)
			return 1
		}
		fmt.Printf("received %d descriptors from pid %d\n", set.Len(), p.Pid)
		return 3
	case "predecessor-dies":
		ln, err := daemon.ListenHandover(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "listen:", err)
			return 1
		}
		fmt.Println("listening")
		succ, err := daemon.AcceptSuccessor(ln)
		if err != nil {
			fmt.Fprintln(os.Stderr, "accept:", err)
			return 1
		}
		fmt.Printf("successor pid %d; dying\n", succ.Pid)
		return 3
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 1
}

// newHandoverEnv is newRestartEnv with a network of its own in
// 10.170.sub.0/24 and two namespaces on it, a and b, attached by name;
// b publishes its port 8080 on a free host port of 127.0.0.1, where an
// HTTP server in b answers.
type handoverEnv struct {
	*testEnv
	network  string
	nsA, nsB string
	ipB      string
	url      string
}

const handoverBody = "hello through the hand-over"

func newHandoverEnv(t *testing.T, sub int, tools ...string) *handoverEnv {
	t.Helper()
	e := &handoverEnv{testEnv: newRestartEnv(t, append([]string{"ss", "nsenter"}, tools...)...), network: "honet"}
	e.mustCLI("network", "create", e.network, "--subnet", fmt.Sprintf("10.170.%d.0/24", sub))
	e.nsA, e.nsB = e.newHoNetns("a"), e.newHoNetns("b")
	hostPort := freeHostPort(t, 18170+sub)
	e.attach(e.nsA, "--network", e.network, "--name", "a")
	e.attach(e.nsB, "--network", e.network, "--name", "b", "--publish", fmt.Sprintf("127.0.0.1:%d:8080", hostPort))
	b := findPort(e.ports(), "b")
	if b == nil || len(b.IPs) != 1 {
		t.Fatalf("tapswitch ports: no port b with one address: %+v", e.ports())
	}
	e.ipB = addr(b.IPs[0])
	serveHTTPAt(t, nsPath(e.nsB), 8080, handoverBody)
	e.url = fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
	if got, err := httpGet(e.url); err != nil || got != handoverBody {
		t.Fatalf("GET %s = %q, %v; want %q", e.url, got, err, handoverBody)
	}
	mustPing(t, e.nsA, e.ipB)
	return e
}

// newHoNetns is newNetns with this part's prefix for namespace names.
func (e *testEnv) newHoNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("ho", role)
}

// daemonCommand is the command line startDaemon runs, with extra added.
func (e *testEnv) daemonCommand(extra ...string) []string {
	args := append([]string{filepath.Join(binDir, "tapswitchd"),
		"--socket", e.sock,
		"--state-dir", e.stateDir(),
		"--log-level", "debug",
		"--remove-on-exit"}, e.daemonArgs...)
	return append(args, extra...)
}

// startLogged starts cmd with its output appended to the daemon's log.
func (e *testEnv) startLogged(cmd *exec.Cmd) *proc {
	e.t.Helper()
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := startProc(cmd)
	if err != nil {
		e.t.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	return p
}

// waitServed polls tapswitch status until the daemon that answers is p.
func (e *testEnv) waitServed(p *proc) api.Status {
	e.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.done:
			e.t.Fatalf("tapswitchd (pid %d) exited: %v\n%s", p.cmd.Process.Pid, p.err, e.daemonLog())
		default:
		}
		r := runCLI(e.t, e.sock, "status", "-o", "json")
		var s api.Status
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &s) == nil && s.PID == p.cmd.Process.Pid {
			return s
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("tapswitchd (pid %d) not serving after %v: %s%s\n%s", p.cmd.Process.Pid, startTimeout, r.stdout, r.stderr, e.daemonLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// upgrade runs tapswitchd --upgrade, as the daemon runs, and waits for
// the running daemon to exit, cleanly, and the new one to serve. It
// returns how long the old daemon took to exit after the new one
// started.
func (e *testEnv) upgrade() time.Duration {
	e.t.Helper()
	old := e.daemon
	start := time.Now()
	p := e.startLogged(exec.Command(e.daemonCommand("--upgrade")[0], e.daemonCommand("--upgrade")[1:]...))
	if err := old.wait(startTimeout); err != nil {
		p.kill()
		e.t.Fatalf("the running tapswitchd after tapswitchd --upgrade: %v, want it to exit 0 once taken over\n%s", err, e.daemonLog())
	}
	took := time.Since(start)
	e.daemon = p
	e.waitServed(p)
	return took
}

// pinger is ping -i 0.002 running in the background: one echo request
// every 2 ms, each numbered, so that a frame lost in either direction
// shows as a missing reply.
type pinger struct {
	p    *proc
	out  *strings.Builder
	desc string
}

func (e *testEnv) startPing(ns, ip string, count int) *pinger {
	e.t.Helper()
	out := &strings.Builder{}
	// -W 2: a reply that waited out the hand-over in a ring still
	// counts; it comes within a second.
	cmd := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-i", "0.002", "-c", strconv.Itoa(count), "-W", "2", ip)
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startProc(cmd)
	if err != nil {
		e.t.Fatalf("ping in %s: %v", ns, err)
	}
	e.procs = append(e.procs, p)
	return &pinger{p: p, out: out, desc: fmt.Sprintf("ping -i 0.002 -c %d %s from %s", count, ip, ns)}
}

var (
	pingSummaryRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingRTTRE     = regexp.MustCompile(`rtt min/avg/max/mdev = [\d.]+/[\d.]+/([\d.]+)/`)
	pingSeqRE     = regexp.MustCompile(`icmp_seq=(\d+)`)
)

// pingResult is what a pinger saw: requests sent, replies, the
// sequence numbers missing, and the longest round trip (how long a
// frame waited out the restart).
type pingResult struct {
	sent, received int
	missing        []int
	maxRTT         time.Duration
}

func (p *pinger) result(t *testing.T) pingResult {
	t.Helper()
	r, out := pingSummary(t, p.p, p.desc, p.out.String)
	seen := map[int]bool{}
	for _, m := range pingSeqRE.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		seen[n] = true
	}
	for i := 1; i <= r.sent; i++ {
		if !seen[i] {
			r.missing = append(r.missing, i)
		}
	}
	return r
}

// pingSummary waits for the ping p (desc) and reads the counts and the
// longest round trip of its summary from its output (read by out once
// it exited), which it returns too.
func pingSummary(t *testing.T, p *proc, desc string, out func() string) (pingResult, string) {
	t.Helper()
	if err := p.wait(time.Minute); err != nil {
		// ping exits 1 when replies are missing: the caller counts them.
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: %v\n%s", desc, err, out())
		}
	}
	text := out()
	m := pingSummaryRE.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("%s: no summary\n%s", desc, text)
	}
	var r pingResult
	r.sent, _ = strconv.Atoi(m[1])
	r.received, _ = strconv.Atoi(m[2])
	if m := pingRTTRE.FindStringSubmatch(text); m != nil {
		ms, _ := strconv.ParseFloat(m[1], 64)
		r.maxRTT = time.Duration(ms * float64(time.Millisecond))
	}
	return r, text
}

// checkNoLoss fails t unless every echo request of r got its reply.
func checkNoLoss(t *testing.T, what string, r pingResult) {
	t.Helper()
	if r.sent == 0 || r.received != r.sent || len(r.missing) != 0 {
		t.Errorf("%s: %d echo requests, %d replies, missing icmp_seq %v; want every one answered", what, r.sent, r.received, r.missing)
	}
}

// tcpTimeouts reads the TCP retransmission timeouts the namespace ns
// has counted (TcpExt TCPTimeouts).
func tcpTimeouts(t *testing.T, ns string) int {
	t.Helper()
	return procNetCounter(t, ns, "/proc/net/netstat", "TcpExt:", "TCPTimeouts")
}

// procNetCounter reads counter name of section (such as "TcpExt:") from
// file, /proc/net/netstat or /proc/net/snmp, in ns: a line of names
// followed by a line of values, both led by the section.
func procNetCounter(t *testing.T, ns, file, section, name string) int {
	t.Helper()
	out, err := nsRun(ns, "cat", file)
	if err != nil {
		t.Fatalf("cat %s in %s: %v\n%s", file, ns, err, out)
	}
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != section || len(vals) != len(keys) || vals[0] != section {
			continue
		}
		if k := slices.Index(keys, name); k > 0 {
			n, _ := strconv.Atoi(vals[k])
			return n
		}
	}
	t.Fatalf("no %s %s in %s of %s", section, name, file, ns)
	return 0
}

// checkResumed checks that the ports came back as they were, and that
// the published port answers.
func (e *handoverEnv) checkResumed(t *testing.T, how string, before []api.Port) {
	t.Helper()
	after := e.ports()
	for _, want := range before {
		p := findPort(after, want.Name)
		if p == nil {
			t.Errorf("tapswitch ports after %s: no port %s", how, want.Name)
			continue
		}
		if p.MAC != want.MAC || !slices.Equal(p.IPs, want.IPs) || !slices.Equal(p.Publish, want.Publish) {
			t.Errorf("port %s after %s = %+v, want MAC %s, IPs %v, publish %v as before", want.Name, how, p, want.MAC, want.IPs, want.Publish)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := httpGet(e.url)
		if err == nil && got == handoverBody {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s after %s = %q, %v; want %q from the published port", e.url, how, got, err, handoverBody)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHandoverPing: tapswitchd --upgrade takes over from the running
// daemon while a ping sends an echo request every 2 ms across the
// switch: every request and every reply gets through (they wait in the
// TAPs' rings while the daemons change), the old daemon exits 0, the
// new one took the TAPs' queues and the published port's listener as
// they were handed over, and every port is as it was.
func TestHandoverPing(t *testing.T) {
	e := newHandoverEnv(t, 11)
	before := e.ports()
	ping := e.startPing(e.nsA, e.ipB, 1500)
	time.Sleep(time.Second)
	// The API through the hand-over: a client that connects while the
	// daemons change waits in the listener's queue and is answered.
	stopCalls := make(chan struct{})
	calls := make(chan []string, 1)
	go func() {
		var failed []string
		for {
			select {
			case <-stopCalls:
				calls <- failed
				return
			default:
			}
			// Not runCLI, which may only fail the test from the
			// test's goroutine.
			out, err := exec.Command(filepath.Join(binDir, "tapswitch"), "--socket", e.sock, "status", "-o", "json").CombinedOutput()
			if err != nil {
				failed = append(failed, fmt.Sprintf("%v: %s", err, out))
			}
		}
	}()
	took := e.upgrade()
	close(stopCalls)
	if failed := <-calls; len(failed) > 0 {
		t.Errorf("tapswitch status during the hand-over failed %d times: %q", len(failed), failed)
	}
	r := ping.result(t)
	t.Logf("ping -i 0.002 through tapswitchd --upgrade: %d sent, %d received, longest round trip %v; old daemon gone %v after the new one started",
		r.sent, r.received, r.maxRTT, took)
	checkNoLoss(t, "ping through tapswitchd --upgrade", r)
	if !strings.Contains(e.daemonLog(), "descriptors handed over\" taps=4 sockets=1 unused=[]") {
		t.Errorf("the new daemon's log does not say it took 4 TAPs (a, b, and two gateways) and 1 socket as handed over\n%s", e.daemonLog())
	}
	if s := e.status(); s.RestoredPorts != 2 || s.DroppedPorts != 0 {
		t.Errorf("tapswitch status after --upgrade: restored %d ports, dropped %d; want 2 and 0", s.RestoredPorts, s.DroppedPorts)
	}
	e.checkResumed(t, "--upgrade", before)
	// The new daemon can hand over in its turn: it listens where the
	// old one did.
	ping = e.startPing(e.nsA, e.ipB, 500)
	e.upgrade()
	checkNoLoss(t, "ping through a second tapswitchd --upgrade", ping.result(t))
}

// TestHandoverIperf measures a hand-over under an iperf3 stream: the
// transfer completes, and what TCP saw (retransmits, retransmission
// timeouts, the longest gap the receiver saw) is reported.
func TestHandoverIperf(t *testing.T) {
	e := newHandoverEnv(t, 12, "iperf3")
	srv := e.startIperfServer(e.nsB, e.ipB, "-J", "-i", "0.1")
	base := e.startIperf(e.nsA, srv, "--get-server-output", "-t", "3", "-i", "0.1").result(t, time.Minute)
	seconds := 8
	timeouts := tcpTimeouts(t, e.nsA)
	client := e.startIperf(e.nsA, srv, "--get-server-output", "-t", strconv.Itoa(seconds), "-i", "0.1")
	time.Sleep(time.Duration(seconds) * time.Second / 2)
	took := e.upgrade()
	r := client.result(t, time.Duration(seconds)*time.Second+time.Minute)
	timeouts = tcpTimeouts(t, e.nsA) - timeouts
	sent, got := r.End.SumSent.Bytes, r.End.SumReceived.Bytes
	gap, after := r.gap()
	t.Logf("iperf3 through tapswitchd --upgrade: %d bytes sent, %d received (%.2f Gbit/s), %d retransmits, %d retransmission timeouts, longest gap seen by the receiver %v (in 0.1s intervals); old daemon gone %v after the new one started; without a hand-over %d retransmits in 3s",
		sent, got, r.gbps(), r.End.SumSent.Retransmits, timeouts, gap, took, base.End.SumSent.Retransmits)
	if sent == 0 || got < sent-sent/10 {
		t.Errorf("%s: %d bytes sent, %d received; want the transfer whole", client.desc, sent, got)
	}
	if after == 0 {
		t.Errorf("%s: nothing received after the gap of %v: the connection did not resume", client.desc, gap)
	}
}

// TestHandoverFailures: every way a hand-over can fail leaves one daemon
// forwarding, without a frame lost where the TAPs' queues stayed open.
//
//   - the successor dies after it got the descriptors: the old daemon
//     resumes with the copies it kept;
//   - the successor gives up (here: it cannot listen on the --socket it
//     was given): it says so, exits 1, and the old daemon resumes;
//   - the predecessor dies before it hands anything over: the successor
//     starts as after a crash, opening the TAPs by name;
//   - nothing runs: --upgrade starts as usual.
func TestHandoverFailures(t *testing.T) {
	e := newHandoverEnv(t, 13)
	before := e.ports()
	helper := func(mode string) *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), handoverHelperEnv+"="+mode, handoverDirEnv+"="+e.stateDir())
		return cmd
	}

	t.Run("successor dies", func(t *testing.T) {
		old := e.daemon
		ping := e.startPing(e.nsA, e.ipB, 1000)
		time.Sleep(500 * time.Millisecond)
		out, err := helper("successor-dies").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "received") {
			t.Fatalf("successor that dies: %v\n%s", err, out)
		}
		s := e.waitServed(old)
		r := ping.result(t)
		t.Logf("successor died mid-hand-over: %d sent, %d received, longest round trip %v", r.sent, r.received, r.maxRTT)
		checkNoLoss(t, "ping through a hand-over whose successor died", r)
		if s.RestoredPorts != 2 || s.DroppedPorts != 0 {
			t.Errorf("tapswitch status after resuming: restored %d ports, dropped %d; want 2 and 0", s.RestoredPorts, s.DroppedPorts)
		}
		if !strings.Contains(e.daemonLog(), "resumed after a failed hand-over") {
			t.Errorf("the daemon's log does not say it resumed\n%s", e.daemonLog())
		}
		e.checkResumed(t, "a failed hand-over", before)
	})

	t.Run("successor gives up", func(t *testing.T) {
		old := e.daemon
		ping := e.startPing(e.nsA, e.ipB, 1000)
		time.Sleep(500 * time.Millisecond)
		args := e.daemonCommand("--upgrade")
		// A socket no process can listen on: its directory would be
		// under a regular file.
		i := slices.Index(args, "--socket")
		args[i+1] = filepath.Join(e.logPath, "sock")
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("tapswitchd --upgrade with an unusable --socket: %v, want exit code 1\n%s", err, out)
		}
		e.waitServed(old)
		r := ping.result(t)
		t.Logf("successor gave up: %d sent, %d received, longest round trip %v", r.sent, r.received, r.maxRTT)
		checkNoLoss(t, "ping through a hand-over the successor gave up", r)
		e.checkResumed(t, "a hand-over given up", before)
	})

	t.Run("predecessor dies", func(t *testing.T) {
		if err := e.stopDaemon(); err != nil {
			t.Fatalf("stop tapswitchd: %v", err)
		}
		e.stopped, e.stopErr = false, nil
		fake := helper("predecessor-dies")
		stdout, err := fake.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		fp, err := startProc(fake)
		if err != nil {
			t.Fatal(err)
		}
		e.procs = append(e.procs, fp)
		buf := make([]byte, 64)
		if n, err := stdout.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "listening") {
			t.Fatalf("stand-in predecessor: %q, %v", buf[:n], err)
		}
		p := e.startLogged(exec.Command(e.daemonCommand("--upgrade")[0], e.daemonCommand("--upgrade")[1:]...))
		e.daemon = p
		s := e.waitServed(p)
		if err := fp.wait(startTimeout); err == nil {
			t.Errorf("stand-in predecessor exited 0, want 3")
		}
		if s.RestoredPorts != 2 || s.DroppedPorts != 0 {
			t.Errorf("tapswitch status after the predecessor died: restored %d ports, dropped %d; want 2 and 0", s.RestoredPorts, s.DroppedPorts)
		}
		if !strings.Contains(e.daemonLog(), "starting as after a crash") {
			t.Errorf("the successor's log does not say it started as after a crash\n%s", e.daemonLog())
		}
		mustPing(t, e.nsA, e.ipB)
		e.checkResumed(t, "a predecessor's death", before)
	})

	t.Run("nothing to take over", func(t *testing.T) {
		if err := e.stopDaemon(); err != nil {
			t.Fatalf("stop tapswitchd: %v", err)
		}
		e.stopped, e.stopErr = false, nil
		p := e.startLogged(exec.Command(e.daemonCommand("--upgrade")[0], e.daemonCommand("--upgrade")[1:]...))
		e.daemon = p
		s := e.waitServed(p)
		if s.RestoredPorts != 2 || s.DroppedPorts != 0 {
			t.Errorf("tapswitch status after --upgrade with nothing running: restored %d ports, dropped %d; want 2 and 0", s.RestoredPorts, s.DroppedPorts)
		}
		if !strings.Contains(e.daemonLog(), "nothing to take over from") {
			t.Errorf("the log does not say there was nothing to take over from\n%s", e.daemonLog())
		}
		mustPing(t, e.nsA, e.ipB)
	})
}

// fdStoreMax is the FileDescriptorStoreMax= of the emulated service
// manager, as in the unit file.
const fdStoreMax = 4096

// startSupervised stops the test's daemon and starts it again under an
// emulation of the service manager (sdnotifytest), as systemd runs the
// unit file: it waits for READY=1.
func (e *testEnv) startSupervised(sup *sdnotifytest.Supervisor) {
	e.t.Helper()
	if err := e.stopDaemon(); err != nil {
		e.t.Fatalf("stop tapswitchd: %v", err)
	}
	e.stopped, e.stopErr = false, nil
	e.startUnder(sup)
}

// startUnder starts the next daemon under sup, with what sup keeps.
func (e *testEnv) startUnder(sup *sdnotifytest.Supervisor) *proc {
	e.t.Helper()
	args := e.daemonCommand()
	p := e.startLogged(sup.Command(args[0], args[1:]...))
	e.daemon = p
	select {
	case <-sup.Ready():
	case <-p.done:
		e.t.Fatalf("tapswitchd under the supervisor exited: %v\n%s", p.err, e.daemonLog())
	case <-time.After(startTimeout):
		e.t.Fatalf("no READY=1 from tapswitchd within %v; messages: %q\n%s", startTimeout, sup.Log(), e.daemonLog())
	}
	e.waitServed(p)
	return p
}

// TestFDStoreKill runs the daemon as systemd would run the unit file
// (Type=notify, FileDescriptorStoreMax=, Restart=always), under an
// emulated service manager: the daemon says READY=1 once it serves and
// stores every TAP's queues, the published port's listener and the
// API listener; killed with SIGKILL mid-stream and started again with
// what the store kept, it loses no frame but those it held when killed
// (ping -i 0.002 misses at most the request and reply in flight) and
// the iperf3 stream goes on; a port detached leaves the store.
func TestFDStoreKill(t *testing.T) {
	e := newHandoverEnv(t, 14, "iperf3")
	sup, err := sdnotifytest.New(e.dir, fdStoreMax)
	if err != nil {
		t.Fatal(err)
	}
	// Before the cleanups of newRestartEnv: the store's copies must be
	// gone before a daemon starts again to remove everything.
	t.Cleanup(sup.Close)
	e.startSupervised(sup)
	gwName := daemon.GatewayName(e.stateDir(), e.network)
	want := []string{"api", "tap/a", "tap/b", "tap/" + gwName, "pub/b/0"}
	stored := sup.Stored()
	for _, name := range want {
		if stored[name] == 0 {
			t.Errorf("the store holds %v, want %s among them", stored, name)
		}
	}
	if sup.Refused() != 0 {
		t.Errorf("the store refused %d descriptors", sup.Refused())
	}

	before := e.ports()
	srv := e.startIperfServer(e.nsB, e.ipB, "-J", "-i", "0.1")
	seconds := 8
	timeouts := tcpTimeouts(t, e.nsA)
	client := e.startIperf(e.nsA, srv, "--get-server-output", "-t", strconv.Itoa(seconds), "-i", "0.1")
	ping := e.startPing(e.nsA, e.ipB, 2000)
	time.Sleep(time.Duration(seconds) * time.Second / 2)
	start := time.Now()
	e.killDaemon()
	killed := time.Since(start)
	e.startUnder(sup)
	down := time.Since(start)
	s := e.waitFirstForward()
	pr := ping.result(t)
	r := client.result(t, time.Duration(seconds)*time.Second+time.Minute)
	timeouts = tcpTimeouts(t, e.nsA) - timeouts
	sent, got := r.End.SumSent.Bytes, r.End.SumReceived.Bytes
	gap, after := r.gap()
	t.Logf("kill -9 under the emulated service manager: killed in %v, serving again %v after the kill, first frame forwarded %v ms after its start", killed, down, s.FirstForwardMs)
	t.Logf("ping -i 0.002 through it: %d sent, %d received, longest round trip %v", pr.sent, pr.received, pr.maxRTT)
	t.Logf("iperf3 through it: %d bytes sent, %d received (%.2f Gbit/s), %d retransmits, %d retransmission timeouts, longest gap seen by the receiver %v (in 0.1s intervals)",
		sent, got, r.gbps(), r.End.SumSent.Retransmits, timeouts, gap)
	// What the killed daemon had read and not yet written dies with it:
	// at most the echo request or reply in flight then, one of each.
	if pr.sent == 0 || len(pr.missing) > 2 || pr.sent-pr.received > 2 {
		t.Errorf("ping through kill -9 with the descriptors in the store: %d echo requests, %d replies, missing icmp_seq %v; want at most the 2 in flight in the killed daemon lost",
			pr.sent, pr.received, pr.missing)
	}
	if sent == 0 || got < sent-sent/10 {
		t.Errorf("%s: %d bytes sent, %d received; want the transfer whole", client.desc, sent, got)
	}
	if after == 0 {
		t.Errorf("%s: nothing received after the gap of %v", client.desc, gap)
	}
	if s.RestoredPorts != 2 || s.DroppedPorts != 0 {
		t.Errorf("tapswitch status after kill -9: restored %d ports, dropped %d; want 2 and 0", s.RestoredPorts, s.DroppedPorts)
	}
	if !strings.Contains(e.daemonLog(), "descriptors handed over\" taps=4 sockets=1 unused=[]") {
		t.Errorf("the restarted daemon's log does not say it took 4 TAPs and 1 socket from the store\n%s", e.daemonLog())
	}
	e.checkResumed(t, "kill -9 under the service manager", before)

	// A hand-over is refused: the service manager would start another
	// daemon when this one exits.
	supervised := e.daemon
	args := e.daemonCommand("--upgrade")
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "service manager") {
		t.Errorf("tapswitchd --upgrade of a daemon under a service manager: %v, want it refused\n%s", err, out)
	}
	e.waitServed(supervised)

	// A port detached leaves the store.
	e.mustCLI("detach", "b")
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := sup.Stored()
		if st["tap/b"] == 0 && st["pub/b/0"] == 0 {
			if st["tap/a"] == 0 {
				t.Errorf("the store after detaching b = %v, want a's queues still there", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store 5s after detaching b = %v, want b's queues and socket gone", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
