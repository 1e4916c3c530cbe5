package nat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
)

// cmdTimeout bounds every ip, sysctl and ping the tests run.
const cmdTimeout = 30 * time.Second

// requirePrivileged skips or fails t (see privtest) unless it runs as
// root with ip and every tool on PATH.
func requirePrivileged(t *testing.T, tools ...string) {
	t.Helper()
	privtest.Require(t, "create network namespaces and nftables tables", append([]string{"ip"}, tools...)...)
}

// run runs a command and fails t if it does not succeed.
func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := tryRun(args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func tryRun(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

var nsSeq atomic.Int32

// testNS is a network namespace of a test's own, deleted when the test
// ends however it ends.
type testNS struct {
	name string
	path string
	// fd is open on path for the test's life.
	fd int
}

func newNS(t *testing.T, role string) *testNS {
	t.Helper()
	name := fmt.Sprintf("fwnat-%d-%d-%s", os.Getpid(), nsSeq.Add(1), role)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := tryRun("ip", "netns", "del", name); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	path, err := namespace.Resolve(name)
	if err != nil {
		t.Fatalf("Resolve(%q) = %v", name, err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &testNS{name: name, path: path, fd: fd}
}

// newManager makes a Manager working in ns, closed when the test ends.
func newManager(t *testing.T, ns *testNS) *Manager {
	t.Helper()
	m, err := New(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})), WithNetNS(ns.fd))
	if err != nil {
		t.Fatalf("New(WithNetNS(%s)) = %v", ns.name, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return m
}

// kernel is the test's own view of the nftables of a namespace.
func kernel(t *testing.T, ns *testNS) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatalf("nftables.New() = %v", err)
	}
	return c
}

var ourTable = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

// hasTable reports whether ns holds the table inet tapswitch.
func hasTable(t *testing.T, c *nftables.Conn) bool {
	t.Helper()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("ListTablesOfFamily(inet) = %v", err)
	}
	return slices.ContainsFunc(tables, func(tb *nftables.Table) bool { return tb.Name == TableName })
}

// chainRules lists a chain of the table as "network: rule" lines.
func chainRules(t *testing.T, c *nftables.Conn, chain string) []string {
	t.Helper()
	rules, err := c.GetRules(ourTable, &nftables.Chain{Name: chain, Table: ourTable})
	if err != nil {
		t.Fatalf("GetRules(inet %s, %s) = %v", TableName, chain, err)
	}
	lines := []string{}
	for _, r := range rules {
		name, ok := networkOf(r.UserData)
		if !ok {
			name = "(untagged)"
		}
		lines = append(lines, name+": "+render(r.Exprs))
	}
	return lines
}

