package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/tapswitch/tapswitch/internal/privtest"
)

// The chaining tests run Debian 12's reference plugins (containernetworking-
// plugins 1.1.1) after tapswitch-cni in one conflist, with cnitool as the
// runtime. Those plugins speak CNI up to 1.0.0, hence the conflists'
// version.
const chainCNIVersion = "1.0.0"

// bandwidthNoVeth is what bandwidth (1.1.1) says when it looks for the
// host end of the container's interface: a tapswitch port is a TAP, with
// no veth peer on the host.
const bandwidthNoVeth = `container interface eth0 has no veth peer: interface "eth0" was not a veth interface`

// chainEnv is a cniEnv whose conflists chain reference plugins after
// tapswitch-cni. It records the host's iptables and nftables state first
// and, when the test ends, runs cnitool del for what is still added, then
// takes away the rules, chains and tables the plugins left.
type chainEnv struct {
	*cniEnv
	fw fwSnapshot
	// added are the cnitool adds not yet deleted: conflist, namespace
	// and CAP_ARGS, for the cleanup of a test that stopped half way.
	added []chainAdd
}

type chainAdd struct{ conf, ns, capArgs string }

// newChainEnv starts a daemon with a network, after checking that the
// reference plugins and the firewall tools are there.
func newChainEnv(t *testing.T, plugins ...string) *chainEnv {
	t.Helper()
	c := &chainEnv{cniEnv: newCNIEnv(t, newEnv(t))}
	privtest.Require(t, "run the CNI firewall and portmap plugins", "iptables", "iptables-save", "iptables-restore",
		"ip6tables", "ip6tables-save", "ip6tables-restore", "nft", "tc")
	cannot := t.Skipf
	if privtest.Required() {
		cannot = t.Fatalf
	}
	for _, p := range plugins {
		if _, err := os.Stat(filepath.Join(cniPluginDir, p)); err != nil {
			cannot("needs the CNI reference plugin %s (Debian package containernetworking-plugins): %v", p, err)
		}
	}
	c.fw = readFirewall(t)
	// Registered after newCNIEnv's: runs before the daemon stops.
	t.Cleanup(func() {
		for i := len(c.added) - 1; i >= 0; i-- {
			a := c.added[i]
			if r := c.cnitoolRun(capEnv(a.capArgs), "del", a.conf, nsPath(a.ns)); r.code != 0 {
				t.Errorf("cleanup: cnitool del %s %s: exit %d\n%s", a.conf, a.ns, r.code, r.stderr)
			}
		}
		c.fw.restore(t)
	})
	return c
}

// writeChain writes the conflist NET-name (NET the test's network, so
// that newCNIEnv's cleanup finds cnitool's cached results):
// tapswitch-cni on the network, then plugins. It returns the conflist's
// name.
func (c *chainEnv) writeChain(name string, plugins ...map[string]any) string {
	c.t.Helper()
	name = c.net + "-" + name
	list := []any{c.pluginConf(name, nil)}
	for _, p := range plugins {
		list = append(list, p)
	}
	b, err := json.Marshal(map[string]any{"cniVersion": chainCNIVersion, "name": name, "plugins": list})
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.confDir, name+".conflist"), b, 0o644); err != nil {
		c.t.Fatal(err)
	}
	return name
}

func capEnv(capArgs string) []string {
	if capArgs == "" {
		return nil
	}
	return []string{"CAP_ARGS=" + capArgs}
}

// addChain runs cnitool add for ns on the conflist conf with capArgs (the
// runtimeConfig, JSON) and returns the final result of the chain.
func (c *chainEnv) addChain(conf, ns, capArgs string) *types100.Result {
	c.t.Helper()
	c.added = append(c.added, chainAdd{conf, ns, capArgs})
	out := c.mustCnitool(capEnv(capArgs), "add", conf, nsPath(ns))
	res := &types100.Result{}
	if err := json.Unmarshal([]byte(out), res); err != nil {
		c.t.Fatalf("cnitool add %s %s: result: %v\n%s", conf, ns, err, out)
	}
	if res.CNIVersion != chainCNIVersion {
		c.t.Errorf("cnitool add %s: result of version %q, want %s", conf, res.CNIVersion, chainCNIVersion)
	}
	return res
}

