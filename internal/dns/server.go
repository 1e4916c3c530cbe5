package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/tapswitch/tapswitch/internal/fdlimit"
)

var (
	// ErrAddrNotAvailable reports a listen address that is not on this host,
	// usually a gateway TAP that is not up yet or has lost its address.
	ErrAddrNotAvailable = errors.New("dns: address not on this host")
	// ErrAddrInUse reports a listen address whose port another socket holds.
	ErrAddrInUse = errors.New("dns: address already in use")
	// ErrConfig reports a Config that cannot be served.
	ErrConfig = errors.New("dns: invalid config")
	// ErrStarted reports a second Start, or a Start after Close.
	ErrStarted = errors.New("dns: server already started")
)

// DefaultTimeout bounds the forwarding of one query across all upstreams
// when Config.Timeout is zero. It is the glibc resolver's per-try timeout
// halved, so that a container's resolver, which retries after 5 s, gets
// SERVFAIL before giving up on us.
const DefaultTimeout = 2 * time.Second

// Config configures a Server.
type Config struct {
	// Addr is where to listen on UDP and TCP, normally gateway:53. Port 0
	// picks one free port for both (tests).
	Addr netip.AddrPort
	// Domain is the network name, so that NAME.DOMAIN resolves. Empty means
	// Records' domain; otherwise it must equal it.
	Domain string
	// Records holds the network's names. Required.
	Records *Records
	// Subnets are the network's prefixes. A PTR query for an address in
	// them that no port holds gets NXDOMAIN instead of being forwarded,
	// since the upstreams cannot know this network's addresses. Optional.
	Subnets []netip.Prefix
	// Upstreams are the resolvers that non-local queries go to, tried in
	// order. Loopback addresses are fine: the daemon forwards from the host
	// namespace, where the host's stub resolver is reachable even though
	// the containers cannot reach it. Empty means every forwarded query
	// answers SERVFAIL.
	Upstreams []netip.AddrPort
	// Logger receives start, stop and per-query failures (at debug level).
	// Nil discards.
	Logger *slog.Logger
	// Timeout bounds the forwarding of one query across all upstreams.
	// Zero means DefaultTimeout.
	Timeout time.Duration

	// Clients are the prefixes the server answers queries from; a query
	// from any other address gets no answer. Empty means Subnets, and
	// with neither the server answers no one.
	Clients []netip.Prefix
	// Interface is the network's gateway interface. When set, the server
	// answers only what arrives on it: its sockets are bound to it
	// (SO_BINDTODEVICE), so that the kernel never queues on them what
	// comes in on other interfaces (other networks, routed hosts) and no
	// flood from there crowds the network's own queries out; TCP
	// connections from there are refused by the kernel as on a closed
	// port. A second UDP socket on the address, bound to no interface,
	// takes the datagrams from there, to count them and drop them
	// unanswered. The host's own queries are refused by their source
	// (clientAllowed). Empty serves every interface (tests).
	Interface string
	// Peers, when set, returns the records of the other networks the
	// client at asker is also on (through another interface of its
	// namespace): their names resolve for it here too, as NAME and as
	// NAME.NETWORK, as Docker's embedded resolver answers a container
	// the names of every network it is on. Names of a network the asker
	// is not on stay unknown to it. It is called for every query that
	// its own network does not answer, on the server's goroutines, so it
	// must be quick and must not wait on what may wait on the server.
	Peers func(asker netip.Addr) []*Records
	// Internal is set for a network that reaches nothing outside itself:
	// names that are not its own are never forwarded (see notForwarded).
	Internal bool
	// FDs is the descriptor budget that forwards and TCP connections take
	// from, normally fdlimit.Process(). Nil sets no limit.
	FDs *fdlimit.Budget
}

// Server is the DNS server of one network. It is started once and closed
// once.
type Server struct {
	cfg     Config
	records *Records
	log     *slog.Logger
	timeout time.Duration

	// ctx is cancelled by Close so that forwards in flight return at once
	// and shutdown does not wait out their timeout.
	ctx    context.Context
	cancel context.CancelFunc

	// upstreams is cfg.Upstreams without the server's own addresses. It is
	// written by NewServer and Start, before any query is served.
	upstreams []netip.AddrPort
	udpClient *mdns.Client
	tcpClient *mdns.Client

	// clients are the prefixes queries are answered from (Config.Clients
	// or Config.Subnets).
	clients []netip.Prefix
	// ifindex is Config.Interface's index, set by Start; 0 admits any.
	ifindex int
	// limiter holds each source's query rate, on the clock now (time.Now
	// but in tests).
	limiter *rateLimiter
	now     func() time.Time
	// forwards bounds concurrent forwards; each holds a goroutine and a
	// socket for up to timeout, and a container must not be able to
	// exhaust the daemon, or its neighbours' share, by flooding names that
	// time out upstream.
	forwards *slots
	// conns bounds the TCP connections.
	conns *slots
	// fds is Config.FDs.
	fds   *fdlimit.Budget
	count counters
	logs  logLimiter

	// mu guards what follows; it is held through Start and Close so the two
	// never interleave.
	mu      sync.Mutex
	started bool
	closed  bool
	addr    netip.AddrPort
	// udp is the listener, sink the socket for datagrams from other
	// interfaces (nil without Config.Interface).
	udp, sink *net.UDPConn
	tcp       *mdns.Server
	done      sync.WaitGroup
}

