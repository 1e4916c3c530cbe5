package publish

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/fdlimit"
)

// dialFrom connects to addr from source address src (any 127/8 address
// is the host's on Linux loopback).
func dialFrom(t *testing.T, src, addr string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("Dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// echoes checks that c is served: what it sends comes back.
func echoes(c *net.TCPConn, msg string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

// dialRefused checks that a connection to addr from src is closed
// without being served: the reset arrives before connect returns, or a
// read ends in it (or EOF) rather than a timeout.
func dialRefused(t *testing.T, src, addr string) error {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dial: %v, want a connection, then a reset", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	switch {
	case n > 0:
		return fmt.Errorf("read %d bytes from a refused connection", n)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF):
		return nil
	}
	return fmt.Errorf("read from a refused connection: %v, want a reset", err)
}

func TestTCPConnLimits(t *testing.T) {
	port := serveTCP(t, tcpEcho)
	tests := []struct {
		name string
		lim  Limits
		// budget, when not zero, is the descriptor budget in connections.
		budget int
		// admitted are the sources of connections that are served, in
		// order; refused is then the source of one that is not.
		admitted []string
		refused  string
		reason   string
		// other is a source still served after the refusal.
		other string
	}{
		{
			name:     "per source",
			lim:      Limits{ConnsPerPort: 10, ConnsPerSource: 3},
			admitted: []string{"127.0.0.1", "127.0.0.1", "127.0.0.1"},
			refused:  "127.0.0.1", reason: "source_limit",
			other: "127.0.0.2",
		},
		{
			name:     "per port",
			lim:      Limits{ConnsPerPort: 4, ConnsPerSource: 2},
			admitted: []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.4"},
			refused:  "127.0.0.5", reason: "port_limit",
		},
		{
			name:     "descriptor budget",
			lim:      Limits{ConnsPerPort: 10, ConnsPerSource: 10},
			budget:   2,
			admitted: []string{"127.0.0.1", "127.0.0.2"},
			refused:  "127.0.0.3", reason: "descriptors",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := testLimits
			lim.Limits = tt.lim
			if tt.budget > 0 {
				lim.budget = fdlimit.New(tt.budget * connFDs)
			}
			p := startProxy(t, Mapping{Proto: "tcp", HostIP: loopback4, TargetPort: port}, loopback4, lim)
			addr := proxyAddr(t, p, "127.0.0.1")
			var open []*net.TCPConn
			for i, src := range tt.admitted {
				c := dialFrom(t, src, addr)
				if err := echoes(c, fmt.Sprintf("conn %d", i)); err != nil {
					t.Fatalf("connection %d from %s: %v, want it served", i, src, err)
				}
				open = append(open, c)
			}
			if err := dialRefused(t, tt.refused, addr); err != nil {
				t.Fatalf("connection from %s beyond the limit: %v", tt.refused, err)
			}
			s := p.Stats()
			if s.Refused[tt.reason] != 1 || len(s.Refused) != 1 || s.Active != int64(len(tt.admitted)) {
				t.Fatalf("Stats() = %+v, want 1 refused for %s and %d active", s, tt.reason, len(tt.admitted))
			}
			for i, c := range open {
				if err := echoes(c, "still"); err != nil {
					t.Errorf("connection %d after the refusal: %v, want it still served", i, err)
				}
			}
			if tt.other != "" {
				if err := echoes(dialFrom(t, tt.other, addr), "other"); err != nil {
					t.Errorf("connection from %s: %v, want another source served", tt.other, err)
				}
			}
			// Closing one gives its place back.
			active := p.Stats().Active
			open[0].Close()
			waitFor(t, "a place to free", func() bool { return p.Stats().Active < active })
			if err := echoes(dialFrom(t, tt.admitted[0], addr), "again"); err != nil {
				t.Errorf("connection from %s once one closed: %v, want it served", tt.admitted[0], err)
			}
		})
	}
}