// sysctl reads a /proc/sys file as ns sees it.
func sysctl(t *testing.T, ns *testNS, path string) string {
	t.Helper()
	var b []byte
	err := namespace.Do(ns.path, func() (err error) {
		b, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatalf("read %s in %s: %v", path, ns.name, err)
	}
	return strings.TrimSpace(string(b))
}

const (
	ip4Forward = "/proc/sys/net/ipv4/ip_forward"
	ip6Forward = "/proc/sys/net/ipv6/conf/all/forwarding"
)

func TestManagerRules(t *testing.T) {
	requirePrivileged(t, "sysctl")
	ns := newNS(t, "rules")
	// A new namespace starts with forwarding off; make sure of it, as the
	// steps check who turns it on.
	run(t, "ip", "netns", "exec", ns.name, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")
	m := newManager(t, ns)
	c := kernel(t, ns)

	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("ListChainsOfTableFamily(inet) = %v", err)
	}
	var got []string
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		policy := "none"
		if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyAccept {
			policy = "accept"
		}
		got = append(got, fmt.Sprintf("%s type %s hook %d priority %d policy %s", ch.Name, ch.Type, *ch.Hooknum, *ch.Priority, policy))
	}
	slices.Sort(got)
	wantChains := []string{
		fmt.Sprintf("forward type filter hook %d priority 0 policy accept", *nftables.ChainHookForward),
		fmt.Sprintf("input type filter hook %d priority 0 policy accept", *nftables.ChainHookInput),
		fmt.Sprintf("postrouting type nat hook %d priority 100 policy accept", *nftables.ChainHookPostrouting),
	}
	if !slices.Equal(got, wantChains) {
		t.Fatalf("chains of inet %s after New() = %q, want %q", TableName, got, wantChains)
	}

	front := Network{Name: "front", Subnet: netip.MustParsePrefix("10.20.0.0/24"), Bridge: "tsw-front"}
	back := Network{Name: "back", Subnet: netip.MustParsePrefix("10.30.0.0/24"), Bridge: "tsw-back", Gateway: netip.MustParseAddr("10.30.0.1"), Internal: true}
	v6 := Network{Name: "v6", Subnet: netip.MustParsePrefix("fd00:20::/64"), Bridge: "tsw-v6"}
	frontInternal := front
	frontInternal.Internal = true

	const (
		frontMasq   = `front: meta nfproto ipv4 ip saddr 10.20.0.0/24 oifname != "tsw-front" masquerade`
		frontNew    = `front: oifname "tsw-front" iifname != "tsw-front" ct state ! established,related ct status ! dnat counter drop`
		frontIn     = `front: iifname "tsw-front" accept`
		frontOut    = `front: oifname "tsw-front" ct state established,related accept`
		frontInDrop = `front: iifname "tsw-front" counter drop`
		frontOutDr  = `front: oifname "tsw-front" counter drop`
		backInDrop  = `back: iifname "tsw-back" counter drop`
		backOutDrop = `back: oifname "tsw-back" counter drop`
		v6Masq      = `v6: meta nfproto ipv6 ip6 saddr fd00:20::/64 oifname != "tsw-v6" masquerade`
		v6New       = `v6: oifname "tsw-v6" iifname != "tsw-v6" ct state ! established,related ct status ! dnat counter drop`
		v6In        = `v6: iifname "tsw-v6" accept`
		v6Out       = `v6: oifname "tsw-v6" ct state established,related accept`
		// The source guard: only a network's own addresses come in
		// through its gateway.
		frontForeign = `front: iifname "tsw-front" meta nfproto ipv4 ip saddr != 10.20.0.0/24 counter drop`
		frontOther   = `front: iifname "tsw-front" meta nfproto != ipv4 counter drop`
		v6Foreign    = `v6: iifname "tsw-v6" meta nfproto ipv6 ip6 saddr != fd00:20::/64 counter drop`
		v6Other      = `v6: iifname "tsw-v6" meta nfproto != ipv6 counter drop`
	)
	// An ordinary network's drops at the head of the forward chain, and
	// its input rules.
	frontHead := []string{frontNew, frontForeign, frontOther}
	v6Head := []string{v6New, v6Foreign, v6Other}
	frontOrdIn := []string{frontOther, frontForeign}
	v6OrdIn := []string{
		`v6: iifname "tsw-v6" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit accept`,
		`v6: iifname "tsw-v6" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert accept`,
		v6Other, v6Foreign,
	}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	// The input rules of an internal network, with and without a gateway
	// address.
	backInput := []string{
		`back: iifname "tsw-back" meta nfproto != ipv4 counter drop`,
		`back: iifname "tsw-back" meta nfproto ipv4 ip saddr != 10.30.0.0/24 counter drop`,
		`back: iifname "tsw-back" ct state established,related accept`,
		`back: iifname "tsw-back" meta nfproto ipv4 ip daddr 10.30.0.1 meta l4proto udp th dport 53 accept`,
		`back: iifname "tsw-back" meta nfproto ipv4 ip daddr 10.30.0.1 meta l4proto tcp th dport 53 accept`,
		`back: iifname "tsw-back" meta nfproto ipv4 ip daddr 10.30.0.1 meta l4proto icmp icmp type echo-request accept`,
		`back: iifname "tsw-back" counter drop`,
	}
	frontInput := []string{
		frontOther, frontForeign,
		`front: iifname "tsw-front" ct state established,related accept`,
		`front: iifname "tsw-front" counter drop`,
	}
	// The steps run in order, each on the state the one before left.
	steps := []struct {
		name     string
		call     string
		do       func() error
		wantErr  error
		post     []string
		fwd      []string
		input    []string
		networks []string
		// forward4 and forward6 are the forwarding switches afterwards.
		forward4, forward6 string
	}{
		{
			name: "internal first", call: "AddNetwork(back)", do: func() error { return m.AddNetwork(back) },
			post: []string{}, fwd: []string{backInDrop, backOutDrop}, input: backInput,
			networks: []string{"back"}, forward4: "0", forward6: "0",
		},
		{
			name: "ipv4", call: "AddNetwork(front)", do: func() error { return m.AddNetwork(front) },
			post: []string{frontMasq}, fwd: cat(frontHead, []string{backInDrop, backOutDrop, frontIn, frontOut}), input: cat(backInput, frontOrdIn),
			networks: []string{"back", "front"}, forward4: "1", forward6: "0",
		},
		{
			name: "ipv6", call: "AddNetwork(v6)", do: func() error { return m.AddNetwork(v6) },
			post: []string{frontMasq, v6Masq}, fwd: cat(v6Head, frontHead, []string{backInDrop, backOutDrop, frontIn, frontOut, v6In, v6Out}), input: cat(backInput, frontOrdIn, v6OrdIn),
			networks: []string{"back", "front", "v6"}, forward4: "1", forward6: "1",
		},
		{
			name: "replace with internal", call: "AddNetwork(front internal)", do: func() error { return m.AddNetwork(frontInternal) },
			post: []string{v6Masq}, fwd: cat([]string{frontInDrop, frontOutDr}, v6Head, []string{backInDrop, backOutDrop, v6In, v6Out}), input: cat(backInput, v6OrdIn, frontInput),
			networks: []string{"back", "front", "v6"}, forward4: "1", forward6: "1",
		},
		{
			name: "remove", call: `RemoveNetwork("back")`, do: func() error { return m.RemoveNetwork("back") },
			post: []string{v6Masq}, fwd: cat([]string{frontInDrop, frontOutDr}, v6Head, []string{v6In, v6Out}), input: cat(v6OrdIn, frontInput),
			networks: []string{"front", "v6"}, forward4: "1", forward6: "1",
		},
		{
			name: "remove unknown", call: `RemoveNetwork("back")`, do: func() error { return m.RemoveNetwork("back") }, wantErr: ErrUnknownNetwork,
			post: []string{v6Masq}, fwd: cat([]string{frontInDrop, frontOutDr}, v6Head, []string{v6In, v6Out}), input: cat(v6OrdIn, frontInput),
			networks: []string{"front", "v6"}, forward4: "1", forward6: "1",
		},
		{
			name: "invalid", call: "AddNetwork(no bridge)", do: func() error { return m.AddNetwork(Network{Name: "x", Subnet: front.Subnet}) }, wantErr: ErrInvalidNetwork,
			post: []string{v6Masq}, fwd: cat([]string{frontInDrop, frontOutDr}, v6Head, []string{v6In, v6Out}), input: cat(v6OrdIn, frontInput),
			networks: []string{"front", "v6"}, forward4: "1", forward6: "1",
		},
		{
			name: "replace with outbound", call: "AddNetwork(front)", do: func() error { return m.AddNetwork(front) },
			post: []string{v6Masq, frontMasq}, fwd: cat(frontHead, v6Head, []string{v6In, v6Out, frontIn, frontOut}), input: cat(v6OrdIn, frontOrdIn),
			networks: []string{"front", "v6"}, forward4: "1", forward6: "1",
		},
		{
			name: "remove last outbound", call: `RemoveNetwork("front")`, do: func() error { return m.RemoveNetwork("front") },
			post: []string{v6Masq}, fwd: cat(v6Head, []string{v6In, v6Out}), input: v6OrdIn,
			networks: []string{"v6"}, forward4: "1", forward6: "1",
		},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.do(); !errors.Is(err, s.wantErr) {
				t.Fatalf("%s = %v, want %v", s.call, err, s.wantErr)
			}
			if got := chainRules(t, c, chainPostrouting); !slices.Equal(got, s.post) {
				t.Errorf("after %s, chain postrouting =\n%s\nwant\n%s", s.call, strings.Join(got, "\n"), strings.Join(s.post, "\n"))
			}
			if got := chainRules(t, c, chainForward); !slices.Equal(got, s.fwd) {
				t.Errorf("after %s, chain forward =\n%s\nwant\n%s", s.call, strings.Join(got, "\n"), strings.Join(s.fwd, "\n"))
			}
			if got := chainRules(t, c, chainInput); !slices.Equal(got, s.input) {
				t.Errorf("after %s, chain input =\n%s\nwant\n%s", s.call, strings.Join(got, "\n"), strings.Join(s.input, "\n"))
			}
			if got, err := m.Networks(); err != nil || !slices.Equal(got, s.networks) {
				t.Errorf("after %s, Networks() = %q, %v; want %q", s.call, got, err, s.networks)
			}
			if got := sysctl(t, ns, ip4Forward); got != s.forward4 {
				t.Errorf("after %s, %s = %s, want %s", s.call, ip4Forward, got, s.forward4)
			}
			if got := sysctl(t, ns, ip6Forward); got != s.forward6 {
				t.Errorf("after %s, %s = %s, want %s", s.call, ip6Forward, got, s.forward6)
			}
		})
	}

	// The nft CLI is not needed; when it is there, show the table as an
	// administrator would see it.
	if _, err := exec.LookPath("nft"); err == nil {
		t.Logf("nft list table inet %s:\n%s", TableName, run(t, "ip", "netns", "exec", ns.name, "nft", "list", "table", "inet", TableName))
	}

	if err := m.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if hasTable(t, c) {
		t.Errorf("table inet %s still there after Close()", TableName)
	}
	if got := sysctl(t, ns, ip4Forward); got != "1" {
		t.Errorf("%s = %s after Close(), want it left at 1", ip4Forward, got)
	}
	if err := m.AddNetwork(front); !errors.Is(err, ErrClosed) {
		t.Errorf("AddNetwork(front) after Close() = %v, want ErrClosed", err)
	}
	if _, err := m.Networks(); !errors.Is(err, ErrClosed) {
		t.Errorf("Networks() after Close() = %v, want ErrClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
}

func TestNewReplacesLeftoverTable(t *testing.T) {
	requirePrivileged(t)
	accept, drop := nftables.ChainPolicyAccept, nftables.ChainPolicyDrop
	tests := []struct {
		name string
		// leave builds what a crashed daemon (or an older version) left.
		leave func(c *nftables.Conn)
	}{
		{name: "nothing", leave: func(*nftables.Conn) {}},
		{name: "a previous run", leave: func(c *nftables.Conn) {
			c.AddTable(ourTable)
			fwd := c.AddChain(&nftables.Chain{Name: chainForward, Table: ourTable, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
			for _, spec := range rulesFor(Network{Name: "old", Subnet: netip.MustParsePrefix("10.40.0.0/24"), Bridge: "tsw-old", Internal: true}, "") {
				c.AddRule(&nftables.Rule{Table: ourTable, Chain: fwd, Exprs: spec.exprs, UserData: comment("old")})
			}
		}},
		{name: "another layout", leave: func(c *nftables.Conn) {
			c.AddTable(ourTable)
			// A forward chain that drops everything and a chain New does
			// not make: neither may survive.
			c.AddChain(&nftables.Chain{Name: chainForward, Table: ourTable, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
			stale := c.AddChain(&nftables.Chain{Name: "stale", Table: ourTable})
			c.AddRule(&nftables.Rule{Table: ourTable, Chain: stale, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNS(t, "crash")
			c := kernel(t, ns)
			// A table of someone else's, which New must leave alone.
			other := c.AddTable(&nftables.Table{Name: "other", Family: nftables.TableFamilyINet})
			c.AddChain(&nftables.Chain{Name: "keep", Table: other})
			tt.leave(c)
			if err := c.Flush(); err != nil {
				t.Fatalf("set up leftovers: Flush() = %v", err)
			}

			m := newManager(t, ns)

			chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
			if err != nil {
				t.Fatalf("ListChainsOfTableFamily(inet) = %v", err)
			}
			var got []string
			for _, ch := range chains {
				p := "-"
				if ch.Policy != nil {
					p = map[nftables.ChainPolicy]string{accept: "accept", drop: "drop"}[*ch.Policy]
				}
				got = append(got, ch.Table.Name+"/"+ch.Name+" "+p)
			}
			slices.Sort(got)
			want := []string{"other/keep -", TableName + "/forward accept", TableName + "/input accept", TableName + "/postrouting accept"}
			if !slices.Equal(got, want) {
				t.Errorf("chains after New() = %q, want %q", got, want)
			}
			for _, chain := range []string{chainPostrouting, chainForward, chainInput} {
				if got := chainRules(t, c, chain); len(got) != 0 {
					t.Errorf("chain %s after New() = %q, want no rules", chain, got)
				}
			}
			if got, err := m.Networks(); err != nil || len(got) != 0 {
				t.Errorf("Networks() after New() = %q, %v; want none", got, err)
			}
			if err := m.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
			if err != nil || len(tables) != 1 || tables[0].Name != "other" {
				t.Errorf("inet tables after Close() = %v, %v; want only other", tables, err)
			}
		})
	}
}

// TestAddNetworkAllOrNothing makes the kernel refuse the last message of
// an AddNetwork batch and checks that nothing of the batch stayed.
func TestAddNetworkAllOrNothing(t *testing.T) {
	requirePrivileged(t)
	ns := newNS(t, "atomic")
	m := newManager(t, ns)
	c := kernel(t, ns)
	internal := Network{Name: "front", Subnet: netip.MustParsePrefix("10.20.0.0/24"), Bridge: "tsw-front", Internal: true}
	if err := m.AddNetwork(internal); err != nil {
		t.Fatalf("AddNetwork(front internal) = %v", err)
	}
	before := chainRules(t, c, chainForward)

	// A filter chain in place of the nat one: the kernel refuses
	// masquerade there.
	c.DelChain(&nftables.Chain{Name: chainPostrouting, Table: ourTable})
	c.AddChain(&nftables.Chain{Name: chainPostrouting, Table: ourTable, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityFilter})
	if err := c.Flush(); err != nil {
		t.Fatalf("replace postrouting chain: Flush() = %v", err)
	}

	outbound := internal
	outbound.Internal = false
	err := m.AddNetwork(outbound)
	if err == nil {
		t.Fatalf("AddNetwork(front) into a filter postrouting chain = nil, want an error")
	}
	t.Logf("AddNetwork(front) = %v", err)
	if got := chainRules(t, c, chainForward); !slices.Equal(got, before) {
		t.Errorf("chain forward after a failed AddNetwork(front) =\n%s\nwant it unchanged:\n%s", strings.Join(got, "\n"), strings.Join(before, "\n"))
	}
	if got := chainRules(t, c, chainPostrouting); len(got) != 0 {
		t.Errorf("chain postrouting after a failed AddNetwork(front) = %q, want no rules", got)
	}
}

// world is three namespaces: host plays the daemon's host, ctr a
// container on a tapswitch network whose gateway interface is host's
// tsw-front, and out the world beyond host's uplink, which has no route
// back to the network's subnet.
//
//	ctr eth0 10.99.0.2 ── tsw-front 10.99.0.1  host  uplink 198.51.100.1 ── eth0 198.51.100.2 out
type world struct {
	host, ctr, out *testNS
}

const (
	gatewayAddr = "10.99.0.1"
	uplinkAddr  = "198.51.100.1"
	outAddr     = "198.51.100.2"
)

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{host: newNS(t, "host"), ctr: newNS(t, "ctr"), out: newNS(t, "out")}
	h, c, o := w.host.name, w.ctr.name, w.out.name
	// Both veth pairs are made inside host and their peers sent straight
	// to their namespaces, so no interface ever appears on the real host.
	for _, cmd := range [][]string{
		{"ip", "-n", h, "link", "add", "tsw-front", "type", "veth", "peer", "name", "eth0", "netns", c},
		{"ip", "-n", h, "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", o},
		{"ip", "-n", h, "addr", "add", gatewayAddr + "/24", "dev", "tsw-front"},
		{"ip", "-n", h, "addr", "add", uplinkAddr + "/24", "dev", "uplink"},
		{"ip", "-n", h, "link", "set", "tsw-front", "up"},
		{"ip", "-n", h, "link", "set", "uplink", "up"},
		{"ip", "-n", h, "link", "set", "lo", "up"},
		{"ip", "-n", c, "addr", "add", "10.99.0.2/24", "dev", "eth0"},
		{"ip", "-n", c, "link", "set", "eth0", "up"},
		{"ip", "-n", c, "link", "set", "lo", "up"},
		{"ip", "-n", c, "route", "add", "default", "via", gatewayAddr},
		{"ip", "-n", o, "addr", "add", outAddr + "/24", "dev", "eth0"},
		{"ip", "-n", o, "link", "set", "eth0", "up"},
		{"ip", "-n", o, "link", "set", "lo", "up"},
		// out must see unmasqueraded packets arrive although it cannot
		// route back to them: that is how the test tells a missing return
		// path from a drop.
		{"ip", "netns", "exec", o, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"},
		// Forwarding on from the start, so that before AddNetwork the only
		// thing missing is the masquerade.
		{"ip", "netns", "exec", h, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	} {
		run(t, cmd...)
	}
	return w
}

// ping reports whether ns gets an answer from addr.
func ping(t *testing.T, ns *testNS, addr string) bool {
	t.Helper()
	_, err := tryRun("ip", "netns", "exec", ns.name, "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", addr)
	return err == nil
}

// echoServer answers each UDP datagram on outAddr in out, and reports
// the source address it came from.
type echoServer struct {
	addr netip.AddrPort
	// from receives each datagram's payload and source.
	from chan arrival
}

type arrival struct {
	payload string
	src     netip.Addr
}

func newEchoServer(t *testing.T, ns *testNS) *echoServer {
	t.Helper()
	var conn *net.UDPConn
	err := namespace.Do(ns.path, func() (err error) {
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(outAddr+":0")))
		return err
	})
	if err != nil {
		t.Fatalf("listen UDP in %s: %v", ns.name, err)
	}
	s := &echoServer{addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), from: make(chan arrival, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, peer, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.from <- arrival{payload: string(buf[:n]), src: peer.Addr().Unmap()}
			// Fails with no route back before the masquerade: expected.
			conn.WriteToUDPAddrPort(buf[:n], peer)
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

var probeSeq atomic.Int32

// probe sends one datagram from ctr to s over a new socket, and so over
// a new conntrack entry: NAT is decided on a connection's first packet.
// It reports the source s saw (invalid if nothing arrived) and whether
// the echo came back.
func (s *echoServer) probe(t *testing.T, ctr *testNS) (src netip.Addr, replied bool) {
	t.Helper()
	var conn *net.UDPConn
	err := namespace.Do(ctr.path, func() (err error) {
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(s.addr))
		return err
	})
	if err != nil {
		t.Fatalf("dial UDP %v in %s: %v", s.addr, ctr.name, err)
	}
	defer conn.Close()
	payload := fmt.Sprintf("probe %d", probeSeq.Add(1))
	if _, err := conn.Write([]byte(payload)); err != nil {
		t.Fatalf("send UDP to %v from %s: %v", s.addr, ctr.name, err)
	}
	deadline := time.After(time.Second)
wait:
	for {
		select {
		case a := <-s.from:
			if a.payload == payload {
				src = a.src
				break wait
			}
		case <-deadline:
			return netip.Addr{}, false
		}
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	return src, err == nil && string(buf[:n]) == payload
}

func TestTraffic(t *testing.T) {
	requirePrivileged(t, "ping", "sysctl")
	w := newWorld(t)
	srv := newEchoServer(t, w.out)
	m := newManager(t, w.host)
	c := kernel(t, w.host)
	ctrAddr := netip.MustParseAddr("10.99.0.2")
	uplink := netip.MustParseAddr(uplinkAddr)
	outbound := Network{Name: "front", Subnet: netip.MustParsePrefix("10.99.0.0/24"), Bridge: "tsw-front", Gateway: netip.MustParseAddr(gatewayAddr)}
	internal := outbound
	internal.Internal = true

	// Each phase applies a change and then checks what ctr can reach.
	phases := []struct {
		name  string
		call  string
		apply func() error
		// wantOut is whether ping from ctr to out succeeds; wantSrc the
		// source out sees on a datagram (invalid: nothing arrives);
		// wantReply whether the datagram's echo comes back.
		wantOut   bool
		wantSrc   netip.Addr
		wantReply bool
	}{
		{name: "no rules", call: "nothing", apply: func() error { return nil },
			wantOut: false, wantSrc: ctrAddr, wantReply: false},
		{name: "outbound", call: "AddNetwork(front)", apply: func() error { return m.AddNetwork(outbound) },
			wantOut: true, wantSrc: uplink, wantReply: true},
		{name: "internal", call: "AddNetwork(front internal)", apply: func() error { return m.AddNetwork(internal) },
			wantOut: false, wantSrc: netip.Addr{}, wantReply: false},
		{name: "removed", call: `RemoveNetwork("front")`, apply: func() error { return m.RemoveNetwork("front") },
			wantOut: false, wantSrc: ctrAddr, wantReply: false},
	}
	for _, p := range phases {
		t.Run(p.name, func(t *testing.T) {
			if err := p.apply(); err != nil {
				t.Fatalf("%s = %v", p.call, err)
			}
			if got := ping(t, w.ctr, outAddr); got != p.wantOut {
				t.Errorf("after %s, ping %s from ctr succeeded = %v, want %v", p.call, outAddr, got, p.wantOut)
			}
			src, replied := srv.probe(t, w.ctr)
			if src != p.wantSrc || replied != p.wantReply {
				t.Errorf("after %s, UDP from ctr to out: source seen %v, echo back %v; want source %v, echo back %v", p.call, src, replied, p.wantSrc, p.wantReply)
			}
			// The gateway is input to host, never forward, and an internal
			// network's gateway interface admits echo requests to it.
			if !ping(t, w.ctr, gatewayAddr) {
				t.Errorf("after %s, ping %s (gateway) from ctr failed", p.call, gatewayAddr)
			}
		})
	}

	if err := m.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if hasTable(t, c) {
		t.Errorf("table inet %s still in host after Close()", TableName)
	}
}

func TestConcurrentCalls(t *testing.T) {
	requirePrivileged(t)
	ns := newNS(t, "conc")
	m := newManager(t, ns)
	const n = 8
	errs := make(chan error, 2*n)
	var want []string
	for i := range n {
		name := fmt.Sprintf("net%d", i)
		want = append(want, name)
		go func() {
			errs <- m.AddNetwork(Network{
				Name:     name,
				Subnet:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 50, byte(i), 0}), 24),
				Bridge:   "tsw-" + name,
				Internal: i%2 == 1,
			})
		}()
		go func() {
			_, err := m.Networks()
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent AddNetwork or Networks = %v", err)
		}
	}
	slices.Sort(want)
	if got, err := m.Networks(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("Networks() = %q, %v; want %q", got, err, want)
	}
	// An internal network has two forward rules, an ordinary one five.
	if got, want := len(chainRules(t, kernel(t, ns), chainForward)), n/2*2+n/2*5; got != want {
		t.Fatalf("chain forward holds %d rules, want %d", got, want)
	}
}

// listenTCP accepts TCP connections on addr inside ns, and reads nothing:
// a connection that completes is all the tests look at.
func listenTCP(t *testing.T, ns *testNS, addr string) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	err := namespace.Do(ns.path, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen TCP on %s in %s: %v", addr, ns.name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// connects reports whether a TCP connection from ns to dst completes
// within a second (a drop shows as no answer at all).
func connects(t *testing.T, ns *testNS, dst netip.AddrPort) bool {
	t.Helper()
	var c net.Conn
	err := namespace.Do(ns.path, func() (err error) {
		c, err = net.DialTimeout("tcp", dst.String(), time.Second)
		return err
	})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// udpAnswers reports whether a datagram from ns to dst gets an answer.
func udpAnswers(t *testing.T, ns *testNS, dst netip.AddrPort) bool {
	t.Helper()
	var conn *net.UDPConn
	err := namespace.Do(ns.path, func() (err error) {
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		t.Fatalf("dial UDP %v in %s: %v", dst, ns.name, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("query")); err != nil {
		return false
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 64))
	return err == nil
}

// echoUDP answers every datagram on addr inside ns, standing for the
// network's DNS server on the gateway.
func echoUDP(t *testing.T, ns *testNS, addr string) netip.AddrPort {
	t.Helper()
	var conn *net.UDPConn
	err := namespace.Do(ns.path, func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	})
	if err != nil {
		t.Fatalf("listen UDP on %s in %s: %v", addr, ns.name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, peer, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			conn.WriteToUDPAddrPort(buf[:n], peer)
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestInboundAndHost checks what reaches into a network and what the
// network reaches of the host: out, given a route to the network's
// subnet through host (a LAN neighbour), connects to a container's port
// only while no rules are in force; a container of an internal network
// reaches nothing of host but DNS and ping on its gateway address, while
// host still reaches the container.
func TestInboundAndHost(t *testing.T) {
	requirePrivileged(t, "ping", "sysctl")
	w := newWorld(t)
	run(t, "ip", "-n", w.out.name, "route", "add", "10.99.0.0/24", "via", uplinkAddr)
	m := newManager(t, w.host)
	c := kernel(t, w.host)

	ctrPort := listenTCP(t, w.ctr, "10.99.0.2:0")
	// One service on every address of host, one on the gateway address
	// only, and a stand-in for the DNS server on the gateway.
	anyPort := listenTCP(t, w.host, "0.0.0.0:0").Port()
	gwService := listenTCP(t, w.host, gatewayAddr+":0")
	dns := echoUDP(t, w.host, gatewayAddr+":53")
	otherUDP := echoUDP(t, w.host, gatewayAddr+":0")

	outbound := Network{Name: "front", Subnet: netip.MustParsePrefix("10.99.0.0/24"), Bridge: "tsw-front", Gateway: netip.MustParseAddr(gatewayAddr)}
	internal := outbound
	internal.Internal = true

	type want struct {
		// in: out connects to the container's port; hostAny, hostGW,
		// hostUplink: the container connects to host's services through
		// the gateway address and through host's other address; dns,
		// udp: a datagram to the gateway's port 53 and to another port
		// gets an answer; ping: the gateway answers; back: host
		// connects to the container.
		in, hostAny, hostGW, hostUplink, dns, udp, ping, back bool
	}
	open := want{in: true, hostAny: true, hostGW: true, hostUplink: true, dns: true, udp: true, ping: true, back: true}
	phases := []struct {
		name  string
		call  string
		apply func() error
		want  want
	}{
		{name: "no rules", call: "nothing", apply: func() error { return nil }, want: open},
		{name: "outbound", call: "AddNetwork(front)", apply: func() error { return m.AddNetwork(outbound) },
			want: want{in: false, hostAny: true, hostGW: true, hostUplink: true, dns: true, udp: true, ping: true, back: true}},
		{name: "internal", call: "AddNetwork(front internal)", apply: func() error { return m.AddNetwork(internal) },
			want: want{in: false, hostAny: false, hostGW: false, hostUplink: false, dns: true, udp: false, ping: true, back: true}},
		{name: "removed", call: `RemoveNetwork("front")`, apply: func() error { return m.RemoveNetwork("front") }, want: open},
	}
	for _, p := range phases {
		t.Run(p.name, func(t *testing.T) {
			if err := p.apply(); err != nil {
				t.Fatalf("%s = %v", p.call, err)
			}
			got := want{
				in:         connects(t, w.out, ctrPort),
				hostAny:    connects(t, w.ctr, netip.AddrPortFrom(netip.MustParseAddr(gatewayAddr), anyPort)),
				hostGW:     connects(t, w.ctr, gwService),
				hostUplink: connects(t, w.ctr, netip.AddrPortFrom(netip.MustParseAddr(uplinkAddr), anyPort)),
				dns:        udpAnswers(t, w.ctr, dns),
				udp:        udpAnswers(t, w.ctr, otherUDP),
				ping:       ping(t, w.ctr, gatewayAddr),
				back:       connects(t, w.host, ctrPort),
			}
			if got != p.want {
				t.Errorf("after %s:\n got %+v\nwant %+v", p.call, got, p.want)
			}
			drops, err := m.Dropped()
			if err != nil {
				t.Fatalf("Dropped() = %v", err)
			}
			// With rules in force, the probes that failed were dropped by the
			// network's rules, and counted.
			if p.name == "outbound" || p.name == "internal" {
				if drops["front"] == 0 {
					t.Errorf("after %s, Dropped() = %v, want packets dropped for front", p.call, drops)
				}
				t.Logf("after %s, Dropped() = %v", p.call, drops)
			}
		})
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if hasTable(t, c) {
		t.Errorf("table inet %s still in host after Close()", TableName)
	}
}

// TestInternalIPv6 checks an internal IPv6 network's gateway interface:
// neighbour discovery must pass, or neither the container finds its
// gateway nor the host the container, and the rest behaves as for IPv4.
// The neighbour caches are flushed before each probe, so each one needs
// a fresh solicitation and advertisement.
func TestInternalIPv6(t *testing.T) {
	requirePrivileged(t, "ping", "sysctl")
	w := newWorld(t)
	const (
		gw6  = "fd00:99::1"
		ctr6 = "fd00:99::2"
	)
	run(t, "ip", "-n", w.host.name, "addr", "add", gw6+"/64", "dev", "tsw-front", "nodad")
	run(t, "ip", "-n", w.ctr.name, "addr", "add", ctr6+"/64", "dev", "eth0", "nodad")
	m := newManager(t, w.host)

	ctrPort := listenTCP(t, w.ctr, "["+ctr6+"]:0")
	anyPort := listenTCP(t, w.host, "[::]:0").Port()
	dns := echoUDP(t, w.host, "["+gw6+"]:53")
	at := func(a string, port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(a), port) }
	flush := func() {
		run(t, "ip", "-n", w.host.name, "neigh", "flush", "dev", "tsw-front")
		run(t, "ip", "-n", w.ctr.name, "neigh", "flush", "dev", "eth0")
	}

	type want struct{ ping, dns, host, back bool }
	phases := []struct {
		name  string
		apply func() error
		want  want
	}{
		{name: "no rules", apply: func() error { return nil }, want: want{ping: true, dns: true, host: true, back: true}},
		{name: "internal", apply: func() error {
			return m.AddNetwork(Network{Name: "v6", Subnet: netip.MustParsePrefix("fd00:99::/64"), Bridge: "tsw-front", Gateway: netip.MustParseAddr(gw6), Internal: true})
		}, want: want{ping: true, dns: true, host: false, back: true}},
	}
	for _, p := range phases {
		t.Run(p.name, func(t *testing.T) {
			if err := p.apply(); err != nil {
				t.Fatal(err)
			}
			var got want
			flush()
			got.ping = ping(t, w.ctr, gw6)
			flush()
			got.dns = udpAnswers(t, w.ctr, dns)
			flush()
			got.host = connects(t, w.ctr, at(gw6, anyPort))
			flush()
			got.back = connects(t, w.host, ctrPort)
			if got != p.want {
				t.Errorf("%s:\n got %+v\nwant %+v", p.name, got, p.want)
			}
		})
	}
}