// maxInflight is the number of forwards in flight per network past which
// new ones answer SERVFAIL at once. A resolver sends a few queries per
// lookup, so this covers hundreds of concurrent lookups; each takes a
// goroutine and a descriptor for up to Timeout.
const maxInflight = 256

// maxInflightPerSource is one source's share of maxInflight: an eighth,
// so that a container flooding names that time out upstream leaves the
// rest to at least seven others, and still 8 to 16 lookups of its own in
// flight.
const maxInflightPerSource = maxInflight / 8

// NewServer returns a Server for cfg. It does not listen until Start.
func NewServer(cfg Config) *Server {
	s := &Server{
		cfg:      cfg,
		records:  cfg.Records,
		log:      cfg.Logger,
		timeout:  cfg.Timeout,
		clients:  cfg.Clients,
		limiter:  newRateLimiter(queryRate, queryBurst, maxSources),
		now:      time.Now,
		forwards: newSlots(maxInflight, maxInflightPerSource),
		conns:    newSlots(tcpMaxConns, tcpMaxConnsPerSource),
		fds:      cfg.FDs,
	}
	if len(s.clients) == 0 {
		s.clients = cfg.Subnets
	}
	if s.records == nil {
		s.records = &Records{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// UDPSize only sizes the read buffer for queries without EDNS, whose
	// answers are 512 bytes at most anyway; a larger buffer turns a
	// misbehaving upstream's oversized answer into a parse, not an error.
	s.udpClient = &mdns.Client{Net: "udp", UDPSize: mdns.DefaultMsgSize, Timeout: s.timeout}
	s.tcpClient = &mdns.Client{Net: "tcp", Timeout: s.timeout}
	s.upstreams = s.filterUpstreams(cfg.Addr, nil)
	return s
}

// Start listens on cfg.Addr, UDP and TCP, and serves until Close.
func (s *Server) Start() (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return ErrStarted
	}
	if !s.cfg.Addr.Addr().IsValid() {
		return fmt.Errorf("%w: no listen address", ErrConfig)
	}
	if s.cfg.Records == nil {
		return fmt.Errorf("%w: no records", ErrConfig)
	}
	if d := s.cfg.Domain; d != "" {
		r, err := NewRecords(d)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if r.Domain() != s.records.Domain() {
			return fmt.Errorf("%w: domain %q differs from the records' %q", ErrConfig, d, s.records.Domain())
		}
	}

	if s.cfg.Interface != "" {
		ifi, err := net.InterfaceByName(s.cfg.Interface)
		if err != nil {
			return fmt.Errorf("%w: gateway interface %q: %w", ErrConfig, s.cfg.Interface, err)
		}
		s.ifindex = ifi.Index
	}
	pc, sink, ln, err := listen(s.cfg.Addr, s.cfg.Interface)
	if err != nil {
		return err
	}
	if err := pc.SetReadBuffer(udpRcvBuf); err != nil {
		s.log.Debug("dns: set receive buffer", "err", err)
	}
	s.addr = netip.AddrPortFrom(s.cfg.Addr.Addr(), uint16(pc.LocalAddr().(*net.UDPAddr).Port))
	var ifAddrs []netip.Addr
	if s.addr.Addr().IsUnspecified() {
		ifAddrs = hostAddrs()
	}
	s.upstreams = s.filterUpstreams(s.addr, ifAddrs)

	s.tcp = &mdns.Server{
		Listener:      &tcpListener{TCPListener: ln, s: s},
		Handler:       mdns.HandlerFunc(s.serveDNS),
		ReadTimeout:   tcpReadTimeout,
		IdleTimeout:   func() time.Duration { return tcpIdleTimeout },
		MaxTCPQueries: tcpMaxQueries,
	}
	if err := s.serve(s.tcp); err != nil {
		pc.Close()
		if sink != nil {
			sink.Close()
		}
		return fmt.Errorf("dns: serve %s: %w", s.addr, err)
	}
	s.udp, s.sink = pc, sink
	s.done.Add(1)
	go s.serveUDP(pc)
	if sink != nil {
		s.done.Add(1)
		go s.drainSink(sink)
	}
	s.started = true
	if len(s.upstreams) == 0 && !s.cfg.Internal {
		s.log.Warn("dns: no upstream resolvers, names outside the network answer SERVFAIL", "addr", s.addr)
	}
	s.log.Info("dns: serving", "addr", s.addr, "domain", s.records.Domain(), "upstreams", s.upstreams,
		"interface", s.cfg.Interface, "internal", s.cfg.Internal, "clients", s.clients)
	return nil
}

// serve runs each server in its own goroutine and returns once all of them
// serve, so that a Close right after Start finds them started and shuts
// them down instead of racing their start. On error it stops them all.
func (s *Server) serve(srvs ...*mdns.Server) error {
	started := make(chan struct{}, len(srvs))
	errc := make(chan error, len(srvs))
	for _, srv := range srvs {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			if err := srv.ActivateAndServe(); err != nil {
				// Before the start this is Start's error; after it, the
				// server has stopped serving and only the log can tell.
				s.log.Error("dns: serve", "addr", s.cfg.Addr, "err", err)
				errc <- err
			}
		}()
	}
	for range srvs {
		select {
		case <-started:
		case err := <-errc:
			s.cancel()
			for _, srv := range srvs {
				srv.Shutdown()
				// A server that failed to start never took ownership of its
				// socket.
				if srv.PacketConn != nil {
					srv.PacketConn.Close()
				}
				if srv.Listener != nil {
					srv.Listener.Close()
				}
			}
			s.done.Wait()
			return err
		}
	}
	return nil
}