// delChain runs cnitool del for ns on conf, as the runtime does.
func (c *chainEnv) delChain(conf, ns, capArgs string) {
	c.t.Helper()
	c.mustCnitool(capEnv(capArgs), "del", conf, nsPath(ns))
	c.added = slices.DeleteFunc(c.added, func(a chainAdd) bool { return a.conf == conf && a.ns == ns })
}

// checkPassedThrough checks that the chain's final result res for ns is
// tapswitch-cni's own, untouched (but for the interfaces' mtu): what the
// plugin answers to an ADD repeated for the same attachment, with the
// gateway interface, the port's address, the default route and the
// network's DNS.
func (c *chainEnv) checkPassedThrough(res *types100.Result, ns string) {
	c.t.Helper()
	cniAddr(c.t, res, ns)
	det := c.inspect(c.net)
	if res.Interfaces[0].Name != det.Bridge || res.Interfaces[0].Sandbox != "" {
		c.t.Errorf("final result: host interface %+v, want %s", res.Interfaces[0], det.Bridge)
	}
	if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "0.0.0.0/0" || res.Routes[0].GW.String() != det.Gateway {
		c.t.Errorf("final result: routes %v, want default via %s", res.Routes, det.Gateway)
	}
	if len(res.DNS.Nameservers) != 1 || res.DNS.Nameservers[0] != det.Gateway || !slices.Equal(res.DNS.Search, []string{c.net}) || res.DNS.Domain != c.net {
		c.t.Errorf("final result: dns %+v, want %s and %s", res.DNS, det.Gateway, c.net)
	}
	port := c.portOf(ns)
	if port == nil {
		c.t.Fatalf("no port for %s", ns)
	}
	out, cerr := c.execPlugin(c.pluginConf1(map[string]any{"cniVersion": chainCNIVersion}),
		"CNI_COMMAND=ADD", "CNI_CONTAINERID="+port.ContainerID, "CNI_NETNS="+nsPath(ns), "CNI_IFNAME=eth0")
	if cerr != nil {
		c.t.Fatalf("tapswitch-cni ADD again for %s: %v", ns, cerr)
	}
	own := &types100.Result{}
	if err := json.Unmarshal([]byte(out), own); err != nil {
		c.t.Fatalf("tapswitch-cni ADD: %v\n%s", err, out)
	}
	// The interfaces' mtu is a field of CNI 1.1.0, which the reference
	// plugins 1.1.1 do not know: they pass the result on without it.
	for _, ifc := range own.Interfaces {
		ifc.Mtu = 0
	}
	if !reflect.DeepEqual(res, own) {
		c.t.Errorf("final result of the chain differs from tapswitch-cni's:\n%s\nwant\n%s", jsonString(res), out)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// checkDeleted checks that DEL left nothing of ns: no port, no interface
// in it, no cached result.
func (c *chainEnv) checkDeleted(ns string) {
	c.t.Helper()
	if p := c.portOf(ns); p != nil {
		c.t.Errorf("port %q of %s still there after DEL", p.Name, ns)
	}
	if l := leftovers(c.t, ns); len(l) != 0 {
		c.t.Errorf("interfaces %v left in %s after DEL", l, ns)
	}
	if files, _ := filepath.Glob(filepath.Join(cnitoolCacheDir, "*-cnitool-*")); len(files) != 0 {
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(nsPath(ns))) {
				c.t.Errorf("cnitool's cached result %s left after DEL", f)
			}
		}
	}
}

