package daemon

// Descriptors that outlive the daemon: a hand-over to a successor
// (tapswitchd --upgrade, handover_wire.go) and the service manager's
// file descriptor store both keep a TAP's queues open while no daemon
// reads them, so that the frames its namespace sends wait in the queues'
// rings instead of being dropped, and the next daemon reads them. Both
// name descriptors the same way:
//
//	tap/PORT      the queues of a port's TAP (PORT is a container port's
//	              name, or a gateway's interface name)
//	pub/PORT/I    the listener or UDP socket of PORT's I-th published port
//
// a hand-over adds the VXLAN receiving sockets and the store session of a cluster
// host (handover_overlay.go), and cmd/tapswitchd adds its API listener
// as "api". New takes the descriptors its state names from
// Config.Inherited in place of opening the TAPs by name and listening
// afresh, and closes the rest.

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/fdset"
	"github.com/tapswitch/tapswitch/internal/publish"
	"github.com/tapswitch/tapswitch/tap"
)

// FDStore is the service manager's file descriptor store
// (sdnotify.Notifier): it keeps copies of descriptors across the
// daemon's restarts and crashes and hands them to the next start.
type FDStore interface {
	// Store gives the store copies of fds under name; the caller keeps
	// its own.
	Store(name string, fds ...int) error
	// Remove drops what the store holds under name.
	Remove(name string) error
}

// tapFDName names the queues of port's TAP.
func tapFDName(port string) string { return "tap/" + port }

// publishFDName names the socket of port's i-th published port.
func publishFDName(port string, i int) string { return fmt.Sprintf("pub/%s/%d", port, i) }

// inherited is what the daemon took of Config.Inherited, and what the
// descriptor store holds for it.
type inherited struct {
	// taps and sockets count the TAPs and published ports' sockets
	// taken from Config.Inherited.
	taps, sockets int
	// held names what the store holds for this daemon: what New took
	// from it, and what the daemon stored since.
	held map[string]bool
	// paused are the devices adopted, paused until every port is back.
	paused []tap.Pauser
}

// adoptTAPLocked makes the device of a restored port from the queues a
// predecessor or the store handed over, if any: ok reports whether it
// did. Queues that are not the port's TAP are refused (and closed), and
// the TAP is opened by name as if none had come.
func (d *Daemon) adoptTAPLocked(s plugSpec, cfg tap.Config) (_ tap.Device, ok bool) {
	name := tapFDName(s.state.Name)
	fds := d.cfg.Inherited.Take(name)
	if len(fds) == 0 {
		return nil, false
	}
	dev, err := tap.Adopt(tap.Config{Netns: cfg.Netns, Name: cfg.Name, Movable: cfg.Movable}, fds)
	if err != nil {
		d.log.Warn("queues handed over refused; opening the TAP by name", "port", s.state.Name, "descriptors", len(fds), "err", err)
		if d.cfg.FDStore != nil {
			// The store's copies would hold the queues, and the
			// TAP could not be opened. (A predecessor's copies do
			// too: the open fails as in use, and the hand-over with
			// it, so the predecessor resumes.)
			d.cfg.FDStore.Remove(name)
		}
		return nil, false
	}
	if pz, ok := dev.(tap.Pauser); ok {
		// Read once every port is back (inheritedDoneLocked): a frame
		// read now could be for a port not plugged in yet.
		pz.PauseReads()
		d.inherited.paused = append(d.inherited.paused, pz)
	}
	d.inherited.taps++
	d.markHeld(name)
	return dev, true
}

// startProxyLocked publishes port's i-th mapping m: on the socket a
// predecessor or the store handed over, if there is one and it is m's,
// else on a new one.
func (d *Daemon) startProxyLocked(port string, i int, m publish.Mapping, target netip.Addr, log *slog.Logger) (*publish.Proxy, error) {
	name := publishFDName(port, i)
	if fd := d.cfg.Inherited.TakeOne(name); fd >= 0 {
		px, err := publish.Adopt(m, target, log, os.NewFile(uintptr(fd), name))
		if err == nil {
			d.inherited.sockets++
			d.markHeld(name)
			return px, nil
		}
		log.Warn("socket handed over refused; listening afresh", "publish", m.String(), "err", err)
	}
	return publish.Start(m, target, log)
}

func (d *Daemon) markHeld(name string) {
	if d.cfg.FDStore == nil {
		return
	}
	if d.inherited.held == nil {
		d.inherited.held = make(map[string]bool)
	}
	d.inherited.held[name] = true
}

// storeLocked gives the store copies of p's queues and published ports'
// sockets that it does not hold yet. A failure is logged: the port
// works, and only a crash of the daemon costs it more than a restart.
func (d *Daemon) storeLocked(p *port) {
	st := d.cfg.FDStore
	if st == nil {
		return
	}
	done := func(name string, err error) {
		if err != nil {
			d.log.Warn("descriptors not kept by the service manager: a crash of tapswitchd will cost this port's traffic a retransmission", "port", p.name(), "name", name, "err", err)
			return
		}
		d.markHeld(name)
	}
	if name := tapFDName(p.name()); !d.inherited.held[name] {
		if ex, ok := p.dev.(tap.Exporter); ok {
			fds, err := ex.ExportQueues()
			if err == nil {
				err = st.Store(name, fds...)
				closeFDs(fds)
			}
			done(name, err)
		}
	}
	for _, px := range p.proxies {
		name := publishFDName(p.name(), slices.Index(p.publish, px.Mapping()))
		if d.inherited.held[name] {
			continue
		}
		f, err := px.File()
		if err == nil {
			err = st.Store(name, int(f.Fd()))
			f.Close()
		}
		done(name, err)
	}
}

