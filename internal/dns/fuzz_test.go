package dns

import (
	"net"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// fakeWriter is a ResponseWriter for a UDP client that keeps what is
// written, packed as it would go on the wire.
type fakeWriter struct {
	packed [][]byte
	err    error
}

var _ mdns.ResponseWriter = (*fakeWriter)(nil)

func (w *fakeWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(10, 20, 0, 1), Port: 53}
}

func (w *fakeWriter) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(10, 20, 0, 2), Port: 40000}
}

func (w *fakeWriter) WriteMsg(m *mdns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		w.err = err
		return err
	}
	w.packed = append(w.packed, b)
	return nil
}

func (w *fakeWriter) Write(b []byte) (int, error) {
	w.packed = append(w.packed, append([]byte(nil), b...))
	return len(b), nil
}

func (w *fakeWriter) Close() error        { return nil }
func (w *fakeWriter) TsigStatus() error   { return nil }
func (w *fakeWriter) TsigTimersOnly(bool) {}
func (w *fakeWriter) Hijack()             {}

// FuzzServeDNS feeds arbitrary datagrams to the handler, as the UDP
// listener would once they parse, with a live upstream behind it so that
// forwarded queries take the whole path.
func FuzzServeDNS(f *testing.F) {
	seed := func(edit func(m *mdns.Msg)) {
		m := new(mdns.Msg)
		m.SetQuestion("web.", mdns.TypeA)
		edit(m)
		b, err := m.Pack()
		if err != nil {
			f.Fatalf("pack seed: %v", err)
		}
		f.Add(b)
	}
	seed(func(m *mdns.Msg) {})
	seed(func(m *mdns.Msg) { m.Question[0].Name = "WEB.front." })
	seed(func(m *mdns.Msg) { m.Question[0].Qtype = mdns.TypeAAAA })
	seed(func(m *mdns.Msg) { m.Question[0].Name = "nope." })
	seed(func(m *mdns.Msg) { m.Question[0].Name = "example.com." })
	seed(func(m *mdns.Msg) { m.SetQuestion("2.0.20.10.in-addr.arpa.", mdns.TypePTR) })
	seed(func(m *mdns.Msg) { m.SetQuestion("8.8.8.8.in-addr.arpa.", mdns.TypePTR) })
	seed(func(m *mdns.Msg) { m.SetEdns0(4096, true) })
	seed(func(m *mdns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) })
	seed(func(m *mdns.Msg) { m.Opcode = mdns.OpcodeUpdate })
	seed(func(m *mdns.Msg) { m.Question = append(m.Question, m.Question[0]) })
	seed(func(m *mdns.Msg) { m.Question = nil })
	seed(func(m *mdns.Msg) { m.Response = true })
	seed(func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS })
	seed(func(m *mdns.Msg) { m.Question[0].Name = "db.back." })
	seed(func(m *mdns.Msg) { m.SetQuestion("2.1.20.10.in-addr.arpa.", mdns.TypePTR) })
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 1})

	up := startUpstream(f, false)
	// The asker is also on network back (names across networks).
	back, err := NewRecords("back")
	if err != nil {
		f.Fatal(err)
	}
	if err := back.Set("db", nil, []netip.Addr{netip.MustParseAddr("10.20.1.2"), netip.MustParseAddr("fd00:21::2")}); err != nil {
		f.Fatal(err)
	}
	s := NewServer(Config{
		Addr:      netip.MustParseAddrPort("10.20.0.1:53"),
		Records:   frontRecords(f),
		Subnets:   []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")},
		Upstreams: []netip.AddrPort{up.addr},
		Timeout:   time.Second,
		Peers:     func(netip.Addr) []*Records { return []*Records{back} },
	})
	f.Cleanup(func() { s.Close() })
	// One source sends every input: no rate limit, so that all of them
	// reach the handler.
	s.limiter = newRateLimiter(1e12, 1e12, maxSources)

	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(data); err != nil {
			// The listener answers what does not parse itself, before any
			// handler runs.
			return
		}
		w := &fakeWriter{}
		s.serveDNS(w, req)
		if w.err != nil {
			t.Fatalf("reply to %v does not pack: %v", req, w.err)
		}
		if len(w.packed) > 1 {
			t.Fatalf("%d replies to one query, want at most 1", len(w.packed))
		}
		for _, b := range w.packed {
			resp := new(mdns.Msg)
			if err := resp.Unpack(b); err != nil {
				t.Fatalf("reply to %v does not parse: %v", req, err)
			}
			if resp.Id != req.Id || !resp.Response {
				t.Fatalf("reply ID %d (QR %v), want %d (QR true)", resp.Id, resp.Response, req.Id)
			}
			size := mdns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				size = max(size, int(opt.UDPSize()))
			}
			if len(b) > size {
				t.Fatalf("UDP reply of %d bytes, client takes %d", len(b), size)
			}
		}
	})
}

