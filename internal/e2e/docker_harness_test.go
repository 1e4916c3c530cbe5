package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerHarness checks the private dockerd the Docker tests run on:
// it starts with the offline image, runs a container, survives a kill
// and a restart, and leaves no process, mount, cgroup or directory
// behind.
func TestDockerHarness(t *testing.T) {
	requireDocker(t)
	var d *dockerEnv
	// Registered first, so it runs after the harness's own cleanup.
	t.Cleanup(func() {
		if d == nil {
			return
		}
		if pids := d.procsOf(); len(pids) > 0 {
			t.Errorf("processes of the test's dockerd left: %v", pids)
		}
		if m := mountsUnder(t, d.dir); len(m) > 0 {
			t.Errorf("mounts left: %v", m)
		}
		if _, err := os.Stat(d.dir); err == nil {
			t.Errorf("%s left", d.dir)
		}
		for _, m := range cgroupMounts(t) {
			if _, err := os.Stat(filepath.Join(m, d.cgroupParent)); err == nil {
				t.Errorf("cgroup %s left under %s", d.cgroupParent, m)
			}
		}
	})
	d = newDocker(t)
	d.RunDetached("web", []string{"--network", "none"}, HTTPServer...)
	page := func() string {
		t.Helper()
		out, err := d.Exec("web", "wget", "-qO-", "http://127.0.0.1/")
		if err != nil {
			t.Fatalf("wget in the container: %v\n%s", err, out)
		}
		return out
	}
	if got := page(); got != dockerPage {
		t.Fatalf("the container served %q, want %q", got, dockerPage)
	}
	if pid := d.ContainerPid("web"); pid <= 1 {
		t.Fatalf("container pid %d", pid)
	}

	// A crash: the container's shim goes on; a new dockerd finds it.
	d.Kill()
	d.Start()
	if out := d.MustDocker("ps", "-a", "--format", "{{.Names}}"); !strings.Contains(out, "web") {
		t.Fatalf("docker ps after a dockerd restart: %q", out)
	}
	d.Restart()
	d.MustDocker("start", "web")
	if got := page(); got != dockerPage {
		t.Fatalf("after restarts the container served %q, want %q", got, dockerPage)
	}
}
