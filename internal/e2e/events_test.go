package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// newEvNetns makes a namespace named ev, 4 hex digits and role, removed
// by the environment's cleanup.
func (e *testEnv) newEvNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("ev", role)
}

// eventStream is a running `tapswitch events -o json`.
type eventStream struct {
	t      *testing.T
	p      *proc
	events chan api.Event
	stderr *strings.Builder
}

// streamEvents starts `tapswitch events -o json` with args; it is
// stopped at the test's end if still running.
//
// Unless args give --since, the stream holds every event from the call
// on: it asks for them --since the moment before the CLI starts, and the
// daemon replays those that came while the CLI was still starting. A CLI
// subscribes only once it has started and connected, which on a loaded
// machine (a full `make test`, whose CLI is built with -race) took longer
// than a test took to cause its event, and that event then never came.
func (e *testEnv) streamEvents(args ...string) *eventStream {
	e.t.Helper()
	if !slices.ContainsFunc(args, func(a string) bool { return a == "--since" || strings.HasPrefix(a, "--since=") }) {
		args = append(args, "--since", time.Now().Format(time.RFC3339Nano))
	}
	cmd := exec.Command(filepath.Join(binDir, "tapswitch"), append([]string{"--socket", e.sock, "events", "-o", "json"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	s := &eventStream{t: e.t, events: make(chan api.Event, 1024), stderr: &strings.Builder{}}
	cmd.Stderr = s.stderr
	if s.p, err = startProc(cmd); err != nil {
		e.t.Fatalf("start tapswitch events: %v", err)
	}
	e.procs = append(e.procs, s.p)
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev api.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				s.events <- api.Event{Type: "bad-line", Reason: sc.Text()}
				continue
			}
			s.events <- ev
		}
	}()
	return s
}

// next returns the next event of the stream that match says is one the
// test waits for, failing the test after timeout; the events passed over
// are returned too.
func (s *eventStream) next(timeout time.Duration, what string, match func(api.Event) bool) (api.Event, []api.Event) {
	s.t.Helper()
	var skipped []api.Event
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatalf("tapswitch events ended before %s; skipped %v\n%s", what, skipped, s.stderr)
			}
			if ev.Type == "bad-line" {
				s.t.Fatalf("tapswitch events -o json printed a line that is no event: %q", ev.Reason)
			}
			if match(ev) {
				return ev, skipped
			}
			skipped = append(skipped, ev)
		case <-deadline:
			s.t.Fatalf("no %s within %v; saw %v\n%s", what, timeout, skipped, s.stderr)
		}
	}
}

func isType(t api.EventType) func(api.Event) bool {
	return func(ev api.Event) bool { return ev.Type == t }
}

