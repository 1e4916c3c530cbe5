package vswitch

import "time"

// The drops that say a port hit a limit, or sent what no switch passes,
// are logged, but not per frame: once a second the ager looks at each
// port's counters, and a reason that rose is logged at most once per
// dropLogEvery per port, with the count since it was last logged, so a
// flood costs a line a minute, not a line a frame, and the forwarding
// path does nothing for it.

// dropLogEvery is how often one port's drops of one reason are logged at
// most: often enough to show an attack that goes on, rarely enough that
// a long one leaves a short log.
const dropLogEvery = time.Minute

// loggedDrops are the reasons logged.
var loggedDrops = [...]DropReason{DropStorm, DropOversize, DropLinkLocal, DropEtherType}

// dropLog is what the ager remembers of a port's logged drops, under the
// switch's dlogMu.
type dropLog struct {
	n  [len(loggedDrops)]uint64
	at [len(loggedDrops)]time.Time
}

// logDrops logs the drops of loggedDrops that rose since they were last
// logged, for ports not logged in the last dropLogEvery.
func (s *Switch) logDrops(now time.Time) {
	s.dlogMu.Lock()
	defer s.dlogMu.Unlock()
	for _, p := range s.Ports() {
		for i, r := range loggedDrops {
			n := p.c.drops[r].Load()
			if n == p.dlog.n[i] || now.Sub(p.dlog.at[i]) < dropLogEvery {
				continue
			}
			args := []any{"port", p.Name(), "network", p.net.Name(), "reason", r.String(), "count", n - p.dlog.n[i]}
			if !p.dlog.at[i].IsZero() {
				args = append(args, "since", p.dlog.at[i].Format(time.RFC3339))
			}
			s.log.Warn("port dropping frames", append(args, "hint", dropHints[r])...)
			p.dlog.n[i], p.dlog.at[i] = n, now
		}
	}
}

// dropHints say what to do about each logged reason.
var dropHints = map[DropReason]string{
	DropStorm:     "broadcast, multicast or unknown-unicast frames over the port's storm control rate; raise it with tapswitch port set PORT --storm-broadcast/--storm-multicast/--storm-unknown if they are wanted",
	DropOversize:  "frames larger than the port's MTU, or than a receiver's: the namespace's MTU is above what it was attached with (--mtu)",
	DropLinkLocal: "frames to 01:80:c2:00:00:0X (STP, pause, LACP, 802.1X, LLDP), which a bridge never forwards",
	DropEtherType: "an Ethertype port security does not let through; turn port security off for a namespace that routes or bridges it",
}
