package daemon

// What a cluster host hands over besides its TAPs (handover.go): the
// VXLAN endpoint's receiving sockets, and the store session.
//
//	vxlan/rx/I       the endpoint's I-th receiving socket, bound to
//	                 --advertise and the VXLAN port: the datagrams that
//	                 arrive while neither daemon reads wait in it, and
//	                 the successor reads them (the sending sockets are
//	                 opened anew: nothing waits in them)
//	cluster/session  a memory file holding the store session as JSON
//	                 (overlaySession): the host lease, which the
//	                 successor keeps alive in place of registering under
//	                 a new one, so that the host's records never leave
//	                 the store; and the view of the store last applied,
//	                 so that the successor knows from its first frame
//	                 which hosts may send and where the other hosts'
//	                 MACs are, before it has read the store itself
//
// A daemon that resumes after a failed hand-over takes them back from
// the set it kept, like its TAPs: the same socket, the same lease.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/cluster"
	"github.com/tapswitch/tapswitch/internal/fdset"
)

// sessionFDName names the memory file of the store session.
const sessionFDName = "cluster/session"

// maxSession bounds the session read back: far above what the view of
// thousands of ports takes.
const maxSession = 64 << 20

// vxlanRxFDName names the endpoint's i-th receiving socket.
func vxlanRxFDName(i int) string { return fmt.Sprintf("vxlan/rx/%d", i) }

// overlaySession is the store session handed over.
type overlaySession struct {
	// Host and Advertise are whose session it is: a successor of
	// another --cluster-host or --advertise does not take it.
	Host      string     `json:"host"`
	Advertise netip.Addr `json:"advertise"`
	// Lease is the host lease, 0 if there was none.
	Lease int64 `json:"lease,omitempty"`
	// ConnectedSince is since when the store had been connected to etcd,
	// zero if it was not (cluster.Config.ConnectedSince).
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	// Owed are the removals not yet made in the store (a port detached
	// while etcd was away), in order: the successor makes them, as the
	// records they remove live on under the lease it carries on.
	Owed []owedRemoval `json:"owed,omitempty"`
	// View is the store's view last applied.
	View cluster.View `json:"view"`
}

// exportOverlayLocked adds to set what the hand-over carries of the
// overlay: the endpoint's receiving sockets and, with a store, the
// session.
func (d *Daemon) exportOverlayLocked(set *fdset.Set) error {
	ov := &d.ov
	if ov.ep == nil {
		return nil
	}
	fds, err := ov.ep.ExportReceivers()
	if err != nil {
		return fmt.Errorf("VXLAN socket: %w", err)
	}
	for i, fd := range fds {
		set.Add(vxlanRxFDName(i), fd)
	}
	if ov.store == nil {
		return nil
	}
	sess := overlaySession{Host: ov.host, Advertise: ov.cfg.Advertise, Lease: ov.store.Lease(), View: ov.view, Owed: d.owedRemovalsLocked()}
	if st := ov.store.Status(); st.Connected {
		sess.ConnectedSince = st.Since
	}
	b, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("cluster session: %w", err)
	}
	fd, err := unix.MemfdCreate("tapswitch-cluster-session", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("cluster session: %w", err)
	}
	f := os.NewFile(uintptr(fd), sessionFDName)
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("cluster session: %w", err)
	}
	dup, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cluster session: %w", err)
	}
	set.Add(sessionFDName, dup)
	return nil
}

// inheritedReceivers takes from Config.Inherited the endpoint's
// receiving sockets a predecessor handed over; nil if none.
func (d *Daemon) inheritedReceivers() []int {
	var fds []int
	for i := 0; ; i++ {
		fd := d.cfg.Inherited.TakeOne(vxlanRxFDName(i))
		if fd < 0 {
			return fds
		}
		fds = append(fds, fd)
	}
}

// inheritedSession takes the store session a predecessor handed over,
// if there is one and it is this host's; nil otherwise.
func (d *Daemon) inheritedSession() *overlaySession {
	fd := d.cfg.Inherited.TakeOne(sessionFDName)
	if fd < 0 {
		return nil
	}
	f := os.NewFile(uintptr(fd), sessionFDName)
	defer f.Close()
	// At its start whatever another reader of the file did: the
	// predecessor keeps a copy of it, to resume with.
	b, err := io.ReadAll(io.NewSectionReader(f, 0, maxSession))
	var s overlaySession
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	switch {
	case err != nil:
	case s.Host != d.ov.host:
		err = fmt.Errorf("it is host %q's, this host is %q", s.Host, d.ov.host)
	case s.Advertise != d.ov.cfg.Advertise:
		err = fmt.Errorf("it is of --advertise %s, this host advertises %s", s.Advertise, d.ov.cfg.Advertise)
	}
	if err != nil {
		d.log.Warn("cluster session handed over not used; registering in the store anew", "err", err)
		return nil
	}
	return &s
}

// seedViewLocked takes the view a predecessor handed over as the view
// last applied: the endpoint takes frames from the hosts in it from the
// start, and the tunnels made from now on know where the other hosts'
// MACs are and where to flood. The store's own views replace it.
func (d *Daemon) seedViewLocked(v cluster.View) {
	ov := &d.ov
	ov.view = v
	others := make(map[netip.Addr]bool)
	for _, h := range v.Hosts {
		if h.Name != ov.host && h.VTEP != ov.cfg.Advertise && h.VTEP.IsValid() {
			others[h.VTEP] = true
		}
	}
	ov.others = others
	ov.ep.SetMembers(d.vtepsLocked())
	ov.ep.SetChecksummed(slices.Collect(maps.Keys(others)))
}
