package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	mdns "github.com/miekg/dns"

	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/namespace"
)

// The firewall tests' addresses: networks in 10.130.0.0/16, and the link
// to the outside namespace in 10.130.250.0/24.
const (
	fwOpenSubnet = "10.130.1.0/24"
	fwOpenGW     = "10.130.1.1"
	fwShutSubnet = "10.130.2.0/24"
	fwShutGW     = "10.130.2.1"
	fwHostAddr   = "10.130.250.1"
	fwOutAddr    = "10.130.250.2"
)

// fwDialTimeout bounds each connection attempt. A dropped SYN gets no
// answer at all, so a refused probe always waits this long; it is not an
// assertion of speed.
const fwDialTimeout = 2 * time.Second

// fwBaselineEnv names a directory of tapswitchd and tapswitch binaries to
// run the attacks against instead of the ones built from this tree (a
// build from before the firewall rules, to measure what they change).
// Against such a build the test fails, and its probe table shows what
// each attack achieved.
const fwBaselineEnv = "TAPSWITCH_FIREWALL_BASELINE"

// fwUseBaseline points the test at the baseline binaries if asked for.
func fwUseBaseline(t *testing.T) {
	t.Helper()
	dir := os.Getenv(fwBaselineEnv)
	if dir == "" {
		return
	}
	old := binDir
	binDir = dir
	t.Cleanup(func() { binDir = old })
	t.Logf("%s=%s: attacking the binaries in %s", fwBaselineEnv, dir, dir)
}

// newFwNetns is newNetns with names of the firewall tests' own ("fw"
// and 4 hex digits and role).
func (e *testEnv) newFwNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("fw", role)
}

