package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func TestLocalAnswers(t *testing.T) {
	up := startUpstream(t, false)
	s := startServer(t, Config{
		Records:   frontRecords(t),
		Subnets:   []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")},
		Upstreams: []netip.AddrPort{up.addr},
	})

	tests := []struct {
		name  string
		qname string
		qtype uint16
		rcode int
		want  []string
	}{
		{"A", "web.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.20.0.2"}},
		{"AAAA", "web.", mdns.TypeAAAA, mdns.RcodeSuccess, []string{"fd00:20::2"}},
		{"with domain", "web.front.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.20.0.2"}},
		{"mixed case", "WeB.FrOnT.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.20.0.2"}},
		{"alias", "www.front.", mdns.TypeAAAA, mdns.RcodeSuccess, []string{"fd00:20::2"}},
		{"ANY", "web.", mdns.TypeANY, mdns.RcodeSuccess, []string{"10.20.0.2", "fd00:20::2"}},
		{"AAAA of v4-only name is empty", "v4only.front.", mdns.TypeAAAA, mdns.RcodeSuccess, nil},
		{"MX of a name is empty", "web.", mdns.TypeMX, mdns.RcodeSuccess, nil},
		{"domain itself exists", "front.", mdns.TypeA, mdns.RcodeSuccess, nil},
		{"unknown single label", "nope.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"unknown under domain", "nope.front.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"below a name", "x.web.front.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"PTR v4", "2.0.20.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeSuccess, []string{"web.front."}},
		{"PTR v6", reverseName(t, "fd00:20::2"), mdns.TypePTR, mdns.RcodeSuccess, []string{"web.front."}},
		{"PTR unassigned in subnet", "99.0.20.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeNameError, nil},
		{"A of a reverse name", "2.0.20.10.in-addr.arpa.", mdns.TypeA, mdns.RcodeSuccess, nil},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				r := query(t, network, s.Addr(), tt.qname, tt.qtype)
				qt := mdns.TypeToString[tt.qtype]
				if r.Rcode != tt.rcode {
					t.Fatalf("query %s %s rcode = %s, want %s", qt, tt.qname, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
				}
				if got := answerValues(r); !slices.Equal(got, tt.want) {
					t.Fatalf("query %s %s = %v, want %v", qt, tt.qname, got, tt.want)
				}
				if !r.Authoritative {
					t.Fatalf("query %s %s: AA not set on a local answer", qt, tt.qname)
				}
				for _, rr := range r.Answer {
					if rr.Header().Ttl != localTTL || rr.Header().Name != tt.qname {
						t.Fatalf("query %s %s: record %v, want owner %s and TTL %d", qt, tt.qname, rr, tt.qname, localTTL)
					}
				}
				if len(r.Ns) != 0 {
					t.Fatalf("query %s %s: authority %v, want none (no negative caching)", qt, tt.qname, r.Ns)
				}
			})
		}
	}
	if n := up.queries(); n != 0 {
		t.Fatalf("upstream saw %d queries (%v), want 0: local names must not be forwarded", n, up.seen())
	}
}

// reverseName returns the ip6.arpa or in-addr.arpa name of addr.
func reverseName(tb testing.TB, addr string) string {
	tb.Helper()
	n, err := mdns.ReverseAddr(addr)
	if err != nil {
		tb.Fatalf("ReverseAddr(%s) = %v", addr, err)
	}
	return n
}

func TestIsolation(t *testing.T) {
	up := startUpstream(t, false)
	back, err := NewRecords("back")
	if err != nil {
		t.Fatalf("NewRecords(back) = %v", err)
	}
	if err := back.Set("db", nil, []netip.Addr{netip.MustParseAddr("10.30.0.2")}); err != nil {
		t.Fatalf("Set(db) = %v", err)
	}
	s := startServer(t, Config{Records: frontRecords(t), Upstreams: []netip.AddrPort{up.addr}})

	tests := []struct {
		name  string
		qname string
	}{
		{"other network's port", "db."},
		{"other network's port in caps", "DB."},
		{"unknown under own domain", "db.front."},
		{"single label like a TLD", "com."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.queries()
			r := query(t, "udp", s.Addr(), tt.qname, mdns.TypeA)
			if r.Rcode != mdns.RcodeNameError {
				t.Fatalf("query A %s rcode = %s, want NXDOMAIN", tt.qname, mdns.RcodeToString[r.Rcode])
			}
			if n := up.queries() - before; n != 0 {
				t.Fatalf("query A %s reached the upstream %d times, want 0", tt.qname, n)
			}
		})
	}
}

