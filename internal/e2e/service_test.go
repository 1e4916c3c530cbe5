package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/sdnotify/sdnotifytest"
)

// unitSettings reads contrib/tapswitchd.service: each [Service] key's
// last value.
func unitSettings(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../../contrib/tapswitchd.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts, err := unit.DeserializeOptions(f)
	if err != nil {
		t.Fatalf("parse tapswitchd.service: %v", err)
	}
	m := map[string]string{}
	for _, o := range opts {
		if o.Section == "Service" {
			m[o.Name] = o.Value
		}
	}
	return m
}

// capabilityMask is the bit mask of a CapabilityBoundingSet= list, and
// setprivCaps the same list for setpriv --bounding-set.
func capabilityMask(t *testing.T, list string) (mask uint64, setprivCaps string) {
	t.Helper()
	numbers := map[string]uint{
		"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE,
		"CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "CAP_FOWNER": unix.CAP_FOWNER,
		"CAP_KILL": unix.CAP_KILL, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
		"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_NET_RAW": unix.CAP_NET_RAW,
		"CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN,
		"CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_BPF": unix.CAP_BPF,
	}
	caps := []string{"-all"}
	for _, c := range strings.Fields(list) {
		n, ok := numbers[c]
		if !ok {
			t.Fatalf("CapabilityBoundingSet= names %s, which this test does not know: add it to the table", c)
		}
		mask |= 1 << n
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return mask, strings.Join(caps, ",")
}

// procStatus reads a field of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return ""
}

// newSvcNetns is newNetns with this test's prefix for namespace names.
func (e *testEnv) newSvcNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("svc", role)
}