// newFwOutside makes a namespace standing for a LAN host: a veth pair to
// the host (fwHostAddr on the host's end, fwOutAddr on the namespace's)
// and, in the namespace, a route to all of 10.130.0.0/16 through the
// host, as a neighbour that routes a container subnet through the host
// would have. It returns the namespace and the host end's name.
func (e *testEnv) newFwOutside() (ns, hostIf string) {
	e.t.Helper()
	ns = e.newFwNetns("out")
	id := rand.N(0x10000)
	// Not "tsw-": the daemon's isolation rules cover that prefix.
	hostIf, peer := fmt.Sprintf("fwo%04x", id), fmt.Sprintf("fwp%04x", id)
	if out, err := run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", peer, "netns", ns); err != nil {
		e.t.Fatalf("ip link add %s type veth: %v\n%s", hostIf, err, out)
	}
	e.t.Cleanup(func() { run("ip", "link", "del", hostIf) })
	for _, c := range [][]string{
		{"ip", "addr", "add", fwHostAddr + "/24", "dev", hostIf},
		{"ip", "link", "set", hostIf, "up"},
		{"ip", "netns", "exec", ns, "ip", "addr", "add", fwOutAddr + "/24", "dev", peer},
		{"ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"},
		{"ip", "netns", "exec", ns, "ip", "route", "add", "10.130.0.0/16", "via", fwHostAddr},
	} {
		if out, err := run(c[0], c[1:]...); err != nil {
			e.t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return ns, hostIf
}

// fwDNAT publishes dst on port of the host's address for what arrives on
// hostIf, by a destination NAT rule in a table of the test's own, as
// CNI's portmap or kube-proxy would.
func fwDNAT(t *testing.T, hostIf string, port uint16, dst netip.AddrPort) {
	t.Helper()
	table := fmt.Sprintf("fwdnat%04x", rand.N(0x10000))
	for _, c := range [][]string{
		{"nft", "add", "table", "ip", table},
		{"nft", "add", "chain", "ip", table, "pre", "{ type nat hook prerouting priority dstnat; }"},
		{"nft", "add", "rule", "ip", table, "pre", "iifname", hostIf, "tcp", "dport", fmt.Sprint(port), "dnat", "to", dst.String()},
	} {
		if out, err := run(c[0], c[1:]...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
		if c[2] == "table" {
			t.Cleanup(func() { run("nft", "delete", "table", "ip", table) })
		}
	}
}

// fwListen accepts TCP connections on addr in namespace ns ("" for the
// test's own, the host's) and writes hello on each. It returns the
// address it listens on.
func fwListen(t *testing.T, ns, addr, hello string) netip.AddrPort {
	t.Helper()
	listen := func() (ln net.Listener, err error) { return net.Listen("tcp4", addr) }
	var ln net.Listener
	var err error
	if ns == "" {
		ln, err = listen()
	} else {
		err = namespace.Do(nsPath(ns), func() (err error) {
			ln, err = listen()
			return err
		})
	}
	if err != nil {
		t.Fatalf("listen on %s in %q: %v", addr, ns, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// The peer's address tells whether it was masqueraded.
			fmt.Fprintf(c, "%s %s\n", hello, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// fwDial connects from namespace ns ("" for the host) to dst and returns
// the first line the server wrote, or an error if no connection was made.
func fwDial(ns string, dst netip.AddrPort) (string, error) {
	var line string
	dial := func() error {
		c, err := net.DialTimeout("tcp", dst.String(), fwDialTimeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		line = strings.TrimSpace(string(buf[:n]))
		return nil
	}
	if ns == "" {
		return line, dial()
	}
	err := namespace.Do(nsPath(ns), dial)
	return line, err
}

// fwDNS asks server for name's A record over network ("udp" or "tcp")
// from namespace ns, and returns the addresses in the answer.
func fwDNS(ns, network, server, name string) ([]string, error) {
	var addrs []string
	err := namespace.Do(nsPath(ns), func() error {
		c := &mdns.Client{Net: network, Timeout: 3 * time.Second}
		m := new(mdns.Msg)
		m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
		r, _, err := c.Exchange(m, server)
		if err != nil {
			return err
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				addrs = append(addrs, a.A.String())
			}
		}
		return nil
	})
	return addrs, err
}

// fwProbe is one attempt of the test and what it must come to.
type fwProbe struct {
	name      string
	got, want bool
	// detail is what the attempt saw: an answer or an error.
	detail string
}

// fwProbes collects probes and reports them as a table, then fails the
// test for each whose outcome is not the one wanted.
type fwProbes struct {
	t    *testing.T
	list []fwProbe
}

func (p *fwProbes) add(name string, want bool, detail string, err error) {
	if err != nil {
		detail = err.Error()
	}
	p.list = append(p.list, fwProbe{name: name, got: err == nil, want: want, detail: detail})
}

func (p *fwProbes) report() {
	p.t.Helper()
	var b strings.Builder
	b.WriteString("probe | want | got | seen\n")
	for _, r := range p.list {
		fmt.Fprintf(&b, "%s | %s | %s | %s\n", r.name, fwReach(r.want), fwReach(r.got), r.detail)
	}
	p.t.Log("\n" + b.String())
	for _, r := range p.list {
		if r.got != r.want {
			p.t.Errorf("%s: %s, want %s (%s)", r.name, fwReach(r.got), fwReach(r.want), r.detail)
		}
	}
	p.list = nil
}

func fwReach(ok bool) string {
	if ok {
		return "reached"
	}
	return "blocked"
}

// fwRules returns the rules of the daemon's table as network -> number of
// rules and packets dropped by them, read from the kernel.
func fwRules(t *testing.T, table string) (rules map[string]int, drops map[string]uint64) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatalf("nftables: %v", err)
	}
	tb := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list nftables chains: %v", err)
	}
	rules, drops = map[string]int{}, map[string]uint64{}
	for _, ch := range chains {
		if ch.Table.Name != table {
			continue
		}
		rs, err := c.GetRules(tb, ch)
		if err != nil {
			t.Fatalf("list rules of inet %s chain %s: %v", table, ch.Name, err)
		}
		for _, r := range rs {
			name, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			name = strings.TrimPrefix(strings.TrimSuffix(name, "\x00"), "network ")
			rules[name]++
			var packets uint64
			drop := false
			for _, e := range r.Exprs {
				switch e := e.(type) {
				case *expr.Counter:
					packets = e.Packets
				case *expr.Verdict:
					drop = e.Kind == expr.VerdictDrop
				}
			}
			if drop {
				drops[name] += packets
			}
		}
	}
	return rules, drops
}

// fwListTable is `nft list table inet NAME` without its counters, which
// change with traffic.
func fwListTable(t *testing.T, table string) string {
	t.Helper()
	out, err := run("nft", "list", "table", "inet", table)
	if err != nil {
		t.Fatalf("nft list table inet %s: %v\n%s", table, err, out)
	}
	return regexp.MustCompile(`counter packets \d+ bytes \d+ `).ReplaceAllString(out, "counter ")
}

// fwRuleLines turns a listing of fwListTable into "chain: rule" lines,
// sorted: what the table holds, whatever order the daemon added the
// networks in (a restarted daemon adds them in no set order).
func fwRuleLines(listing string) []string {
	var chain string
	var lines []string
	for _, l := range strings.Split(listing, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "chain "):
			chain = strings.TrimSuffix(strings.TrimPrefix(l, "chain "), " {")
		case l == "", l == "}", strings.HasPrefix(l, "table "), strings.HasPrefix(l, "type "):
		default:
			lines = append(lines, chain+": "+l)
		}
	}
	slices.Sort(lines)
	return lines
}

// fwCheckOrder fails t unless every drop of the forward chain in listing
// comes before every accept, so that no network's accept can let through
// what another network's rules drop.
func fwCheckOrder(t *testing.T, listing string) {
	t.Helper()
	inForward, accepted := false, false
	for _, l := range strings.Split(listing, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "chain "):
			inForward = l == "chain forward {"
		case !inForward:
		case strings.Contains(l, " accept comment "):
			accepted = true
		case strings.Contains(l, " drop comment ") && accepted:
			t.Errorf("chain forward: %q after an accept:\n%s", l, listing)
		}
	}
}

