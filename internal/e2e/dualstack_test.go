package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/tapswitch/tapswitch/api"
)

// The dual-stack tests use 10.141.0.0/16 and fd41::/48, and names that
// start with "ds".

// dsNetns makes a namespace named ds....ROLE.
func (e *testEnv) dsNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("ds", role)
}

// ping6 pings host, a name or an IPv6 address, from ns over IPv6; ping4
// over IPv4. A name is resolved through the namespace's resolv.conf.
func ping6(ns, host string) (string, error) {
	return nsRun(ns, "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", host)
}

func ping4(ns, host string) (string, error) {
	return nsRun(ns, "ping", "-4", "-n", "-c", "3", "-i", "0.2", "-W", "2", host)
}

// portAddrs returns a port's IPv4 and IPv6 address, failing t unless it
// has one of each, in that order.
func portAddrs(t *testing.T, p *api.Port) (v4, v6 string) {
	t.Helper()
	if p == nil || len(p.IPs) != 2 {
		t.Fatalf("port %+v: want two addresses, IPv4 then IPv6", p)
	}
	a, b := netip.MustParsePrefix(p.IPs[0]).Addr(), netip.MustParsePrefix(p.IPs[1]).Addr()
	if !a.Is4() || !b.Is6() {
		t.Fatalf("port %s addresses %v: want IPv4 then IPv6", p.Name, p.IPs)
	}
	return a.String(), b.String()
}

// answers returns the addresses in r's answer.
func answers(r *mdns.Msg) []string {
	var out []string
	if r == nil {
		return nil
	}
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			out = append(out, rr.A.String())
		case *mdns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

// resolvConf reads the resolv.conf tapswitchd wrote for ns.
func resolvConf(t *testing.T, ns string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(netnsEtcDir, ns, "resolv.conf"))
	if err != nil {
		t.Fatalf("resolv.conf of %s: %v", ns, err)
	}
	return string(b)
}

