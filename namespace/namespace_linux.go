package namespace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// resolve checks that path is a network namespace file and returns it
// with symbolic links resolved.
func resolve(path string) (string, error) {
	fd, err := open(path)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	real, err := canonical(path)
	if err != nil {
		return "", fmt.Errorf("resolve symbolic links: %w", err)
	}
	// The canonical path is what callers open later; it must name the
	// file that was checked, not one swapped in meanwhile.
	var checked, named unix.Stat_t
	if err := unix.Fstat(fd, &checked); err != nil {
		return "", fmt.Errorf("stat: %w", err)
	}
	if err := unix.Stat(real, &named); err != nil || named.Dev != checked.Dev || named.Ino != checked.Ino {
		return "", fmt.Errorf("%s changed while it was checked; try again", real)
	}
	return real, nil
}

// open returns a read-only descriptor of the network namespace file at
// path, following symbolic links. Its errors do not name path; callers
// do. The file is first reached with O_PATH,
// which opens nothing (no device is started, no FIFO waited on), and
// opened for real only once it is known to be a namespace file: through
// /proc/self/fd, so that it is the same file whatever happens to path.
func open(path string) (int, error) {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("%w (create it with 'ip netns add NAME', or give pid:PID of a process inside it)", ErrNotFound)
		}
		return -1, fmt.Errorf("open: %w", err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, fmt.Errorf("stat: %w", err)
	}
	// Namespace files are regular files of nsfs.
	if kind := fileKind(st.Mode); kind != "" {
		return -1, fmt.Errorf("%w: it is %s; %s", ErrNotNetns, kind, specHelp)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(pfd, &fs); err != nil {
		return -1, fmt.Errorf("statfs: %w", err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return -1, fmt.Errorf("%w: it is not a namespace file; %s (or a bind mount of one)", ErrNotNetns, specHelp)
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", pfd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open: %w", err)
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("query namespace type: %w", err)
	}
	if typ != unix.CLONE_NEWNET {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: it is %s; give a network namespace, such as /proc/PID/ns/net", ErrNotNetns, nsKind(typ))
	}
	return fd, nil
}

// fileKind names what a file of mode is when it is not a regular file.
func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return ""
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	}
	return "not a regular file"
}

// nsKind names a namespace type of NS_GET_NSTYPE.
func nsKind(typ int) string {
	switch typ {
	case unix.CLONE_NEWNS:
		return "a mount namespace"
	case unix.CLONE_NEWUTS:
		return "a UTS namespace"
	case unix.CLONE_NEWIPC:
		return "an IPC namespace"
	case unix.CLONE_NEWUSER:
		return "a user namespace"
	case unix.CLONE_NEWPID:
		return "a PID namespace"
	case unix.CLONE_NEWCGROUP:
		return "a cgroup namespace"
	case unix.CLONE_NEWTIME:
		return "a time namespace"
	}
	return fmt.Sprintf("a namespace of type %#x", typ)
}

// procLink matches the target of a /proc magic link, such as
// "net:[4026531840]": not a path, but the name of what it leads to.
var procLink = regexp.MustCompile(`^[a-z_]+:\[[0-9]+\]$`)

// maxLinks bounds the symbolic links followed, as the kernel does
// (MAXSYMLINKS).
const maxLinks = 40

// canonical resolves the symbolic links of path, but not a /proc magic
// link at its end (/proc/PID/ns/net), whose target is no path:
// filepath.EvalSymlinks fails on those.
func canonical(path string) (string, error) {
	for range maxLinks {
		dir, err := filepath.EvalSymlinks(filepath.Dir(path))
		if err != nil {
			return "", err
		}
		path = filepath.Join(dir, filepath.Base(path))
		fi, err := os.Lstat(path)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return path, nil
		}
		target, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(dir, "/proc/") && procLink.MatchString(target) {
			return path, nil
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		path = filepath.Clean(target)
	}
	return "", unix.ELOOP
}

// Do runs fn on an OS thread inside the network namespace at path, which
// must be a network namespace file (see Resolve). The work happens on a
// fresh goroutine locked to its thread: if the thread cannot be moved back
// to its own namespace, the goroutine exits still locked and the Go
// runtime destroys the thread rather than reuse it in the wrong namespace.
//
// File descriptors and sockets fn opens keep the namespace they were
// created in after Do returns; that is how a TAP or a netlink socket of a
// namespace is made.
func Do(path string, fn func() error) error {
	fd, err := open(path)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	target := netns.NsHandle(fd)
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
