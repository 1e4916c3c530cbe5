package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tapswitch/tapswitch/internal/fdlimit"
)

// ErrPortInUse reports a host port another socket already holds. Its text
// is the kernel's, so the message reads "host port 8080/tcp is already in
// use (address already in use); choose another".
var ErrPortInUse = errors.New("address already in use")

var _ io.Closer = (*Proxy)(nil)

// limits are a Proxy's tunables. Start uses defaultLimits with the
// Limits SetLimits set and the process's descriptor budget; tests shrink
// them to see expiry and caps without waiting.
type limits struct {
	// Limits are the caps and the idle timeout the daemon's options set;
	// zero fields take DefaultLimits.
	Limits
	// budget is where connections and flows take their descriptors
	// from; nil admits any number (tests that do not look at it).
	budget *fdlimit.Budget
	// dialTimeout bounds connecting to the target, so a client of a
	// container that is gone is turned away in seconds, not after the
	// kernel's SYN retries (minutes).
	dialTimeout time.Duration
	// udpIdle is how long a UDP flow lives without a datagram either
	// way. 30 s outlasts DNS retries and most request/response
	// protocols, and is what conntrack gives an unreplied UDP flow.
	udpIdle time.Duration
	// maxFlows caps live UDP flows. Each holds a socket and a 64 KiB
	// buffer, so 1024 bounds a flood of source addresses to 1024 fds and
	// 64 MiB instead of exhausting the daemon's descriptors.
	maxFlows int
}

// sweepEvery is how often a TCP Proxy looks for connections idle for
// longer than idle: an eighth of it, so a connection is closed at most
// 12.5% late, and no more often than every 50 ms.
func sweepEvery(idle time.Duration) time.Duration {
	return max(idle/8, 50*time.Millisecond)
}

var defaultLimits = limits{
	dialTimeout: 5 * time.Second,
	udpIdle:     30 * time.Second,
	maxFlows:    1024,
}

// Proxy forwards one published port. Its methods are safe for concurrent
// use.
type Proxy struct {
	// m is what is published.
	m Mapping
	// target is the container's address and TargetPort.
	target netip.AddrPort
	// log carries the mapping and target on every record.
	log *slog.Logger
	// lim are the tunables.
	lim limits
	// epoch is the zero of the monotonic clock UDP flows stamp their
	// last activity with.
	epoch time.Time

	// ctx is cancelled by Close, to abort dials in flight and backoff
	// sleeps.
	ctx    context.Context
	cancel context.CancelFunc

	// tcp is the listener of a tcp Proxy; nil for udp.
	tcp *net.TCPListener
	// udp is the socket of a udp Proxy; nil for tcp.
	udp *net.UDPConn
	// pktinfo is set when udp listens on a wildcard address and the
	// kernel reports each datagram's destination, so that replies leave
	// from the address the client sent to.
	pktinfo bool

	// wg counts the goroutines Close waits for.
	wg sync.WaitGroup

	// budget is lim.budget, what connections and flows take their
	// descriptors from.
	budget *fdlimit.Budget

	// mu guards closed, conns, flows and sources.
	mu sync.Mutex
	// closed is set by Close; nothing new is tracked after it.
	closed bool
	// conns are the open TCP connections, for Close and the idle sweep.
	conns map[*proxied]struct{}
	// flows are the live UDP flows by client address.
	flows map[netip.AddrPort]*udpFlow
	// sources counts the open connections or live flows by source
	// (sourceOf), for Limits.ConnsPerSource and FlowsPerSource.
	sources map[netip.Addr]int

	// refused counts and logs clients turned away by a limit.
	refused refusals

	// stats are the counters Stats reports.
	stats struct {
		active, total, failed, dropped, idle atomic.Int64
		toTarget, toClient                   atomic.Uint64
	}

	closeOnce sync.Once
	closeErr  error
}

// Stats are a Proxy's counters since Start.
type Stats struct {
	// Active is the number of open TCP connections or live UDP flows.
	Active int64 `json:"active"`
	// Total counts TCP connections accepted or UDP flows opened.
	Total int64 `json:"total"`
	// Failed counts TCP connections turned away because the target could
	// not be reached, and UDP flows that could not open a socket.
	Failed int64 `json:"failed"`
	// Dropped counts UDP datagrams dropped: from new clients turned away
	// (see Refused), or that could not be sent on.
	Dropped int64 `json:"dropped"`
	// Refused counts new TCP connections reset, and datagrams of new UDP
	// clients dropped, because a limit was reached, by reason:
	// "port_limit" (the port's cap), "source_limit" (the source's cap
	// on this port), "descriptors" (the daemon's descriptor budget for
	// outside work). Reasons with a zero count are omitted.
	Refused map[string]uint64 `json:"refused,omitempty"`
	// IdleClosed counts TCP connections closed after Limits.IdleTimeout
	// without data either way.
	IdleClosed int64 `json:"idle_closed"`
	// BytesToTarget and BytesToClient count payload bytes each way. TCP
	// bytes are added when a direction ends, because the kernel splices
	// them without passing them through the daemon.
	BytesToTarget uint64 `json:"bytes_to_target"`
	BytesToClient uint64 `json:"bytes_to_client"`
}

// Start listens on m's host address and port and forwards to port
// m.TargetPort of target until Close. A zero m.HostPort lets the kernel
// choose one; Addr reports it. A nil log discards. When the host port is
// taken the error wraps ErrPortInUse.
//
// New connections and flows are bounded by the Limits last given to
// SetLimits and take their descriptors from fdlimit.Process().
func Start(m Mapping, target netip.Addr, log *slog.Logger) (*Proxy, error) {
	lim := defaultLimits
	lim.Limits = current()
	lim.budget = fdlimit.Process()
	if lim.ConnsPerPort == 0 {
		lim.ConnsPerPort = PortConns(lim.budget.Limit())
	}
	return start(m, target, log, lim)
}

