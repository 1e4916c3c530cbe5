package dns

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// upstreamAddr is what the test upstream answers every A query with.
var upstreamAddr = netip.MustParseAddr("192.0.2.53")

// testUpstream is a resolver on loopback standing in for the host's.
type testUpstream struct {
	addr netip.AddrPort
	// truncateUDP makes every UDP answer empty with TC set, as an upstream
	// does when the answer does not fit.
	truncateUDP bool

	udpQueries atomic.Int64
	tcpQueries atomic.Int64

	mu sync.Mutex
	// names are the query names seen, in order.
	names []string
}

func (u *testUpstream) queries() int64 { return u.udpQueries.Load() + u.tcpQueries.Load() }

func (u *testUpstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.names...)
}

func (u *testUpstream) serveDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	if isUDP {
		u.udpQueries.Add(1)
	} else {
		u.tcpQueries.Add(1)
	}
	resp := new(mdns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		u.mu.Lock()
		u.names = append(u.names, q.Name)
		u.mu.Unlock()
		switch {
		case isUDP && u.truncateUDP:
			resp.Truncated = true
		case q.Qtype == mdns.TypeA:
			resp.Answer = append(resp.Answer, &mdns.A{
				Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 300},
				A:   upstreamAddr.AsSlice(),
			})
		case q.Qtype == mdns.TypePTR:
			resp.Answer = append(resp.Answer, &mdns.PTR{
				Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: 300},
				Ptr: "upstream.example.",
			})
		}
	}
	w.WriteMsg(resp)
}

// startUpstream starts a test upstream on 127.0.0.1, UDP and TCP on one
// port, stopped when the test ends.
func startUpstream(tb testing.TB, truncateUDP bool) *testUpstream {
	tb.Helper()
	pc, _, ln, err := listen(netip.MustParseAddrPort("127.0.0.1:0"), "")
	if err != nil {
		tb.Fatalf("listen upstream: %v", err)
	}
	u := &testUpstream{
		addr:        netip.MustParseAddrPort(pc.LocalAddr().String()),
		truncateUDP: truncateUDP,
	}
	for _, srv := range []*mdns.Server{
		{PacketConn: pc, Handler: mdns.HandlerFunc(u.serveDNS)},
		{Listener: ln, Handler: mdns.HandlerFunc(u.serveDNS)},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		tb.Cleanup(func() { srv.Shutdown() })
	}
	return u
}

// silentUpstream returns the address of a UDP socket that reads nothing
// and answers nothing, as a resolver that drops packets does.
func silentUpstream(tb testing.TB) netip.AddrPort {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen silent upstream: %v", err)
	}
	tb.Cleanup(func() { pc.Close() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// loopbackClients admits the test's own queries, which come from
// loopback.
var loopbackClients = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// startServer starts a Server for cfg, on 127.0.0.1 with a free port
// unless cfg.Addr is set, answering loopback unless cfg.Clients is set,
// closed when the test ends.
func startServer(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	if !cfg.Addr.IsValid() {
		cfg.Addr = netip.MustParseAddrPort("127.0.0.1:0")
	}
	if cfg.Clients == nil {
		cfg.Clients = loopbackClients
	}
	s := NewServer(cfg)
	if err := s.Start(); err != nil {
		tb.Fatalf("Start(%v) = %v", cfg.Addr, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close() = %v", err)
		}
	})
	return s
}

// frontRecords returns the records of network "front": web (alias www) on
// 10.20.0.2 and fd00:20::2, v4only on 10.20.0.3.
func frontRecords(tb testing.TB) *Records {
	tb.Helper()
	r, err := NewRecords("front")
	if err != nil {
		tb.Fatalf("NewRecords(front) = %v", err)
	}
	set := func(name string, aliases []string, addrs ...string) {
		var as []netip.Addr
		for _, a := range addrs {
			as = append(as, netip.MustParseAddr(a))
		}
		if err := r.Set(name, aliases, as); err != nil {
			tb.Fatalf("Set(%q) = %v", name, err)
		}
	}
	set("web", []string{"www"}, "10.20.0.2", "fd00:20::2")
	set("v4only", nil, "10.20.0.3")
	return r
}

// query asks the server at addr over network ("udp" or "tcp") and fails the
// test if no answer arrives or its ID is not the query's.
func query(tb testing.TB, network string, addr netip.AddrPort, name string, qtype uint16) *mdns.Msg {
	tb.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	return exchange(tb, network, addr, m)
}

func exchange(tb testing.TB, network string, addr netip.AddrPort, m *mdns.Msg) *mdns.Msg {
	tb.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr.String())
	if err != nil {
		tb.Fatalf("query %s %s over %s: %v", mdns.TypeToString[qtypeOf(m)], qnameOf(m), network, err)
	}
	if r.Id != m.Id {
		tb.Fatalf("query %s %s: answer ID = %d, want %d", mdns.TypeToString[qtypeOf(m)], qnameOf(m), r.Id, m.Id)
	}
	return r
}

func qnameOf(m *mdns.Msg) string {
	if len(m.Question) == 0 {
		return "<none>"
	}
	return m.Question[0].Name
}

func qtypeOf(m *mdns.Msg) uint16 {
	if len(m.Question) == 0 {
		return 0
	}
	return m.Question[0].Qtype
}

// answerValues returns the addresses and PTR targets in r's answer section.
func answerValues(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			out = append(out, rr.A.String())
		case *mdns.AAAA:
			out = append(out, rr.AAAA.String())
		case *mdns.PTR:
			out = append(out, rr.Ptr)
		default:
			out = append(out, rr.String())
		}
	}
	return out
}