// TestFirewallOutside attacks from a LAN host that routes the networks'
// subnets through the host: it must not reach a container's ports, only
// those published, at the host's address; a container still reaches it,
// masqueraded, and gets its replies.
func TestFirewallOutside(t *testing.T) {
	fwUseBaseline(t)
	e := newEnv(t, "nft")
	out, hostIf := e.newFwOutside()
	nsWeb := e.newFwNetns("web")
	e.mustCLI("network", "create", "open", "--subnet", fwOpenSubnet)

	hostPort := freeHostPort(t, 18130)
	fwListen(t, nsWeb, ":80", "web80")
	fwListen(t, nsWeb, ":81", "web81")
	e.attach(nsWeb, "--network", "open", "--name", "web", "--publish", fmt.Sprintf("%d:80", hostPort))
	web := findPort(e.ports(), "web")
	if web == nil || len(web.IPs) != 1 {
		t.Fatalf("tapswitch ports: web = %+v, want one address", web)
	}
	webAddr := netip.MustParseAddr(addr(web.IPs[0]))
	outService := fwListen(t, out, fwOutAddr+":0", "outside")

	p := &fwProbes{t: t}
	line, err := fwDial(out, netip.AddrPortFrom(webAddr, 81))
	p.add("outside -> container's unpublished port 81", false, line, err)
	line, err = fwDial(out, netip.AddrPortFrom(webAddr, 80))
	p.add("outside -> container's port 80 directly (published as a host port)", false, line, err)
	line, err = fwDial(out, netip.AddrPortFrom(netip.MustParseAddr(fwHostAddr), uint16(hostPort)))
	p.add(fmt.Sprintf("outside -> published port at the host's address %s:%d", fwHostAddr, hostPort), true, line, err)
	if err == nil && !strings.HasPrefix(line, "web80 ") {
		t.Errorf("published port %d answered %q, want web80 from the container", hostPort, line)
	}
	dnatPort := uint16(freeHostPort(t, 18132))
	fwDNAT(t, hostIf, dnatPort, netip.AddrPortFrom(webAddr, 81))
	line, err = fwDial(out, netip.AddrPortFrom(netip.MustParseAddr(fwHostAddr), dnatPort))
	p.add(fmt.Sprintf("outside -> port 81 published by a DNAT rule (as portmap) at %s:%d", fwHostAddr, dnatPort), true, line, err)
	line, err = fwDial(nsWeb, outService)
	p.add("container -> outside (replies come back)", true, line, err)
	if err == nil && line != "outside "+fwHostAddr {
		t.Errorf("outside saw the container's connection as %q, want it from %s (masqueraded)", line, fwHostAddr)
	}
	_, err = ping(nsWeb, fwOutAddr)
	p.add("container -> outside, ping", true, "", err)
	// Unchanged: an ordinary network's containers reach the host.
	hostService := fwListen(t, "", "0.0.0.0:0", "host")
	line, err = fwDial(nsWeb, netip.AddrPortFrom(netip.MustParseAddr(fwOpenGW), hostService.Port()))
	p.add("container -> host service through its gateway", true, line, err)
	p.report()

	table := daemon.TableName(e.stateDir())
	rules, drops := fwRules(t, table)
	t.Logf("nft list table inet %s:\n%s", table, fwListTable(t, table))
	if drops["open"] == 0 {
		t.Errorf("packets dropped by network open's rules = %d, want the outside's SYNs counted", drops["open"])
	}
	if rules["open"] == 0 {
		t.Fatalf("no rule of network open in table inet %s: %v", table, rules)
	}

	e.mustCLI("network", "rm", "--force", "open")
	if rules, _ := fwRules(t, table); rules["open"] != 0 {
		t.Errorf("after network rm open: %d rules of it left in inet %s", rules["open"], table)
	}
	if err := e.stopDaemon(); err != nil {
		t.Fatalf("stop tapswitchd: %v", err)
	}
	if nftTableExists(t, table) {
		t.Errorf("table inet %s still there after tapswitchd --remove-on-exit stopped", table)
	}
}

