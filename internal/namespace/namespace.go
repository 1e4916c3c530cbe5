// Package namespace is the one place tapswitch enters a network
// namespace. Everything that must happen inside a namespace (opening a
// TAP, making a netlink socket, opening a packet socket in a test) goes
// through Do, which runs on a locked OS thread and always returns the
// thread to the namespace it came from before unlocking it.
package namespace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RunDir is where iproute2 keeps named network namespaces.
const RunDir = "/run/netns"

// ErrNotFound reports a namespace spec that names no namespace.
var ErrNotFound = errors.New("network namespace not found")

// Resolve turns a user's namespace spec into a path to a netns file:
//
//	"NAME"      -> /run/netns/NAME (ip netns add NAME)
//	"pid:PID"   -> /proc/PID/ns/net
//	"/a/path"   -> the path itself, which must be a network namespace
//
// It checks that the result exists and is a network namespace.
func Resolve(spec string) (string, error) {
	var path string
	switch {
	case spec == "":
		return "", fmt.Errorf("empty network namespace: give a name under %s, pid:PID or a path", RunDir)
	case strings.HasPrefix(spec, "pid:"):
		pid, err := strconv.Atoi(strings.TrimPrefix(spec, "pid:"))
		if err != nil || pid <= 0 {
			return "", fmt.Errorf("network namespace %q: pid must be a positive number", spec)
		}
		path = fmt.Sprintf("/proc/%d/ns/net", pid)
	case strings.ContainsRune(spec, '/'):
		path = filepath.Clean(spec)
	default:
		if spec == "." || spec == ".." {
			return "", fmt.Errorf("network namespace %q: not a valid name", spec)
		}
		path = filepath.Join(RunDir, spec)
	}
	if err := check(path); err != nil {
		return "", fmt.Errorf("network namespace %q: %w", spec, err)
	}
	return path, nil
}

// check verifies that path is a network namespace file.
func check(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: %w (create it with 'ip netns add NAME', or give pid:PID of a process inside it)", path, ErrNotFound)
		}
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%s is not a namespace file", path)
	}
	// NS_GET_NSTYPE says which kind of namespace the file is.
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return fmt.Errorf("%s: query namespace type: %w", path, err)
	}
	if typ != unix.CLONE_NEWNET {
		return fmt.Errorf("%s is not a network namespace", path)
	}
	return nil
}

// Do runs fn on an OS thread inside the network namespace at path. The
// work happens on a fresh goroutine locked to its thread: if the thread
// cannot be moved back to its own namespace, the goroutine exits still
// locked and the Go runtime destroys the thread rather than reuse it in
// the wrong namespace.
//
// File descriptors and sockets fn opens keep the namespace they were
// created in after Do returns; that is how a TAP or a netlink socket of a
// namespace is made.
func Do(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()

	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer origin.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(origin); err != nil {
			// Stay locked: the thread is discarded when this goroutine ends.
			done <- errors.Join(ferr, fmt.Errorf("return from network namespace %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// Exists reports whether path still names a file.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