func TestForward(t *testing.T) {
	up := startUpstream(t, false)
	s := startServer(t, Config{
		Records:   frontRecords(t),
		Subnets:   []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")},
		Upstreams: []netip.AddrPort{up.addr},
	})

	tests := []struct {
		name  string
		qname string
		qtype uint16
		want  []string
	}{
		{"A", "example.com.", mdns.TypeA, []string{upstreamAddr.String()}},
		{"other network's FQDN", "db.back.", mdns.TypeA, []string{upstreamAddr.String()}},
		{"PTR outside the network", "8.8.8.8.in-addr.arpa.", mdns.TypePTR, []string{"upstream.example."}},
		{"partial reverse name", "20.10.in-addr.arpa.", mdns.TypePTR, []string{"upstream.example."}},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				before := up.queries()
				r := query(t, network, s.Addr(), tt.qname, tt.qtype)
				qt := mdns.TypeToString[tt.qtype]
				if got := answerValues(r); r.Rcode != mdns.RcodeSuccess || !slices.Equal(got, tt.want) {
					t.Fatalf("query %s %s = %s %v, want NOERROR %v", qt, tt.qname, mdns.RcodeToString[r.Rcode], got, tt.want)
				}
				if n := up.queries() - before; n != 1 {
					t.Fatalf("query %s %s reached the upstream %d times, want 1", qt, tt.qname, n)
				}
				if r.Authoritative {
					t.Fatalf("query %s %s: AA set on a forwarded answer", qt, tt.qname)
				}
			})
		}
	}
}

func TestForwardFailure(t *testing.T) {
	const timeout = 300 * time.Millisecond
	up := startUpstream(t, false)
	tests := []struct {
		name      string
		upstreams []netip.AddrPort
		rcode     int
	}{
		{"no upstreams", nil, mdns.RcodeServerFailure},
		{"silent", []netip.AddrPort{silentUpstream(t)}, mdns.RcodeServerFailure},
		{"two silent", []netip.AddrPort{silentUpstream(t), silentUpstream(t)}, mdns.RcodeServerFailure},
		{"silent then good", []netip.AddrPort{silentUpstream(t), up.addr}, mdns.RcodeSuccess},
		{"refused then good", []netip.AddrPort{closedPort(t), up.addr}, mdns.RcodeSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Config{Records: frontRecords(t), Upstreams: tt.upstreams, Timeout: timeout})
			start := time.Now()
			r := query(t, "udp", s.Addr(), "example.com.", mdns.TypeA)
			elapsed := time.Since(start)
			if r.Rcode != tt.rcode {
				t.Fatalf("query A example.com. rcode = %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
			}
			// Slack for a loaded machine running -race; the point is that
			// the answer does not wait for the client's own timeout.
			if max := timeout + 500*time.Millisecond; elapsed > max {
				t.Fatalf("query A example.com. took %v, want at most %v", elapsed, max)
			}
		})
	}
}

// closedPort returns an address on loopback where nothing listens, by
// taking a port from a socket and closing it: UDP sent there gets ICMP port
// unreachable.
func closedPort(tb testing.TB) netip.AddrPort {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	a := netip.MustParseAddrPort(pc.LocalAddr().String())
	pc.Close()
	return a
}

func TestForwardTruncatedRetriesTCP(t *testing.T) {
	up := startUpstream(t, true)
	s := startServer(t, Config{Records: frontRecords(t), Upstreams: []netip.AddrPort{up.addr}})
	r := query(t, "udp", s.Addr(), "example.com.", mdns.TypeA)
	if got, want := answerValues(r), []string{upstreamAddr.String()}; !slices.Equal(got, want) || r.Truncated {
		t.Fatalf("query A example.com. = %v (TC %v), want %v (TC false)", got, r.Truncated, want)
	}
	if u, tc := up.udpQueries.Load(), up.tcpQueries.Load(); u != 1 || tc != 1 {
		t.Fatalf("upstream saw %d UDP and %d TCP queries, want 1 and 1", u, tc)
	}
}

