package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/tapswitch/tapswitch/internal/fdlimit"
)

// udpSink is a udpWriter that keeps the answers by destination.
type udpSink struct {
	mu  sync.Mutex
	got map[netip.AddrPort][]*mdns.Msg
}

func newUDPSink() *udpSink {
	return &udpSink{got: make(map[netip.AddrPort][]*mdns.Msg)}
}

func (w *udpSink) WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	m := new(mdns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, fmt.Errorf("answer does not parse: %w", err)
	}
	w.mu.Lock()
	w.got[dst] = append(w.got[dst], m)
	w.mu.Unlock()
	return len(b), nil
}

func (w *udpSink) answers(dst netip.AddrPort) []*mdns.Msg {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got[dst])
}

func packQuery(tb testing.TB, id uint16, name string, qtype uint16) []byte {
	tb.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		tb.Fatalf("pack query %s: %v", name, err)
	}
	return b
}

// guardServer is a Server of network front (10.20.0.0/24, gateway
// 10.20.0.1 on interface index 7) that is not listening: tests hand it
// datagrams through serveUDPPacket. Its clock stands still unless the test
// moves *now.
func guardServer(tb testing.TB, cfg Config) (*Server, *time.Time) {
	tb.Helper()
	if cfg.Records == nil {
		cfg.Records = frontRecords(tb)
	}
	cfg.Addr = netip.MustParseAddrPort("10.20.0.1:53")
	cfg.Subnets = []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")}
	cfg.Interface = "gw-front"
	s := NewServer(cfg)
	s.ifindex = 7
	now := time.Unix(1_000_000, 0)
	s.now = func() time.Time { return now }
	tb.Cleanup(func() { s.Close() })
	return s, &now
}

func TestQueriesFromOutsideTheNetworkUnanswered(t *testing.T) {
	s, _ := guardServer(t, Config{})
	port := netip.MustParseAddrPort("10.20.0.2:40000")
	tests := []struct {
		name    string
		src     netip.AddrPort
		ifindex int
		answer  bool
		counter func(Stats) uint64
	}{
		{"port of the network", port, 7, true, func(st Stats) uint64 { return st.Answered }},
		{"port, IPv4-mapped", netip.MustParseAddrPort("[::ffff:10.20.0.2]:40000"), 7, true, func(st Stats) uint64 { return st.Answered }},
		{"other network on its own gateway", netip.MustParseAddrPort("10.30.0.2:40000"), 8, false, func(st Stats) uint64 { return st.RefusedInterface }},
		{"address of the subnet on another interface", port, 8, false, func(st Stats) uint64 { return st.RefusedInterface }},
		{"interface unknown", port, -1, false, func(st Stats) uint64 { return st.RefusedInterface }},
		{"host, masqueraded", netip.MustParseAddrPort("192.0.2.2:40000"), 7, false, func(st Stats) uint64 { return st.RefusedSource }},
		{"host, from the gateway address", netip.MustParseAddrPort("10.20.0.1:40000"), 7, false, func(st Stats) uint64 { return st.RefusedSource }},
		{"forged source outside the subnet", netip.MustParseAddrPort("198.51.100.7:53"), 7, false, func(st Stats) uint64 { return st.RefusedSource }},
		{"IPv6 source", netip.MustParseAddrPort("[fd00:20::2]:40000"), 7, false, func(st Stats) uint64 { return st.RefusedSource }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newUDPSink()
			before := tt.counter(s.Stats())
			s.serveUDPPacket(w, packQuery(t, uint16(i), "web.", mdns.TypeA), tt.src, tt.ifindex)
			got := w.answers(tt.src)
			if tt.answer != (len(got) == 1) {
				t.Fatalf("query A web. from %v on interface %d: %d answers, want answered %v", tt.src, tt.ifindex, len(got), tt.answer)
			}
			if d := tt.counter(s.Stats()) - before; d != 1 {
				t.Fatalf("query A web. from %v on interface %d: counter moved by %d, want 1 (%+v)", tt.src, tt.ifindex, d, s.Stats())
			}
		})
	}
}