// TestDualStackSession runs the dual-stack part of the networks
// documentation: a network of an IPv4 and an IPv6 subnet, ports with an
// address of each, reached by name over both (A and AAAA), iperf3 over
// IPv6, port security of both families, a published port reached over
// either, and no IPv6 path to another network.
func TestDualStackSession(t *testing.T) {
	up := startUpstream(t)
	e := newEnvArgs(t, []string{"--dns-upstream", up.addr.String()}, "iperf3", "ss", "nsenter")
	nsA, nsB, nsC := e.dsNetns("a"), e.dsNetns("b"), e.dsNetns("c")

	// tapswitch network create dsfront --subnet 10.141.1.0/24 --subnet fd41:0:0:1::/64
	if got := strings.TrimSpace(e.mustCLI("network", "create", "dsfront", "--subnet", "10.141.1.0/24", "--subnet", "fd41:0:0:1::/64")); got != "dsfront" {
		t.Fatalf("tapswitch network create dsfront printed %q", got)
	}
	front := e.inspect("dsfront")
	want := []api.NetworkSubnet{{Subnet: "10.141.1.0/24", Gateway: "10.141.1.1"}, {Subnet: "fd41:0:0:1::/64", Gateway: "fd41:0:0:1::1"}}
	if !slices.Equal(front.Subnets, want) || front.Subnet != "10.141.1.0/24" || front.Gateway != "10.141.1.1" {
		t.Fatalf("tapswitch network inspect dsfront: subnet %s gateway %s subnets %v; want %v, the IPv4 one first", front.Subnet, front.Gateway, front.Subnets, want)
	}
	if out, err := run("ip", "-br", "addr", "show", "dev", front.Bridge); err != nil || !strings.Contains(out, "10.141.1.1/24") || !strings.Contains(out, "fd41:0:0:1::1/64") {
		t.Errorf("ip addr show dev %s: %v\n%s\nwant both gateway addresses", front.Bridge, err, out)
	}
	if table := e.mustCLI("network", "ls"); !strings.Contains(table, "10.141.1.0/24,fd41:0:0:1::/64") || !strings.Contains(table, "10.141.1.1,fd41:0:0:1::1") {
		t.Errorf("tapswitch network ls: want both subnets and gateways of dsfront in\n%s", table)
	}
	if table := e.mustCLI("network", "inspect", "dsfront", "-o", "table"); !strings.Contains(table, "10.141.1.0/24,fd41:0:0:1::/64") {
		t.Errorf("tapswitch network inspect -o table: want both subnets in\n%s", table)
	}
	t.Logf("tapswitch network ls:\n%s", e.mustCLI("network", "ls"))

	e.attach(nsA, "--network", "dsfront", "--name", "dsa")
	e.attach(nsB, "--network", "dsfront", "--name", "dsb")
	ports := e.ports()
	a4, a6 := portAddrs(t, findPort(ports, "dsa"))
	b4, b6 := portAddrs(t, findPort(ports, "dsb"))
	t.Logf("dsa %s %s, dsb %s %s", a4, a6, b4, b6)
	for _, a := range []string{a4, a6, b4, b6} {
		if !netip.MustParsePrefix("10.141.1.0/24").Contains(netip.MustParseAddr(a)) && !netip.MustParsePrefix("fd41:0:0:1::/64").Contains(netip.MustParseAddr(a)) {
			t.Errorf("address %s outside dsfront's subnets", a)
		}
	}
	if out, _ := nsRun(nsA, "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via fd41:0:0:1::1 dev eth0") {
		t.Errorf("ip -6 route show default in %s = %q, want via fd41:0:0:1::1 dev eth0", nsA, out)
	}
	if out, _ := nsRun(nsA, "ip", "-4", "route", "show", "default"); !strings.Contains(out, "via 10.141.1.1 dev eth0") {
		t.Errorf("ip -4 route show default in %s = %q, want via 10.141.1.1 dev eth0", nsA, out)
	}

	t.Run("names answer A and AAAA", func(t *testing.T) {
		for _, tt := range []struct {
			name  string
			qtype uint16
			want  string
		}{
			{"dsb", mdns.TypeA, b4}, {"dsb", mdns.TypeAAAA, b6},
			{"dsb.dsfront", mdns.TypeA, b4}, {"dsb.dsfront", mdns.TypeAAAA, b6},
		} {
			r, err := dnsQuery(nsA, "10.141.1.1:53", tt.name, tt.qtype)
			if err != nil || !slices.Equal(answers(r), []string{tt.want}) {
				t.Errorf("DNS %s %s from %s = %v, %v; want %s", mdns.TypeToString[tt.qtype], tt.name, nsA, answers(r), err, tt.want)
			}
		}
	})
	t.Run("ping and ping -6 by name", func(t *testing.T) {
		out, err := ping4(nsA, "dsb")
		if err != nil || !strings.Contains(out, b4) {
			t.Errorf("ping -4 dsb from %s: %v\n%s\nwant replies from %s", nsA, err, out, b4)
		}
		out, err = ping6(nsA, "dsb")
		if err != nil || !strings.Contains(out, b6) {
			t.Errorf("ping -6 dsb from %s: %v\n%s\nwant replies from %s", nsA, err, out, b6)
		}
		if out, err := ping6(nsA, "fd41:0:0:1::1"); err != nil {
			t.Errorf("ping -6 the gateway from %s: %v\n%s", nsA, err, out)
		}
	})
	t.Run("iperf3 -6", func(t *testing.T) {
		before := findPort(e.ports(), "dsb").Stats.TxBytes
		srv := e.startIperfServer(nsB, b6)
		res := e.iperf(nsA, srv, "-6", "-t", "2")
		got := res.End.SumReceived
		if got.Bytes == 0 {
			t.Fatalf("iperf3 -6 -c %s from %s: nothing received", b6, nsA)
		}
		t.Logf("iperf3 -6 -t 2 %s -> %s: %d bytes in %.2fs, %.2f Gbit/s", nsA, nsB, got.Bytes, got.Seconds, got.BitsPerSecond/1e9)
		// Frames crossed the switch: what it wrote to dsb's TAP.
		if after := findPort(e.ports(), "dsb").Stats.TxBytes; after-before < got.Bytes {
			t.Errorf("tapswitch ports: dsb tx_bytes grew by %d during iperf3, want >= the %d bytes received", after-before, got.Bytes)
		}
	})
	t.Run("port security of both families", func(t *testing.T) {
		// An address of the subnet that is not the port's own: its
		// packets are dropped (counted as ip_spoof), while the port's
		// own pass (above).
		spoofed := func() uint64 { return findPort(e.ports(), "dsa").Stats.Drops["ip_spoof"] }
		for _, c := range []struct{ family, forged, prefix, to string }{
			{"-6", "fd41:0:0:1::99", "/64", b6},
			{"-4", "10.141.1.99", "/24", b4},
		} {
			args := []string{"ip", "addr", "add", c.forged + c.prefix, "dev", "eth0"}
			if c.family == "-6" {
				args = append(args, "nodad")
			}
			if out, err := nsRun(nsA, args...); err != nil {
				t.Fatalf("ip addr add in %s: %v\n%s", nsA, err, out)
			}
			before := spoofed()
			if out, err := nsRun(nsA, "ping", c.family, "-n", "-c", "2", "-i", "0.2", "-W", "1", "-I", c.forged, c.to); err == nil {
				t.Errorf("ping %s from a forged source %s: replies came\n%s", c.family, c.forged, out)
			}
			if after := spoofed(); after <= before {
				t.Errorf("tapswitch ports: dsa's ip_spoof drops %d before ping %s from %s, %d after; want more", before, c.family, c.forged, after)
			}
			nsRun(nsA, "ip", "addr", "del", c.forged+c.prefix, "dev", "eth0")
		}
		if out, err := ping6(nsA, b6); err != nil {
			t.Errorf("ping -6 %s from the port's own address after: %v\n%s", b6, err, out)
		}
	})
	t.Run("published port over either family", func(t *testing.T) {
		hostPort := freeHostPort(t, 18141)
		marker := fmt.Sprintf("hello from dsc %016x", rand.Uint64())
		serveHTTP(t, nsC, marker)
		e.attach(nsC, "--network", "dsfront", "--name", "dsc", "--publish", fmt.Sprintf("%d:80", hostPort))
		for _, host := range []string{"127.0.0.1", "[::1]"} {
			url := fmt.Sprintf("http://%s:%d/", host, hostPort)
			if body, err := httpGet(url); err != nil || body != marker {
				t.Errorf("GET %s = %q, %v; want %q from %s", url, body, err, marker, nsC)
			}
		}
		e.mustCLI("detach", "dsc")
	})
	t.Run("no IPv6 path between networks", func(t *testing.T) {
		e.mustCLI("network", "create", "dsback", "--subnet", "10.141.2.0/24", "--subnet", "fd41:0:0:2::/64")
		nsD := e.dsNetns("d")
		e.attach(nsD, "--network", "dsback", "--name", "dsd")
		d4, d6 := portAddrs(t, findPort(e.ports(), "dsd"))
		mustPing(t, nsD, "10.141.2.1")
		if out, err := ping6(nsD, "fd41:0:0:2::1"); err != nil {
			t.Fatalf("ping -6 dsback's gateway from %s: %v\n%s", nsD, err, out)
		}
		if out, err := ping6(nsA, d6); err == nil {
			t.Errorf("ping -6 %s (dsd, network dsback) from %s (dsfront): replies came\n%s", d6, nsA, out)
		}
		if out, err := ping4(nsA, d4); err == nil {
			t.Errorf("ping -4 %s (dsd, network dsback) from %s (dsfront): replies came\n%s", d4, nsA, out)
		}
		r, err := dnsQuery(nsA, "10.141.1.1:53", "dsd", mdns.TypeAAAA)
		if err != nil || r.Rcode != mdns.RcodeNameError {
			t.Errorf("DNS AAAA dsd from %s (not on dsback) = %v, %v; want NXDOMAIN", nsA, answers(r), err)
		}
	})
}

