package publish

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"
)

// testLimits are short enough for tests to see flows expire.
var testLimits = limits{dialTimeout: 2 * time.Second, udpIdle: 30 * time.Second, maxFlows: 1024}

// startProxy starts a Proxy that logs to the test and closes at its end.
func startProxy(t *testing.T, m Mapping, target netip.Addr, lim limits) *Proxy {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := start(m, target, log, lim)
	if err != nil {
		t.Fatalf("Start(%v, %v) = %v", m, target, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// proxyAddr is where a client reaches p through dst, one of the host's
// addresses that p listens on.
func proxyAddr(t *testing.T, p *Proxy, dst string) string {
	t.Helper()
	ap := addrPort(p.Addr())
	return netip.AddrPortFrom(netip.MustParseAddr(dst), ap.Port()).String()
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	panic("not an IP address: " + a.String())
}

// serveTCP runs handle for each connection to a listener on 127.0.0.1
// until the test ends, and returns the listener's port.
func serveTCP(t *testing.T, handle func(*net.TCPConn)) uint16 {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("ListenTCP: %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return addrPort(ln.Addr()).Port()
}

// tcpEcho echoes until EOF, then half-closes.
func tcpEcho(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// serveUDPEcho runs a UDP echo server on 127.0.0.1 until the test ends,
// and returns its port.
func serveUDPEcho(t *testing.T) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("ListenUDP: %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				c.WriteToUDPAddrPort(buf[:n], from)
			}
		}
	})
	t.Cleanup(func() {
		c.Close()
		wg.Wait()
	})
	return addrPort(c.LocalAddr()).Port()
}

// closedPort returns a port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	return addrPort(ln.Addr()).Port()
}

// udpRoundTrip sends msg on c and returns the reply, or an error after
// timeout.
func udpRoundTrip(c *net.UDPConn, msg string, timeout time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isTimeout reports whether err is a read deadline passing.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

var (
	loopback4 = netip.MustParseAddr("127.0.0.1")
	loopback6 = netip.MustParseAddr("::1")
)

// newTextLogger logs as text to w.
func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}
