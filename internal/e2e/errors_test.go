package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttachErrors checks that failing commands exit non-zero, say why on
// stderr, and leave nothing behind in the namespace or the daemon.
func TestAttachErrors(t *testing.T) {
	e := newEnv(t)
	nsA, nsB := e.newNetns("a"), e.newNetns("b")
	const ipA = "10.77.7.1/24"
	e.attach(nsA, "--name", "web", "--ip", ipA)
	missing := fmt.Sprintf("tstnone%06x", rand.N(1<<24))
	nowhere := filepath.Join(e.dir, "nothing.sock")

	tests := []struct {
		name string
		sock string // empty means the test's daemon
		args []string
		want string // in stderr; empty means any error
		// clean is a namespace that must be left without a TAP.
		clean string
	}{
		{"missing namespace", "", []string{"attach", missing, "--ip", "10.77.7.9/24"}, "not found", ""},
		{"duplicate name", "", []string{"attach", nsB, "--name", "web", "--ip", "10.77.7.2/24"}, "already exists", nsB},
		{"duplicate address", "", []string{"attach", nsB, "--ip", ipA}, "already in use", nsB},
		{"address without prefix", "", []string{"attach", nsB, "--ip", "10.0.0.1"}, "", nsB},
		{"daemon not running", nowhere, []string{"attach", nsB, "--ip", "10.77.7.3/24"}, "cannot connect to tapswitchd", nsB},
		{"detach unknown port", "", []string{"detach", "nosuchport"}, "no such port", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := e.sock
			if tt.sock != "" {
				sock = tt.sock
			}
			r := runCLI(t, sock, tt.args...)
			cmd := "tapswitch " + strings.Join(tt.args, " ")
			if r.code == 0 {
				t.Fatalf("%s: exit code 0, want failure\nstdout: %s", cmd, r.stdout)
			}
			if !strings.HasPrefix(r.stderr, "tapswitch: ") {
				t.Errorf("%s: stderr %q, want it to start with %q", cmd, r.stderr, "tapswitch: ")
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("%s: stderr %q, want it to contain %q", cmd, r.stderr, tt.want)
			}
			if tt.clean != "" {
				if got := leftovers(t, tt.clean); len(got) != 0 {
					t.Errorf("%s: left %v behind in namespace %s", cmd, got, tt.clean)
				}
			}
		})
	}

	ports := e.ports()
	if len(ports) != 1 || ports[0].Name != "web" {
		t.Errorf("tapswitch ports after failed commands = %+v, want only port web", ports)
	}
	// The failures must not have broken the port that was there.
	e.attach(nsB, "--ip", "10.77.7.2/24")
	mustPing(t, nsB, addr(ipA))
}
