package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultPort is the port the README's examples give --metrics.
const DefaultPort = 9469

// The listener's limits. A scrape is one request of a few tens of
// kilobytes every few seconds; nobody needs more of the listener than a
// pair of Prometheus servers and a person with curl, and whoever reaches
// it (it may face a network) gets no more.
const (
	// maxConns is the most connections open at once: an HA pair of
	// Prometheus servers keeps one each, leaving room for curl. A
	// connection beyond is closed at once and counted, so that a flood
	// holds at most this many goroutines and descriptors of the
	// control plane's reserve.
	maxConns = 16
	// maxScrapes is the most scrapes served at once (promhttp answers
	// 503 beyond): each takes the daemon's lock for a moment and writes
	// every port's series.
	maxScrapes = 4
	// readHeaderTimeout, idleTimeout: a client must send its request
	// within 10 s of connecting, and an idle keep-alive connection is
	// closed after 2 min (Prometheus scrapes every 15 s to 1 min).
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	// writeTimeout covers the wait for the daemon's lock (5 s) and
	// writing the answer.
	writeTimeout   = 30 * time.Second
	maxHeaderBytes = 16 << 10
)

// ParseAddr reads --metrics: IP:PORT, [IPv6]:PORT, or :PORT for every
// address of the host. A host name is refused: it might resolve to an
// address facing a network, and the listener's address should be chosen
// knowingly.
func ParseAddr(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("--metrics %q: want IP:PORT, such as 127.0.0.1:%d or [::1]:%d", s, DefaultPort, DefaultPort)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("--metrics %q: port %q: want a number from 1 to 65535, such as %d", s, port, DefaultPort)
	}
	if host == "" {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(p)), nil
	}
	a, err := netip.ParseAddr(host)
	if err == nil && a.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("--metrics %q: an address with a zone is not supported: give 127.0.0.1:%d, [::1]:%d or a global address of this host", s, DefaultPort, DefaultPort)
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("--metrics %q: %q is not an IP address: give one, such as 127.0.0.1:%d (a name could resolve to an address that faces a network)", s, host, DefaultPort)
	}
	if a.IsMulticast() {
		return netip.AddrPort{}, fmt.Errorf("--metrics %q: %s is a multicast address: give the address of one of this host's interfaces, such as 127.0.0.1", s, a)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// Listen opens the metrics listener on addr (from ParseAddr).
func Listen(addr netip.AddrPort) (*net.TCPListener, error) {
	network := "tcp"
	if addr.Addr().Is4() {
		network = "tcp4"
	}
	ln, err := net.ListenTCP(network, net.TCPAddrFromAddrPort(addr))
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("--metrics %s: the port is in use by another program (or another tapswitchd); choose another port", addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, fmt.Errorf("--metrics %s: no interface of this host has that address; use 127.0.0.1 or an address of this host", addr)
	case err != nil:
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	return ln, nil
}

// Loopback reports whether addr can be reached only from this host.
func Loopback(addr netip.AddrPort) bool { return addr.Addr().IsLoopback() }

// Handler serves the metrics at /metrics, GET or HEAD, and nothing else.
func (m *Metrics) Handler() http.Handler {
	errLog := slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)
	h := promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            errLog,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapes,
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/metrics":
			http.Error(w, "404 not found: tapswitchd serves only /metrics here", http.StatusNotFound)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed: GET /metrics", http.StatusMethodNotAllowed)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// Serve serves the metrics on ln until Shutdown (or Close) of the server
// it returns, which owns ln.
func (m *Metrics) Serve(ln net.Listener) *http.Server {
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	lim := &limitListener{Listener: ln, m: m, max: maxConns}
	go func() {
		if err := srv.Serve(lim); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics listener failed; metrics are no longer served", "addr", ln.Addr(), "err", err)
		}
	}()
	return srv
}

// limitListener closes a connection at once while max are open, counted
// (tapswitch_metrics_refused_connections_total) and logged at most once
// per logEvery.
type limitListener struct {
	net.Listener
	m   *Metrics
	max int
	// mu guards open.
	mu      sync.Mutex
	open    int
	lastLog time.Time
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			l.mu.Unlock()
			return &limitConn{Conn: c, l: l}, nil
		}
		n := l.m.shed.Add(1)
		logIt := time.Since(l.lastLog) >= logEvery
		if logIt {
			l.lastLog = time.Now()
		}
		l.mu.Unlock()
		c.Close()
		if logIt {
			l.m.log.Warn("metrics listener at its connection limit; new connections closed", "limit", l.max, "client", c.RemoteAddr().String(), "refused_connections", n)
		}
	}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
