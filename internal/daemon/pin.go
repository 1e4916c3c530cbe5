package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/namespace"
)

// A namespace attached by pid or by a path such as /proc/PID/ns/net lives
// only as long as something holds it, and its pid may name another
// process by the time a restarted daemon looks. So the daemon pins it, as
// `ip netns attach` does: a bind mount of the namespace file onto an
// empty file under <state-dir>/netns, named after the port. The pin keeps
// the namespace, with the port's TAP, alive and reachable under one path
// until the port is detached.

// pinDir holds the pins of the daemon's ports.
func (d *Daemon) pinDir() string { return filepath.Join(d.cfg.StateDir, "netns") }

// pinPath is where port's namespace is pinned.
func (d *Daemon) pinPath(port string) string { return filepath.Join(d.pinDir(), port) }

// needsPin reports whether the namespace file at path needs a pin: any
// but a name under /run/netns, which iproute2 pins itself.
func needsPin(path string) bool { return filepath.Dir(path) != namespace.RunDir }

// pin bind-mounts the namespace file src onto dst, which it creates. A
// pin left at dst by a port that is gone is replaced.
func pin(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if err := unpin(dst); err != nil {
		return fmt.Errorf("remove old pin: %w", err)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o400)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dst)
		return fmt.Errorf("bind mount %s on %s: %w", src, dst, err)
	}
	return nil
}

// unpin undoes pin; a path that is not there, or not mounted, is no
// error.
func unpin(path string) error {
	// A file pinned twice over holds two mounts.
	for range 8 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// unpin removes a pin and logs a failure: a pin left behind holds a
// namespace, nothing worse, and the next start tries again.
func (d *Daemon) unpin(path string) {
	if err := d.host.unpin(path); err != nil {
		d.log.Warn("network namespace pin left in place", "path", path, "err", err)
	}
}

// removeStalePinsLocked removes the pins that no port holds: those of
// ports dropped at start, or made by a daemon that died during an attach.
func (d *Daemon) removeStalePinsLocked() {
	entries, err := os.ReadDir(d.pinDir())
	if err != nil {
		return
	}
	held := make(map[string]bool)
	for _, p := range d.ports {
		held[p.state.Pin] = true
	}
	for _, e := range entries {
		if path := filepath.Join(d.pinDir(), e.Name()); !held[path] {
			d.log.Info("removing the pin of a port that is gone", "path", path)
			d.unpin(path)
		}
	}
}