func TestClientAllowed(t *testing.T) {
	sub := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")}
	tests := []struct {
		name string
		cfg  Config
		src  string
		want bool
	}{
		{"in subnet", Config{Subnets: sub}, "10.20.0.9", true},
		{"outside subnet", Config{Subnets: sub}, "10.21.0.9", false},
		{"no subnets, no clients", Config{}, "10.20.0.9", false},
		{"clients override subnets", Config{Subnets: sub, Clients: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "10.20.0.9", false},
		{"gateway on an interface-bound server", Config{Subnets: sub, Addr: netip.MustParseAddrPort("10.20.0.1:53"), Interface: "gw"}, "10.20.0.1", false},
		{"gateway, server bound to no interface", Config{Subnets: sub, Addr: netip.MustParseAddrPort("10.20.0.1:53")}, "10.20.0.1", true},
		{"zoned", Config{Clients: []netip.Prefix{netip.MustParsePrefix("fe80::/64")}}, "fe80::1%eth0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer(tt.cfg)
			if got := s.clientAllowed(netip.MustParseAddr(tt.src)); got != tt.want {
				t.Fatalf("clientAllowed(%s) = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

func TestRateLimitPerSource(t *testing.T) {
	s, now := guardServer(t, Config{})
	flooder := netip.MustParseAddrPort("10.20.0.2:40000")
	other := netip.MustParseAddrPort("10.20.0.3:40000")
	w := newUDPSink()
	const flood = 10 * queryBurst
	for i := range flood {
		s.serveUDPPacket(w, packQuery(t, uint16(i), "web.", mdns.TypeA), flooder, 7)
	}
	for i := range 100 {
		s.serveUDPPacket(w, packQuery(t, uint16(i), "web.", mdns.TypeA), other, 7)
	}
	if got := len(w.answers(flooder)); got != queryBurst {
		t.Fatalf("flooder: %d of %d queries answered at one instant, want the burst, %d", got, flood, queryBurst)
	}
	if got := len(w.answers(other)); got != 100 {
		t.Fatalf("neighbour: %d of 100 queries answered during the flood, want all", got)
	}
	if got := s.Stats().RateLimited; got != flood-queryBurst {
		t.Fatalf("RateLimited = %d, want %d", got, flood-queryBurst)
	}
	// A second later the flooder has a second's worth again, no more.
	*now = now.Add(time.Second)
	for i := range flood {
		s.serveUDPPacket(w, packQuery(t, uint16(i), "web.", mdns.TypeA), flooder, 7)
	}
	if got := len(w.answers(flooder)); got != queryBurst+queryRate {
		t.Fatalf("flooder after 1 s: %d answered in all, want %d", got, queryBurst+queryRate)
	}
}

func TestRateLimiterBounded(t *testing.T) {
	const max = 16
	l := newRateLimiter(10, 20, max)
	t0 := time.Unix(1_000_000, 0)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 20, byte(i >> 8), byte(i)}) }

	// The first max sources get buckets of their own.
	for i := range max {
		if !l.allow(addr(i), t0) {
			t.Fatalf("allow(%v) of a new source = false", addr(i))
		}
	}
	// Thousands of new sources share one bucket: 20 get through, and
	// the table does not grow.
	admitted := 0
	for i := max; i < max+5000; i++ {
		if l.allow(addr(i), t0) {
			admitted++
		}
	}
	if admitted != 20 || l.len() != max {
		t.Fatalf("5000 new sources with the table full: %d admitted, table %d; want 20 (one shared burst), %d", admitted, l.len(), max)
	}
	// Known sources keep their own buckets through it.
	if !l.allow(addr(0), t0) {
		t.Fatalf("allow(%v), a known source, after the flood of new ones = false", addr(0))
	}
	// Once the known sources have been idle long enough to be full again,
	// they are forgotten and new sources get buckets.
	t1 := t0.Add(10 * time.Second)
	if !l.allow(addr(max+1), t1) {
		t.Fatalf("allow(%v) after the table's buckets refilled = false", addr(max+1))
	}
	if l.len() != 1 {
		t.Fatalf("table after the sweep: %d buckets, want 1", l.len())
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	b := bucket{tokens: 2, last: t0}
	for i, want := range []bool{true, true, false} {
		if got := b.take(t0, 4, 2); got != want {
			t.Fatalf("take %d at t0 = %v, want %v", i, got, want)
		}
	}
	// 4/s: a token every 250 ms.
	if b.take(t0.Add(200*time.Millisecond), 4, 2) {
		t.Fatal("take after 200 ms = true, want false")
	}
	if !b.take(t0.Add(260*time.Millisecond), 4, 2) {
		t.Fatal("take after 260 ms = false, want true")
	}
	// A clock going back gives nothing.
	if b.take(t0, 4, 2) {
		t.Fatal("take with the clock back = true, want false")
	}
	if !b.full(t0.Add(time.Hour), 4, 2) {
		t.Fatal("full after an hour = false")
	}
}

func TestInternalNetworkDoesNotForward(t *testing.T) {
	up := startUpstream(t, false)
	s := startServer(t, Config{
		Records:   frontRecords(t),
		Subnets:   []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")},
		Upstreams: []netip.AddrPort{up.addr},
		Internal:  true,
	})
	tests := []struct {
		name  string
		qname string
		qtype uint16
		rcode int
		want  []string
	}{
		{"own name", "web.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.20.0.2"}},
		{"own name with domain", "www.front.", mdns.TypeAAAA, mdns.RcodeSuccess, []string{"fd00:20::2"}},
		{"unknown own name", "nope.front.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"reverse of a port", "2.0.20.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeSuccess, []string{"web.front."}},
		{"reverse in the subnet", "99.0.20.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeNameError, nil},
		{"outside name", "example.com.", mdns.TypeA, mdns.RcodeServerFailure, nil},
		{"outside reverse", "8.8.8.8.in-addr.arpa.", mdns.TypePTR, mdns.RcodeServerFailure, nil},
		{"partial reverse", "20.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeServerFailure, nil},
	}
	outside := 0
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				m := new(mdns.Msg)
				m.SetQuestion(tt.qname, tt.qtype)
				m.SetEdns0(1232, false)
				r := exchange(t, network, s.Addr(), m)
				if got := answerValues(r); r.Rcode != tt.rcode || !slices.Equal(got, tt.want) {
					t.Fatalf("query %s %s = %s %v, want %s %v", mdns.TypeToString[tt.qtype], tt.qname,
						mdns.RcodeToString[r.Rcode], got, mdns.RcodeToString[tt.rcode], tt.want)
				}
				if tt.rcode == mdns.RcodeServerFailure {
					outside++
					if !hasEDE(r, mdns.ExtendedErrorCodeProhibited) {
						t.Fatalf("query %s %s: SERVFAIL without the Prohibited extended error: %v", mdns.TypeToString[tt.qtype], tt.qname, r)
					}
				}
			})
		}
	}
	if n := up.queries(); n != 0 {
		t.Fatalf("upstream saw %d queries (%v), want 0: an internal network forwards nothing", n, up.seen())
	}
	if st := s.Stats(); st.NotForwarded != uint64(outside) || st.Forwarded != 0 {
		t.Fatalf("Stats() = %+v, want NotForwarded %d and Forwarded 0", st, outside)
	}
}

func hasEDE(m *mdns.Msg, code uint16) bool {
	opt := m.IsEdns0()
	if opt == nil {
		return false
	}
	for _, o := range opt.Option {
		if e, ok := o.(*mdns.EDNS0_EDE); ok && e.InfoCode == code {
			return true
		}
	}
	return false
}

func TestForwardLimits(t *testing.T) {
	silent := silentUpstream(t)
	t.Run("per source and in all", func(t *testing.T) {
		s, _ := guardServer(t, Config{Upstreams: []netip.AddrPort{silent}, Timeout: time.Minute})
		w := newUDPSink()
		src := func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 20, 0, byte(2 + i)}), 40000)
		}
		// One source asks more than its share of names that hang.
		const extra = 5
		for i := range maxInflightPerSource + extra {
			s.serveUDPPacket(w, packQuery(t, uint16(i), fmt.Sprintf("n%d.example.", i), mdns.TypeA), src(0), 7)
		}
		got := w.answers(src(0))
		if len(got) != extra || s.Stats().RefusedForwards != extra {
			t.Fatalf("%d forwards from one source: %d answered at once, RefusedForwards %d; want %d each", maxInflightPerSource+extra, len(got), s.Stats().RefusedForwards, extra)
		}
		for _, r := range got {
			if r.Rcode != mdns.RcodeServerFailure {
				t.Fatalf("forward over the limit answered %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
			}
		}
		// Others fill the rest of the network's forwards, then are refused.
		for i := 1; i < maxInflight/maxInflightPerSource; i++ {
			for j := range maxInflightPerSource {
				s.serveUDPPacket(w, packQuery(t, uint16(j), fmt.Sprintf("m%d.example.", j), mdns.TypeA), src(i), 7)
			}
		}
		if n, _ := s.forwards.held(); n != maxInflight {
			t.Fatalf("forwards in flight = %d, want %d", n, maxInflight)
		}
		late := src(100)
		s.serveUDPPacket(w, packQuery(t, 1, "late.example.", mdns.TypeA), late, 7)
		if got := w.answers(late); len(got) != 1 || got[0].Rcode != mdns.RcodeServerFailure {
			t.Fatalf("forward with the network's forwards all taken: %v, want SERVFAIL at once", got)
		}
		// Local names are still answered.
		s.serveUDPPacket(w, packQuery(t, 2, "web.", mdns.TypeA), late, 7)
		if got := w.answers(late); len(got) != 2 || got[1].Rcode != mdns.RcodeSuccess {
			t.Fatalf("local name with the forwards all taken: %v, want an answer", got)
		}
		// Close cancels the forwards, which give their slots back.
		s.Close()
		if n, srcs := s.forwards.held(); n != 0 || srcs != 0 {
			t.Fatalf("after Close: %d forwards held by %d sources, want none", n, srcs)
		}
	})
	t.Run("descriptor budget", func(t *testing.T) {
		budget := fdlimit.New(0)
		s, _ := guardServer(t, Config{Upstreams: []netip.AddrPort{silent}, FDs: budget})
		w := newUDPSink()
		src := netip.MustParseAddrPort("10.20.0.2:40000")
		s.serveUDPPacket(w, packQuery(t, 1, "example.com.", mdns.TypeA), src, 7)
		if got := w.answers(src); len(got) != 1 || got[0].Rcode != mdns.RcodeServerFailure {
			t.Fatalf("forward without descriptors: %v, want SERVFAIL at once", got)
		}
		if st := s.Stats(); st.RefusedFDs != 1 || budget.Refused() != 1 {
			t.Fatalf("RefusedFDs %d, budget refused %d; want 1 and 1", st.RefusedFDs, budget.Refused())
		}
		if n, _ := s.forwards.held(); n != 0 {
			t.Fatalf("forward slots held after a refusal: %d", n)
		}
	})
}

