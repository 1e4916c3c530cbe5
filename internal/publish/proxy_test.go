package publish

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestStartPortInUse(t *testing.T) {
	tests := []struct {
		name string
		// network and addr are what already holds the port.
		network, addr string
		m             Mapping
		// host is how the message names the host side, before the port.
		host string
	}{
		{name: "tcp, all addresses", network: "tcp", addr: ":0", m: Mapping{Proto: "tcp"}},
		{name: "tcp, IPv4 address", network: "tcp4", addr: "127.0.0.1:0", m: Mapping{Proto: "tcp", HostIP: loopback4}, host: "127.0.0.1:"},
		{name: "tcp, IPv6 address", network: "tcp6", addr: "[::1]:0", m: Mapping{Proto: "tcp", HostIP: loopback6}, host: "[::1]:"},
		{name: "udp, all addresses", network: "udp", addr: ":0", m: Mapping{Proto: "udp"}},
		{name: "udp, IPv4 address", network: "udp4", addr: "127.0.0.1:0", m: Mapping{Proto: "udp", HostIP: loopback4}, host: "127.0.0.1:"},
		{name: "tcp, taken on one address, asked for all", network: "tcp4", addr: "127.0.0.1:0", m: Mapping{Proto: "tcp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var holder io.Closer
			var port uint16
			if strings.HasPrefix(tt.network, "tcp") {
				ln, err := net.Listen(tt.network, tt.addr)
				if err != nil {
					t.Fatalf("Listen(%q, %q): %v", tt.network, tt.addr, err)
				}
				holder, port = ln, addrPort(ln.Addr()).Port()
			} else {
				c, err := net.ListenPacket(tt.network, tt.addr)
				if err != nil {
					t.Fatalf("ListenPacket(%q, %q): %v", tt.network, tt.addr, err)
				}
				holder, port = c, addrPort(c.LocalAddr()).Port()
			}
			defer holder.Close()

			m := tt.m
			m.HostPort, m.TargetPort = port, 80
			p, err := Start(m, loopback4, nil)
			if err == nil {
				p.Close()
				t.Fatalf("Start(%v) = nil error, want ErrPortInUse", m)
			}
			want := fmt.Sprintf("host port %s%d/%s is already in use (address already in use); choose another", tt.host, port, m.Proto)
			if !errors.Is(err, ErrPortInUse) || err.Error() != want {
				t.Fatalf("Start(%v) = %v, want %q wrapping ErrPortInUse", m, err, want)
			}
		})
	}
}

func TestStartInvalid(t *testing.T) {
	tests := []struct {
		name   string
		m      Mapping
		target netip.Addr
		// spec is set when the error must wrap ErrInvalidSpec.
		spec bool
		text string
	}{
		{name: "no protocol", m: Mapping{HostPort: 8080, TargetPort: 80}, target: loopback4, spec: true, text: `protocol ""`},
		{name: "sctp", m: Mapping{Proto: "sctp", HostPort: 8080, TargetPort: 80}, target: loopback4, spec: true, text: `protocol "sctp"`},
		{name: "no container port", m: Mapping{Proto: "tcp", HostPort: 8080}, target: loopback4, spec: true, text: "container port 0"},
		{name: "multicast host address", m: Mapping{Proto: "udp", HostIP: netip.MustParseAddr("ff02::1"), HostPort: 8080, TargetPort: 80}, target: loopback4, spec: true, text: "multicast"},
		{name: "no target", m: Mapping{Proto: "tcp", HostPort: 8080, TargetPort: 80}, text: "not a unicast address"},
		{name: "unspecified target", m: Mapping{Proto: "tcp", HostPort: 8080, TargetPort: 80}, target: netip.IPv6Unspecified(), text: "not a unicast address"},
		{name: "host address not on this host", m: Mapping{Proto: "tcp", HostIP: netip.MustParseAddr("198.51.100.7"), HostPort: 8080, TargetPort: 80}, target: loopback4, text: "198.51.100.7 is not an address of this host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(tt.m, tt.target, nil)
			if err == nil {
				p.Close()
				t.Fatalf("Start(%+v, %v) = nil error, want one", tt.m, tt.target)
			}
			if errors.Is(err, ErrInvalidSpec) != tt.spec || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Start(%+v, %v) = %v, want %q (wrapping ErrInvalidSpec: %v)", tt.m, tt.target, err, tt.text, tt.spec)
			}
		})
	}
}

func TestCloseTearsDown(t *testing.T) {
	tcpTarget := serveTCP(t, tcpEcho)
	udpTarget := serveUDPEcho(t)
	base := runtime.NumGoroutine()

	tp, err := start(Mapping{Proto: "tcp", HostIP: loopback4, TargetPort: tcpTarget}, loopback4, nil, testLimits)
	if err != nil {
		t.Fatalf("Start tcp: %v", err)
	}
	up, err := start(Mapping{Proto: "udp", TargetPort: udpTarget}, loopback4, nil, testLimits)
	if err != nil {
		tp.Close()
		t.Fatalf("Start udp: %v", err)
	}

	// Open connections and flows that are live when Close comes.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 8 {
		c, err := net.Dial("tcp", proxyAddr(t, tp, "127.0.0.1"))
		if err != nil {
			t.Fatalf("Dial tcp: %v", err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4)
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatalf("conn %d: Write: %v", i, err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("conn %d: echo = %q, %v, want %q", i, buf, err, "ping")
		}
	}
	for i := range 4 {
		c, err := net.Dial("udp", proxyAddr(t, up, "::1"))
		if err != nil {
			t.Fatalf("Dial udp: %v", err)
		}
		conns = append(conns, c)
		if got, err := udpRoundTrip(c.(*net.UDPConn), "ping", 2*time.Second); err != nil || got != "ping" {
			t.Fatalf("flow %d: echo = %q, %v, want %q", i, got, err, "ping")
		}
	}
	if a, b := tp.Stats().Active, up.Stats().Active; a != 8 || b != 4 {
		t.Fatalf("before Close: %d connections and %d flows, want 8 and 4", a, b)
	}

	for _, p := range []*Proxy{tp, up} {
		if err := p.Close(); err != nil {
			t.Fatalf("Close() = %v, want nil", err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close() = %v, want nil", err)
		}
		if s := p.Stats(); s.Active != 0 {
			t.Fatalf("after Close: Stats() = %+v, want nothing active", s)
		}
	}

	// The clients' connections were closed by the proxy, not left open.
	for i, c := range conns[:8] {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("conn %d: Read after Close = %d, %v, want the connection closed", i, n, err)
		}
	}

	// Every goroutine of the proxies is gone; a few of the runtime's or
	// the test servers' may come and go.
	waitFor(t, "the proxies' goroutines to end", func() bool {
		return runtime.NumGoroutine() <= base+2 && !strings.Contains(allStacks(), "publish.(*Proxy)")
	})

	// The ports are free again.
	for _, p := range []*Proxy{tp, up} {
		m := p.m
		m.HostPort = addrPort(p.Addr()).Port()
		again, err := Start(m, loopback4, nil)
		if err != nil {
			t.Fatalf("Start(%v) after Close = %v, want the port free", m, err)
		}
		again.Close()
	}
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func TestBackoff(t *testing.T) {
	var b backoff
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		if got := b.next(); got != w*time.Millisecond {
			t.Fatalf("next() #%d = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	b.reset()
	if got := b.next(); got != 5*time.Millisecond {
		t.Fatalf("next() after reset() = %v, want 5ms", got)
	}
}
