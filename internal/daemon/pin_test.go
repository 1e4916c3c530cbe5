package daemon

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
)

func TestNeedsPin(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/run/netns/web", false},
		{"/proc/42/ns/net", true},
		{"/var/lib/tapswitch/netns/web", true},
		{"/run/netns/sub/web", true},
	}
	for _, tt := range tests {
		if got := needsPin(tt.path); got != tt.want {
			t.Errorf("needsPin(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// TestPin pins the namespace of a process that then exits: the pin still
// names the namespace, and unpin removes it.
func TestPin(t *testing.T) {
	privtest.Require(t, "bind-mount network namespaces", "unshare", "sleep")
	cmd := exec.Command("unshare", "-n", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() { cmd.Process.Kill(); <-done }()
	src := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "ns", "net")
	self, _ := os.Stat("/proc/self/ns/net")
	deadline := time.Now().Add(5 * time.Second)
	for {
		// unshare enters its namespace before it runs sleep.
		if fi, err := os.Stat(src); err == nil && !os.SameFile(fi, self) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never left our namespace", src)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}

	dst := filepath.Join(t.TempDir(), "netns", "web")
	if err := pin(src, dst); err != nil {
		t.Fatalf("pin(%s, %s) = %v", src, dst, err)
	}
	t.Cleanup(func() { unpin(dst) })
	// Pinning again replaces the pin rather than stacking another.
	if err := pin(src, dst); err != nil {
		t.Fatalf("second pin(%s, %s) = %v", src, dst, err)
	}
	cmd.Process.Kill()
	<-done
	got, err := os.Stat(dst)
	if err != nil || !os.SameFile(got, want) {
		t.Fatalf("stat %s after its process exited: %v; want the namespace it pinned", dst, err)
	}
	if _, err := namespace.Resolve(dst); err != nil {
		t.Fatalf("namespace.Resolve(%s) = %v, want a network namespace", dst, err)
	}
	if err := unpin(dst); err != nil {
		t.Fatalf("unpin(%s) = %v", dst, err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat %s after unpin = %v, want not exist", dst, err)
	}
	if err := unpin(dst); err != nil {
		t.Fatalf("unpin(%s) twice = %v, want nil", dst, err)
	}
}