// TestFirewallInternal attacks from a container of an internal network:
// it must reach its own network and its gateway's DNS (and a ping of the
// gateway), and nothing else of the host: not its services on the
// gateway address or any address, not another network's gateway or
// published port. The host still reaches the container. The rules are
// the same after a restart, and gone after network rm and stop.
func TestFirewallInternal(t *testing.T) {
	fwUseBaseline(t)
	e := newEnv(t, "nft")
	out, _ := e.newFwOutside()
	nsA, nsB, nsWeb := e.newFwNetns("a"), e.newFwNetns("b"), e.newFwNetns("web")
	e.mustCLI("network", "create", "open", "--subnet", fwOpenSubnet)
	e.mustCLI("network", "create", "shut", "--subnet", fwShutSubnet, "--internal")

	hostPort := freeHostPort(t, 18131)
	fwListen(t, nsWeb, ":80", "web80")
	e.attach(nsWeb, "--network", "open", "--name", "web", "--publish", fmt.Sprintf("%d:80", hostPort))
	e.attach(nsA, "--network", "shut", "--name", "a")
	e.attach(nsB, "--network", "shut", "--name", "b")
	a, b := findPort(e.ports(), "a"), findPort(e.ports(), "b")
	if a == nil || b == nil || len(a.IPs) != 1 || len(b.IPs) != 1 {
		t.Fatalf("tapswitch ports: a = %+v, b = %+v; want one address each", a, b)
	}
	aAddr, bAddr := netip.MustParseAddr(addr(a.IPs[0])), addr(b.IPs[0])
	bService := netip.AddrPortFrom(netip.MustParseAddr(bAddr), fwListen(t, nsB, ":90", "b").Port())
	aService := netip.AddrPortFrom(aAddr, fwListen(t, nsA, ":90", "a").Port())
	// The host's services: one on the gateway address only, one on every
	// address.
	gwService := fwListen(t, "", fwShutGW+":0", "host-gw")
	anyPort := fwListen(t, "", "0.0.0.0:0", "host-any").Port()

	at := func(ip string, port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr(ip), port)
	}
	probe := func(p *fwProbes) {
		line, err := fwDial(nsA, gwService)
		p.add("internal -> host service on its gateway address", false, line, err)
		line, err = fwDial(nsA, at(fwShutGW, anyPort))
		p.add("internal -> host service on 0.0.0.0, through its gateway address", false, line, err)
		line, err = fwDial(nsA, at(fwHostAddr, anyPort))
		p.add("internal -> host service on 0.0.0.0, at the host's LAN address", false, line, err)
		line, err = fwDial(nsA, at(fwOpenGW, anyPort))
		p.add("internal -> host service on 0.0.0.0, at another network's gateway", false, line, err)
		line, err = fwDial(nsA, at(fwOpenGW, uint16(hostPort)))
		p.add("internal -> another network's published port, at that network's gateway", false, line, err)
		line, err = fwDial(nsA, at(fwShutGW, uint16(hostPort)))
		p.add("internal -> another network's published port, at its own gateway", false, line, err)
		_, err = ping(nsA, fwOpenGW)
		p.add("internal -> another network's gateway, ping", false, "", err)
		_, err = ping(nsA, fwOutAddr)
		p.add("internal -> outside, ping", false, "", err)

		addrs, err := fwDNS(nsA, "udp", fwShutGW+":53", "b")
		p.add("internal -> its gateway's DNS over UDP: b", true, strings.Join(addrs, " "), err)
		if err == nil && (len(addrs) != 1 || addrs[0] != bAddr) {
			t.Errorf("DNS over UDP from a: b is %v, want %s", addrs, bAddr)
		}
		addrs, err = fwDNS(nsA, "tcp", fwShutGW+":53", "b.shut")
		p.add("internal -> its gateway's DNS over TCP: b.shut", true, strings.Join(addrs, " "), err)
		if err == nil && (len(addrs) != 1 || addrs[0] != bAddr) {
			t.Errorf("DNS over TCP from a: b.shut is %v, want %s", addrs, bAddr)
		}
		_, err = ping(nsA, fwShutGW)
		p.add("internal -> its own gateway, ping", true, "", err)
		_, err = ping(nsA, "b")
		p.add("internal -> its own network by name, ping b", true, "", err)
		line, err = fwDial(nsA, bService)
		p.add("internal -> its own network, TCP to b", true, line, err)
		line, err = fwDial("", aService)
		p.add("host -> internal container (replies come back)", true, line, err)
		line, err = fwDial(out, aService)
		p.add("outside -> internal container", false, line, err)
		p.report()
	}
	p := &fwProbes{t: t}
	probe(p)

	table := daemon.TableName(e.stateDir())
	rules, drops := fwRules(t, table)
	before := fwListTable(t, table)
	t.Logf("nft list table inet %s:\n%s", table, before)
	t.Logf("packets dropped per network: %v", drops)
	fwCheckOrder(t, before)
	if drops["shut"] == 0 {
		t.Errorf("packets dropped by network shut's rules = %d, want the probes counted", drops["shut"])
	}

	// A restart (with --remove-on-exit, so the ports go) makes the same
	// rules again, no more.
	e.restartDaemon()
	// The socket takes connections while the daemon restores its state;
	// an answer means it is done, rules included.
	if n := len(e.networks()); n != 3 {
		t.Fatalf("tapswitch network ls after a restart: %d networks, want default, open and shut", n)
	}
	after := fwListTable(t, table)
	if !slices.Equal(fwRuleLines(after), fwRuleLines(before)) {
		t.Errorf("table inet %s after a restart:\n%s\nwant the rules as before:\n%s", table, after, before)
	}
	fwCheckOrder(t, after)

	e.mustCLI("network", "rm", "--force", "shut")
	if after, _ := fwRules(t, table); after["shut"] != 0 || after["open"] != rules["open"] {
		t.Errorf("after network rm shut: rules per network %v, want none of shut and %d of open", after, rules["open"])
	}
	if err := e.stopDaemon(); err != nil {
		t.Fatalf("stop tapswitchd: %v", err)
	}
	if nftTableExists(t, table) {
		t.Errorf("table inet %s still there after tapswitchd --remove-on-exit stopped", table)
	}
}

