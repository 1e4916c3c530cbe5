package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/namespace"
)

// A daemon killed in the middle of an attach has made things the state
// file does not record: a persistent TAP carrying the port's address (an
// address the restored IPAM holds free, so it could be handed out
// again), a resolv.conf or its temporary file under /etc/netns/NAME, a
// pin. The start-up sweep removes them:
//
//	attach:  intent record -> pin -> TAP (persistent) -> resolv.conf -> state file -> intent cleared
//	start:   restore the state file's ports -> sweep what the intents, the pins (and, the first
//	         time, /run/netns) lead to -> remove stale pins
//
// What is ours is known three ways, and all must hold: a TAP carries the
// daemon's alias ("tapswitch" and the state directory's id); a resolv.conf
// starts with the header naming that id and a temporary file's name
// carries it (dns.TempPrefix); and the namespace or file was reached
// through this state directory's intent records or pins (or, once,
// /run/netns, see below). A daemon of another
// state directory has another id, so two daemons never sweep each
// other's. A TAP whose queues a process holds is in use and never
// removed.
//
// Which namespaces to look in. The intent records name every namespace
// an attach of this daemon has touched since they were first written,
// and only those: complete for what the daemon did, and cheap (one small
// file per attach, and at start one namespace per record left).
// The pins name the namespaces attached by pid or path, whether or not
// an intent survives. A scan of /run/netns (every named namespace on the
// host) would find leftovers of a daemon that wrote no intents, but costs
// a namespace switch and an interface listing per named namespace at
// every start (measured: 35 ms for 207 namespaces, against 30 to 60 µs
// for a start with no record left); it is done once, at the first
// start on a state directory without intents/ (an upgrade), which then
// makes the directory. The namespaces of running processes are not
// scanned: every namespace a TAP is made in is under /run/netns or
// pinned under the state directory before the TAP is made, so they add
// nothing but cost. What no path leads to any more (a named namespace
// deleted with `ip netns del` while a process keeps it alive) is not
// found; its TAP is then cut off from every network, and goes with the
// namespace.

// sweepHost is what the sweep changes inside namespaces; linuxHost does
// it with netlink, the package's tests in memory.
type sweepHost interface {
	// sweepTAPs removes, inside the namespace at nsPath, every
	// persistent TAP carrying alias whose queues no process holds,
	// except those keep names, and returns the names removed.
	sweepTAPs(nsPath, alias string, keep func(ifname string) bool) ([]string, error)
}

var _ sweepHost = linuxHost{}

func (linuxHost) sweepTAPs(nsPath, alias string, keep func(ifname string) bool) ([]string, error) {
	var removed []string
	err := namespace.Do(nsPath, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		links, err := h.LinkList()
		if err != nil {
			return fmt.Errorf("list interfaces: %w", err)
		}
		var errs []error
		for _, l := range links {
			t, ok := l.(*netlink.Tuntap)
			if !ok || t.Mode != netlink.TUNTAP_MODE_TAP || t.Attrs().Alias != alias || t.NonPersist || t.Queues != 0 || keep(t.Attrs().Name) {
				continue
			}
			if err := h.LinkDel(t); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("remove TAP %s: %w", t.Attrs().Name, err))
				continue
			}
			removed = append(removed, t.Attrs().Name)
		}
		return errors.Join(errs...)
	})
	return removed, err
}

// intendLocked records, before an attach makes anything, what it may
// make (see intentRecord), and returns what to call once the attach is
// over: it clears the record, unless keep says the port is attached but
// the state file could not be written, in which case the next start
// takes the port for an interrupted attach and removes it. A daemon
// without a state directory makes nothing persistent and records
// nothing.
func (d *Daemon) intendLocked(s attachSpec) (done func(keep bool), err error) {
	if !d.persistent() {
		return func(bool) {}, nil
	}
	rec := intentRecord{Port: s.name, Network: s.network, NetnsPath: s.netnsPath, Ifname: s.ifname,
		ResolvConf: resolvConfPath(s.req.Netns)}
	if needsPin(s.netnsPath) {
		rec.NetnsPath = d.pinPath(s.name)
	}
	// A kill -9 needs no sync: the page cache outlives the process. A
	// crash of the machine takes the TAPs, pins and /run/netns with it,
	// and leaves only what is on disk: the resolv.conf an attach by name
	// may write. So only such an attach waits for the record to be on
	// disk (BenchmarkIntent: 0.5 to 1 ms on a virtual disk, up to 20 ms
	// while other writers keep it busy, as each of the state file's two
	// syncs costs); one by pid or path, as a container engine's, pays a
	// small write (0.1 to 0.3 ms).
	if err := d.writeIntent(rec, rec.ResolvConf != ""); err != nil {
		return nil, fmt.Errorf("record the attach in %s: %w; the state directory must be writable", d.intentDir(), err)
	}
	return func(keep bool) {
		if keep {
			d.log.Warn("the attach is not in the state file: the next start removes the port; free room in the state directory, then detach and attach it again", "port", s.name)
			return
		}
		d.clearIntent(s.name)
	}, nil
}

