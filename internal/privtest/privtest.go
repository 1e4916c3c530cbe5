// Package privtest decides, in one place, what a test that needs root
// (namespaces, TAP devices, nftables) does where it cannot run: it skips,
// unless TAPSWITCH_REQUIRE_PRIVILEGED=1, as CI sets, where it fails, so
// that a privileged test never passes in CI by silently not running.
package privtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Env names the variable that turns a skip into a failure.
const Env = "TAPSWITCH_REQUIRE_PRIVILEGED"

// Required reports whether privileged tests must run.
func Required() bool { return os.Getenv(Env) == "1" }

// Require skips t, or fails it when Required, unless the test runs as
// root and every tool is on PATH. why says what root is needed for.
func Require(t testing.TB, why string, tools ...string) {
	t.Helper()
	cannot := t.Skipf
	if Required() {
		cannot = t.Fatalf
	}
	if os.Geteuid() != 0 {
		cannot("needs root to %s (set %s=1 to fail instead of skip)", why, Env)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			cannot("needs %s: %v", tool, err)
		}
	}
}

// Netns makes a network namespace called name for one test (after
// Require), removes it when the test ends, and returns its file.
func Netns(t testing.TB, name string) string {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return filepath.Join("/run/netns", name)
}
