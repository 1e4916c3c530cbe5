package namespace

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/privtest"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name, spec string
		want       string // a path, or "" when an error is expected
		errText    string
	}{
		{name: "name", spec: "web", want: "/run/netns/web"},
		{name: "pid", spec: "pid:42", want: "/proc/42/ns/net"},
		{name: "pid with zeros", spec: "pid:0042", want: "/proc/42/ns/net"},
		{name: "path", spec: "/proc/42/ns/net", want: "/proc/42/ns/net"},
		{name: "path with dot dot", spec: "/run/netns/../../etc/passwd", want: "/etc/passwd"},
		{name: "unclean path", spec: "/run//netns/./web/", want: "/run/netns/web"},
		{name: "empty", spec: "", errText: "empty network namespace"},
		{name: "pid missing", spec: "pid:", errText: "pid must be a positive number"},
		{name: "pid 0", spec: "pid:0", errText: "pid must be a positive number"},
		{name: "pid with sign", spec: "pid:+5", errText: "pid must be a positive number"},
		{name: "pid with space", spec: "pid:1 ", errText: "pid must be a positive number"},
		{name: "pid too big", spec: "pid:99999999999", errText: "pid must be a positive number"},
		{name: "dot", spec: ".", errText: "not a valid name"},
		{name: "dot dot", spec: "..", errText: "not a valid name"},
		{name: "relative path", spec: "a/b", errText: "must be absolute"},
		{name: "relative dot dot", spec: "../etc/passwd", errText: "must be absolute"},
		{name: "relative dot", spec: "./web", errText: "must be absolute"},
		{name: "newline", spec: "we\nb", errText: "control character"},
		{name: "NUL", spec: "/run/netns/a\x00b", errText: "control character"},
		{name: "long name", spec: strings.Repeat("n", 256), errText: "at most 255 bytes"},
		{name: "long path", spec: "/" + strings.Repeat("p", 4096), errText: "longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSpec(tt.spec)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("ParseSpec(%q) = %q, %v; want an error containing %q", tt.spec, got, err, tt.errText)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSpec(%q) = %q, %v; want %q", tt.spec, got, err, tt.want)
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"web", "pid:1", "/proc/1/ns/net", "../x", "/run/netns/../x", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		path, err := ParseSpec(spec)
		if err != nil {
			return
		}
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			t.Fatalf("ParseSpec(%q) = %q, want a clean absolute path", spec, path)
		}
		if strings.ContainsFunc(path, isControl) {
			t.Fatalf("ParseSpec(%q) = %q, which holds a control character", spec, path)
		}
		if !strings.ContainsRune(spec, '/') && !strings.HasPrefix(spec, "pid:") && filepath.Dir(path) != RunDir {
			t.Fatalf("ParseSpec(%q) = %q, want a file right under %s for a name", spec, path, RunDir)
		}
	})
}

// TestResolve needs no privileges: it resolves the test's own namespaces
// and files it makes.
func TestResolve(t *testing.T) {
	pid := os.Getpid()
	self := fmt.Sprintf("/proc/%d/ns/net", pid)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("not a namespace\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	symlink := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	toFile := symlink("to-file", "file")
	toNetns := symlink("to-netns", "/proc/self/ns/net")
	toMnt := symlink("to-mnt", "/proc/self/ns/mnt")
	chain := symlink("chain", "to-netns")
	dangling := symlink("dangling", "nothing-here")
	loop := symlink("loop", "loop")

	tests := []struct {
		name, spec string
		want       string // a path, or "" when an error is expected
		wantErr    error  // class of the error, if any
		errText    string
	}{
		{name: "pid", spec: fmt.Sprintf("pid:%d", pid), want: self},
		{name: "proc self", spec: "/proc/self/ns/net", want: self},
		{name: "symlink to a netns", spec: toNetns, want: self},
		{name: "chain of symlinks", spec: chain, want: self},
		{name: "empty", spec: "", errText: "empty network namespace"},
		{name: "bad pid", spec: "pid:abc", errText: "pid must be a positive number"},
		{name: "missing name", spec: "no-such-netns-for-tests", wantErr: ErrNotFound, errText: "/run/netns/no-such-netns-for-tests"},
		{name: "missing pid", spec: "pid:2147483647", wantErr: ErrNotFound, errText: "not found"},
		{name: "dangling symlink", spec: dangling, wantErr: ErrNotFound, errText: "not found"},
		{name: "symlink loop", spec: loop, errText: "too many levels of symbolic links"},
		{name: "dot dot", spec: "..", errText: "not a valid name"},
		{name: "relative path", spec: "tmp/x", errText: "must be absolute"},
		{name: "traversal out of /run/netns", spec: "/run/netns/../../etc/passwd", wantErr: ErrNotNetns, errText: "not a namespace file"},
		{name: "regular file", spec: file, wantErr: ErrNotNetns, errText: "not a namespace file"},
		{name: "system file", spec: "/etc/passwd", wantErr: ErrNotNetns, errText: "not a namespace file"},
		{name: "symlink to a regular file", spec: toFile, wantErr: ErrNotNetns, errText: "not a namespace file"},
		{name: "directory", spec: dir, wantErr: ErrNotNetns, errText: "it is a directory"},
		{name: "device", spec: "/dev/null", wantErr: ErrNotNetns, errText: "it is a device"},
		{name: "FIFO", spec: fifo, wantErr: ErrNotNetns, errText: "it is a FIFO"},
		{name: "mount namespace", spec: "/proc/self/ns/mnt", wantErr: ErrNotNetns, errText: "it is a mount namespace"},
		{name: "UTS namespace", spec: "/proc/self/ns/uts", wantErr: ErrNotNetns, errText: "it is a UTS namespace"},
		{name: "symlink to a mount namespace", spec: toMnt, wantErr: ErrNotNetns, errText: "mount namespace"},
		{name: "namespace directory", spec: "/proc/self/ns", wantErr: ErrNotNetns, errText: "directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A FIFO opened for reading would block until a writer came.
			done := make(chan struct{})
			var got string
			var err error
			go func() {
				defer close(done)
				got, err = Resolve(tt.spec)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Resolve(%q) blocked", tt.spec)
			}
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Resolve(%q) = %q, %v; want an error containing %q", tt.spec, got, err, tt.errText)
				}
				if tt.spec != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.spec)) {
					t.Errorf("Resolve(%q) = %v, want the error to name the spec", tt.spec, err)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resolve(%q) = %v, want %v", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve(%q) = %q, %v; want %q", tt.spec, got, err, tt.want)
			}
		})
	}
	t.Run("thread", func(t *testing.T) {
		got, err := Resolve("/proc/thread-self/ns/net")
		if err != nil || !strings.HasPrefix(got, fmt.Sprintf("/proc/%d/task/", pid)) || !strings.HasSuffix(got, "/ns/net") {
			t.Fatalf("Resolve(/proc/thread-self/ns/net) = %q, %v; want /proc/%d/task/TID/ns/net", got, err, pid)
		}
	})
}