// unstoreLocked drops from the store what it holds of p, which is going.
func (d *Daemon) unstoreLocked(p *port) {
	st := d.cfg.FDStore
	if st == nil {
		return
	}
	for name := range d.inherited.held {
		if name == tapFDName(p.name()) || strings.HasPrefix(name, "pub/"+p.name()+"/") {
			if err := st.Remove(name); err != nil {
				d.log.Warn("the service manager keeps the descriptors of a port that is gone", "port", p.name(), "name", name, "err", err)
			}
			delete(d.inherited.held, name)
		}
	}
}

// inheritedDoneLocked, once every port of the state is back, lets the
// devices adopted forward, and closes what New did not take of
// Config.Inherited: descriptors of ports the state no longer records,
// or that were refused. The store is told to drop them too.
func (d *Daemon) inheritedDoneLocked() {
	for _, pz := range d.inherited.paused {
		pz.ResumeReads()
	}
	d.inherited.paused = nil
	if d.cfg.Inherited == nil {
		return
	}
	left := d.cfg.Inherited.Names()
	d.cfg.Inherited.Close()
	for _, name := range left {
		if d.cfg.FDStore != nil {
			d.cfg.FDStore.Remove(name)
		}
	}
	if d.inherited.taps+d.inherited.sockets+len(left) > 0 {
		d.log.Info("descriptors handed over", "taps", d.inherited.taps, "sockets", d.inherited.sockets, "unused", left)
	}
}

// ForgetStored tells the store to drop everything it holds for the
// daemon, which is removing its ports and gateways for good
// (CloseAndRemove).
func (d *Daemon) ForgetStored() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.FDStore == nil {
		return
	}
	for name := range d.inherited.held {
		d.cfg.FDStore.Remove(name)
	}
	d.inherited.held = nil
}

// handoverSettle is how long Suspend waits, once reads are paused, for
// the workers' passes in progress to write out what they read. A pass
// forwards at most one burst of frames, tens of microseconds; a
// millisecond covers a pass descheduled on a busy machine.
const handoverSettle = time.Millisecond

// Suspend makes the daemon ready for a successor to take over: it hands
// back duplicates of every TAP's queues (container ports and gateways),
// every published port's socket and the VXLAN receiving sockets, named
// as above, and the store session, stops reading the TAPs and the VXLAN
// sockets and following the store, writes the state, and stops its published
// ports and DNS servers, whose addresses the successor takes. The TAPs
// stay attached through the duplicates, so the frames sent meanwhile
// wait in their rings, as the tunnel's datagrams wait in the sockets.
// The store session stays open (its lease kept alive) until the process
// exits or Close detaches it, and is never revoked: the successor
// carries it on. When it fails, the daemon is left running as it was.
//
// The caller owns the set: it passes it to the successor, and exits
// once the successor has taken over; or, if the hand-over fails, it
// stops the daemon with Close and passes the set to New, to resume.
func (d *Daemon) Suspend() (_ *fdset.Set, err error) {
	set := &fdset.Set{}
	d.mu.Lock()
	defer func() {
		if err != nil {
			d.mu.Unlock()
			set.Close()
		}
	}()
	for _, p := range d.ports {
		ex, ok := p.dev.(tap.Exporter)
		if !ok {
			return nil, fmt.Errorf("port %q: its device cannot be handed over", p.name())
		}
		fds, err := ex.ExportQueues()
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", p.name(), err)
		}
		set.Add(tapFDName(p.name()), fds...)
		for _, px := range p.proxies {
			fd, err := dupSocket(px)
			if err != nil {
				return nil, fmt.Errorf("port %q: %w", p.name(), err)
			}
			set.Add(publishFDName(p.name(), slices.Index(p.publish, px.Mapping())), fd)
		}
	}
	if err := d.exportOverlayLocked(set); err != nil {
		return nil, err
	}
	// The state file is current (every change writes it); written
	// again before the pause, its sync does not add to the outage.
	d.saveLocked()
	for _, p := range d.ports {
		if pz, ok := p.dev.(tap.Pauser); ok {
			pz.PauseReads()
		}
	}
	d.mu.Unlock()
	if d.ov.ep != nil {
		// The tunnel's datagrams wait in the socket, for the successor.
		d.ov.ep.PauseReads()
	}
	// The store's views make networks here, or remove them: not while
	// the successor restores from the state file. What is owed the
	// store is done now (while etcd answers); the successor follows
	// the store from where this daemon stops.
	d.stopStoreWatch()
	time.Sleep(handoverSettle)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.ports {
		p.stopProxies()
	}
	for _, n := range d.nets {
		if n.dns != nil {
			n.dns.Close()
		}
	}
	return set, nil
}

// dupSocket returns a descriptor of px's socket that the caller owns.
func dupSocket(px *publish.Proxy) (int, error) {
	f, err := px.File()
	if err != nil {
		return -1, err
	}
	defer f.Close()
	return unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
