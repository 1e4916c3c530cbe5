package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/namespace"
)

// TestDNSGuard checks that a network's DNS server answers only the
// network's own ports: not another network's ports, not the host, not a
// host routed to the subnet from outside; that an internal network
// resolves its own names and forwards nothing; and that a port flooding
// queries is rate-limited while its neighbour keeps getting answers.
func TestDNSGuard(t *testing.T) {
	up := startUpstream(t)
	e := newEnvArgs(t, []string{"--dns-upstream", up.addr.String()})
	e.mustCLI("network", "create", "dnsga", "--subnet", "10.120.11.0/24")
	e.mustCLI("network", "create", "dnsgb", "--subnet", "10.120.12.0/24")
	e.mustCLI("network", "create", "dnsgi", "--subnet", "10.120.13.0/24", "--internal")
	const gwA, gwB, gwI = "10.120.11.1:53", "10.120.12.1:53", "10.120.13.1:53"

	nsA1, nsA2 := dnsNetns(e, "a1"), dnsNetns(e, "a2")
	nsB1 := dnsNetns(e, "b1")
	nsI1, nsI2 := dnsNetns(e, "i1"), dnsNetns(e, "i2")
	e.attach(nsA1, "--network", "dnsga", "--name", "a1")
	e.attach(nsA2, "--network", "dnsga", "--name", "a2")
	e.attach(nsB1, "--network", "dnsgb", "--name", "b1")
	e.attach(nsI1, "--network", "dnsgi", "--name", "i1")
	e.attach(nsI2, "--network", "dnsgi", "--name", "i2")
	ports := e.ports()
	a2, i2 := findPort(ports, "a2"), findPort(ports, "i2")
	if a2 == nil || i2 == nil || len(a2.IPs) != 1 || len(i2.IPs) != 1 {
		t.Fatalf("tapswitch ports: want a2 and i2 with one address each, got %+v", ports)
	}

	t.Run("own network resolves", func(t *testing.T) {
		mustResolve(t, nsA1, "udp", gwA, "a2", addr(a2.IPs[0]))
		mustResolve(t, nsA1, "tcp", gwA, "a2.dnsga", addr(a2.IPs[0]))
		before := up.queries.Load()
		mustResolve(t, nsA1, "udp", gwA, upstreamName, upstreamAnswer)
		if up.queries.Load() == before {
			t.Fatalf("DNS A %s from %s answered, but the test's resolver saw no query", upstreamName, nsA1)
		}
		// b1's own server answers b1, so what follows is the guard.
		mustResolve(t, nsB1, "udp", gwB, "b1", "")
	})

	t.Run("other network gets no answer", func(t *testing.T) {
		before := dnsCountersOf(e, "dnsga")
		for _, name := range []string{"a2", upstreamName} {
			mustNotAnswer(t, nsB1, "udp", gwA, name)
		}
		mustNotAnswer(t, nsB1, "tcp", gwA, "a2")
		after := dnsCountersOf(e, "dnsga")
		if d := after.Refused.Interface - before.Refused.Interface; d < 2 {
			t.Errorf("network dnsga: refused.interface moved by %d for 2 UDP queries from network dnsgb, want 2 or more (%+v)", d, after)
		}
		if after.Answered != before.Answered {
			t.Errorf("network dnsga: answered %d then %d while only network dnsgb asked", before.Answered, after.Answered)
		}
	})

	t.Run("host gets no answer", func(t *testing.T) {
		before := dnsCountersOf(e, "dnsga")
		mustNotAnswer(t, "", "udp", gwA, upstreamName)
		mustNotAnswer(t, "", "tcp", gwA, upstreamName)
		after := dnsCountersOf(e, "dnsga")
		refused := func(c api.DNSCounters) uint64 { return c.Refused.Source + c.Refused.Interface }
		if d := refused(after) - refused(before); d < 2 {
			t.Errorf("network dnsga: refusals moved by %d for a UDP query and a TCP connection from the host, want 2 or more (%+v)", d, after)
		}
	})

	t.Run("outside gets no answer", func(t *testing.T) {
		nsOut := dnsOutside(e, "10.120.11.0/24")
		// The outside reaches the host's side of its link, so a lost
		// query below is the guard, not the route.
		mustPing(t, nsOut, "10.120.250.1")
		before := dnsCountersOf(e, "dnsga")
		mustNotAnswer(t, nsOut, "udp", gwA, upstreamName)
		mustNotAnswer(t, nsOut, "tcp", gwA, upstreamName)
		after := dnsCountersOf(e, "dnsga")
		// The query reached the gateway address and was refused there.
		if d := after.Refused.Interface - before.Refused.Interface; d < 1 {
			t.Errorf("network dnsga: refused.interface moved by %d for a UDP query from outside, want 1 or more (%+v)", d, after)
		}
	})

	t.Run("internal network does not forward", func(t *testing.T) {
		mustResolve(t, nsI1, "udp", gwI, "i2", addr(i2.IPs[0]))
		rev, err := mdns.ReverseAddr(addr(i2.IPs[0]))
		if err != nil {
			t.Fatal(err)
		}
		r, err := dnsQueryNet(nsI1, "udp", gwI, rev, mdns.TypePTR)
		if err != nil || len(r.Answer) != 1 || !strings.HasSuffix(r.Answer[0].String(), "\ti2.dnsgi.") {
			t.Fatalf("DNS PTR %s from %s = %v, %v; want i2.dnsgi.", rev, nsI1, r, err)
		}
		before := up.queries.Load()
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{upstreamName, mdns.TypeA}, {"8.8.8.8.in-addr.arpa", mdns.TypePTR}} {
			r, err := dnsQueryNet(nsI1, "udp", gwI, q.name, q.qtype)
			if err != nil || r.Rcode != mdns.RcodeServerFailure || len(r.Answer) != 0 {
				t.Fatalf("DNS %s %s from internal %s = %v, %v; want SERVFAIL", mdns.TypeToString[q.qtype], q.name, nsI1, r, err)
			}
		}
		if n := up.queries.Load() - before; n != 0 {
			t.Fatalf("the test's resolver saw %d queries from the internal network, want 0", n)
		}
		c := dnsCountersOf(e, "dnsgi")
		if c.NotForwarded < 2 || c.Forwarded != 0 {
			t.Fatalf("network dnsgi: counters %+v, want not_forwarded 2 or more and forwarded 0", c)
		}
	})

	t.Run("TCP connections per source", func(t *testing.T) {
		before := dnsCountersOf(e, "dnsga")
		// Eight connections, each with a query answered, then idle: the
		// server holds them for its idle timeout.
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := range 8 {
			c, err := nsDial(nsA1, "tcp", gwA)
			if err != nil {
				t.Fatalf("connection %d from %s: %v", i+1, nsA1, err)
			}
			held = append(held, c)
			co := &mdns.Conn{Conn: c}
			m := new(mdns.Msg)
			m.SetQuestion("a2.", mdns.TypeA)
			co.SetDeadline(time.Now().Add(5 * time.Second))
			if err := co.WriteMsg(m); err != nil {
				t.Fatalf("query on connection %d: %v", i+1, err)
			}
			if _, err := co.ReadMsg(); err != nil {
				t.Fatalf("answer on connection %d: %v", i+1, err)
			}
		}
		mustNotAnswer(t, nsA1, "tcp", gwA, "a2")
		mustResolve(t, nsA2, "tcp", gwA, "a1", "")
		mustResolve(t, nsB1, "tcp", gwB, "b1", "")
		e.mustCLI("network", "ls")
		after := dnsCountersOf(e, "dnsga")
		if after.Refused.TCP == before.Refused.TCP {
			t.Fatalf("network dnsga: refused.tcp did not move for a ninth connection from one source (%+v)", after)
		}
	})
	t.Run("flood is rate-limited, neighbour answered", func(t *testing.T) {
		before := dnsCountersOf(e, "dnsga")
		conn, err := nsDial(nsA1, "udp", gwA)
		if err != nil {
			t.Fatalf("dial %s from %s: %v", gwA, nsA1, err)
		}
		defer conn.Close()
		var stop atomic.Bool
		var sent, replies atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() {
			m := new(mdns.Msg)
			m.SetQuestion("a2.", mdns.TypeA)
			for i := 0; !stop.Load(); i++ {
				m.Id = uint16(i)
				b, _ := m.Pack()
				if _, err := conn.Write(b); err == nil {
					sent.Add(1)
				}
			}
		})
		wg.Go(func() {
			buf := make([]byte, 512)
			for {
				conn.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := conn.Read(buf); err != nil {
					if stop.Load() {
						return
					}
					continue
				}
				replies.Add(1)
			}
		})
		// The neighbour resolves as a resolver does, retrying a lost
		// query; every one of its lookups must succeed.
		const lookups = 200
		answered, retries := 0, 0
		start := time.Now()
		for i := range lookups {
			for try := range 3 {
				r, err := dnsQueryNet(nsA2, "udp", gwA, "a1", mdns.TypeA)
				if err == nil && r.Rcode == mdns.RcodeSuccess && len(r.Answer) == 1 {
					answered++
					break
				}
				if try == 2 {
					t.Errorf("lookup %d of a1 from %s: no answer in 3 tries: %v, %v", i, nsA2, r, err)
				}
				retries++
			}
		}
		took := time.Since(start)
		// Another network's DNS and the API answer during the flood.
		mustResolve(t, nsB1, "udp", gwB, "b1", "")
		e.mustCLI("network", "inspect", "dnsgb")
		stop.Store(true)
		wg.Wait()
		after := dnsCountersOf(e, "dnsga")
		t.Logf("flooder sent %d queries and got %d replies; the neighbour's %d lookups took %v with %d retries; rate_limited %d",
			sent.Load(), replies.Load(), lookups, took.Round(time.Millisecond), retries, after.RateLimited-before.RateLimited)
		if answered != lookups {
			t.Fatalf("neighbour: %d of %d lookups answered during the flood, want all", answered, lookups)
		}
		if after.RateLimited == before.RateLimited {
			t.Fatalf("network dnsga: rate_limited did not move while %s sent %d queries", nsA1, sent.Load())
		}
		if replies.Load() >= sent.Load() {
			t.Fatalf("flooder got %d replies to %d queries, want fewer", replies.Load(), sent.Load())
		}
	})
}

