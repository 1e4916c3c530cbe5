package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/namespace"
)

// A port's namespace can vanish while the daemon runs, and its port must
// then go with it, its addresses freed, without anyone detaching it.
//
// How the switch learns of it depends on who holds the namespace:
//
//   - A TAP made in the daemon's namespace and moved into a container's
//     (the Docker driver's) belongs to the container's namespace, but
//     its queues were opened in the daemon's: the namespace dies with
//     its last process or mount, takes the TAP with it, and reads of
//     the queues fail with EBADFD. The switch detaches a port on any
//     such read error and the daemon forgets it (portFailed), with a
//     port.failed event: nothing to do here.
//   - A TAP the daemon made inside the namespace (attach) holds the
//     namespace itself: its queues were opened there, and an open queue
//     keeps its namespace alive. `ip netns del`, or the exit of the
//     last process of a namespace attached by pid (whose pin the daemon
//     holds too), leaves a namespace only the daemon keeps, and its port
//     would stay for ever. The vanish watch finds those.
//
// The watch looks, once per vanishInterval, whether the name a port was
// attached by (NAME under /run/netns, pid:PID, a path) still leads to
// its namespace. That costs one stat per port. Only for a port whose
// name no longer does, it looks further: a namespace that a process is
// still in, or that another bind mount still holds, is in use (the name
// was only taken off it), and the port stays; otherwise the namespace
// has vanished and the port is detached, its pin let go, so that the
// kernel frees the namespace and the TAP in it.

// vanishInterval is how often the vanish watch looks: a vanished
// namespace's address is free again within it.
var vanishInterval = 5 * time.Second

// vanishWatch is the goroutine of the vanish watch.
type vanishWatch struct {
	stop, done chan struct{}
	// held reports whether anything besides the daemon holds the
	// namespace ns: a process in it, or a bind mount of it other than
	// those at pins. The package's tests replace it (under the
	// daemon's mu).
	held func(ns nsID, pins []string) (bool, error)
}

func (d *Daemon) startVanishWatch() {
	if d.vanish.held == nil {
		d.vanish.held = nsHeld
	}
	d.vanish.stop, d.vanish.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.vanish.done)
		t := time.NewTicker(vanishInterval)
		defer t.Stop()
		for {
			select {
			case <-d.vanish.stop:
				return
			case <-t.C:
				d.freeVanished()
			}
		}
	}()
}

func (d *Daemon) stopVanishWatch() {
	if d.vanish.stop == nil {
		return
	}
	close(d.vanish.stop)
	<-d.vanish.done
	d.vanish.stop = nil
}

// vanishCandidate is a port whose namespace is no longer reached by the
// name it was attached by.
type vanishCandidate struct {
	p *port
	// name is the port's name when it was found, for the log: p's own
	// may change (a rename) once the lock is let go.
	name, why string
	ns        nsID
}

// freeVanished detaches the ports whose namespace has vanished, and
// returns how many.
func (d *Daemon) freeVanished() int {
	d.mu.Lock()
	held := d.vanish.held
	var cands []vanishCandidate
	var pins []string
	for _, p := range d.ports {
		if p.kind != api.KindContainer {
			continue
		}
		if p.state.Pin != "" {
			pins = append(pins, p.state.Pin)
			// mountinfo shows the path with its links resolved.
			if dir, err := filepath.EvalSymlinks(filepath.Dir(p.state.Pin)); err == nil {
				pins = append(pins, filepath.Join(dir, filepath.Base(p.state.Pin)))
			}
		}
		if why, lost := nsLost(p); lost {
			cands = append(cands, vanishCandidate{p: p, name: p.name(), why: why, ns: p.ns})
		}
	}
	d.mu.Unlock()
	if len(cands) == 0 {
		return 0
	}
	// Looking through every process is done without the lock; a port
	// detached meanwhile is left alone below.
	var gone []vanishCandidate
	for _, c := range cands {
		in, err := held(c.ns, pins)
		if err != nil {
			d.log.Warn("cannot tell whether a port's namespace is still in use; the port stays", "port", c.name, "err", err)
			continue
		}
		if !in {
			gone = append(gone, c)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	freed := 0
	for _, c := range gone {
		p := c.p
		if d.ports[p.name()] != p {
			continue
		}
		if err := d.sw.RemovePort(p.sw); err != nil {
			d.log.Warn("port of a vanished namespace", "port", p.name(), "err", err)
			continue
		}
		reason := fmt.Sprintf("namespace %s vanished: %s, and no process or mount holds it any more", p.state.Request.Netns, c.why)
		ev := failedEvent(p, nil, "run")
		ev.Reason = reason
		ev.Attrs["cause"] = "namespace_vanished"
		d.events.Publish(ev)
		d.log.Warn("port detached: its namespace vanished", "port", p.name(), "netns", p.state.Request.Netns, "network", p.net.name, "why", c.why)
		d.forgetLocked(p)
		freed++
	}
	if freed > 0 {
		d.saveLocked()
	}
	return freed
}

// failCause names why a port's device failed for good, for port.failed's
// cause: EBADFD is a TAP whose device was destroyed under its open
// queues, deleted or gone with its namespace.
func failCause(err error) string {
	if errors.Is(err, unix.EBADFD) {
		return "device_gone"
	}
	return ""
}

// nsLost reports whether the name p was attached by no longer leads to
// its namespace, and how.
func nsLost(p *port) (string, bool) {
	spec := p.state.Request.Netns
	path, err := namespace.Resolve(spec)
	if err != nil {
		return fmt.Sprintf("%s is gone", spec), true
	}
	id, err := nsIDOf(path)
	if err != nil {
		return fmt.Sprintf("%s is gone", path), true
	}
	if id != p.ns {
		return fmt.Sprintf("%s is now another namespace", path), true
	}
	return "", false
}

// nsHeld reports whether a process is in the namespace ns, or a bind
// mount other than those at pins holds it, as /proc shows them. Threads
// are not looked at: a thread that entered a namespace on its own leaves
// it again (as the daemon's own do).
func nsHeld(ns nsID, pins []string) (bool, error) {
	want := "net:[" + strconv.FormatUint(ns.ino, 10) + "]"
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	if mountHolds(mounts, want, pins) {
		return true, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		// A process that exits meanwhile is in no namespace.
		if link, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net")); err == nil && link == want {
			return true, nil
		}
	}
	return false, nil
}

// mountHolds reports whether a line of mountinfo is a bind mount of the
// namespace named want ("net:[INODE]", its root) at a point other than
// those of pins.
func mountHolds(mountinfo []byte, want string, pins []string) bool {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT ...
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[3] != want {
			continue
		}
		point := namespace.UnescapeMountinfo(f[4])
		own := false
		for _, pin := range pins {
			if point == pin {
				own = true
			}
		}
		if !own {
			return true
		}
	}
	return false
}