// nsSysctl reads a sysctl inside ns.
func nsSysctl(t *testing.T, ns, key string) string {
	t.Helper()
	out, err := nsRun(ns, "cat", filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")))
	if err != nil {
		t.Fatalf("read %s in %s: %v\n%s", key, ns, err, out)
	}
	return strings.TrimSpace(out)
}

// nsMTU is the MTU of eth0 in ns.
func nsMTU(t *testing.T, ns string) string {
	t.Helper()
	out, err := nsRun(ns, "cat", "/sys/class/net/eth0/mtu")
	if err != nil {
		t.Fatalf("MTU of eth0 in %s: %v\n%s", ns, err, out)
	}
	return strings.TrimSpace(out)
}

// saveRules is one table of iptables-save: its chains and its rules
// ("-A CHAIN ..."), in order.
type saveRules struct {
	chains []string
	rules  []string
}

// iptablesSave reads the tables of save (iptables-save or
// ip6tables-save).
func iptablesSave(t *testing.T, save string) map[string]*saveRules {
	t.Helper()
	out, err := exec.Command(save).Output()
	if err != nil {
		t.Fatalf("%s: %v", save, err)
	}
	tables := make(map[string]*saveRules)
	var cur *saveRules
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			cur = &saveRules{}
			tables[l[1:]] = cur
		case cur == nil:
		case strings.HasPrefix(l, ":"):
			cur.chains = append(cur.chains, strings.Fields(l[1:])[0])
		case strings.HasPrefix(l, "-A "):
			cur.rules = append(cur.rules, l)
		}
	}
	return tables
}

// nftTables lists the host's nftables tables as "FAMILY NAME".
func nftTables(t *testing.T) []string {
	t.Helper()
	out, err := run("nft", "list", "tables")
	if err != nil {
		t.Fatalf("nft list tables: %v\n%s", err, out)
	}
	var tables []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "table" {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	slices.Sort(tables)
	return tables
}

// fwSnapshot is the host's firewall before a test: its nftables tables,
// and its iptables tables for IPv4 and IPv6.
type fwSnapshot struct {
	tables []string
	ipt    map[string]map[string]*saveRules // "ip" or "ip6", then table
}

// iptablesTools are the iptables commands of each family.
var iptablesTools = []struct{ family, save, restore string }{
	{"ip", "iptables-save", "iptables-restore"},
	{"ip6", "ip6tables-save", "ip6tables-restore"},
}

func readFirewall(t *testing.T) fwSnapshot {
	t.Helper()
	s := fwSnapshot{tables: nftTables(t), ipt: make(map[string]map[string]*saveRules)}
	for _, f := range iptablesTools {
		s.ipt[f.family] = iptablesSave(t, f.save)
	}
	return s
}

// restore takes away what the plugins added since the snapshot: the
// rules they put in chains that were there (the jumps to theirs), their
// chains, and the iptables tables iptables-nft made for them. The CNI
// plugins leave their shared chains (firewall's CNI-FORWARD and CNI-ADMIN,
// its same-bridge isolation chains, portmap's CNI-HOSTPORT-*) when the
// last container goes, and portmap's DEL makes the IPv6 nat table.
func (s fwSnapshot) restore(t *testing.T) {
	t.Helper()
	for _, f := range iptablesTools {
		var script strings.Builder
		for table, now := range iptablesSave(t, f.save) {
			if !slices.Contains(s.tables, f.family+" "+table) {
				continue // the whole table goes below
			}
			before := s.ipt[f.family][table]
			if before == nil {
				before = &saveRules{}
			}
			var dels, flushes, removes []string
			for _, r := range now.rules {
				chain := strings.Fields(r)[1]
				if !slices.Contains(before.rules, r) && slices.Contains(before.chains, chain) {
					dels = append(dels, "-D"+r[2:])
				}
			}
			for _, ch := range now.chains {
				if !slices.Contains(before.chains, ch) {
					flushes = append(flushes, "-F "+ch)
					removes = append(removes, "-X "+ch)
				}
			}
			if len(dels)+len(removes) == 0 {
				continue
			}
			fmt.Fprintf(&script, "*%s\n", table)
			for _, l := range slices.Concat(dels, flushes, removes) {
				fmt.Fprintln(&script, l)
			}
			fmt.Fprintln(&script, "COMMIT")
		}
		if script.Len() == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		cmd := exec.CommandContext(ctx, f.restore, "--noflush")
		cmd.Stdin = strings.NewReader(script.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s --noflush: %v\n%s\ninput:\n%s", f.restore, err, out, script.String())
		}
		cancel()
	}
	for _, tb := range nftTables(t) {
		family, name, _ := strings.Cut(tb, " ")
		if slices.Contains(s.tables, tb) || (family != "ip" && family != "ip6") ||
			!slices.Contains([]string{"filter", "nat", "mangle", "raw", "security"}, name) {
			continue
		}
		if out, err := run("nft", "delete", "table", family, name); err != nil {
			t.Errorf("nft delete table %s: %v\n%s", tb, err, out)
		}
	}
	if now := nftTables(t); !slices.Equal(now, s.tables) {
		t.Errorf("nftables tables after the test: %q, before: %q", now, s.tables)
	}
	for _, f := range iptablesTools {
		now := iptablesSave(t, f.save)
		for table, r := range now {
			b := s.ipt[f.family][table]
			if b == nil || !slices.Equal(r.chains, b.chains) || !slices.Equal(r.rules, b.rules) {
				t.Errorf("%s: table %s after the test differs from before:\nchains %q\nrules %q", f.save, table, r.chains, r.rules)
			}
		}
	}
}

// firewallRules are the rules of the filter table's chain of family ip
// that name s (an address, an interface).
func firewallRules(t *testing.T, chain, s string) []string {
	t.Helper()
	var rules []string
	if tb := iptablesSave(t, "iptables-save")["filter"]; tb != nil {
		for _, r := range tb.rules {
			if strings.HasPrefix(r, "-A "+chain+" ") && strings.Contains(r, s) {
				rules = append(rules, r)
			}
		}
	}
	return rules
}

// hostState is what bandwidth would change on the host: the links (an
// ifb device it makes for egress) and the qdiscs (its tbf).
func hostState(t *testing.T) (links []string, qdiscs string) {
	t.Helper()
	out, err := run("ip", "-o", "link", "show")
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			links = append(links, strings.TrimSuffix(f[1], ":"))
		}
	}
	q, err := run("tc", "qdisc", "show")
	if err != nil {
		t.Fatalf("tc qdisc show: %v\n%s", err, q)
	}
	return links, q
}