// dnsNetns makes a namespace named dns, four hex digits and role, with its
// loopback up, deleted when the test ends.
func dnsNetns(e *testEnv, role string) string {
	e.t.Helper()
	return e.newNetnsNamed("dns", role)
}

// dnsOutside makes a namespace standing for a host outside that routes
// to route through this host: a veth pair, 10.120.250.1/30 on the host's
// end and 10.120.250.2/30 in the namespace.
func dnsOutside(e *testEnv, route string) string {
	e.t.Helper()
	ns := dnsNetns(e, "out")
	id := rand.N(0x10000)
	hostIf, peer := fmt.Sprintf("dnso%04x", id), fmt.Sprintf("dnsp%04x", id)
	if out, err := run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", peer, "netns", ns); err != nil {
		e.t.Fatalf("ip link add %s type veth: %v\n%s", hostIf, err, out)
	}
	e.t.Cleanup(func() { run("ip", "link", "del", hostIf) })
	for _, c := range [][]string{
		{"ip", "addr", "add", "10.120.250.1/30", "dev", hostIf},
		{"ip", "link", "set", hostIf, "up"},
		{"ip", "netns", "exec", ns, "ip", "addr", "add", "10.120.250.2/30", "dev", peer},
		{"ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"},
		{"ip", "netns", "exec", ns, "ip", "route", "add", route, "via", "10.120.250.1"},
	} {
		if out, err := run(c[0], c[1:]...); err != nil {
			e.t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return ns
}

// nsDial connects to addr over network from inside namespace ns, or from
// the test's own namespace if ns is empty.
func nsDial(ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	dial := func() (err error) {
		c, err = net.DialTimeout(network, addr, 3*time.Second)
		return err
	}
	if ns == "" {
		return c, dial()
	}
	// The socket is made inside the namespace and stays there.
	return c, namespace.Do(nsPath(ns), dial)
}

// dnsQueryNet asks server for name over network ("udp" or "tcp") from
// inside namespace ns (the test's own if empty), waiting 2 s for the
// answer.
func dnsQueryNet(ns, network, server, name string, qtype uint16) (*mdns.Msg, error) {
	c, err := nsDial(ns, network, server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	co := &mdns.Conn{Conn: c}
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	co.SetDeadline(time.Now().Add(2 * time.Second))
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	for {
		r, err := co.ReadMsg()
		if err != nil {
			return nil, err
		}
		// A late answer to an earlier query is not this one's.
		if r.Id == m.Id {
			return r, nil
		}
	}
}

// mustResolve fails t unless name resolves, from ns through server, to
// want (to any address if want is empty).
func mustResolve(t *testing.T, ns, network, server, name, want string) {
	t.Helper()
	r, err := dnsQueryNet(ns, network, server, name, mdns.TypeA)
	if err != nil || r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 ||
		(want != "" && !strings.HasSuffix(r.Answer[0].String(), "\t"+want)) {
		t.Fatalf("DNS A %s from %q via %s over %s = %v, %v; want %q", name, ns, server, network, r, err, want)
	}
}

// mustNotAnswer fails t if a query for name from ns to server over
// network gets any DNS message back.
func mustNotAnswer(t *testing.T, ns, network, server, name string) {
	t.Helper()
	r, err := dnsQueryNet(ns, network, server, name, mdns.TypeA)
	if err == nil {
		t.Fatalf("DNS A %s from %q via %s over %s answered %s, want no answer", name, ns, server, network, mdns.RcodeToString[r.Rcode])
	}
	t.Logf("DNS A %s from %q via %s over %s: %v", name, ns, server, network, err)
}

// dnsCountersOf returns the DNS counters of network, as tapswitch network
// inspect shows them.
func dnsCountersOf(e *testEnv, network string) api.DNSCounters {
	e.t.Helper()
	n := e.inspect(network)
	if n.DNSCounters == nil {
		e.t.Fatalf("tapswitch network inspect %s: no dns_counters", network)
	}
	return *n.DNSCounters
}