func TestLocalAnswerTruncatedOverUDP(t *testing.T) {
	r := frontRecords(t)
	var addrs []netip.Addr
	for i := range 64 {
		addrs = append(addrs, netip.MustParseAddr(fmt.Sprintf("fd00:20::%x", i+1)))
	}
	if err := r.Set("big", nil, addrs); err != nil {
		t.Fatalf("Set(big) = %v", err)
	}
	s := startServer(t, Config{Records: r})

	udp := query(t, "udp", s.Addr(), "big.", mdns.TypeAAAA)
	if !udp.Truncated || len(udp.Answer) >= len(addrs) {
		t.Fatalf("query AAAA big. over udp = %d records (TC %v), want fewer than %d and TC", len(udp.Answer), udp.Truncated, len(addrs))
	}
	tcp := query(t, "tcp", s.Addr(), "big.", mdns.TypeAAAA)
	if tcp.Truncated || len(tcp.Answer) != len(addrs) {
		t.Fatalf("query AAAA big. over tcp = %d records (TC %v), want %d", len(tcp.Answer), tcp.Truncated, len(addrs))
	}
}

func TestProtocolErrors(t *testing.T) {
	up := startUpstream(t, false)
	s := startServer(t, Config{Records: frontRecords(t), Upstreams: []netip.AddrPort{up.addr}})

	msg := func(edit func(m *mdns.Msg)) *mdns.Msg {
		m := new(mdns.Msg)
		m.SetQuestion("web.", mdns.TypeA)
		edit(m)
		return m
	}
	tests := []struct {
		name  string
		m     *mdns.Msg
		rcode int
	}{
		{"no question", msg(func(m *mdns.Msg) { m.Question = nil }), mdns.RcodeFormatError},
		{"two questions", msg(func(m *mdns.Msg) {
			m.Question = append(m.Question, mdns.Question{Name: "www.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET})
		}), mdns.RcodeFormatError},
		{"NOTIFY", msg(func(m *mdns.Msg) { m.Opcode = mdns.OpcodeNotify }), mdns.RcodeNotImplemented},
		{"STATUS", msg(func(m *mdns.Msg) { m.Opcode = mdns.OpcodeStatus }), mdns.RcodeNotImplemented},
		{"EDNS version 1", msg(func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
		}), mdns.RcodeBadVers},
		{"AXFR", msg(func(m *mdns.Msg) { m.Question[0].Qtype = mdns.TypeAXFR }), mdns.RcodeRefused},
		{"EDNS query", msg(func(m *mdns.Msg) { m.SetEdns0(4096, true) }), mdns.RcodeSuccess},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				r := exchange(t, network, s.Addr(), tt.m.Copy())
				if r.Rcode != tt.rcode {
					t.Fatalf("query %s rcode = %s, want %s", tt.name, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
				}
				if tt.m.IsEdns0() != nil && r.IsEdns0() == nil {
					t.Fatalf("query %s: EDNS query answered without OPT", tt.name)
				}
			})
		}
	}
	if n := up.queries(); n != 0 {
		t.Fatalf("upstream saw %d queries (%v), want 0", n, up.seen())
	}
}