// TestCNIChainTuning chains tuning after tapswitch-cni: it sets an MTU
// and sysctls inside the container (net.core.somaxconn, and the
// interface's arp_notify through IFNAME), the result passes through,
// the containers still reach each other, CHECK passes and DEL restores
// and removes tuning's backup and the port.
func TestCNIChainTuning(t *testing.T) {
	c := newChainEnv(t, "tuning")
	dataDir := filepath.Join(c.dir, "tuning")
	tun := c.writeChain("tun", map[string]any{"type": "tuning", "dataDir": dataDir, "mtu": 1400,
		"sysctl": map[string]string{"net.core.somaxconn": "512"}})
	tunif := c.writeChain("tunif", map[string]any{"type": "tuning", "dataDir": dataDir,
		"sysctl": map[string]string{"net.ipv4.conf.IFNAME.arp_notify": "1"}})
	a, b := c.newNetns("a"), c.newNetns("b")
	resA := c.addChain(tun, a, "")
	resB := c.addChain(tunif, b, "")
	c.checkPassedThrough(resA, a)
	c.checkPassedThrough(resB, b)
	if m := nsMTU(t, a); m != "1400" {
		t.Errorf("MTU of eth0 in %s: %s, want tuning's 1400", a, m)
	}
	if v := nsSysctl(t, a, "net.core.somaxconn"); v != "512" {
		t.Errorf("net.core.somaxconn in %s: %s, want 512", a, v)
	}
	if v := nsSysctl(t, b, "net.ipv4.conf.eth0.arp_notify"); v != "1" {
		t.Errorf("net.ipv4.conf.eth0.arp_notify in %s: %s, want 1", b, v)
	}
	if backups, _ := os.ReadDir(dataDir); len(backups) != 1 {
		t.Errorf("tuning's backups in %s: %d, want 1 (of the MTU)", dataDir, len(backups))
	}
	mustPing(t, a, resB.IPs[0].Address.IP.String())
	mustPing(t, b, resA.IPs[0].Address.IP.String())

	c.mustCnitool(nil, "check", tun, nsPath(a))
	// tuning 1.1.1 puts the interface's name into an IFNAME key on ADD,
	// not on CHECK (later versions do).
	if r := c.cnitoolRun(nil, "check", tunif, nsPath(b)); r.code != 0 {
		if !strings.Contains(r.stderr, "open /proc/sys/net/ipv4/conf/IFNAME/arp_notify: no such file or directory") {
			t.Errorf("cnitool check of tuning with an IFNAME sysctl: exit %d\n%s", r.code, r.stderr)
		}
		t.Logf("tuning's CHECK of an IFNAME sysctl fails: %s", lastLine(r.stderr))
	}

	c.delChain(tun, a, "")
	c.delChain(tunif, b, "")
	c.checkDeleted(a)
	c.checkDeleted(b)
	if backups, _ := os.ReadDir(dataDir); len(backups) != 0 {
		t.Errorf("tuning's backups left in %s after DEL: %d", dataDir, len(backups))
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestCNIChainFirewall chains firewall (iptables backend) after
// tapswitch-cni: ADD adds the rules accepting the container's address in
// CNI-FORWARD, CHECK passes, DEL removes them and the other container's
// stay. With ingressPolicy same-bridge, firewall isolates the network's
// gateway interface, the host interface of the result, from the other
// networks forwarded through the host, as it does a bridge.
func TestCNIChainFirewall(t *testing.T) {
	c := newChainEnv(t, "firewall")
	fw := c.writeChain("fw", map[string]any{"type": "firewall", "backend": "iptables"})
	fwsb := c.writeChain("fwsb", map[string]any{"type": "firewall", "backend": "iptables", "ingressPolicy": "same-bridge"})
	a, b := c.newNetns("a"), c.newNetns("b")
	resA := c.addChain(fw, a, "")
	resB := c.addChain(fwsb, b, "")
	c.checkPassedThrough(resA, a)
	c.checkPassedThrough(resB, b)
	ipA, ipB := resA.IPs[0].Address.IP.String(), resB.IPs[0].Address.IP.String()
	for _, ip := range []string{ipA, ipB} {
		if r := firewallRules(t, "CNI-FORWARD", ip+"/32"); len(r) != 2 {
			t.Errorf("CNI-FORWARD rules for %s: %q, want firewall's two", ip, r)
		}
	}
	if r := firewallRules(t, "FORWARD", "-j CNI-FORWARD"); len(r) != 1 {
		t.Errorf("FORWARD: jumps to CNI-FORWARD %q, want one", r)
	}
	bridge := c.inspect(c.net).Bridge
	if r := firewallRules(t, "CNI-ISOLATION-STAGE-1", "-i "+bridge+" ! -o "+bridge); len(r) != 1 {
		t.Errorf("CNI-ISOLATION-STAGE-1: rules for %s %q, want one (same-bridge)", bridge, r)
	}
	if r := firewallRules(t, "CNI-ISOLATION-STAGE-2", "-o "+bridge+" "); len(r) != 1 {
		t.Errorf("CNI-ISOLATION-STAGE-2: rules for %s %q, want one (same-bridge)", bridge, r)
	}
	mustPing(t, a, ipB)
	mustPing(t, b, ipA)
	c.mustCnitool(nil, "check", fw, nsPath(a))
	c.mustCnitool(nil, "check", fwsb, nsPath(b))

	c.delChain(fw, a, "")
	if r := firewallRules(t, "CNI-FORWARD", ipA+"/32"); len(r) != 0 {
		t.Errorf("CNI-FORWARD rules for %s after DEL: %q", ipA, r)
	}
	if r := firewallRules(t, "CNI-FORWARD", ipB+"/32"); len(r) != 2 {
		t.Errorf("CNI-FORWARD rules for %s after the DEL of %s: %q, want its two", ipB, a, r)
	}
	c.delChain(fwsb, b, "")
	if r := firewallRules(t, "CNI-FORWARD", ipB+"/32"); len(r) != 0 {
		t.Errorf("CNI-FORWARD rules for %s after DEL: %q", ipB, r)
	}
	c.checkDeleted(a)
	c.checkDeleted(b)
}

// TestCNIChainBandwidth chains bandwidth after tapswitch-cni. Without
// limits, its ADD passes the result on and DEL succeeds; its CHECK fails,
// as does its ADD with limits (in the config or in runtimeConfig), since
// it shapes the host end of a veth pair and a tapswitch port is a TAP.
// After a failed ADD the runtime's DEL (cnitool does not run it) leaves
// nothing: no port, no cached result, no ifb or qdisc on the host.
func TestCNIChainBandwidth(t *testing.T) {
	c := newChainEnv(t, "bandwidth")
	bw := c.writeChain("bw", map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}})
	bwrate := c.writeChain("bwrate", map[string]any{"type": "bandwidth",
		"ingressRate": 8000000, "ingressBurst": 800000, "egressRate": 8000000, "egressBurst": 800000})
	links, qdiscs := hostState(t)
	sameHost := func(when string) {
		t.Helper()
		l, q := hostState(t)
		if !slices.Equal(l, links) || q != qdiscs {
			t.Errorf("%s: the host's links or qdiscs changed:\n%q\n%s\nbefore:\n%q\n%s", when, l, q, links, qdiscs)
		}
	}

	// (a) No limits: the result passes through.
	a := c.newNetns("a")
	res := c.addChain(bw, a, "")
	c.checkPassedThrough(res, a)
	sameHost("ADD without limits")
	r := c.cnitoolRun(nil, "check", bw, nsPath(a))
	if r.code == 0 || !strings.Contains(r.stderr, bandwidthNoVeth) {
		t.Errorf("cnitool check with bandwidth: exit %d\n%s, want %q", r.code, r.stderr, bandwidthNoVeth)
	}
	c.delChain(bw, a, "")
	c.checkDeleted(a)

	// (b) Limits in the config, then in runtimeConfig: ADD fails.
	limits := `{"bandwidth":{"ingressRate":8000000,"ingressBurst":800000,"egressRate":8000000,"egressBurst":800000}}`
	for _, tc := range []struct{ conf, capArgs string }{{bwrate, ""}, {bw, limits}} {
		b := c.newNetns("b")
		r := c.cnitoolRun(capEnv(tc.capArgs), "add", tc.conf, nsPath(b))
		c.added = append(c.added, chainAdd{tc.conf, b, tc.capArgs})
		want := `plugin type="bandwidth" failed (add): ` + bandwidthNoVeth
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("cnitool add %s (CAP_ARGS %s): exit %d\n%s%s, want %q", tc.conf, tc.capArgs, r.code, r.stdout, r.stderr, want)
		}
		// libcni stops at the failed plugin and returns; the DEL the
		// spec requires after a failed ADD is the runtime's.
		if c.portOf(b) == nil {
			t.Errorf("cnitool add %s: no port after bandwidth failed, want tapswitch-cni's until the runtime's DEL", tc.conf)
		}
		sameHost("failed ADD")
		c.delChain(tc.conf, b, tc.capArgs)
		c.checkDeleted(b)
		sameHost("DEL after a failed ADD")
	}
}