// listen opens the UDP and TCP sockets on addr, bound to the interface
// ifname if it is not empty, with the sink for datagrams from elsewhere.
// With port 0 it takes the port UDP got for TCP too, retrying if TCP finds
// it taken.
func listen(addr netip.AddrPort, ifname string) (pc, sink *net.UDPConn, ln *net.TCPListener, err error) {
	const tries = 10
	ctx := context.Background()
	// Both UDP sockets on the address need SO_REUSEADDR; the kernel gives
	// each datagram to the socket bound to its interface first.
	reuse := ifname != ""
	udpLC := net.ListenConfig{Control: sockopts(ifname, reuse)}
	tcpLC := net.ListenConfig{Control: sockopts(ifname, false)}
	for i := 0; ; i++ {
		c, err := udpLC.ListenPacket(ctx, "udp", addr.String())
		if err != nil {
			return nil, nil, nil, listenError(err)
		}
		pc = c.(*net.UDPConn)
		port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
		bound := netip.AddrPortFrom(addr.Addr(), port)
		l, err := tcpLC.Listen(ctx, "tcp", bound.String())
		if err == nil {
			ln = l.(*net.TCPListener)
			if ifname != "" {
				sinkLC := net.ListenConfig{Control: sockopts("", true)}
				sc, err := sinkLC.ListenPacket(ctx, "udp", bound.String())
				if err != nil {
					pc.Close()
					ln.Close()
					return nil, nil, nil, listenError(err)
				}
				sink = sc.(*net.UDPConn)
			}
			return pc, sink, ln, nil
		}
		pc.Close()
		if addr.Port() != 0 || i == tries-1 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, nil, listenError(err)
		}
	}
}

// bindError is a failure to bind a socket to the gateway interface.
type bindError struct {
	ifname string
	err    error
}

func (e *bindError) Error() string {
	return fmt.Sprintf("bind to interface %s: %v", e.ifname, e.err)
}

func (e *bindError) Unwrap() error { return e.err }

// listenError names the two causes an operator can act on.
func listenError(err error) error {
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%w: %w", ErrAddrNotAvailable, err)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w: %w", ErrAddrInUse, err)
	}
	return fmt.Errorf("dns: %w", err)
}

// filterUpstreams drops the upstreams that are this server, so that a
// resolv.conf naming the gateway does not make queries loop through the
// daemon until they time out. When the server listens on the unspecified
// address, every local address on its port is this server.
func (s *Server) filterUpstreams(self netip.AddrPort, ifAddrs []netip.Addr) []netip.AddrPort {
	var out []netip.AddrPort
	for _, u := range s.cfg.Upstreams {
		ua := u.Addr().Unmap()
		if !u.IsValid() || u.Port() == 0 {
			continue
		}
		if u.Port() == self.Port() {
			sa := self.Addr().Unmap()
			if ua.WithZone("") == sa.WithZone("") {
				continue
			}
			if sa.IsUnspecified() && (ua.IsLoopback() || ua.IsUnspecified() || containsAddr(ifAddrs, ua)) {
				continue
			}
		}
		out = append(out, u)
	}
	return out
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	a = a.WithZone("")
	for _, l := range list {
		if l == a {
			return true
		}
	}
	return false
}

// hostAddrs returns the addresses of this namespace's interfaces.
func hostAddrs() []netip.Addr {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, ifa := range ifas {
		if p, err := netip.ParsePrefix(ifa.String()); err == nil {
			out = append(out, p.Addr().Unmap().WithZone(""))
		}
	}
	return out
}

// Addr returns the address the server listens on, with the port it got if
// Config.Addr had port 0. It is the zero AddrPort before Start.
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops the listeners, cancels forwards in flight and waits for the
// handlers to return. Closing a Server that was never started, or twice,
// does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.cancel()
	if !s.started {
		// Forwards handed to serveUDPPacket directly (tests) end with
		// the cancel.
		s.done.Wait()
		return nil
	}
	var errs []error
	if err := s.tcp.Shutdown(); err != nil {
		errs = append(errs, err)
	}
	for _, c := range []*net.UDPConn{s.udp, s.sink} {
		if c != nil {
			if err := c.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.done.Wait()
	s.log.Info("dns: stopped", "addr", s.addr)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dns: close %s: %w", s.addr, err)
	}
	return nil
}
