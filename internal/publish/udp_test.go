package publish

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestUDPEcho(t *testing.T) {
	port := serveUDPEcho(t)
	tests := []struct {
		name   string
		hostIP netip.Addr
		// dial is the host address the clients send to. Those that
		// differ from the address replies would leave from by route
		// check that replies come from the address sent to: the
		// clients' connected sockets drop any other.
		dial string
	}{
		{name: "IPv4 host address", hostIP: loopback4, dial: "127.0.0.1"},
		{name: "IPv6 host address", hostIP: loopback6, dial: "::1"},
		{name: "all addresses over IPv4", dial: "127.0.0.1"},
		{name: "all addresses over IPv6", dial: "::1"},
		{name: "all addresses, sent to a second address", dial: "127.0.0.2"},
		{name: "all IPv4 addresses, sent to a second address", hostIP: netip.IPv4Unspecified(), dial: "127.0.0.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, Mapping{Proto: "udp", HostIP: tt.hostIP, TargetPort: port}, loopback4, testLimits)
			raddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(proxyAddr(t, p, tt.dial)))
			var clients [2]*net.UDPConn
			for i := range clients {
				c, err := net.DialUDP("udp", nil, raddr)
				if err != nil {
					t.Fatalf("DialUDP(%v): %v", raddr, err)
				}
				defer c.Close()
				clients[i] = c
			}
			// Both clients have a datagram in flight at once, so a
			// reply sent to the wrong client would be read there.
			const rounds = 20
			var sent uint64
			for r := range rounds {
				for i, c := range clients {
					n, err := c.Write(fmt.Appendf(nil, "client %d round %d", i, r))
					if err != nil {
						t.Fatalf("client %d: Write: %v", i, err)
					}
					sent += uint64(n)
				}
				for i, c := range clients {
					c.SetReadDeadline(time.Now().Add(2 * time.Second))
					buf := make([]byte, 64)
					n, err := c.Read(buf)
					if want := fmt.Sprintf("client %d round %d", i, r); err != nil || string(buf[:n]) != want {
						t.Fatalf("client %d: Read = %q, %v, want %q", i, buf[:n], err, want)
					}
				}
			}
			// The counters are bumped after each send returns, so the
			// last few may trail the replies just read.
			waitFor(t, "the byte counters", func() bool {
				s := p.Stats()
				return s.BytesToTarget == sent && s.BytesToClient == sent
			})
			if s := p.Stats(); s.Active != 2 || s.Total != 2 {
				t.Fatalf("Stats() = %+v, want 2 live flows", s)
			}
		})
	}
}

func TestUDPFlowExpiry(t *testing.T) {
	port := serveUDPEcho(t)
	lim := testLimits
	// Long enough that a round trip every third of it keeps the flow on
	// a loaded machine.
	lim.udpIdle = 600 * time.Millisecond
	p := startProxy(t, Mapping{Proto: "udp", HostIP: loopback4, TargetPort: port}, loopback4, lim)
	c, err := net.Dial("udp", proxyAddr(t, p, "127.0.0.1"))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	uc := c.(*net.UDPConn)

	t.Run("traffic keeps the flow", func(t *testing.T) {
		for i := range 8 {
			if got, err := udpRoundTrip(uc, "keep", time.Second); err != nil || got != "keep" {
				t.Fatalf("round trip %d = %q, %v, want %q", i, got, err, "keep")
			}
			time.Sleep(lim.udpIdle / 3)
		}
		if s := p.Stats(); s.Total != 1 || s.Active != 1 {
			t.Fatalf("Stats() = %+v, want one live flow", s)
		}
	})
	t.Run("idle flow expires", func(t *testing.T) {
		waitFor(t, "the flow to expire", func() bool { return p.Stats().Active == 0 })
		p.mu.Lock()
		n := len(p.flows)
		p.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d flows in the table after expiry, want 0", n)
		}
	})
	t.Run("client comes back", func(t *testing.T) {
		if got, err := udpRoundTrip(uc, "back", time.Second); err != nil || got != "back" {
			t.Fatalf("round trip = %q, %v, want %q", got, err, "back")
		}
		if s := p.Stats(); s.Total != 2 || s.Active != 1 {
			t.Fatalf("Stats() = %+v, want a second flow", s)
		}
	})
}

func TestUDPFlowCap(t *testing.T) {
	port := serveUDPEcho(t)
	lim := testLimits
	lim.maxFlows = 2
	lim.udpIdle = 300 * time.Millisecond
	p := startProxy(t, Mapping{Proto: "udp", HostIP: loopback4, TargetPort: port}, loopback4, lim)
	raddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(proxyAddr(t, p, "127.0.0.1")))
	var clients [3]*net.UDPConn
	for i := range clients {
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			t.Fatalf("DialUDP: %v", err)
		}
		defer c.Close()
		clients[i] = c
	}
	for i, c := range clients[:2] {
		if got, err := udpRoundTrip(c, "hi", time.Second); err != nil || got != "hi" {
			t.Fatalf("client %d: round trip = %q, %v, want %q", i, got, err, "hi")
		}
	}
	if got, err := udpRoundTrip(clients[2], "over", lim.udpIdle/3); !isTimeout(err) {
		t.Fatalf("third client: round trip = %q, %v, want no reply beyond the cap", got, err)
	}
	if s := p.Stats(); s.Dropped != 1 || s.Total != 2 {
		t.Fatalf("Stats() = %+v, want 1 dropped and 2 flows", s)
	}
	// Once the first two go quiet and expire, there is room again.
	waitFor(t, "a reply once the first flows expire", func() bool {
		got, err := udpRoundTrip(clients[2], "later", 50*time.Millisecond)
		return err == nil && got == "later"
	})
}
