package e2e

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"
	"time"
)

// TestShutdown stops the daemon with SIGTERM and checks that it exits 0
// in time, leaving no TAP behind in any namespace and no socket file,
// whichever way the namespaces were named when attached.
func TestShutdown(t *testing.T) {
	requirePrivileged(t, "ip", "ping")
	tests := []struct {
		name string
		spec func(e *testEnv, ns string) string
	}{
		{"name", func(e *testEnv, ns string) string { return ns }},
		{"pid", func(e *testEnv, ns string) string { return fmt.Sprintf("pid:%d", e.startSleeper(ns)) }},
		{"path", func(e *testEnv, ns string) string { return fmt.Sprintf("/proc/%d/ns/net", e.startSleeper(ns)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			nsA, nsB := e.newNetns("a"), e.newNetns("b")
			const ipA, ipB = "10.77.6.1/24", "10.77.6.2/24"
			e.attach(tt.spec(e, nsA), "--ip", ipA)
			e.attach(tt.spec(e, nsB), "--ip", ipB)
			mustPing(t, nsA, addr(ipB))
			for _, ns := range []string{nsA, nsB} {
				if len(leftovers(t, ns)) == 0 {
					t.Fatalf("ip link show in %s: no TAP after attach", ns)
				}
			}

			start := time.Now()
			if err := e.stopDaemon(); err != nil {
				t.Fatalf("kill -TERM tapswitchd: %v", err)
			}
			t.Logf("tapswitchd exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
			for _, ns := range []string{nsA, nsB} {
				if got := leftovers(t, ns); len(got) != 0 {
					t.Errorf("ip link show in %s after tapswitchd exited: %v still there", ns, got)
				}
			}
			if _, err := os.Stat(e.sock); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("stat %s after tapswitchd exited: %v, want not exist", e.sock, err)
			}
		})
	}
}