// FuzzServeUDPPacket feeds arbitrary datagrams, from arbitrary sources and
// interfaces, through the whole UDP path: admission, parsing, answer. Only
// a client of the network on the gateway interface may get an answer, and
// at most one, fitting its payload size.
func FuzzServeUDPPacket(f *testing.F) {
	for _, name := range []string{"web.", "nope.", "example.com.", "2.0.20.10.in-addr.arpa."} {
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte{10, 20, 0, 2}, 7)
		f.Add(b, []byte{10, 30, 0, 2}, 7)
		f.Add(b, []byte{10, 20, 0, 2}, 8)
		f.Add(b, []byte{10, 20, 0, 1}, 7)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff}, []byte{10, 20, 0, 2}, 7)
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff}, []byte{10, 20, 0, 2}, 7)

	up := startUpstream(f, false)
	s, _ := guardServer(f, Config{Upstreams: []netip.AddrPort{up.addr}, Timeout: time.Second})
	s.limiter = newRateLimiter(1e12, 1e12, maxSources)

	f.Fuzz(func(t *testing.T, data, src []byte, ifindex int) {
		a, ok := netip.AddrFromSlice(src)
		if !ok {
			return
		}
		from := netip.AddrPortFrom(a, 40000)
		w := newUDPSink()
		s.serveUDPPacket(w, data, from, ifindex)
		// Forwards answer from a goroutine of their own.
		waitFor(t, "forwards to end", func() bool { n, _ := s.forwards.held(); return n == 0 })
		got := w.answers(from)
		client := ifindex == 7 && s.clientAllowed(a)
		if len(got) > 0 && !client {
			t.Fatalf("datagram from %v on interface %d answered: %v", from, ifindex, got[0])
		}
		if len(got) > 1 {
			t.Fatalf("%d answers to one datagram, want at most 1", len(got))
		}
		for _, r := range got {
			b, err := r.Pack()
			if err != nil {
				t.Fatalf("answer does not pack again: %v", err)
			}
			req := new(mdns.Msg)
			size := mdns.MinMsgSize
			if req.Unpack(data) == nil {
				if opt := req.IsEdns0(); opt != nil {
					size = max(size, int(opt.UDPSize()))
				}
			}
			if len(b) > size || !r.Response || len(data) < 2 || r.Id != uint16(data[0])<<8|uint16(data[1]) {
				t.Fatalf("answer of %d bytes (client takes %d), QR %v, ID %d: %v", len(b), size, r.Response, r.Id, r)
			}
		}
	})
}

// FuzzPktinfoIfindex walks arbitrary control messages: it must neither
// panic nor read past them.
func FuzzPktinfoIfindex(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	// A well-formed IP_PKTINFO for interface 7 (little-endian hosts).
	f.Add([]byte{28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 10, 20, 0, 1, 10, 20, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, oob []byte) {
		pktinfoIfindex(oob)
	})
}