// TestCNIChainAll chains tuning, bandwidth (no limits), firewall and
// portmap after tapswitch-cni, as a runtime with all of them would: the
// final result is tapswitch-cni's, every plugin did its part, a web
// server in one container is reached through portmap from the host and
// the containers reach each other; DEL takes it all away.
func TestCNIChainAll(t *testing.T) {
	c := newChainEnv(t, "tuning", "bandwidth", "firewall", "portmap")
	privtest.Require(t, "run a web server in a namespace", "busybox")
	dataDir := filepath.Join(c.dir, "tuning")
	all := c.writeChain("all",
		map[string]any{"type": "tuning", "dataDir": dataDir, "mtu": 1400, "sysctl": map[string]string{"net.core.somaxconn": "512"}},
		map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}},
		map[string]any{"type": "firewall", "backend": "iptables"},
		map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
	)
	hostPort := freeHostPort(t, 18080)
	capArgs := fmt.Sprintf(`{"portMappings":[{"hostPort":%d,"containerPort":80,"protocol":"tcp"}]}`, hostPort)
	a, b := c.newNetns("a"), c.newNetns("b")
	t0 := time.Now()
	resA := c.addChain(all, a, capArgs)
	t.Logf("cnitool add through five plugins: %v", time.Since(t0).Round(time.Millisecond))
	resB := c.addChain(all, b, "")
	c.checkPassedThrough(resA, a)
	c.checkPassedThrough(resB, b)
	ipA, ipB := resA.IPs[0].Address.IP.String(), resB.IPs[0].Address.IP.String()

	for _, ns := range []string{a, b} {
		if m := nsMTU(t, ns); m != "1400" {
			t.Errorf("MTU of eth0 in %s: %s, want tuning's 1400", ns, m)
		}
		if v := nsSysctl(t, ns, "net.core.somaxconn"); v != "512" {
			t.Errorf("net.core.somaxconn in %s: %s, want 512", ns, v)
		}
	}
	for _, ip := range []string{ipA, ipB} {
		if r := firewallRules(t, "CNI-FORWARD", ip+"/32"); len(r) != 2 {
			t.Errorf("CNI-FORWARD rules for %s: %q, want firewall's two", ip, r)
		}
	}
	port := c.portOf(a)
	dnat := fmt.Sprintf("--dport %d -j DNAT --to-destination %s:80", hostPort, ipA)
	if r := portmapRules(t, "iptables-save", ""); !slices.ContainsFunc(r, func(s string) bool { return strings.Contains(s, dnat) }) ||
		!slices.ContainsFunc(r, func(s string) bool { return strings.Contains(s, port.ContainerID) }) {
		t.Errorf("portmap's rules: %q, want the DNAT %q and a jump naming %s", r, dnat, port.ContainerID)
	}

	www := filepath.Join(c.dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("chained\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	httpd, err := startProc(exec.Command("ip", "netns", "exec", a, "busybox", "httpd", "-f", "-p", "80", "-h", www))
	if err != nil {
		t.Fatal(err)
	}
	c.procs = append(c.procs, httpd)
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if body, err = httpGet(url); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || body != "chained\n" {
		t.Errorf("GET %s (portmap to %s:80): %v %q", url, ipA, err, body)
	}
	mustPing(t, a, ipB)
	mustPing(t, b, ipA)

	// CHECK runs the plugins in order: tapswitch-cni and tuning pass,
	// bandwidth fails.
	if r := c.cnitoolRun(capEnv(capArgs), "check", all, nsPath(a)); r.code == 0 || !strings.Contains(r.stderr, bandwidthNoVeth) {
		t.Errorf("cnitool check all: exit %d\n%s, want bandwidth's %q", r.code, r.stderr, bandwidthNoVeth)
	}

	t0 = time.Now()
	c.delChain(all, a, capArgs)
	t.Logf("cnitool del through five plugins: %v", time.Since(t0).Round(time.Millisecond))
	if r := portmapRules(t, "iptables-save", port.ContainerID); len(r) != 0 {
		t.Errorf("portmap's rules for %s after DEL: %q", a, r)
	}
	if r := firewallRules(t, "CNI-FORWARD", ipA+"/32"); len(r) != 0 {
		t.Errorf("CNI-FORWARD rules for %s after DEL: %q", ipA, r)
	}
	c.delChain(all, b, "")
	if r := firewallRules(t, "CNI-FORWARD", ipB+"/32"); len(r) != 0 {
		t.Errorf("CNI-FORWARD rules for %s after DEL: %q", ipB, r)
	}
	c.checkDeleted(a)
	c.checkDeleted(b)
	if backups, _ := os.ReadDir(dataDir); len(backups) != 0 {
		t.Errorf("tuning's backups left in %s after DEL: %d", dataDir, len(backups))
	}
}