// TestEvents: `tapswitch events -o json` shows the attach and the detach
// of namespaces, with their names, in order, as they happen; --since
// replays them; a human line per event without -o json; Ctrl-C ends it.
func TestEvents(t *testing.T) {
	e := newEnv(t)
	t0 := time.Now()
	e.mustCLI("network", "create", "evnet", "--subnet", "10.200.1.0/24")
	live := e.streamEvents("--since", t0.Format(time.RFC3339Nano))
	// The network's creation comes through (replayed or live): the
	// stream is open, so what follows is seen as it happens.
	// (The daemon may have made its default network after t0, as the
	// socket accepts before the state is restored.)
	ev, _ := live.next(20*time.Second, "network.create evnet", func(ev api.Event) bool {
		return ev.Type == api.EventNetworkCreate && ev.Network == "evnet"
	})
	if ev.Attrs["subnet"] != "10.200.1.0/24" {
		t.Fatalf("network.create = %+v, want evnet with its subnet", ev)
	}
	nsA, nsB := e.newEvNetns("a"), e.newEvNetns("b")
	portA := e.attach(nsA, "--network", "evnet")
	portB := e.attach(nsB, "--network", "evnet", "--name", "evweb")
	e.mustCLI("detach", portA)
	e.mustCLI("detach", portB)
	want := []struct {
		typ         api.EventType
		port, netns string
	}{
		{api.EventPortAttach, portA, nsA},
		{api.EventPortAttach, portB, nsB},
		{api.EventPortDetach, portA, nsA},
		{api.EventPortDetach, portB, nsB},
	}
	var seen []api.Event
	for _, w := range want {
		ev, skipped := live.next(20*time.Second, fmt.Sprintf("%s %s", w.typ, w.port), func(ev api.Event) bool { return ev.Type.Family() == "port" })
		if len(skipped) > 0 {
			t.Errorf("events before %s %s: %v", w.typ, w.port, skipped)
		}
		if ev.Type != w.typ || ev.Port != w.port || ev.Netns != w.netns || ev.Network != "evnet" {
			t.Fatalf("event = %s %s (netns %s, network %s), want %s %s (netns %s, network evnet)", ev.Type, ev.Port, ev.Netns, ev.Network, w.typ, w.port, w.netns)
		}
		seen = append(seen, ev)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Seq <= seen[i-1].Seq || seen[i].Time.Before(seen[i-1].Time) {
			t.Errorf("events out of order: seq %d at %v after seq %d at %v", seen[i].Seq, seen[i].Time, seen[i-1].Seq, seen[i-1].Time)
		}
	}
	if seen[0].Attrs["ifname"] != "eth0" || !strings.HasPrefix(seen[0].Attrs["ips"], "10.200.1.") {
		t.Errorf("port.attach attrs = %v, want ifname eth0 and an address of evnet", seen[0].Attrs)
	}

	// Ctrl-C ends the stream, with success.
	if err := live.p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := live.p.wait(10 * time.Second); err != nil {
		t.Errorf("tapswitch events after SIGINT: %v\n%s", err, live.stderr)
	}

	// --since replays the past, --until ends the replay.
	until := time.Now().Format(time.RFC3339Nano)
	r := e.mustCLI("events", "--since", t0.Format(time.RFC3339Nano), "--until", until, "-o", "json", "--filter", "type=port")
	var replayed []string
	for _, line := range strings.Split(strings.TrimSpace(r), "\n") {
		var ev api.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("tapswitch events -o json: line %q: %v", line, err)
		}
		replayed = append(replayed, string(ev.Type)+" "+ev.Port)
	}
	wantReplay := []string{"port.attach " + portA, "port.attach " + portB, "port.detach " + portA, "port.detach " + portB}
	if strings.Join(replayed, "; ") != strings.Join(wantReplay, "; ") {
		t.Errorf("replay of port events since the start:\n%q\nwant\n%q", replayed, wantReplay)
	}
	// One line an event for people, as docker events.
	human := e.mustCLI("events", "--since", "10m", "--until", until, "--filter", "port="+portB)
	t.Logf("tapswitch events --since 10m --until ... --filter port=%s:\n%s", portB, human)
	lines := strings.Split(strings.TrimSpace(human), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " port.attach "+portB+" (network=evnet, netns="+nsB) || !strings.Contains(lines[1], " port.detach "+portB+" ") {
		t.Errorf("tapswitch events for %s:\n%s\nwant a port.attach line and a port.detach line", portB, human)
	}
	// A typo in a type is an error that says which types there are.
	if res := e.cli("events", "--filter", "type=port.atach"); res.code == 0 || !strings.Contains(res.stderr, "port.attach") {
		t.Errorf("tapswitch events --filter type=port.atach: exit %d, %q; want an error listing the types", res.code, res.stderr)
	}
}