func start(m Mapping, target netip.Addr, log *slog.Logger, lim limits) (*Proxy, error) {
	return startOn(m, target, log, lim, nil)
}

// startOn is start on sock, a socket handed over already bound (see
// Adopt), or on a new one when sock is nil.
func startOn(m Mapping, target netip.Addr, log *slog.Logger, lim limits, sock *os.File) (*Proxy, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	target = target.Unmap()
	if !target.IsValid() || target.IsUnspecified() || target.IsMulticast() {
		return nil, fmt.Errorf("publish %v: target %v is not a unicast address; give the container's address", m, target)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim.Limits = lim.Limits.withDefaults()
	p := &Proxy{
		m:       m,
		target:  netip.AddrPortFrom(target, m.TargetPort),
		lim:     lim,
		epoch:   time.Now(),
		budget:  lim.budget,
		conns:   make(map[*proxied]struct{}),
		flows:   make(map[netip.AddrPort]*udpFlow),
		sources: make(map[netip.Addr]int),
	}
	p.log = log.With("publish", m.String(), "target", p.target.String())

	network, laddr := m.Proto, netip.AddrPortFrom(m.HostIP, m.HostPort)
	switch {
	case !m.HostIP.IsValid():
		// Left as "tcp"/"udp" with no address, Go listens on [::]
		// with IPV6_V6ONLY off: IPv4 and IPv6 on one socket.
	case m.HostIP.Unmap().Is4():
		// Named, so that 0.0.0.0 means IPv4 only rather than Go's
		// dual-stack reading of any wildcard.
		network += "4"
	default:
		network += "6"
	}

	var err error
	if sock != nil {
		err = p.adoptSocket(sock)
	} else if m.Proto == "tcp" {
		a := &net.TCPAddr{Port: int(m.HostPort)}
		if m.HostIP.IsValid() {
			a = net.TCPAddrFromAddrPort(laddr)
		}
		p.tcp, err = net.ListenTCP(network, a)
	} else {
		a := &net.UDPAddr{Port: int(m.HostPort)}
		if m.HostIP.IsValid() {
			a = net.UDPAddrFromAddrPort(laddr)
		}
		p.udp, err = net.ListenUDP(network, a)
	}
	if err != nil {
		return nil, listenError(m, err)
	}

	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	if p.tcp != nil {
		go p.serveTCP()
		p.wg.Add(1)
		go p.sweepIdle()
	} else {
		if !m.HostIP.IsValid() || m.HostIP.IsUnspecified() {
			if p.pktinfo, err = enablePktinfo(p.udp); err != nil {
				p.log.Warn("replies to UDP clients may come from another host address", "err", err)
			}
		}
		go p.serveUDP()
	}
	p.log.Debug("published", "addr", p.Addr().String())
	return p, nil
}

// listenError says what to do about a failed listen.
func listenError(m Mapping, err error) error {
	var errno syscall.Errno
	errors.As(err, &errno)
	hp := m.host() + "/" + m.Proto
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("host port %s is already in use (%w); choose another", hp, ErrPortInUse)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("host port %s: %v is not an address of this host (%w); give one that is, or leave it out", hp, m.HostIP, errno)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("host port %s: %w; ports below 1024 need CAP_NET_BIND_SERVICE", hp, errno)
	default:
		return fmt.Errorf("host port %s: %w", hp, err)
	}
}

// Addr is the address the Proxy listens on.
func (p *Proxy) Addr() net.Addr {
	if p.tcp != nil {
		return p.tcp.Addr()
	}
	return p.udp.LocalAddr()
}

// Stats returns the Proxy's counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Active:        p.stats.active.Load(),
		Total:         p.stats.total.Load(),
		Failed:        p.stats.failed.Load(),
		Dropped:       p.stats.dropped.Load(),
		Refused:       p.refused.snapshot(),
		IdleClosed:    p.stats.idle.Load(),
		BytesToTarget: p.stats.toTarget.Load(),
		BytesToClient: p.stats.toClient.Load(),
	}
}

// Close stops listening, closes every connection and flow, and returns
// once all of the Proxy's goroutines have. The host port is free again
// when it returns.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		p.mu.Lock()
		p.closed = true
		conns := make([]*proxied, 0, len(p.conns))
		for c := range p.conns {
			conns = append(conns, c)
		}
		flows := make([]*udpFlow, 0, len(p.flows))
		for _, f := range p.flows {
			flows = append(flows, f)
		}
		p.mu.Unlock()

		if p.tcp != nil {
			p.closeErr = p.tcp.Close()
		} else {
			p.closeErr = p.udp.Close()
		}
		for _, c := range conns {
			c.close()
		}
		for _, f := range flows {
			f.conn.Close()
		}
		p.wg.Wait()
		p.log.Debug("unpublished")
	})
	return p.closeErr
}

// backoff spaces out retries of a socket call that keeps failing (EMFILE
// on accept leaves the connection queued, so an immediate retry spins).
// Like net/http's Server: 5 ms, doubling, at most 1 s.
type backoff struct {
	d time.Duration
}

func (b *backoff) next() time.Duration {
	b.d = min(max(2*b.d, 5*time.Millisecond), time.Second)
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

// sleep waits d and reports false when Close interrupted it.
func (p *Proxy) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Mapping is what p publishes.
func (p *Proxy) Mapping() Mapping { return p.m }
