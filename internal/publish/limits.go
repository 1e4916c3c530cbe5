package publish

// What one client can make a published port hold:
//
//	                      per source      per port      whole daemon
//	TCP connections       ConnsPerSource  ConnsPerPort  fdlimit budget (6 fds each)
//	UDP flows             FlowsPerSource  maxFlows      fdlimit budget (1 fd each)
//	TCP idle              IdleTimeout, then both sides are closed
//
// A new connection past a bound is reset as soon as it is accepted, a
// datagram that would open a flow past one is dropped; either is counted
// by reason (Stats.Refused) and logged at most once per logEvery per
// reason. Connections and flows already open are never touched.

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what clients of one published port can hold. A zero field
// takes its value from DefaultLimits.
type Limits struct {
	// ConnsPerPort caps the open TCP connections of one published port.
	// Zero means DefaultLimits' 4096, or a quarter of what the
	// descriptor budget holds when that is less (see PortConns).
	ConnsPerPort int
	// ConnsPerSource caps the open TCP connections of one published port
	// from one source: an IPv4 address, or an IPv6 /64 (what one host
	// is given, and can pick addresses from at will).
	ConnsPerSource int
	// FlowsPerSource caps the live UDP flows of one published port from
	// one source, as ConnsPerSource does for TCP.
	FlowsPerSource int
	// IdleTimeout closes a TCP connection through which no data has
	// passed, either way, for that long.
	IdleTimeout time.Duration
}

// DefaultLimits are the limits of a daemon started without options.
//
//   - ConnsPerPort 4096: four times what a default nginx worker accepts
//     (worker_connections 1024), enough for a busy service behind one
//     port; each connection holds 6 descriptors (connFDs), so a full port
//     holds about 24,600, a few percent of the descriptors the daemon
//     raises its limit to (1,048,576, fs.nr_open's default). Where the
//     limit cannot be raised, PortConns lowers it to a quarter of the
//     budget.
//   - ConnsPerSource 256: a browser opens 6 connections to a host and an
//     HTTP client pool tens; 256 leaves room for a load generator or a
//     small NAT while one client takes at most a sixteenth of a port.
//   - FlowsPerSource 256: a quarter of the port's 1024 flows, so that one
//     client flooding from many source ports leaves the rest to at least
//     three others.
//   - IdleTimeout 1 hour: longer than any keep-alive an HTTP server or
//     load balancer keeps (nginx 75 s, cloud load balancers 350 s to
//     1 hour) and than a connection pool's usual idle time (10 to 30
//     minutes), so a transparent proxy breaks nothing that works without
//     it; a peer that vanished without a FIN is found sooner, by TCP
//     keep-alive (Go's 15 s probes). There is deliberately no timeout
//     on the client's first byte: in SMTP, SSH, FTP, POP3, IMAP and the
//     MySQL protocol the server speaks first and the client stays silent
//     until it has, so idleness counts data either way instead.
func DefaultLimits() Limits {
	return Limits{
		ConnsPerPort:   4096,
		ConnsPerSource: 256,
		FlowsPerSource: 256,
		IdleTimeout:    time.Hour,
	}
}

// withDefaults fills l's zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.ConnsPerPort == 0 {
		l.ConnsPerPort = d.ConnsPerPort
	}
	if l.ConnsPerSource == 0 {
		l.ConnsPerSource = d.ConnsPerSource
	}
	if l.FlowsPerSource == 0 {
		l.FlowsPerSource = d.FlowsPerSource
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	return l
}

// Check reports a limit that is negative or that a per-source cap above
// its port's makes meaningless.
func (l Limits) Check() error {
	port := l.ConnsPerPort
	l = l.withDefaults()
	l.ConnsPerPort = port
	switch {
	case l.ConnsPerPort < 0, l.ConnsPerSource < 0, l.FlowsPerSource < 0, l.IdleTimeout < 0:
		return errors.New("publish limits must not be negative")
	case l.ConnsPerPort > 0 && l.ConnsPerSource > l.ConnsPerPort:
		return fmt.Errorf("%d TCP connections per source is more than the %d of a whole port; lower it or raise the port's", l.ConnsPerSource, l.ConnsPerPort)
	case l.IdleTimeout < time.Second:
		return fmt.Errorf("idle timeout %v: must be at least 1s", l.IdleTimeout)
	}
	return nil
}

// PortConns is the ConnsPerPort a zero one stands for with a descriptor
// budget of budget: 4096, or a quarter of the connections the budget
// holds when that is less, at least 64. A daemon whose limit could not be
// raised (20,000 descriptors, a budget of 17,500, 2,916 connections)
// then lets one port take 729, so that a flood of one port from many
// sources leaves three quarters of the budget to the other published
// ports and the DNS servers.
func PortConns(budget int) int {
	return min(DefaultLimits().ConnsPerPort, max(budget/connFDs/4, 64))
}

// configured are the Limits Start gives every Proxy; nil means
// DefaultLimits.
var configured atomic.Pointer[Limits]