// TestDualStackNamesAcrossNetworks: a namespace on two networks resolves
// the names of both, short and NAME.NETWORK, A and AAAA, and not those
// of a third it is not on; a namespace on one of them does not resolve
// the other's names through the first; its resolv.conf lists both
// networks, and both go when it leaves one.
func TestDualStackNamesAcrossNetworks(t *testing.T) {
	up := startUpstream(t)
	e := newEnvArgs(t, []string{"--dns-upstream", up.addr.String()})
	nsAPI, nsDB, nsWeb, nsX := e.dsNetns("api"), e.dsNetns("db"), e.dsNetns("web"), e.dsNetns("x")
	e.mustCLI("network", "create", "dsfront", "--subnet", "10.141.3.0/24", "--subnet", "fd41:0:0:3::/64")
	e.mustCLI("network", "create", "dsback", "--subnet", "10.141.4.0/24", "--subnet", "fd41:0:0:4::/64")
	e.mustCLI("network", "create", "dsthird", "--subnet", "10.141.5.0/24")
	e.attach(nsAPI, "--network", "dsfront", "--name", "dsapi")
	e.attach(nsWeb, "--network", "dsfront", "--name", "dsweb")
	e.attach(nsDB, "--network", "dsback", "--name", "dsdb")
	e.attach(nsX, "--network", "dsthird", "--name", "dsx")

	// Before connect: dsapi is on dsfront only and dsdb is out of reach.
	if r, err := dnsQuery(nsAPI, "10.141.3.1:53", "dsdb", mdns.TypeA); err != nil || r.Rcode != mdns.RcodeNameError {
		t.Fatalf("DNS A dsdb from %s before connect = %v, %v; want NXDOMAIN", nsAPI, answers(r), err)
	}
	// tapswitch connect dsapi dsback
	e.mustCLI("connect", "dsapi", "dsback")
	ports := e.ports()
	db4, db6 := portAddrs(t, findPort(ports, "dsdb"))
	web4, _ := portAddrs(t, findPort(ports, "dsweb"))
	if rc := resolvConf(t, nsAPI); !strings.Contains(rc, "nameserver 10.141.3.1\n") || !strings.Contains(rc, "search dsfront dsback\n") {
		t.Errorf("resolv.conf of %s after connect:\n%s\nwant nameserver 10.141.3.1 and search dsfront dsback", nsAPI, rc)
	}
	t.Logf("resolv.conf of %s after connect:\n%s", nsAPI, resolvConf(t, nsAPI))

	t.Run("names of both networks", func(t *testing.T) {
		for _, tt := range []struct {
			name  string
			qtype uint16
			want  string
		}{
			{"dsdb", mdns.TypeA, db4}, {"dsdb", mdns.TypeAAAA, db6},
			{"dsdb.dsback", mdns.TypeA, db4}, {"dsdb.dsback", mdns.TypeAAAA, db6},
			{"dsweb", mdns.TypeA, web4}, {"dsweb.dsfront", mdns.TypeA, web4},
		} {
			r, err := dnsQuery(nsAPI, "10.141.3.1:53", tt.name, tt.qtype)
			if err != nil || !slices.Equal(answers(r), []string{tt.want}) {
				t.Errorf("DNS %s %s from %s via dsfront's server = %v, %v; want %s", mdns.TypeToString[tt.qtype], tt.name, nsAPI, answers(r), err, tt.want)
			}
		}
		// Through resolv.conf, as a program resolves.
		if out, err := ping4(nsAPI, "dsdb"); err != nil || !strings.Contains(out, db4) {
			t.Errorf("ping -4 dsdb from %s: %v\n%s", nsAPI, err, out)
		}
		if out, err := ping6(nsAPI, "dsdb"); err != nil || !strings.Contains(out, db6) {
			t.Errorf("ping -6 dsdb from %s: %v\n%s", nsAPI, err, out)
		}
		if out, err := ping4(nsAPI, "dsdb.dsback"); err != nil || !strings.Contains(out, db4) {
			t.Errorf("ping -4 dsdb.dsback from %s: %v\n%s", nsAPI, err, out)
		}
		if out, err := ping4(nsAPI, "dsweb"); err != nil || !strings.Contains(out, web4) {
			t.Errorf("ping -4 dsweb from %s: %v\n%s", nsAPI, err, out)
		}
	})
	t.Run("not a third network's", func(t *testing.T) {
		for _, name := range []string{"dsx", "dsx.dsthird"} {
			r, err := dnsQuery(nsAPI, "10.141.3.1:53", name, mdns.TypeA)
			if err != nil || len(answers(r)) != 0 || name == "dsx" && r.Rcode != mdns.RcodeNameError {
				t.Errorf("DNS A %s from %s (not on dsthird) = %v, %v; want no address (NXDOMAIN for the short name)", name, nsAPI, r, err)
			}
		}
		if out, err := ping4(nsAPI, "dsx"); err == nil {
			t.Errorf("ping dsx from %s: succeeded, want a failure to resolve\n%s", nsAPI, out)
		}
	})
	t.Run("not through a namespace on both", func(t *testing.T) {
		// dsdb is on dsback only: dsapi being on both does not give it
		// dsfront's names, nor dsweb dsback's.
		for _, c := range []struct{ ns, server, name string }{
			{nsDB, "10.141.4.1:53", "dsweb"},
			{nsWeb, "10.141.3.1:53", "dsdb"},
		} {
			r, err := dnsQuery(c.ns, c.server, c.name, mdns.TypeA)
			if err != nil || r.Rcode != mdns.RcodeNameError {
				t.Errorf("DNS A %s from %s = %v, %v; want NXDOMAIN", c.name, c.ns, answers(r), err)
			}
		}
	})
	t.Run("leaving takes them away", func(t *testing.T) {
		e.mustCLI("detach", "dsapi-dsback")
		if rc := resolvConf(t, nsAPI); !strings.Contains(rc, "search dsfront\n") || strings.Contains(rc, "dsback") {
			t.Errorf("resolv.conf of %s after detach dsapi-dsback:\n%s\nwant search dsfront only", nsAPI, rc)
		}
		if r, err := dnsQuery(nsAPI, "10.141.3.1:53", "dsdb", mdns.TypeA); err != nil || r.Rcode != mdns.RcodeNameError {
			t.Errorf("DNS A dsdb from %s after it left dsback = %v, %v; want NXDOMAIN", nsAPI, answers(r), err)
		}
		if r, err := dnsQuery(nsAPI, "10.141.3.1:53", "dsweb", mdns.TypeA); err != nil || !slices.Equal(answers(r), []string{web4}) {
			t.Errorf("DNS A dsweb from %s = %v, %v; want %s", nsAPI, answers(r), err, web4)
		}
	})
	t.Run("the first network leaving", func(t *testing.T) {
		// Back on dsback, then off dsfront, its first network: the
		// nameserver becomes dsback's gateway.
		e.mustCLI("connect", "dsapi", "dsback", "--name", "dsapi-b")
		e.mustCLI("detach", "dsapi")
		if rc := resolvConf(t, nsAPI); !strings.Contains(rc, "nameserver 10.141.4.1\n") || !strings.Contains(rc, "search dsback\n") || strings.Contains(rc, "dsfront") {
			t.Errorf("resolv.conf of %s on dsback only:\n%s\nwant nameserver 10.141.4.1 and search dsback", nsAPI, rc)
		}
		if out, err := ping6(nsAPI, "dsdb"); err != nil || !strings.Contains(out, db6) {
			t.Errorf("ping -6 dsdb from %s on dsback only: %v\n%s", nsAPI, err, out)
		}
		if r, err := dnsQuery(nsAPI, "10.141.4.1:53", "dsweb", mdns.TypeA); err != nil || r.Rcode != mdns.RcodeNameError {
			t.Errorf("DNS A dsweb from %s, no longer on dsfront = %v, %v; want NXDOMAIN", nsAPI, answers(r), err)
		}
	})
}