func TestRecordsUpdatedWhileServing(t *testing.T) {
	r := frontRecords(t)
	s := startServer(t, Config{Records: r})
	addr := netip.MustParseAddr("10.20.0.9")

	// The writer flaps a port while the readers query its alias; every
	// answer must be one of the two states, never a mix.
	var stop atomic.Bool
	var writer sync.WaitGroup
	writer.Go(func() {
		for i := 0; !stop.Load(); i++ {
			if i%2 == 0 {
				if err := r.Set("flap", []string{"flap-alias"}, []netip.Addr{addr}); err != nil {
					t.Errorf("Set(flap) = %v", err)
					return
				}
			} else {
				r.Remove("flap")
			}
		}
	})
	defer func() {
		stop.Store(true)
		writer.Wait()
	}()

	var found, missing atomic.Int64
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			c := &mdns.Client{Net: "udp", Timeout: 5 * time.Second}
			for range 100 {
				m := new(mdns.Msg)
				m.SetQuestion("flap-alias.front.", mdns.TypeA)
				resp, _, err := c.Exchange(m, s.Addr().String())
				if err != nil {
					t.Errorf("query A flap-alias.front.: %v", err)
					return
				}
				switch got := answerValues(resp); {
				case resp.Rcode == mdns.RcodeSuccess && slices.Equal(got, []string{addr.String()}):
					found.Add(1)
				case resp.Rcode == mdns.RcodeNameError && len(got) == 0:
					missing.Add(1)
				default:
					t.Errorf("query A flap-alias.front. = %s %v, want NOERROR [%v] or NXDOMAIN", mdns.RcodeToString[resp.Rcode], got, addr)
				}
				// web never changes and must stay resolvable throughout.
				if got := r.Reverse(netip.MustParseAddr("10.20.0.2")); !slices.Equal(got, []string{"web"}) {
					t.Errorf("Reverse(10.20.0.2) = %v, want [web]", got)
				}
				if got, _ := r.Lookup("web", mdns.TypeA); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.20.0.2")}) {
					t.Errorf("Lookup(web, A) = %v, want [10.20.0.2]", got)
				}
			}
		})
	}
	readers.Wait()
	t.Logf("flap-alias: %d found, %d NXDOMAIN", found.Load(), missing.Load())
}

func TestStartErrors(t *testing.T) {
	takenUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer takenUDP.Close()
	takenTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer takenTCP.Close()

	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"UDP port taken", Config{Addr: netip.MustParseAddrPort(takenUDP.LocalAddr().String()), Records: &Records{}}, ErrAddrInUse},
		{"TCP port taken", Config{Addr: netip.MustParseAddrPort(takenTCP.Addr().String()), Records: &Records{}}, ErrAddrInUse},
		// TEST-NET-1 is on no interface of a test machine.
		{"address not on this host", Config{Addr: netip.MustParseAddrPort("192.0.2.1:0"), Records: &Records{}}, ErrAddrNotAvailable},
		{"no address", Config{Records: &Records{}}, ErrConfig},
		{"no records", Config{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, ErrConfig},
		{"domain mismatch", Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Records: frontRecords(t), Domain: "back"}, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer(tt.cfg)
			err := s.Start()
			defer s.Close()
			if !errors.Is(err, tt.want) {
				t.Fatalf("Start(%v) = %v, want %v", tt.cfg.Addr, err, tt.want)
			}
		})
	}

	// The UDP socket of a Start that failed on TCP must be released.
	tcpPort := netip.MustParseAddrPort(takenTCP.Addr().String())
	pc, err := net.ListenPacket("udp", tcpPort.String())
	if err != nil {
		t.Fatalf("listen udp %v after failed Start: %v, want the port free", tcpPort, err)
	}
	pc.Close()
}

func TestStartCloseLifecycle(t *testing.T) {
	if err := NewServer(Config{}).Close(); err != nil {
		t.Fatalf("Close() before Start = %v, want nil", err)
	}

	s := NewServer(Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Records: frontRecords(t)})
	if err := s.Start(); err != nil {
		t.Fatalf("Start() = %v", err)
	}
	if err := s.Start(); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start() = %v, want %v", err, ErrStarted)
	}
	addr := s.Addr()
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close() = %v, want nil", err)
	}
	if err := s.Start(); !errors.Is(err, ErrStarted) {
		t.Fatalf("Start() after Close = %v, want %v", err, ErrStarted)
	}
	// Both ports are free again.
	pc, err := net.ListenPacket("udp", addr.String())
	if err != nil {
		t.Fatalf("listen udp %v after Close: %v", addr, err)
	}
	pc.Close()
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatalf("listen tcp %v after Close: %v", addr, err)
	}
	ln.Close()
}

