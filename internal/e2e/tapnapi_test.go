package e2e

import (
	"strconv"
	"strings"
	"testing"
)

// iffNAPI is IFF_NAPI in a TAP's tun_flags.
const iffNAPI = 0x0010

// tunFlags reads the tun_flags of interface ifname in namespace ns: the
// flags its queues were last attached with.
func tunFlags(t *testing.T, ns, ifname string) uint64 {
	t.Helper()
	out, err := nsRun(ns, "cat", "/sys/class/net/"+ifname+"/tun_flags")
	if err != nil {
		t.Fatalf("tun_flags of %s in %s: %v\n%s", ifname, ns, err, out)
	}
	f, err := strconv.ParseUint(strings.TrimSpace(out), 0, 32)
	if err != nil {
		t.Fatalf("tun_flags of %s in %s = %q: %v", ifname, ns, out, err)
	}
	return f
}

// TestTapNAPI: TAPs made by tapswitchd --tap-napi are in NAPI mode and
// forward ping both ways; so they do after a restart, which opens them
// again, and after tapswitchd --upgrade, which hands their queues over.
func TestTapNAPI(t *testing.T) {
	e := newEnvArgs(t, []string{"--remove-on-exit=false", "--tap-napi", "--tap-txqueuelen", "5000"})
	t.Cleanup(e.removeKept)
	e.mustCLI("network", "create", "txnapi", "--subnet", "10.162.30.0/24")
	nsA, nsB := e.newNetnsNamed("tx", "a"), e.newNetnsNamed("tx", "b")
	e.attach(nsA, "--network", "txnapi", "--name", "txa")
	e.attach(nsB, "--network", "txnapi", "--name", "txb")
	ports := e.ports()
	a, b := findPort(ports, "txa"), findPort(ports, "txb")
	if a == nil || b == nil || len(a.IPs) != 1 || len(b.IPs) != 1 {
		t.Fatalf("tapswitch ports = %+v, want txa and txb with an address each", ports)
	}
	ipA, ipB := addr(a.IPs[0]), addr(b.IPs[0])
	check := func(step string) {
		t.Helper()
		for _, ns := range []string{nsA, nsB} {
			if f := tunFlags(t, ns, "eth0"); f&iffNAPI == 0 {
				t.Fatalf("%s: eth0 in %s: tun_flags %#x, want IFF_NAPI (%#x)", step, ns, f, iffNAPI)
			}
		}
		mustPing(t, nsA, ipB)
		mustPing(t, nsB, ipA)
	}
	check("made")
	out, err := nsRun(nsA, "cat", "/sys/class/net/eth0/tx_queue_len")
	if err != nil || strings.TrimSpace(out) != "5000" {
		t.Fatalf("tx_queue_len of eth0 in %s = %q, %v; want 5000", nsA, out, err)
	}

	e.restartDaemon()
	if s := e.status(); s.RestoredPorts != 2 || s.DroppedPorts != 0 {
		t.Fatalf("tapswitch status after a restart: restored %d ports, dropped %d; want 2 and 0", s.RestoredPorts, s.DroppedPorts)
	}
	check("after a restart")

	e.upgrade()
	if s := e.status(); s.RestoredPorts != 2 || s.DroppedPorts != 0 {
		t.Fatalf("tapswitch status after --upgrade: restored %d ports, dropped %d; want 2 and 0", s.RestoredPorts, s.DroppedPorts)
	}
	check("after --upgrade")
}