// TestDualStackRestart: a restarted tapswitchd (SIGTERM, then kill -9)
// keeps both subnets of a dual-stack network, the ports' addresses of
// both families and their names, and traffic of both resumes.
func TestDualStackRestart(t *testing.T) {
	e := newRestartEnv(t)
	nsA, nsB, nsC := e.dsNetns("a"), e.dsNetns("b"), e.dsNetns("c")
	e.mustCLI("network", "create", "dsfront", "--subnet", "10.141.6.0/24", "--subnet", "fd41:0:0:6::/64", "--gateway", "fd41:0:0:6::fe")
	e.attach(nsA, "--network", "dsfront", "--name", "dsa")
	e.attach(nsB, "--network", "dsfront", "--name", "dsb")
	before := e.inspect("dsfront")
	a4, a6 := portAddrs(t, findPort(e.ports(), "dsa"))
	_, b6 := portAddrs(t, findPort(e.ports(), "dsb"))
	if out, err := ping6(nsA, "dsb"); err != nil {
		t.Fatalf("ping -6 dsb before the restart: %v\n%s", err, out)
	}
	for _, how := range []string{"SIGTERM", "kill -9"} {
		if how == "SIGTERM" {
			if err := e.stopDaemon(); err != nil {
				t.Fatalf("kill -TERM tapswitchd: %v", err)
			}
			e.stopped, e.stopErr = false, nil
		} else {
			e.killDaemon()
		}
		e.startDaemon()
		after := e.inspect("dsfront")
		if !slices.Equal(after.Subnets, before.Subnets) || after.Subnet != before.Subnet || after.Gateway != before.Gateway {
			t.Fatalf("after %s: tapswitch network inspect dsfront subnets %v (%s, %s), want %v (%s, %s)", how, after.Subnets, after.Subnet, after.Gateway, before.Subnets, before.Subnet, before.Gateway)
		}
		if got4, got6 := portAddrs(t, findPort(e.ports(), "dsa")); got4 != a4 || got6 != a6 {
			t.Fatalf("after %s: dsa has %s %s, want %s %s", how, got4, got6, a4, a6)
		}
		if out, err := ping6(nsA, "dsb"); err != nil || !strings.Contains(out, b6) {
			t.Errorf("after %s: ping -6 dsb from %s: %v\n%s", how, nsA, err, out)
		}
		if out, err := ping4(nsB, "dsa"); err != nil || !strings.Contains(out, a4) {
			t.Errorf("after %s: ping -4 dsa from %s: %v\n%s", how, nsB, err, out)
		}
		if out, err := ping6(nsA, "fd41:0:0:6::fe"); err != nil {
			t.Errorf("after %s: ping -6 the gateway from %s: %v\n%s", how, nsA, err, out)
		}
	}
	// The addresses the network holds were kept: a new port gets others.
	e.attach(nsC, "--network", "dsfront", "--name", "dsc")
	c4, c6 := portAddrs(t, findPort(e.ports(), "dsc"))
	if c4 == a4 || c6 == a6 || c6 == b6 {
		t.Fatalf("after the restarts dsc got %s %s, an address another port holds", c4, c6)
	}
}

