package publish

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestAdoptTCP hands a listener from one Proxy to the next, as a daemon
// does to its successor: a client that connects in between waits in the
// listener's queue and is served by the new Proxy.
func TestAdoptTCP(t *testing.T) {
	target := serveTCP(t, tcpEcho)
	m := Mapping{Proto: "tcp", HostIP: loopback4, TargetPort: target}
	old := startProxy(t, m, loopback4, testLimits)
	m.HostPort = addrPort(old.Addr()).Port()
	f, err := old.File()
	if err != nil {
		t.Fatalf("File() = %v", err)
	}
	if err := old.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	// Between the two: the socket is still open, in f.
	c, err := net.DialTimeout("tcp", proxyAddr(t, old, "127.0.0.1"), 2*time.Second)
	if err != nil {
		t.Fatalf("dial while the listener changes hands: %v", err)
	}
	defer c.Close()
	p, err := Adopt(m, loopback4, slog.New(slog.NewTextHandler(t.Output(), nil)), f)
	if err != nil {
		t.Fatalf("Adopt(%v) = %v", m, err)
	}
	defer p.Close()
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo through the adopted listener = %q, %v; want %q", got, err, "hello")
	}
}

// TestAdoptUDP: a datagram sent while the socket changes hands is read
// and answered by the new Proxy.
func TestAdoptUDP(t *testing.T) {
	target := serveUDPEcho(t)
	m := Mapping{Proto: "udp", HostIP: loopback4, TargetPort: target}
	old := startProxy(t, m, loopback4, testLimits)
	m.HostPort = addrPort(old.Addr()).Port()
	f, err := old.File()
	if err != nil {
		t.Fatalf("File() = %v", err)
	}
	old.Close()
	c, err := net.Dial("udp4", proxyAddr(t, old, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	p, err := Adopt(m, loopback4, nil, f)
	if err != nil {
		t.Fatalf("Adopt(%v) = %v", m, err)
	}
	defer p.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("reply to a datagram sent while the socket changed hands = %q, %v; want %q", buf[:n], err, "ping")
	}
}

// TestAdoptRefuses: a socket that is not the mapping's is refused and
// closed.
func TestAdoptRefuses(t *testing.T) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := addrPort(ln.Addr()).Port()
	cases := []struct {
		name string
		m    Mapping
	}{
		{"another port", Mapping{Proto: "tcp", HostIP: loopback4, HostPort: port + 1, TargetPort: 80}},
		{"another address", Mapping{Proto: "tcp", HostIP: loopback6, HostPort: port, TargetPort: 80}},
		{"another protocol", Mapping{Proto: "udp", HostIP: loopback4, HostPort: port, TargetPort: 80}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := ln.File()
			if err != nil {
				t.Fatal(err)
			}
			if p, err := Adopt(c.m, loopback4, nil, f); err == nil {
				p.Close()
				t.Fatalf("Adopt(%v) of a listener on %v = nil error, want a refusal", c.m, ln.Addr())
			}
			if f.Fd() != ^uintptr(0) {
				t.Errorf("socket handed to a refused Adopt still open")
			}
		})
	}
}