// TestFirewallForgedSource sends pings to a network's own gateway from
// the address of another network's container, from a namespace whose port
// security is off (as a router's is): from an internal network and from
// an ordinary one. The host must not answer them into the other network:
// only a network's own addresses come in through its gateway.
func TestFirewallForgedSource(t *testing.T) {
	fwUseBaseline(t)
	e := newEnv(t, "nft", "nstat")
	const sideSubnet, sideGW = "10.130.3.0/24", "10.130.3.1"
	nsVictim, nsShut, nsSide := e.newFwNetns("v"), e.newFwNetns("s"), e.newFwNetns("o")
	e.mustCLI("network", "create", "open", "--subnet", fwOpenSubnet)
	e.mustCLI("network", "create", "shut", "--subnet", fwShutSubnet, "--internal")
	e.mustCLI("network", "create", "side", "--subnet", sideSubnet)
	e.attach(nsVictim, "--network", "open", "--name", "victim")
	e.attach(nsShut, "--network", "shut", "--name", "shut", "--port-security=false")
	e.attach(nsSide, "--network", "side", "--name", "side", "--port-security=false")
	victim := findPort(e.ports(), "victim")
	if victim == nil || len(victim.IPs) != 1 {
		t.Fatalf("tapswitch ports: victim = %+v; want one address", victim)
	}
	victimAddr := addr(victim.IPs[0])

	// echoReplies is how many echo replies nsVictim's kernel took in.
	echoReplies := func() int {
		out, err := nsRun(nsVictim, "nstat", "-az", "IcmpInEchoReps")
		if err != nil {
			t.Fatalf("nstat in %s: %v\n%s", nsVictim, err, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "IcmpInEchoReps" {
				n, err := strconv.Atoi(f[1])
				if err != nil {
					t.Fatalf("nstat: %q", line)
				}
				return n
			}
		}
		t.Fatalf("nstat in %s has no IcmpInEchoReps:\n%s", nsVictim, out)
		return 0
	}
	// forge gives ns the victim's address and pings gw from it.
	forge := func(ns, gw string) {
		if out, err := nsRun(ns, "ip", "addr", "add", victimAddr+"/32", "dev", "eth0"); err != nil {
			t.Fatalf("ip addr add in %s: %v\n%s", ns, err, out)
		}
		defer nsRun(ns, "ip", "addr", "del", victimAddr+"/32", "dev", "eth0")
		// Fails: no reply comes back to the forger either way.
		nsRun(ns, "ping", "-c", "5", "-i", "0.2", "-W", "1", "-I", victimAddr, gw)
	}

	mustPing(t, nsShut, fwShutGW)
	mustPing(t, nsSide, sideGW)
	mustPing(t, nsVictim, fwOpenGW)
	before := echoReplies()
	forge(nsShut, fwShutGW)
	forge(nsSide, sideGW)
	got := echoReplies() - before
	t.Logf("10 pings forged with the victim's address (5 from an internal network, 5 from another ordinary one): %d answers reached the victim", got)
	if got != 0 {
		t.Errorf("the victim took in %d echo replies to pings forged with its address from other networks; want 0", got)
	}
	// The networks' own pings are still answered.
	mustPing(t, nsShut, fwShutGW)
	mustPing(t, nsSide, sideGW)
}