// SetLimits sets the limits of the Proxies Start starts from now on. The
// daemon calls it once, from its command line, before it starts any.
func SetLimits(l Limits) error {
	if err := l.Check(); err != nil {
		return err
	}
	port := l.ConnsPerPort
	l = l.withDefaults()
	// Left to Start, which knows the budget.
	l.ConnsPerPort = port
	configured.Store(&l)
	return nil
}

// current are the limits Start applies now.
func current() Limits {
	if l := configured.Load(); l != nil {
		return *l
	}
	l := DefaultLimits()
	l.ConnsPerPort = 0
	return l
}

// connFDs is what one proxied TCP connection holds: the client's and the
// target's sockets, and while each direction waits in splice(2), a pipe
// of two descriptors per direction.
const connFDs = 6

// flowFDs is what one UDP flow holds: its connected socket.
const flowFDs = 1

// reason is why a new connection or flow was turned away.
type reason int

const (
	// refusedPort: the port has its ConnsPerPort connections or
	// maxFlows flows.
	refusedPort reason = iota
	// refusedSource: the client's source has ConnsPerSource connections
	// or FlowsPerSource flows.
	refusedSource
	// refusedDescriptors: the daemon's budget of descriptors for outside
	// work (fdlimit) is spent.
	refusedDescriptors
	numReasons
)

// String is the reason's key in Stats.Refused.
func (r reason) String() string {
	switch r {
	case refusedPort:
		return "port_limit"
	case refusedSource:
		return "source_limit"
	case refusedDescriptors:
		return "descriptors"
	}
	return "unknown"
}

func (r reason) message() string {
	switch r {
	case refusedPort:
		return "published port at its limit; refusing new clients"
	case refusedSource:
		return "source at its limit on this published port; refusing its new connections"
	case refusedDescriptors:
		return "daemon's descriptor budget spent; refusing new clients of published ports"
	}
	return "refusing"
}

// logEvery spaces out the warnings of one reason on one Proxy: a flood
// of refusals writes one line per 10 s, with how many it stands for.
const logEvery = 10 * time.Second

// refusals counts and logs turned-away clients of one Proxy.
type refusals struct {
	count [numReasons]atomic.Uint64
	// mu guards last and unlogged.
	mu       sync.Mutex
	last     [numReasons]time.Time
	unlogged [numReasons]uint64
}

// add counts a refusal of client for r and logs it unless r was logged
// less than logEvery ago.
func (rf *refusals) add(log *slog.Logger, r reason, client netip.AddrPort, limit int) {
	rf.count[r].Add(1)
	now := time.Now()
	rf.mu.Lock()
	rf.unlogged[r]++
	if !rf.last[r].IsZero() && now.Sub(rf.last[r]) < logEvery {
		rf.mu.Unlock()
		return
	}
	n := rf.unlogged[r]
	rf.last[r], rf.unlogged[r] = now, 0
	rf.mu.Unlock()
	log.Warn(r.message(), "reason", r.String(), "client", client.String(), "limit", limit, "refused", n, "per", logEvery)
}

// snapshot is the counts by reason, leaving out zeros; nil when none.
func (rf *refusals) snapshot() map[string]uint64 {
	var m map[string]uint64
	for r := range numReasons {
		if n := rf.count[r].Load(); n > 0 {
			if m == nil {
				m = make(map[string]uint64, int(numReasons))
			}
			m[r.String()] = n
		}
	}
	return m
}

// sourceOf is what the per-source caps count by: an IPv4 address, or the
// /64 of an IPv6 one.
func sourceOf(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() {
		return a
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a
	}
	return p.Addr()
}

// admitLocked takes a place for a new connection or flow of client:
// under the port's cap perPort (open are open now), the source's cap
// perSource and the descriptor budget (fds). It returns the source to
// give back to releaseLocked, or else why not and the limit that was
// hit, for refuse. p.mu must be held.
func (p *Proxy) admitLocked(client netip.AddrPort, open, perPort, perSource, fds int) (src netip.Addr, r reason, limit int, ok bool) {
	src = sourceOf(client.Addr())
	switch {
	case open >= perPort:
		return src, refusedPort, perPort, false
	case p.sources[src] >= perSource:
		return src, refusedSource, perSource, false
	case !p.budget.Acquire(fds):
		return src, refusedDescriptors, p.budget.Limit(), false
	}
	p.sources[src]++
	return src, 0, 0, true
}

// refuse counts and logs a client turned away for r.
func (p *Proxy) refuse(r reason, client netip.AddrPort, limit int) {
	p.refused.add(p.log, r, client, limit)
}

// releaseLocked gives back what admitLocked took for src. p.mu must be
// held.
func (p *Proxy) releaseLocked(src netip.Addr, fds int) {
	if n := p.sources[src] - 1; n > 0 {
		p.sources[src] = n
	} else {
		delete(p.sources, src)
	}
	p.budget.Release(fds)
}