// dialFrom connects to addr over TCP from the loopback address src.
func dialFrom(tb testing.TB, src string, addr netip.AddrPort) *net.TCPConn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		tb.Fatalf("dial %v from %s: %v", addr, src, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// tcpQuery sends a query for web. on c and reads the answer.
func tcpQuery(c net.Conn, id uint16) (*mdns.Msg, error) {
	co := &mdns.Conn{Conn: c}
	m := new(mdns.Msg)
	m.SetQuestion("web.", mdns.TypeA)
	m.Id = id
	co.SetDeadline(time.Now().Add(10 * time.Second))
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	return co.ReadMsg()
}

// refused reports whether a connection from src to addr is refused: reset
// as it is made, or closed by the server before it answers anything.
func refused(tb testing.TB, src string, addr netip.AddrPort) error {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr.String())
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dial: %w, want a reset or a connection closed", err)
	}
	defer c.Close()
	return closedByServer(c)
}

// closedByServer reports whether the server closed c: a read gets EOF or
// a reset within 10 s.
func closedByServer(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	switch {
	case err == nil:
		return errors.New("read data, want the connection closed")
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("still open after 10 s")
	}
	return fmt.Errorf("read: %w, want EOF or a reset", err)
}

func TestTCPLimits(t *testing.T) {
	t.Run("per source", func(t *testing.T) {
		s := startServer(t, Config{Records: frontRecords(t)})
		var conns []*net.TCPConn
		for range tcpMaxConnsPerSource {
			conns = append(conns, dialFrom(t, "127.0.0.2", s.Addr()))
		}
		// Each holds its slot once the server has accepted it.
		for i, c := range conns {
			if r, err := tcpQuery(c, uint16(i)); err != nil || r.Rcode != mdns.RcodeSuccess {
				t.Fatalf("query on connection %d of %d: %v, %v", i+1, tcpMaxConnsPerSource, r, err)
			}
		}
		if err := refused(t, "127.0.0.2", s.Addr()); err != nil {
			t.Fatalf("connection %d from one source: %v", tcpMaxConnsPerSource+1, err)
		}
		if got := s.Stats().RefusedTCP; got != 1 {
			t.Fatalf("RefusedTCP = %d, want 1", got)
		}
		// Another source is served meanwhile.
		if r, err := tcpQuery(dialFrom(t, "127.0.0.3", s.Addr()), 1); err != nil || r.Rcode != mdns.RcodeSuccess {
			t.Fatalf("query from another source while the first is at its limit: %v, %v", r, err)
		}
		// A connection closed gives its slot back.
		conns[0].Close()
		waitFor(t, "the slot of a closed connection back", func() bool {
			// The first source's others, and the second source's one.
			n, _ := s.conns.held()
			return n == tcpMaxConnsPerSource-1+1
		})
		if r, err := tcpQuery(dialFrom(t, "127.0.0.2", s.Addr()), 2); err != nil || r.Rcode != mdns.RcodeSuccess {
			t.Fatalf("query after a connection was closed: %v, %v", r, err)
		}
	})
	t.Run("in all", func(t *testing.T) {
		s := startServer(t, Config{Records: frontRecords(t)})
		for i := range tcpMaxConns / tcpMaxConnsPerSource {
			for j := range tcpMaxConnsPerSource {
				c := dialFrom(t, fmt.Sprintf("127.0.1.%d", i+1), s.Addr())
				if _, err := tcpQuery(c, uint16(j)); err != nil {
					t.Fatalf("query on connection %d of source %d: %v", j, i, err)
				}
			}
		}
		if err := refused(t, "127.0.2.1", s.Addr()); err != nil {
			t.Fatalf("connection %d to the server: %v", tcpMaxConns+1, err)
		}
		if got := s.Stats().RefusedTCP; got != 1 {
			t.Fatalf("RefusedTCP = %d, want 1", got)
		}
	})
	t.Run("queries per connection", func(t *testing.T) {
		s := startServer(t, Config{Records: frontRecords(t)})
		c := dialFrom(t, "127.0.0.2", s.Addr())
		for i := range tcpMaxQueries {
			if _, err := tcpQuery(c, uint16(i)); err != nil {
				t.Fatalf("query %d of %d on one connection: %v", i+1, tcpMaxQueries, err)
			}
		}
		if r, err := tcpQuery(c, 0); err == nil {
			t.Fatalf("query %d on one connection answered %v, want the connection closed", tcpMaxQueries+1, r)
		}
	})
	t.Run("idle connection closed", func(t *testing.T) {
		s := startServer(t, Config{Records: frontRecords(t)})
		c := dialFrom(t, "127.0.0.2", s.Addr())
		start := time.Now()
		if err := closedByServer(c); err != nil {
			t.Fatalf("connection that sends nothing: %v", err)
		}
		t.Logf("closed after %v (read timeout %v)", time.Since(start).Round(time.Millisecond), tcpReadTimeout)
		waitFor(t, "the idle connection's slot back", func() bool { n, _ := s.conns.held(); return n == 0 })
	})
	t.Run("source outside the network", func(t *testing.T) {
		s := startServer(t, Config{Records: frontRecords(t), Clients: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
		if err := refused(t, "127.0.0.3", s.Addr()); err != nil {
			t.Fatalf("connection from outside the clients: %v", err)
		}
		if _, err := tcpQuery(dialFrom(t, "127.0.0.2", s.Addr()), 1); err != nil {
			t.Fatalf("query from a client: %v", err)
		}
		// The reply is counted once written: the client may read it
		// first.
		waitFor(t, "the answer counted", func() bool { return s.Stats().Answered >= 1 })
		if st := s.Stats(); st.RefusedSource != 1 || st.Answered != 1 {
			t.Fatalf("Stats() = %+v, want RefusedSource 1, Answered 1", st)
		}
	})
	t.Run("descriptor budget", func(t *testing.T) {
		budget := fdlimit.New(2)
		s := startServer(t, Config{Records: frontRecords(t), FDs: budget})
		a, b := dialFrom(t, "127.0.0.2", s.Addr()), dialFrom(t, "127.0.0.3", s.Addr())
		for _, c := range []net.Conn{a, b} {
			if _, err := tcpQuery(c, 1); err != nil {
				t.Fatalf("query within the budget: %v", err)
			}
		}
		if err := refused(t, "127.0.0.4", s.Addr()); err != nil {
			t.Fatalf("connection beyond the descriptor budget: %v", err)
		}
		if st := s.Stats(); st.RefusedFDs != 1 || budget.Used() != 2 {
			t.Fatalf("RefusedFDs %d, budget used %d; want 1 and 2", st.RefusedFDs, budget.Used())
		}
		a.Close()
		b.Close()
		waitFor(t, "the descriptors back in the budget", func() bool { return budget.Used() == 0 })
	})
}

// waitFor polls cond for up to 10 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			tb.Fatalf("waiting for %s: not after 10 s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1_000_000, 0)
	if _, ok := l.due(refusedRate, t0); !ok {
		t.Fatal("first refusal not logged")
	}
	for i := range 1000 {
		if _, ok := l.due(refusedRate, t0.Add(time.Duration(i)*time.Millisecond)); ok {
			t.Fatalf("refusal %d within %v of the last line logged", i, logEvery)
		}
	}
	if _, ok := l.due(refusedSource, t0); !ok {
		t.Fatal("first refusal of another reason not logged")
	}
	n, ok := l.due(refusedRate, t0.Add(logEvery))
	if !ok || n != 1000 {
		t.Fatalf("due after %v = %d, %v; want 1000 unlogged, true", logEvery, n, ok)
	}
}

func TestPktinfoIfindex(t *testing.T) {
	// A real datagram over loopback carries lo's index.
	pc, _, ln, err := listen(netip.MustParseAddrPort("127.0.0.1:0"), "")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer pc.Close()
	defer ln.Close()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 16), make([]byte, oobSize)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, oobn, _, _, err := pc.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no interface lo: %v", err)
	}
	if got, ok := pktinfoIfindex(oob[:oobn]); !ok || got != lo.Index {
		t.Fatalf("pktinfoIfindex = %d, %v; want %d (lo), true", got, ok, lo.Index)
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, make([]byte, 64)} {
		if got, ok := pktinfoIfindex(bad); ok {
			t.Fatalf("pktinfoIfindex(%v) = %d, true; want false", bad, got)
		}
	}
}
