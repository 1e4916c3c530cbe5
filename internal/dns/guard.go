package dns

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// A network's DNS server serves only the network's own ports: queries
// must arrive on the network's gateway interface from an address of the
// network's subnet. Anything else (the host itself, whose queries to the
// gateway address arrive on lo; another network's ports, whose queries
// to this gateway address the host delivers locally; any host routed to
// the subnet from outside) gets no answer at all. Other networks and
// routed hosts are told apart by the interface (the sockets are bound to
// the gateway's), the host by its source address (see clientAllowed).
//
// Silence rather than REFUSED: the source of a UDP query can be forged,
// and every answer sent to a forged source is traffic reflected at a
// victim. A REFUSED echoes the question, so it is as large as the query
// and makes the gateway a reflector; silence reflects nothing, and tells
// a scanner nothing either. A client that is not ours has no resolver
// here to be told about.

// refusal is why a query or connection was turned away.
type refusal int

const (
	// refusedSource: the source address is not in the network's subnet.
	refusedSource refusal = iota
	// refusedInterface: the query arrived on another interface than the
	// network's gateway.
	refusedInterface
	// refusedRate: the source is over its query rate.
	refusedRate
	// refusedForwards: too many forwards in flight, in all or from this
	// source; answered SERVFAIL at once.
	refusedForwards
	// refusedTCP: a TCP connection over the limits in all or from this
	// source; closed at once.
	refusedTCP
	// refusedFDs: the daemon's descriptor budget had none to spare for a
	// forward or a TCP connection.
	refusedFDs
	numRefusals
)

var refusalNames = [numRefusals]string{
	refusedSource:    "source",
	refusedInterface: "interface",
	refusedRate:      "rate",
	refusedForwards:  "forwards",
	refusedTCP:       "tcp",
	refusedFDs:       "fds",
}

func (r refusal) String() string { return refusalNames[r] }

// Stats are a server's counters since it started.
type Stats struct {
	// Answered counts replies sent, local or forwarded, whatever their
	// rcode.
	Answered uint64
	// Forwarded counts queries sent on to an upstream resolver.
	Forwarded uint64
	// NotForwarded counts queries of an internal network for names
	// outside it, answered SERVFAIL without forwarding.
	NotForwarded uint64
	// RateLimited counts queries (and TCP connections) dropped because
	// their source was over its rate.
	RateLimited uint64
	// RefusedSource, RefusedInterface: queries dropped unanswered (and
	// TCP connections closed) because they came from outside the network.
	RefusedSource    uint64
	RefusedInterface uint64
	// RefusedForwards counts queries answered SERVFAIL at once because
	// too many forwards were in flight.
	RefusedForwards uint64
	// RefusedTCP counts TCP connections closed at once for being over the
	// connection limits.
	RefusedTCP uint64
	// RefusedFDs counts forwards and TCP connections refused because the
	// daemon's descriptor budget was spent.
	RefusedFDs uint64
}

// counters are a server's live counters.
type counters struct {
	answered, forwarded, notForwarded atomic.Uint64
	refused                           [numRefusals]atomic.Uint64
}

// Stats returns the server's counters. It may be called at any time.
func (s *Server) Stats() Stats {
	c := &s.count
	return Stats{
		Answered:         c.answered.Load(),
		Forwarded:        c.forwarded.Load(),
		NotForwarded:     c.notForwarded.Load(),
		RateLimited:      c.refused[refusedRate].Load(),
		RefusedSource:    c.refused[refusedSource].Load(),
		RefusedInterface: c.refused[refusedInterface].Load(),
		RefusedForwards:  c.refused[refusedForwards].Load(),
		RefusedTCP:       c.refused[refusedTCP].Load(),
		RefusedFDs:       c.refused[refusedFDs].Load(),
	}
}

// refuse counts a refusal and logs it, at most once per logEvery for each
// reason, with how many went unlogged since.
func (s *Server) refuse(why refusal, client netip.AddrPort, proto string) {
	s.count.refused[why].Add(1)
	if n, ok := s.logs.due(why, time.Now()); ok {
		s.log.Warn("dns: refused", "reason", why.String(), "client", client, "proto", proto,
			"refused_since_last_log", n, "addr", s.cfg.Addr)
	}
}

// logEvery is the least time between two log lines for one reason of
// refusal: a flood writes one line per reason per ten seconds, and the
// counters keep the totals.
const logEvery = 10 * time.Second

// logLimiter decides which refusals are logged.
type logLimiter struct {
	mu   sync.Mutex
	last [numRefusals]time.Time
	// since counts the refusals of each reason since its last log line.
	since [numRefusals]uint64
}

// due counts one refusal for why and reports whether to log it now,
// with how many refusals for why were not logged before it.
func (l *logLimiter) due(why refusal, now time.Time) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last[why].IsZero() && now.Sub(l.last[why]) < logEvery {
		l.since[why]++
		return 0, false
	}
	n := l.since[why]
	l.last[why], l.since[why] = now, 0
	return n, true
}

// clientAllowed reports whether src may use the server: an address of
// one of cfg.Clients (cfg.Subnets when Clients is empty) and, on a server
// bound to an interface, not the server's own address. The host's own
// queries to the gateway address travel over lo, but the kernel reports
// them (to the interface binding and in IP_PKTINFO alike) as arriving on
// the interface that holds the address; they come from the gateway
// address itself, or from an address of the host outside the subnet once
// the network's masquerading rule has rewritten them.
func (s *Server) clientAllowed(src netip.Addr) bool {
	src = src.Unmap().WithZone("")
	if s.cfg.Interface != "" && src == s.cfg.Addr.Addr().Unmap() {
		return false
	}
	for _, p := range s.clients {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// slots counts what each source holds of a limited resource, in all and
// per source. It is safe for concurrent use; a source holding nothing has
// no entry, so the table is never larger than the total limit.
type slots struct {
	total, perSource int

	mu    sync.Mutex
	n     int
	bySrc map[netip.Addr]int
}

func newSlots(total, perSource int) *slots {
	return &slots{total: total, perSource: perSource, bySrc: make(map[netip.Addr]int)}
}

// acquire takes a slot for src, or reports false if the total or src's
// share is taken.
func (s *slots) acquire(src netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n >= s.total || s.bySrc[src] >= s.perSource {
		return false
	}
	s.n++
	s.bySrc[src]++
	return true
}

// release gives back a slot taken by acquire.
func (s *slots) release(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n--
	if s.bySrc[src]--; s.bySrc[src] <= 0 {
		delete(s.bySrc, src)
	}
}

// held is the number of slots taken, and sources the number of sources
// holding one.
func (s *slots) held() (n, sources int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, len(s.bySrc)
}