// TestEventsMACLimit: a port flooding source MACs past its --mac-limit
// is told as a port.mac_limit event, with its drops and its limit; the
// frames themselves cost the forwarding path no event.
func TestEventsMACLimit(t *testing.T) {
	const macLimit = 16
	e := newEnv(t)
	e.mustCLI("network", "create", "evflood", "--subnet", "10.200.2.0/24")
	nsA := e.newEvNetns("f")
	portA := e.attach(nsA, "--network", "evflood", "--port-security=false", "--mac-limit", fmt.Sprint(macLimit))
	s := e.streamEvents("--filter", "type=port.mac_limit", "--filter", "type=network.create", "--since", "1h")
	s.next(20*time.Second, "network.create (the stream is open)", isType(api.EventNetworkCreate))
	pa := openPacketConn(t, nsA, "eth0")
	took := macFlood(t, pa, 2000)
	ev, _ := s.next(20*time.Second, "port.mac_limit", isType(api.EventPortMACLimit))
	drops := e.portDrops(portA)["mac_limit"]
	t.Logf("2000 frames from random MACs in %v; event %+v; the port's mac_limit drops: %d", took.Round(time.Millisecond), ev, drops)
	if ev.Port != portA || ev.Network != "evflood" || ev.Netns != nsA || ev.Counts["limit"] != macLimit || ev.Counts["drops"] <= 0 {
		t.Errorf("port.mac_limit = %+v, want port %s on evflood, netns %s, limit %d, drops > 0", ev, portA, nsA, macLimit)
	}
	if uint64(ev.Counts["drops"]) > drops {
		t.Errorf("port.mac_limit tells %d drops, the port counts only %d", ev.Counts["drops"], drops)
	}
	// A flood that goes on is told at most once per interval, with the
	// count since: not an event a frame.
	macFlood(t, pa, 2000)
	time.Sleep(2 * time.Second)
	more := 0
	for {
		select {
		case ev := <-s.events:
			if ev.Type == api.EventPortMACLimit {
				more++
			}
			continue
		default:
		}
		break
	}
	if more > 1 {
		t.Errorf("%d more port.mac_limit events within 2 s of a second flood, want at most 1 per %v", more, api.EventDropInterval)
	}
}