// TestDualStackErrors: what a dual-stack network and its ports cannot
// be is refused with a 400 that says why, through the CLI and the API,
// and a network of an IPv4 and an IPv6 subnet with a gateway each, as
// the Docker driver asks for one, is made through the API alone.
func TestDualStackErrors(t *testing.T) {
	e := newEnvArgs(t, []string{"--ipv6-pool", "fd41:0:0:ff00::/56"})
	e.mustCLI("network", "create", "dsfront", "--subnet", "10.141.7.0/24", "--subnet", "fd41:0:0:7::/64")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"two IPv4", []string{"network", "create", "dsx", "--subnet", "10.141.8.0/24", "--subnet", "10.141.9.0/24"}, "two IPv4 subnets"},
		{"two IPv6", []string{"network", "create", "dsx", "--subnet", "fd41:0:0:8::/64", "--subnet", "fd41:0:0:9::/64"}, "two IPv6 subnets"},
		{"IPv6 overlap", []string{"network", "create", "dsx", "--subnet", "10.141.8.0/24", "--subnet", "fd41:0:0:7::/80"}, "overlaps"},
		{"unsafe IPv6", []string{"network", "create", "dsx", "--subnet", "10.141.8.0/24", "--subnet", "fe80:141::/64"}, "fe80::/10"},
		{"IPv6 gateway outside", []string{"network", "create", "dsx", "--subnet", "10.141.8.0/24", "--subnet", "fd41:0:0:8::/64", "--gateway", "fd41:0:0:9::1"}, "not in fd41:0:0:8::/64"},
		{"gateway of no subnet's family", []string{"network", "create", "dsx", "--ipv6", "--gateway", "fd41:0:0:9::1"}, "no --subnet of its family"},
		{"IPv6 with a small MTU", []string{"attach", "ds-none", "--network", "dsfront", "--mtu", "1000"}, "1280"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if args[0] == "attach" {
				args = slices.Clone(args)
				args[1] = e.dsNetns("m")
			}
			r := e.cli(args...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("tapswitch %s: exit %d, stderr %q; want a refusal containing %q", strings.Join(args, " "), r.code, r.stderr, tt.want)
			}
		})
	}
	for _, n := range e.networks() {
		if n.Name == "dsx" {
			t.Errorf("a refused create left network %+v", n)
		}
	}

	c := api.NewClient(e.sock)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	n, err := c.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "dsdocker", Subnets: []api.SubnetRequest{
		{Subnet: "10.141.10.0/24", Gateway: "10.141.10.254"}, {Subnet: "fd41:0:0:10::/64", Gateway: "fd41:0:0:10::fe"}}})
	want := []api.NetworkSubnet{{Subnet: "10.141.10.0/24", Gateway: "10.141.10.254"}, {Subnet: "fd41:0:0:10::/64", Gateway: "fd41:0:0:10::fe"}}
	if err != nil || !slices.Equal(n.Subnets, want) {
		t.Fatalf("API create network with two subnets and gateways = %+v, %v; want subnets %v", n, err, want)
	}
	_, err = c.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "dsx", Subnets: []api.SubnetRequest{{Subnet: "10.141.11.0/24"}, {Subnet: "10.141.12.0/24"}}})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "two IPv4 subnets") {
		t.Errorf("API create network with two IPv4 subnets = %v; want a 400 saying so", err)
	}
	// --ipv6: a /64 of the daemon's IPv6 pool (--ipv6-pool) besides an
	// IPv4 subnet.
	var six api.Network
	mustJSON(t, e.mustCLI("network", "create", "dssix", "--subnet", "10.141.13.0/24", "--ipv6", "-o", "json"), &six)
	if len(six.Subnets) != 2 || six.Subnets[1].Subnet != "fd41:0:0:ff00::/64" {
		t.Errorf("tapswitch network create --ipv6: subnets %v, want 10.141.13.0/24 and fd41:0:0:ff00::/64", six.Subnets)
	}
}