// TestDoRefusesWhatIsNoNetns checks that Do runs nothing for a file that
// is not a network namespace.
func TestDoRefusesWhatIsNoNetns(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, "/proc/self/ns/mnt", "/nonexistent/netns"} {
		ran := false
		err := Do(path, func() error { ran = true; return nil })
		if err == nil || ran || !strings.Contains(err.Error(), path) {
			t.Errorf("Do(%s) = %v, ran fn: %v; want an error naming the path, fn not run", path, err, ran)
		}
	}
}

// newNetns makes a named network namespace and deletes it when t ends.
func newNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("tsns%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	return name
}

func TestDoReturnsToOwnNamespace(t *testing.T) {
	privtest.Require(t, "create a network namespace", "ip")
	before, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	name := newNetns(t)
	path, err := Resolve(name)
	if err != nil {
		t.Fatalf("Resolve(%q) = %v", name, err)
	}
	var inside string
	err = Do(path, func() error {
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	})
	if err != nil {
		t.Fatalf("Do() = %v", err)
	}
	if inside == "" || inside == before {
		t.Fatalf("inside Do the thread was in %q, want netns %s (not %s)", inside, name, before)
	}
	want := errors.New("from fn")
	if err := Do(path, func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("Do() = %v, want fn's error", err)
	}
	after, _ := os.Readlink("/proc/thread-self/ns/net")
	if after != before {
		t.Fatalf("namespace after Do = %s, want %s", after, before)
	}
}

// TestResolveNamed checks the places a named namespace can be reached
// from, and a bind mount of it elsewhere, which is accepted as what it
// is: a network namespace file.
func TestResolveNamed(t *testing.T) {
	privtest.Require(t, "create a network namespace and bind-mount it", "ip")
	name := newNetns(t)
	want := filepath.Join(RunDir, name)
	var nsStat unix.Stat_t
	if err := unix.Stat(want, &nsStat); err != nil {
		t.Fatal(err)
	}

	for _, spec := range []string{name, want, "/run/netns/./" + name, "/run/netns/x/../" + name} {
		if got, err := Resolve(spec); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", spec, got, err, want)
		}
	}
	if fi, err := os.Lstat("/var/run"); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if got, err := Resolve("/var/run/netns/" + name); err != nil || got != want {
			t.Errorf("Resolve(/var/run/netns/%s) = %q, %v; want %q", name, got, err, want)
		}
	}

	// An empty file under /run/netns is what a failed 'ip netns add'
	// leaves: not a namespace.
	empty := filepath.Join(RunDir, name+"-empty")
	if err := os.WriteFile(empty, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(empty) })
	if got, err := Resolve(filepath.Base(empty)); !errors.Is(err, ErrNotNetns) || !strings.Contains(err.Error(), "not a namespace file") {
		t.Errorf("Resolve(%q) = %q, %v; want not a namespace file", filepath.Base(empty), got, err)
	}

	// A bind mount of the namespace in a directory of the test's, as the
	// daemon pins namespaces in its state directory.
	pin := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pin, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(want, pin, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount %s on %s: %v", want, pin, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(pin, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", pin, err)
		}
	})
	got, err := Resolve(pin)
	if err != nil || got != pin {
		t.Fatalf("Resolve(%q) = %q, %v; want the bind mount accepted", pin, got, err)
	}
	var inside unix.Stat_t
	if err := Do(pin, func() error { return unix.Stat("/proc/thread-self/ns/net", &inside) }); err != nil {
		t.Fatalf("Do(%s) = %v", pin, err)
	}
	if inside.Ino != nsStat.Ino || inside.Dev != nsStat.Dev {
		t.Fatalf("Do(%s) ran in namespace inode %d, want %d (netns %s)", pin, inside.Ino, nsStat.Ino, name)
	}

	// A bind mount of another type of namespace is refused all the same.
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.WriteFile(mnt, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/proc/self/ns/uts", mnt, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount /proc/self/ns/uts on %s: %v", mnt, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	if got, err := Resolve(mnt); !errors.Is(err, ErrNotNetns) || !strings.Contains(err.Error(), "UTS namespace") {
		t.Fatalf("Resolve(%q) = %q, %v; want a UTS namespace refused", mnt, got, err)
	}
}