// TestTopTmux: `tapswitch top` in a terminal (a detached tmux session
// of fixed size) draws the header and the ports with their rates while
// traffic runs, quits on q, and leaves the terminal as it found it.
func TestTopTmux(t *testing.T) {
	e := newEnv(t, "tmux")
	e.mustCLI("network", "create", "evtop", "--subnet", "10.200.3.0/24")
	nsA, nsB := e.newEvNetns("ta"), e.newEvNetns("tb")
	portA := e.attach(nsA, "--network", "evtop", "--ip", "10.200.3.10/24")
	portB := e.attach(nsB, "--network", "evtop", "--ip", "10.200.3.11/24")
	mustPing(t, nsA, "10.200.3.11")
	// Traffic for the rates: 100 pings a second, until the test ends.
	pinger, err := startProc(exec.Command("ip", "netns", "exec", nsA, "ping", "-q", "-i", "0.01", "-s", "1000", "10.200.3.11"))
	if err != nil {
		t.Fatal(err)
	}
	e.procs = append(e.procs, pinger)

	// For scripts: one table, printed.
	once := e.mustCLI("top", "--once")
	t.Logf("tapswitch top --once:\n%s", once)
	if !strings.Contains(once, "PORT") || !strings.Contains(once, "\n"+portA+" ") || !strings.Contains(once, "\n"+portB+" ") {
		t.Errorf("tapswitch top --once lacks the table head or a port:\n%s", once)
	}

	sock := fmt.Sprintf("evtop%d", os.Getpid())
	tmux := func(args ...string) (string, error) {
		return run("tmux", append([]string{"-L", sock, "-f", "/dev/null"}, args...)...)
	}
	t.Cleanup(func() { tmux("kill-server") })
	if out, err := tmux("new-session", "-d", "-s", "top", "-x", "100", "-y", "30", "sh"); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	capture := func() string {
		out, err := tmux("capture-pane", "-p", "-t", "top")
		if err != nil {
			t.Fatalf("tmux capture-pane: %v\n%s", err, out)
		}
		return out
	}
	command := func() string {
		out, _ := tmux("display-message", "-p", "-t", "top", "#{pane_current_command}")
		return strings.TrimSpace(out)
	}
	top := filepath.Join(binDir, "tapswitch") + " --socket " + e.sock + " top"
	if out, err := tmux("send-keys", "-t", "top", top, "Enter"); err != nil {
		t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
	// Drawn: the header, and both ports with a non-zero byte rate.
	var screen string
	deadline := time.Now().Add(20 * time.Second)
	for {
		screen = capture()
		if strings.Contains(screen, "tapswitch top - ") && busy(screen, portA) && busy(screen, portB) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tapswitch top in tmux: no header and no rates of %s and %s after 20 s:\n%s", portA, portB, screen)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("tapswitch top in a 100x30 tmux pane:\n%s", screen)
	if c := command(); c != "tapswitch" {
		t.Errorf("the pane runs %q, want tapswitch", c)
	}
	if out, err := tmux("send-keys", "-t", "top", "q"); err != nil {
		t.Fatalf("tmux send-keys q: %v\n%s", err, out)
	}
	deadline = time.Now().Add(10 * time.Second)
	for command() != "sh" {
		if time.Now().After(deadline) {
			t.Fatalf("tapswitch top still runs 10 s after q:\n%s", capture())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Back to the shell's screen, and the terminal as it was: line
	// editing and echo on.
	stty := filepath.Join(e.dir, "stty")
	if out, err := tmux("send-keys", "-t", "top", "stty -a > "+stty, "Enter"); err != nil {
		t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
	var modes []byte
	deadline = time.Now().Add(10 * time.Second)
	for {
		modes, _ = os.ReadFile(stty)
		if strings.Contains(string(modes), "icanon") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stty -a wrote nothing in 10 s:\n%s", capture())
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := capture()
	if strings.Contains(after, "tapswitch top - ") {
		t.Errorf("top's screen still shows after it quit:\n%s", after)
	}
	if !strings.Contains(after, top) {
		t.Errorf("the shell's screen is not back (no command line):\n%s", after)
	}
	have := strings.Fields(string(modes))
	for _, mode := range []string{"icanon", "echo", "isig"} {
		if !slices.Contains(have, mode) {
			t.Errorf("terminal left without %s after top:\n%s", mode, modes)
		}
	}
}

// busy reports whether top's screen shows port with a byte rate other
// than 0 (the RX B/s and TX B/s columns).
func busy(screen, port string) bool {
	for _, line := range strings.Split(screen, "\n") {
		f := strings.Fields(line)
		// PORT NETWORK RX-FR/s RX-B/s TX-FR/s TX-B/s DROPS/s
		if len(f) == 7 && f[0] == port {
			return f[3] != "0" && f[5] != "0"
		}
	}
	return false
}

// dropNetns deletes the namespace ns of the test's own, which the
// cleanup then leaves alone.
func (e *testEnv) dropNetns(ns string) {
	e.t.Helper()
	if out, err := run("ip", "netns", "del", ns); err != nil {
		e.t.Fatalf("ip netns del %s: %v\n%s", ns, err, out)
	}
	e.namespaces = slices.DeleteFunc(e.namespaces, func(n string) bool { return n == ns })
}

// replay is `tapswitch events -o json` of the kept events of types since
// t0, until now.
func (e *testEnv) replay(t0 time.Time, types ...string) []api.Event {
	e.t.Helper()
	args := []string{"events", "-o", "json", "--since", t0.Format(time.RFC3339Nano), "--until", time.Now().Format(time.RFC3339Nano)}
	for _, typ := range types {
		args = append(args, "--filter", "type="+typ)
	}
	var out []api.Event
	for _, line := range strings.Split(strings.TrimSpace(e.mustCLI(args...)), "\n") {
		if line == "" {
			continue
		}
		var ev api.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			e.t.Fatalf("tapswitch events -o json: line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}

// TestEventsRestarts: a stream running through tapswitchd --upgrade
// ends with daemon.handover; the new daemon tells its start with what it
// restored; one running through a stop ends with daemon.stop; a port
// whose namespace went while the daemon was down is told as port.failed
// at the next start, and one whose TAP is deleted while it runs too.
func TestEventsRestarts(t *testing.T) {
	e := newRestartEnv(t, "ss", "nsenter")
	t0 := time.Now()
	e.mustCLI("network", "create", "evho", "--subnet", "10.200.4.0/24")
	nsA, nsB := e.newEvNetns("ha"), e.newEvNetns("hb")
	e.attach(nsA, "--network", "evho", "--name", "eva")
	e.attach(nsB, "--network", "evho", "--name", "evb")

	s := e.streamEvents("--since", t0.Format(time.RFC3339Nano), "--filter", "type=daemon", "--filter", "type=network")
	s.next(20*time.Second, "network.create (the stream is open)", isType(api.EventNetworkCreate))
	e.upgrade()
	ev, _ := s.next(20*time.Second, "daemon.handover", isType(api.EventDaemonHandover))
	if ev.Counts["successor_pid"] != int64(e.daemon.cmd.Process.Pid) {
		t.Errorf("daemon.handover = %+v, want the successor's pid %d", ev, e.daemon.cmd.Process.Pid)
	}
	if err := s.p.wait(10 * time.Second); err != nil || !strings.Contains(s.stderr.String(), "daemon.handover") {
		t.Errorf("tapswitch events after the hand-over: %v, stderr %q; want exit 0 saying the daemon ended the stream", err, s.stderr)
	}
	starts := e.replay(t0, "daemon.start")
	if len(starts) != 1 || starts[0].Counts["restored"] != 2 || starts[0].Counts["dropped"] != 0 || starts[0].Counts["taps_handed_over"] != 4 {
		t.Fatalf("the new daemon's daemon.start = %+v, want one, restored 2, dropped 0, 4 TAPs handed over", starts)
	}
	t.Logf("after --upgrade: %+v", starts[0])

	s = e.streamEvents("--since", "1h", "--filter", "type=daemon")
	s.next(20*time.Second, "daemon.start (the stream is open)", isType(api.EventDaemonStart))
	if err := e.stopDaemon(); err != nil {
		t.Fatal(err)
	}
	if ev, _ := s.next(20*time.Second, "daemon.stop", isType(api.EventDaemonStop)); ev.Attrs["remove"] != "false" {
		t.Errorf("daemon.stop = %+v, want remove false", ev)
	}
	if err := s.p.wait(10 * time.Second); err != nil {
		t.Errorf("tapswitch events after the stop: %v", err)
	}
	e.dropNetns(nsB)
	e.stopped, e.stopErr = false, nil
	t1 := time.Now()
	e.startDaemon()
	e.waitServed(e.daemon)
	evs := e.replay(t1, "port.failed", "daemon.start")
	if len(evs) != 2 || evs[0].Type != api.EventPortFailed || evs[0].Port != "evb" || evs[0].Netns != nsB || evs[0].Attrs["phase"] != "restore" ||
		evs[1].Type != api.EventDaemonStart || evs[1].Counts["restored"] != 1 || evs[1].Counts["dropped"] != 1 {
		t.Fatalf("events of a start without evb's namespace: %+v\nwant port.failed evb (restore), then daemon.start with 1 restored, 1 dropped", evs)
	}
	t.Logf("start with a namespace gone: %+v", evs)

	s = e.streamEvents("--filter", "port=eva", "--since", "1h")
	if out, err := nsRun(nsA, "ip", "link", "del", "eth0"); err != nil {
		t.Fatalf("ip link del eth0 in %s: %v\n%s", nsA, err, out)
	}
	if ev, _ := s.next(20*time.Second, "port.failed eva", isType(api.EventPortFailed)); ev.Attrs["phase"] != "run" || ev.Reason == "" {
		t.Errorf("port.failed = %+v, want phase run with a reason", ev)
	}
}
