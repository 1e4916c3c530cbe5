package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// TestVanishedNamespace: a namespace that vanishes while the daemon runs
// takes its port with it, with its address and pin, and a port.failed
// event (cause namespace_vanished) says so: a named namespace deleted
// with ip netns del, and one attached by pid whose only process died. A
// namespace whose name was deleted while a process still runs in it keeps
// its port, which keeps forwarding, until that process ends.
func TestVanishedNamespace(t *testing.T) {
	e := newEnv(t, "unshare", "nsenter")
	e.mustCLI("network", "create", "dlvan", "--subnet", "10.132.1.0/24")
	nsA, nsB := e.newNetnsNamed("dl", "va"), e.newNetnsNamed("dl", "vb")
	e.attach(nsA, "--network", "dlvan", "--name", "dlva", "--ip", "10.132.1.10/24")
	e.attach(nsB, "--network", "dlvan", "--name", "dlvb", "--ip", "10.132.1.11/24")
	sleeperB := e.startSleeper(nsB)
	procB := e.procs[len(e.procs)-1]
	u := e.startUnshared()
	e.attach(fmt.Sprintf("pid:%d", u.cmd.Process.Pid), "--network", "dlvan", "--name", "dlvc", "--ip", "10.132.1.12/24")
	if pins := e.pinMounts(); len(pins) != 1 {
		t.Fatalf("pins = %v, want dlvc's", pins)
	}

	s := e.streamEvents("--filter", "type=port.failed")
	t0 := time.Now()
	e.dropNetns(nsA)
	e.dropNetns(nsB)
	u.kill()
	gone := map[string]api.Event{}
	for len(gone) < 2 {
		ev, _ := s.next(60*time.Second, "port.failed of dlva and dlvc", isType(api.EventPortFailed))
		gone[ev.Port] = ev
	}
	t.Logf("ports of vanished namespaces freed %v after they went (the watch looks every 5s)", time.Since(t0).Round(time.Millisecond))
	for _, name := range []string{"dlva", "dlvc"} {
		ev, ok := gone[name]
		if !ok || ev.Attrs["cause"] != "namespace_vanished" || ev.Attrs["phase"] != "run" || !strings.Contains(ev.Reason, "vanished") {
			t.Errorf("port.failed of %s = %+v, want cause namespace_vanished, phase run, a reason", name, ev)
		}
	}
	if _, ok := gone["dlvb"]; ok {
		t.Errorf("dlvb went although a process is still in its namespace: %+v", gone["dlvb"])
	}
	ports := e.ports()
	if len(ports) != 1 || ports[0].Name != "dlvb" {
		t.Fatalf("ports = %+v, want dlvb only", ports)
	}
	if pins := e.pinMounts(); len(pins) != 0 {
		t.Errorf("pins left = %v, want none", pins)
	}
	// dlvb still forwards: its namespace reaches the gateway.
	nsB1 := fmt.Sprintf("/proc/%d/ns/net", sleeperB)
	if out, err := nsenter(nsB1, "ping", "-c", "2", "-W", "5", "10.132.1.1"); err != nil {
		t.Errorf("ping of the gateway from dlvb's namespace: %v\n%s", err, out)
	}
	// The freed addresses are free: new ports take them.
	nsD, nsE := e.newNetnsNamed("dl", "vd"), e.newNetnsNamed("dl", "ve")
	e.attach(nsD, "--network", "dlvan", "--name", "dlvd", "--ip", "10.132.1.10/24")
	e.attach(nsE, "--network", "dlvan", "--name", "dlve", "--ip", "10.132.1.12/24")
	mustPing(t, nsD, "10.132.1.12")

	procB.kill()
	ev, _ := s.next(60*time.Second, "port.failed of dlvb", isType(api.EventPortFailed))
	if ev.Port != "dlvb" || ev.Attrs["cause"] != "namespace_vanished" {
		t.Errorf("port.failed = %+v, want dlvb's, cause namespace_vanished", ev)
	}
	if n := len(e.ports()); n != 2 {
		t.Errorf("ports after dlvb's process ended: %d, want 2 (dlvd, dlve)", n)
	}
}