// intendDroppedLocked records a port the state file recorded and the
// start dropped, so that the sweep looks in its namespace: a TAP that
// could not be opened again may still be there, with the address the
// drop released.
func (d *Daemon) intendDroppedLocked(ps portState) {
	if _, err := os.Stat(d.intentDir()); err != nil {
		// The first start on this state directory: the sweep looks in
		// every named namespace and every pin, and the missing
		// directory is what tells it to.
		return
	}
	path := ps.Pin
	if path == "" {
		path, _ = namespace.ParseSpec(ps.Request.Netns)
	}
	rec := intentRecord{Port: ps.Name, Network: ps.Network, NetnsPath: path, Ifname: ps.Ifname, ResolvConf: ps.ResolvConf}
	if err := d.writeIntent(rec, false); err != nil {
		d.log.Warn("record a dropped port for the sweep", "port", ps.Name, "err", err)
	}
}

// sweepLocked removes the TAPs and files of this daemon that no port of
// the state holds (see the top of this file). It runs at start, after
// the state's ports are back and before stale pins are removed.
func (d *Daemon) sweepLocked() {
	if !d.persistent() {
		return
	}
	start := time.Now()
	sh, ok := d.host.(sweepHost)
	if !ok {
		d.log.Warn("no start-up sweep: the host cannot list interfaces in namespaces")
		return
	}
	intents, haveDir := d.readIntents()
	var paths []string
	for _, rec := range intents {
		paths = append(paths, rec.NetnsPath)
	}
	if pins, err := os.ReadDir(d.pinDir()); err == nil {
		for _, e := range pins {
			paths = append(paths, filepath.Join(d.pinDir(), e.Name()))
		}
	}
	if !haveDir {
		if named, err := os.ReadDir(namespace.RunDir); err == nil {
			for _, e := range named {
				paths = append(paths, filepath.Join(namespace.RunDir, e.Name()))
			}
		}
	}

	// What the restored ports hold: their TAPs by namespace and name, and
	// their resolv.conf files.
	type tapKey struct {
		ns     nsID
		ifname string
	}
	heldTAP := make(map[tapKey]bool)
	heldConf := make(map[string]bool)
	for _, p := range d.ports {
		if p.kind != api.KindGateway {
			heldTAP[tapKey{p.ns, p.state.Ifname}] = true
			heldConf[p.state.ResolvConf] = true
		}
	}
	var taps, confs, namespaces int
	seen := make(map[nsID]bool)
	for _, path := range paths {
		if path == "" {
			continue
		}
		// Only a network namespace file is entered: a pin cut short by
		// a kill is an empty file, and a name may have gone.
		real, err := namespace.Resolve(path)
		if err != nil {
			continue
		}
		id, err := nsIDOf(real)
		if err != nil || seen[id] {
			continue
		}
		seen[id] = true
		namespaces++
		removed, err := sh.sweepTAPs(real, d.alias(), func(ifname string) bool { return heldTAP[tapKey{id, ifname}] })
		for _, name := range removed {
			d.log.Info("removed a TAP no port holds: left by a daemon stopped in the middle of an attach", "netns", path, "ifname", name)
		}
		taps += len(removed)
		if err != nil {
			d.log.Warn("sweep TAPs left by an interrupted attach; remove them by hand (ip link del) if they stay", "netns", path, "alias", d.alias(), "err", err)
		}
	}
	owner := d.resolvOwner()
	for _, rec := range intents {
		if rec.ResolvConf == "" || !isResolvConfPath(rec.ResolvConf) {
			continue
		}
		held := heldConf[rec.ResolvConf]
		removed, err := dns.RemoveResolvConf(rec.ResolvConf, owner, func(line string) bool {
			return !held && line == dns.Header(owner)
		})
		if removed {
			confs++
			d.log.Info("removed a resolv.conf no port holds: left by a daemon stopped in the middle of an attach", "path", rec.ResolvConf)
		}
		if err != nil {
			d.log.Warn("sweep resolv.conf left by an interrupted attach", "err", err)
		}
	}
	for _, rec := range intents {
		d.clearIntent(rec.Port)
	}
	if !haveDir {
		if err := os.MkdirAll(d.intentDir(), 0o700); err != nil {
			d.log.Warn("make the intent directory; the next start scans every named namespace again", "err", err)
		}
	}
	d.log.Info("start-up sweep done", "intents", len(intents), "namespaces", namespaces, "taps_removed", taps,
		"resolv_conf_removed", confs, "scanned_run_netns", !haveDir, "took", time.Since(start))
}

// isResolvConfPath reports whether path is one resolvConfPath makes: an
// intent record is the daemon's own, but a record edited by hand must
// not lead the sweep elsewhere.
func isResolvConfPath(path string) bool {
	dir, file := filepath.Split(path)
	name := filepath.Base(dir)
	return file == "resolv.conf" && resolvConfPath(name) == path
}