func TestCloseCancelsForwards(t *testing.T) {
	s := NewServer(Config{
		Addr:      netip.MustParseAddrPort("127.0.0.1:0"),
		Records:   frontRecords(t),
		Upstreams: []netip.AddrPort{silentUpstream(t)},
		Timeout:   time.Minute,
		Clients:   loopbackClients,
	})
	if err := s.Start(); err != nil {
		t.Fatalf("Start() = %v", err)
	}
	go func() {
		m := new(mdns.Msg)
		m.SetQuestion("example.com.", mdns.TypeA)
		c := &mdns.Client{Net: "udp", Timeout: 5 * time.Second}
		c.Exchange(m, s.Addr().String())
	}()
	// Let the query reach the forwarder.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close() with a forward in flight took %v, want it cancelled", d)
	}
}

func TestSelfUpstreamSkipped(t *testing.T) {
	// Reserve a port, then serve on it with itself as the only upstream.
	self := closedPort(t)
	s := startServer(t, Config{Addr: self, Records: frontRecords(t), Upstreams: []netip.AddrPort{self}, Timeout: 5 * time.Second})
	start := time.Now()
	r := query(t, "udp", s.Addr(), "example.com.", mdns.TypeA)
	if r.Rcode != mdns.RcodeServerFailure || time.Since(start) > time.Second {
		t.Fatalf("query A example.com. with self as upstream = %s after %v, want SERVFAIL at once", mdns.RcodeToString[r.Rcode], time.Since(start))
	}
}

func TestFilterUpstreams(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name    string
		self    netip.AddrPort
		ifAddrs []netip.Addr
		in      []netip.AddrPort
		want    []netip.AddrPort
	}{
		{"keeps loopback resolvers", ap("10.20.0.1:53"), nil,
			[]netip.AddrPort{ap("127.0.0.53:53"), ap("[::1]:53"), ap("10.20.0.1:53"), ap("1.1.1.1:53")},
			[]netip.AddrPort{ap("127.0.0.53:53"), ap("[::1]:53"), ap("1.1.1.1:53")}},
		{"same address other port", ap("10.20.0.1:53"), nil,
			[]netip.AddrPort{ap("10.20.0.1:5353")}, []netip.AddrPort{ap("10.20.0.1:5353")}},
		{"mapped self", ap("10.20.0.1:53"), nil,
			[]netip.AddrPort{ap("[::ffff:10.20.0.1]:53")}, nil},
		{"wildcard listener", ap("0.0.0.0:53"), []netip.Addr{netip.MustParseAddr("192.168.1.5")},
			[]netip.AddrPort{ap("127.0.0.53:53"), ap("192.168.1.5:53"), ap("192.168.1.1:53")},
			[]netip.AddrPort{ap("192.168.1.1:53")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: Config{Upstreams: tt.in}}
			if got := s.filterUpstreams(tt.self, tt.ifAddrs); !slices.Equal(got, tt.want) {
				t.Fatalf("filterUpstreams(%v) = %v, want %v", tt.self, got, tt.want)
			}
		})
	}
}

func TestServeIPv6Loopback(t *testing.T) {
	ln, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	up := startUpstream(t, false)
	s := startServer(t, Config{Addr: netip.MustParseAddrPort("[::1]:0"), Records: frontRecords(t), Upstreams: []netip.AddrPort{up.addr}})
	tests := []struct {
		network, qname string
		qtype          uint16
		want           []string
	}{
		{"udp", "web.front.", mdns.TypeAAAA, []string{"fd00:20::2"}},
		{"tcp", "web.front.", mdns.TypeA, []string{"10.20.0.2"}},
		{"udp", "example.com.", mdns.TypeA, []string{upstreamAddr.String()}},
	}
	for _, tt := range tests {
		t.Run(tt.network+"/"+tt.qname, func(t *testing.T) {
			r := query(t, tt.network, s.Addr(), tt.qname, tt.qtype)
			if got := answerValues(r); !slices.Equal(got, tt.want) {
				t.Fatalf("query %s %s = %v, want %v", mdns.TypeToString[tt.qtype], tt.qname, got, tt.want)
			}
		})
	}
}