// TestDualStackOutbound: a dual-stack network reaches a host outside
// over IPv4 and IPv6 through the gateway, masqueraded (the outside host
// has no route back to the network: only the host's own address can be
// answered); nothing new enters from outside, of either family; an
// internal dual-stack network reaches nothing outside over either.
func TestDualStackOutbound(t *testing.T) {
	e := newEnv(t)
	out := e.dsNetns("out")
	id := rand.N(0x10000)
	// Not "tsw-": the daemon's isolation rules cover that prefix.
	hostIf, peer := fmt.Sprintf("dso%04x", id), fmt.Sprintf("dsp%04x", id)
	if o, err := run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", peer, "netns", out); err != nil {
		t.Fatalf("ip link add %s type veth: %v\n%s", hostIf, err, o)
	}
	t.Cleanup(func() { run("ip", "link", "del", hostIf) })
	const outside4, outside6 = "10.141.200.2", "fd41:0:0:c8::2"
	for _, c := range [][]string{
		{"ip", "addr", "add", "10.141.200.1/24", "dev", hostIf},
		{"ip", "addr", "add", "fd41:0:0:c8::1/64", "dev", hostIf, "nodad"},
		{"ip", "link", "set", hostIf, "up"},
		{"ip", "netns", "exec", out, "ip", "addr", "add", outside4 + "/24", "dev", peer},
		{"ip", "netns", "exec", out, "ip", "addr", "add", outside6 + "/64", "dev", peer, "nodad"},
		{"ip", "netns", "exec", out, "ip", "link", "set", peer, "up"},
	} {
		if o, err := run(c[0], c[1:]...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, o)
		}
	}
	nsOpen, nsShut := e.dsNetns("open"), e.dsNetns("shut")
	e.mustCLI("network", "create", "dsopen", "--subnet", "10.141.20.0/24", "--subnet", "fd41:0:0:20::/64")
	e.mustCLI("network", "create", "dsshut", "--subnet", "10.141.21.0/24", "--subnet", "fd41:0:0:21::/64", "--internal")
	e.attach(nsOpen, "--network", "dsopen", "--name", "dsopen1")
	e.attach(nsShut, "--network", "dsshut", "--name", "dsshut1")
	_, open6 := portAddrs(t, findPort(e.ports(), "dsopen1"))

	if o, err := ping4(nsOpen, outside4); err != nil {
		t.Errorf("ping -4 %s from %s: %v\n%s", outside4, nsOpen, err, o)
	}
	if o, err := ping6(nsOpen, outside6); err != nil {
		t.Errorf("ping -6 %s from %s: %v\n%s", outside6, nsOpen, err, o)
	}
	if o, err := ping4(nsShut, outside4); err == nil {
		t.Errorf("ping -4 %s from %s on an internal network: replies came\n%s", outside4, nsShut, o)
	}
	if o, err := ping6(nsShut, outside6); err == nil {
		t.Errorf("ping -6 %s from %s on an internal network: replies came\n%s", outside6, nsShut, o)
	}
	// The internal network's gateway still answers, over both families.
	if o, err := ping6(nsShut, "fd41:0:0:21::1"); err != nil {
		t.Errorf("ping -6 the internal network's gateway from %s: %v\n%s", nsShut, err, o)
	}
	mustPing(t, nsShut, "10.141.21.1")
	// Only replies enter: the outside host, given a route to the
	// network through the host, reaches no port.
	if o, err := nsRun(out, "ip", "-6", "route", "add", "fd41:0:0:20::/64", "via", "fd41:0:0:c8::1"); err != nil {
		t.Fatalf("ip -6 route add in %s: %v\n%s", out, err, o)
	}
	if o, err := ping6(out, open6); err == nil {
		t.Errorf("ping -6 %s (a port) from outside: replies came\n%s", open6, o)
	}
}