// TestServiceUnit runs tapswitchd as systemd runs contrib/tapswitchd.service,
// as far as a test can without systemd as PID 1: under an emulated
// service manager (Type=notify, the descriptor store) and with the
// unit's CapabilityBoundingSet= and NoNewPrivileges= applied by setpriv.
// READY=1 comes only once the API answers: the first request made when
// it arrives is served, without a retry. With only the unit's
// capabilities the daemon does its work: the API socket given to a group
// (--group), a network with its gateway and
// DNS server on port 53, a namespace attached by name, one by the pid of
// another user's process (CAP_SYS_PTRACE; its pin is bind-mounted in the
// state directory), ping between them, a name
// resolved, both detached.
func TestServiceUnit(t *testing.T) {
	e := newEnv(t, "setpriv")
	settings := unitSettings(t)
	if settings["Type"] != "notify" || settings["NoNewPrivileges"] != "yes" {
		t.Fatalf("tapswitchd.service: Type=%s NoNewPrivileges=%s, the test runs it with notify and yes", settings["Type"], settings["NoNewPrivileges"])
	}
	wantMask, bset := capabilityMask(t, settings["CapabilityBoundingSet"])
	storeMax, err := strconv.Atoi(settings["FileDescriptorStoreMax"])
	if err != nil {
		t.Fatalf("tapswitchd.service: FileDescriptorStoreMax=%q: %v", settings["FileDescriptorStoreMax"], err)
	}
	sup, err := sdnotifytest.New(e.dir, storeMax)
	if err != nil {
		t.Fatal(err)
	}
	// Before the env's cleanup: the store's copies of the TAPs go first,
	// so that the daemon's --remove-on-exit removes them for good.
	t.Cleanup(sup.Close)
	if err := e.stopDaemon(); err != nil {
		t.Fatalf("stop tapswitchd: %v", err)
	}
	e.stopped, e.stopErr = false, nil

	logStart := len(e.daemonLog())
	// --group: giving the socket to a group takes CAP_CHOWN (root is
	// no member of nogroup, 65534).
	args := append([]string{"--bounding-set", bset, "--no-new-privs", "--"}, e.daemonCommand("--group", "65534")...)
	start := time.Now()
	p := e.startLogged(sup.Command("setpriv", args...))
	e.daemon = p
	select {
	case <-sup.Ready():
	case <-p.done:
		t.Fatalf("tapswitchd under setpriv %s exited: %v\n%s", bset, p.err, e.daemonLog())
	case <-time.After(startTimeout):
		t.Fatalf("no READY=1 from tapswitchd within %v; messages: %q\n%s", startTimeout, sup.Log(), e.daemonLog())
	}
	ready := time.Since(start)
	// One request, at once: READY=1 promised an answer.
	r := e.cli("status", "-o", "json")
	var s api.Status
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &s) != nil || s.PID != p.cmd.Process.Pid {
		t.Fatalf("tapswitch status right after READY=1: exit %d, pid %d (want %d)\n%s%s", r.code, s.PID, p.cmd.Process.Pid, r.stdout, r.stderr)
	}
	t.Logf("READY=1 %v after the start; the first status request after it answered; messages: %q", ready, sup.Log())
	var readyAt, apiAt = -1, -1
	for i, m := range sup.Log() {
		if strings.Contains(m, "READY=1") && readyAt < 0 {
			readyAt = i
		}
		if strings.Contains(m, "FDNAME=api") && apiAt < 0 {
			apiAt = i
		}
	}
	if apiAt < 0 || readyAt < apiAt {
		t.Errorf("messages to the service manager %q: want the API listener stored (FDNAME=api) before READY=1", sup.Log())
	}

	// What the unit keeps, of what this machine grants: a container may
	// lack some (CAP_SYS_RESOURCE, often), as a host under systemd
	// would not.
	own, err := strconv.ParseUint(procStatus(t, os.Getpid(), "CapBnd"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	if lacking := wantMask &^ own; lacking != 0 {
		t.Logf("this machine's bounding set %016x lacks %016x of the unit's", own, lacking)
	}
	wantMask &= own
	var st unix.Stat_t
	if err := unix.Stat(e.sock, &st); err != nil || st.Gid != 65534 || st.Mode&0o777 != 0o660 {
		t.Errorf("API socket %s: gid %d, mode %o, %v; want the group 65534's, 0660 (--group)", e.sock, st.Gid, st.Mode&0o777, err)
	}
	pid := p.cmd.Process.Pid
	if got := procStatus(t, pid, "CapBnd"); got != fmt.Sprintf("%016x", wantMask) {
		t.Fatalf("tapswitchd's CapBnd = %s, want %016x (the unit's CapabilityBoundingSet=)", got, wantMask)
	}
	if got := procStatus(t, pid, "CapEff"); got != fmt.Sprintf("%016x", wantMask) {
		t.Errorf("tapswitchd's CapEff = %s, want %016x", got, wantMask)
	}
	if got := procStatus(t, pid, "NoNewPrivs"); got != "1" {
		t.Errorf("tapswitchd's NoNewPrivs = %s, want 1", got)
	}

	e.mustCLI("network", "create", "svcnet", "--subnet", "10.210.1.0/24")
	nsA, nsB := e.newSvcNetns("a"), e.newSvcNetns("b")
	e.attach(nsA, "--network", "svcnet", "--name", "a")
	e.attach(fmt.Sprintf("pid:%d", e.startNobodySleeper(nsB)), "--network", "svcnet", "--name", "b")
	ports := e.ports()
	a, b := findPort(ports, "a"), findPort(ports, "b")
	if a == nil || b == nil || len(a.IPs) != 1 || len(b.IPs) != 1 {
		t.Fatalf("tapswitch ports: want a and b with one address each: %+v", ports)
	}
	// b's pin is a bind mount in the host's mount namespace (this
	// test's), where the next daemon finds it.
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mounts), " "+e.stateDir()+"/") {
		t.Errorf("no mount under %s in the host's mount table after attaching b by pid (%s); want its pin", e.stateDir(), b.Netns)
	}
	mustPing(t, nsA, addr(b.IPs[0]))
	mustResolve(t, nsA, "udp", "10.210.1.1:53", "b", addr(b.IPs[0]))
	e.mustCLI("detach", "a")
	e.mustCLI("detach", "b")
	if got := e.ports(); len(got) != 0 {
		for _, p := range got {
			if p.Name == "a" || p.Name == "b" {
				t.Errorf("tapswitch ports after detaching a and b: %+v", got)
			}
		}
	}
	for _, line := range strings.Split(e.daemonLog()[logStart:], "\n") {
		if !strings.Contains(line, "operation not permitted") && !strings.Contains(line, "permission denied") {
			continue
		}
		// Raising the descriptor limit needs CAP_SYS_RESOURCE, which
		// the unit keeps; where this machine lacks it, the daemon keeps
		// the limit it got, as it says.
		if own&(1<<unix.CAP_SYS_RESOURCE) == 0 && strings.Contains(line, "descriptor limit not set") {
			continue
		}
		t.Errorf("the daemon with the unit's capabilities logged a refusal: %s", line)
	}
}

// startNobodySleeper is startSleeper with the process run as nobody
// (65534), as a rootless container's is another user's: opening its
// /proc/PID/ns/net takes root CAP_SYS_PTRACE.
func (e *testEnv) startNobodySleeper(ns string) int {
	e.t.Helper()
	p, err := startProc(exec.Command("ip", "netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "600"))
	if err != nil {
		e.t.Fatalf("ip netns exec %s setpriv sleep: %v", ns, err)
	}
	e.procs = append(e.procs, p)
	pid := p.cmd.Process.Pid
	want, err := os.Stat(nsPath(ns))
	if err != nil {
		e.t.Fatal(err)
	}
	// ip netns exec and setpriv exec in place: the pid is sleep's once
	// it runs as nobody in ns.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
		var st unix.Stat_t
		if err == nil && os.SameFile(got, want) && unix.Stat(fmt.Sprintf("/proc/%d", pid), &st) == nil && st.Uid == 65534 {
			return pid
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("pid %d did not enter namespace %s as nobody: %v", pid, ns, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