func TestTCPBudgetReleased(t *testing.T) {
	port := serveTCP(t, tcpEcho)
	lim := testLimits
	lim.budget = fdlimit.New(100 * connFDs)
	p := startProxy(t, Mapping{Proto: "tcp", HostIP: loopback4, TargetPort: port}, loopback4, lim)
	addr := proxyAddr(t, p, "127.0.0.1")
	for i := range 5 {
		c := dialFrom(t, "127.0.0.1", addr)
		if err := echoes(c, "x"); err != nil {
			t.Fatal(err)
		}
		if got := lim.budget.Used(); got != (i+1)*connFDs {
			t.Fatalf("budget used %d with %d connections, want %d", got, i+1, (i+1)*connFDs)
		}
	}
	// A connection whose target cannot be reached gives its place back
	// too, and so does Close.
	unreachable := startProxy(t, Mapping{Proto: "tcp", HostIP: loopback4, TargetPort: closedPort(t)}, loopback4, lim)
	if err := dialRefused(t, "127.0.0.1", proxyAddr(t, unreachable, "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed connection to end", func() bool { return unreachable.Stats().Active == 0 })
	p.Close()
	if got := lim.budget.Used(); got != 0 {
		t.Fatalf("budget used %d after Close, want 0", got)
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	// The target pushes a byte every 100 ms to a client that asks with
	// "push", and otherwise echoes.
	port := serveTCP(t, func(c *net.TCPConn) {
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if string(buf) != "push" {
			c.Write(buf)
			tcpEcho(c)
			return
		}
		for {
			if _, err := c.Write([]byte{'.'}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	lim := testLimits
	lim.IdleTimeout = 2 * time.Second
	p := startProxy(t, Mapping{Proto: "tcp", HostIP: loopback4, TargetPort: port}, loopback4, lim)
	addr := proxyAddr(t, p, "127.0.0.1")

	silent := dialFrom(t, "127.0.0.1", addr)
	if err := echoes(silent, "ping"); err != nil {
		t.Fatal(err)
	}
	// The client speaks and the target answers: busy both ways.
	talker := dialFrom(t, "127.0.0.1", addr)
	// Only the target speaks, as in SMTP or SSH before the client does.
	listener := dialFrom(t, "127.0.0.1", addr)
	if _, err := listener.Write([]byte("push")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	buf := make([]byte, 64)
	for time.Since(start) < 2*lim.IdleTimeout+time.Second {
		if err := echoes(talker, "ping"); err != nil {
			t.Fatalf("busy connection: %v, want it kept open", err)
		}
		listener.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := listener.Read(buf); err != nil {
			t.Fatalf("connection the target writes to: %v, want it kept open", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := silent.Read(buf); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("idle connection: read %d, %v; want it closed after %v", n, err, lim.IdleTimeout)
	}
	t.Logf("idle connection closed %v after it was last used", time.Since(start).Round(100*time.Millisecond))
	if s := p.Stats(); s.IdleClosed != 1 {
		t.Fatalf("Stats() = %+v, want 1 idle connection closed", s)
	}
}

func TestUDPFlowLimits(t *testing.T) {
	port := serveUDPEcho(t)
	tests := []struct {
		name     string
		lim      func(*limits)
		admitted []string
		refused  string
		reason   string
		other    string
	}{
		{
			name:     "per source",
			lim:      func(l *limits) { l.FlowsPerSource = 2 },
			admitted: []string{"127.0.0.1", "127.0.0.1"},
			refused:  "127.0.0.1", reason: "source_limit",
			other: "127.0.0.2",
		},
		{
			name:     "descriptor budget",
			lim:      func(l *limits) { l.budget = fdlimit.New(2 * flowFDs) },
			admitted: []string{"127.0.0.1", "127.0.0.2"},
			refused:  "127.0.0.3", reason: "descriptors",
		},
		{
			name:     "per port",
			lim:      func(l *limits) { l.maxFlows = 2 },
			admitted: []string{"127.0.0.1", "127.0.0.2"},
			refused:  "127.0.0.3", reason: "port_limit",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := testLimits
			tt.lim(&lim)
			p := startProxy(t, Mapping{Proto: "udp", HostIP: loopback4, TargetPort: port}, loopback4, lim)
			raddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(proxyAddr(t, p, "127.0.0.1")))
			dial := func(src string) *net.UDPConn {
				c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, raddr)
				if err != nil {
					t.Fatalf("DialUDP from %s: %v", src, err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			for i, src := range tt.admitted {
				if got, err := udpRoundTrip(dial(src), "hi", 5*time.Second); err != nil || got != "hi" {
					t.Fatalf("flow %d from %s: round trip = %q, %v; want it served", i, src, got, err)
				}
			}
			c := dial(tt.refused)
			if _, err := c.Write([]byte("over")); err != nil {
				t.Fatal(err)
			}
			// The refusal and the drop are counted one after the other.
			waitFor(t, "the refusal and the drop to be counted", func() bool {
				s := p.Stats()
				return s.Refused[tt.reason] == 1 && s.Dropped == 1
			})
			if s := p.Stats(); len(s.Refused) != 1 || s.Active != int64(len(tt.admitted)) || s.Dropped != 1 {
				t.Fatalf("Stats() = %+v, want 1 dropped, refused for %s only, %d active", s, tt.reason, len(tt.admitted))
			}
			if tt.other != "" {
				if got, err := udpRoundTrip(dial(tt.other), "other", 5*time.Second); err != nil || got != "other" {
					t.Fatalf("flow from %s: round trip = %q, %v; want another source served", tt.other, got, err)
				}
			}
		})
	}
}

func TestSourceOf(t *testing.T) {
	tests := []struct{ a, b string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
		{"::1", "::"},
	}
	for _, tt := range tests {
		if got := sourceOf(netip.MustParseAddr(tt.a)); got != netip.MustParseAddr(tt.b) {
			t.Errorf("sourceOf(%s) = %v, want %s", tt.a, got, tt.b)
		}
	}
	if sourceOf(netip.MustParseAddr("2001:db8:1:2::1")) == sourceOf(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("two /64s counted as one source")
	}
}

func TestLimitsCheck(t *testing.T) {
	tests := []struct {
		name string
		l    Limits
		want string
	}{
		{"defaults", Limits{}, ""},
		{"negative", Limits{ConnsPerPort: -1}, "negative"},
		{"source above port", Limits{ConnsPerPort: 10, ConnsPerSource: 20}, "more than"},
		{"source above an automatic port cap", Limits{ConnsPerSource: 5000}, ""},
		{"short idle", Limits{IdleTimeout: time.Millisecond}, "at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.l.Check()
			if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRefusalLogRateLimited(t *testing.T) {
	var out strings.Builder
	log := newTextLogger(&out)
	var rf refusals
	client := netip.MustParseAddrPort("127.0.0.1:5000")
	for range 1000 {
		rf.add(log, refusedSource, client, 3)
	}
	rf.add(log, refusedPort, client, 4)
	if got := strings.Count(out.String(), "\n"); got != 2 {
		t.Fatalf("1001 refusals of 2 reasons logged %d lines, want 2:\n%s", got, out.String())
	}
	if s := rf.snapshot(); s["source_limit"] != 1000 || s["port_limit"] != 1 || len(s) != 2 {
		t.Fatalf("snapshot() = %v, want 1000 source_limit and 1 port_limit", s)
	}
}

func TestPortConns(t *testing.T) {
	tests := []struct{ budget, want int }{
		{917504, 4096},
		{17500, 729},
		{1024, 64},
	}
	for _, tt := range tests {
		if got := PortConns(tt.budget); got != tt.want {
			t.Errorf("PortConns(%d) = %d, want %d", tt.budget, got, tt.want)
		}
	}
}
