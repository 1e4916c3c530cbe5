package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDataplaneModes forwards the same traffic between two namespaces
// with each way of moving frames (--batch, --coalesce, --busy-poll): the
// old frame-by-frame path, the defaults, and a fixed polling window with
// a small batch. Every mode must deliver every ping of a flood and a TCP
// stream, and count the frames it wrote, coalesced ones included.
func TestDataplaneModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"frame by frame", []string{"--batch", "1", "--coalesce=false", "--busy-poll", "off"}},
		{"defaults", nil},
		{"batch 8, poll 50us", []string{"--batch", "8", "--busy-poll", "50us"}},
		{"adaptive polling", []string{"--busy-poll", "adaptive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvArgs(t, tc.args, "iperf3", "nsenter")
			nsA, nsB := e.newNetnsNamed("dp", "a"), e.newNetnsNamed("dp", "b")
			const ipA, ipB = "10.161.1.1/24", "10.161.1.2/24"
			portA := e.attach(nsA, "--ip", ipA)
			portB := e.attach(nsB, "--ip", ipB)
			mustPing(t, nsA, addr(ipB))

			// A flood ping: each request waits for no reply, so requests
			// and replies cross the switch in runs.
			const count = 500
			out, err := nsRun(nsA, "ping", "-f", "-c", "500", "-s", "200", addr(ipB))
			if err != nil || !strings.Contains(out, "500 packets transmitted, 500 received") {
				t.Fatalf("ping -f -c %d %s: %v\n%s", count, addr(ipB), err, out)
			}

			srv := e.startIperfServer(nsB, addr(ipB))
			r := e.iperf(nsA, srv, "-t", "1")
			if r.End.SumReceived.Bytes == 0 {
				t.Fatalf("iperf3 from %s: no bytes received", nsA)
			}

			// Small datagrams at no rate limit: the sender outruns the
			// switch, so a queue holds runs of one flow to merge.
			e.iperf(nsA, srv, "-u", "-b", "0", "-l", "64", "-t", "1")

			ports := e.ports()
			a, b := findPort(ports, portA), findPort(ports, portB)
			if a == nil || b == nil {
				t.Fatalf("ports %v: want %s and %s", ports, portA, portB)
			}
			if b.Stats.TxFrames < count || a.Stats.TxFrames < count {
				t.Errorf("tx frames a %d, b %d: want at least the %d requests and replies", a.Stats.TxFrames, b.Stats.TxFrames, count)
			}
			for _, p := range []struct {
				name           string
				frames, writes uint64
				tx             uint64
			}{{portA, a.Stats.TxCoalescedFrames, a.Stats.TxCoalescedWrites, a.Stats.TxFrames}, {portB, b.Stats.TxCoalescedFrames, b.Stats.TxCoalescedWrites, b.Stats.TxFrames}} {
				if p.frames > p.tx || p.writes > p.frames/2 {
					t.Errorf("port %s: tx_coalesced %d frames in %d writes of %d tx frames: a coalesced write carries at least 2 frames, all counted in tx", p.name, p.frames, p.writes, p.tx)
				}
			}
			switch coalescing := tc.name != "frame by frame"; {
			case coalescing && b.Stats.TxCoalescedWrites == 0:
				t.Errorf("port %s: no coalesced write after a second of 64-byte datagrams of one flow (tx %d frames)", portB, b.Stats.TxFrames)
			case !coalescing && b.Stats.TxCoalescedWrites+a.Stats.TxCoalescedWrites != 0:
				t.Errorf("--coalesce=false: coalesced writes a %d, b %d, want 0", a.Stats.TxCoalescedWrites, b.Stats.TxCoalescedWrites)
			}
			t.Logf("port %s: tx %d frames, %d of them in %d coalesced writes", portB, b.Stats.TxFrames, b.Stats.TxCoalescedFrames, b.Stats.TxCoalescedWrites)
			if d := b.Stats.Drops["tx_error"] + a.Stats.Drops["tx_error"]; d != 0 {
				t.Errorf("tx_error drops %d, want 0", d)
			}
		})
	}
}

// TestDataplaneFlagsRefused: tapswitchd refuses a bad --batch or
// --busy-poll before it starts anything, and says what to give.
func TestDataplaneFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--batch", "0"}, "--batch 0: must be 1 to"},
		{[]string{"--busy-poll", "soon"}, "give adaptive, off or a duration"},
	} {
		cmd := exec.Command(filepath.Join(binDir, "tapswitchd"), append([]string{"--socket", filepath.Join(dir, "sock"), "--state-dir", filepath.Join(dir, "state")}, tc.args...)...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("tapswitchd %s: still running after 30s, want it refused", strings.Join(tc.args, " "))
		}
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("tapswitchd %s: %v\n%s\nwant a failure saying %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "sock")); err == nil {
		t.Errorf("a refused tapswitchd left its socket")
	}
}
