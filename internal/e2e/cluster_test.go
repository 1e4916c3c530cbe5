package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// The front network of TestCluster: every host has it, a container on
// each host is on it.
const (
	frontNet    = "front"
	frontSubnet = "10.241.1.0/24"
	frontVNI    = 4242
)

// TestCluster runs three hosts with one etcd and shows, in order, what a
// network that spans hosts must do: exist everywhere, carry ping and TCP
// by name between containers of every pair of hosts, go away everywhere
// when removed on one host, drop what non-members and unknown VNIs send,
// keep the other hosts' traffic when a host's daemon is killed (and take
// the host back when it restarts), and keep a TCP stream going while
// etcd is down. One harness serves all of them: the disruptive parts
// come last.
func TestCluster(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	h1, h2, h3 := c.host(1), c.host(2), c.host(3)
	// The containers of front: web on h1, db on h2, cache on h3.
	var web, db, cache string

	if !t.Run("network spans hosts", func(t *testing.T) {
		h1.mustCLI(t, "network", "create", frontNet, "--subnet", frontSubnet, "--scope", "cluster", "--vni", strconv.Itoa(frontVNI))
		// The anycast gateway: one address and one MAC on every host.
		gateways := map[string][]string{}
		for _, h := range c.hosts {
			took := poll(t, fmt.Sprintf("network %s in %s's network ls", frontNet, h.name), func() string {
				n := h.network(t, frontNet)
				if n == nil {
					return "absent"
				}
				if n.Scope != api.ScopeCluster || n.VNI != frontVNI || n.MTU != overlayMTU || !samePrefix(n.Subnet, frontSubnet) {
					return fmt.Sprintf("scope %q vni %d mtu %d subnet %s, want cluster, %d, %d, %s", n.Scope, n.VNI, n.MTU, n.Subnet, frontVNI, overlayMTU, frontSubnet)
				}
				return ""
			})
			t.Logf("%s: %s listed after %v", h.name, frontNet, took.Round(time.Millisecond))
			d := h.inspect(t, frontNet)
			if d.VNI != frontVNI || d.MTU != overlayMTU {
				t.Errorf("%s: network inspect %s: vni %d mtu %d, want %d and %d (underlay %d - 50)", h.name, frontNet, d.VNI, d.MTU, frontVNI, overlayMTU, ulMTU)
			}
			// One tunnel port, and the gateway, at the overlay's MTU.
			tunnels := 0
			for _, p := range d.Ports {
				if p.Kind == api.KindTunnel {
					tunnels++
				}
				if p.Kind == api.KindGateway {
					gateways[d.Gateway+" "+p.MAC] = append(gateways[d.Gateway+" "+p.MAC], h.name)
				}
				if (p.Kind == api.KindTunnel || p.Kind == api.KindGateway) && p.MTU != overlayMTU {
					t.Errorf("%s: port %s (%s) of %s: mtu %d, want %d", h.name, p.Name, p.Kind, frontNet, p.MTU, overlayMTU)
				}
			}
			if tunnels != 1 {
				t.Errorf("%s: network inspect %s: %d ports of kind %q, want 1: %+v", h.name, frontNet, tunnels, api.KindTunnel, d.Ports)
			}
		}
		if len(gateways) != 1 {
			t.Errorf("gateways of %s (address and MAC: hosts): %v, want one for all", frontNet, gateways)
		}
		t.Logf("gateway of %s (address and MAC: hosts): %v", frontNet, gateways)
		web = c.container(t, h1, "web", frontNet)
		db = c.container(t, h2, "db", frontNet)
		cache = c.container(t, h3, "cache", frontNet)
	}) {
		t.FailNow()
	}

	t.Run("containers reach each other by name", func(t *testing.T) {
		names := map[string]string{web: "web", db: "db", cache: "cache"}
		addrs := map[string]string{}
		subnet := netip.MustParsePrefix(frontSubnet)
		for _, ns := range []string{web, db, cache} {
			if got := nsMTU(t, ns); got != strconv.Itoa(overlayMTU) {
				t.Errorf("MTU of eth0 of %s: %s, want %d (the overlay's)", names[ns], got, overlayMTU)
			}
			a := containerAddr(t, ns)
			if ip, err := netip.ParseAddr(a); err != nil || !subnet.Contains(ip) {
				t.Errorf("address of %s: %s, want one in %s", names[ns], a, frontSubnet)
			}
			if other, dup := addrs[a]; dup {
				t.Errorf("%s and %s both have address %s", other, names[ns], a)
			}
			addrs[a] = names[ns]
		}
		// Every pair both ways; the first ping may wait for the other
		// hosts' records to arrive from the store.
		for _, from := range []string{web, db, cache} {
			for _, to := range []string{web, db, cache} {
				if from == to {
					continue
				}
				tries := 0
				var out string
				poll(t, fmt.Sprintf("ping %s from %s", names[to], names[from]), func() string {
					tries++
					var err error
					if out, err = pingName(from, names[to]); err != nil {
						return fmt.Sprintf("%v\n%s", err, out)
					}
					return ""
				})
				sent, got := pingCounts(out)
				t.Logf("ping %s -> %s by name: %d/%d answered, at try %d", names[from], names[to], got, sent, tries)
			}
		}
		// TCP both ways at once across each pair of hosts.
		for _, ns := range []string{web, db, cache} {
			c.iperfServer(t, ns, containerAddr(t, ns), 5201)
		}
		for _, p := range [][2]string{{web, db}, {db, cache}, {cache, web}} {
			r := c.iperf(t, p[0], names[p[1]], 5201, "-t", "2", "--bidir")
			if r.End.SumSent.Bytes == 0 {
				t.Errorf("iperf3 --bidir %s -> %s: nothing sent", names[p[0]], names[p[1]])
			}
			t.Logf("iperf3 -t 2 --bidir %s <-> %s: %d bytes received at %.2f Gbit/s, %d retransmits",
				names[p[0]], names[p[1]], r.End.SumReceived.Bytes, r.gbps(), r.End.SumSent.Retransmits)
		}
	})

	t.Run("peers lists the other hosts and the MACs behind them", func(t *testing.T) {
		macDB, macCache := linkMAC(t, db, "eth0"), linkMAC(t, cache, "eth0")
		poll(t, "h1's peers", func() string {
			ps := h1.peers(t)
			for _, w := range []struct {
				h   *clusterHost
				mac net.HardwareAddr
			}{{h2, macDB}, {h3, macCache}} {
				p := findPeer(ps, w.h.vtep)
				if p == nil {
					return fmt.Sprintf("no peer with VTEP %s in %+v", w.h.vtep, ps)
				}
				if p.Name != w.h.name || p.Self {
					return fmt.Sprintf("peer %s: name %q self %v, want %q and false", w.h.vtep, p.Name, p.Self, w.h.name)
				}
				if !peerHasMAC(*p, w.mac, frontNet) {
					return fmt.Sprintf("peer %s (%s): MACs %+v, want %s on %s", p.Name, p.VTEP, p.MACs, w.mac, frontNet)
				}
			}
			return ""
		})
		out := h1.mustCLI(t, "peers")
		for _, want := range []string{h2.vtep, h3.vtep, macDB.String(), macCache.String()} {
			if !strings.Contains(out, want) {
				t.Errorf("tapswitch peers on h1 does not show %s:\n%s", want, out)
			}
		}
		t.Logf("tapswitch peers on h1:\n%s", out)
	})

	t.Run("broadcasts go only to the hosts with ports on the network", func(t *testing.T) {
		floodOnlyToPortHosts(t, c)
	})

	t.Run("attaches at once on every host get distinct addresses", func(t *testing.T) {
		// Addresses come from the store in transactions: hosts
		// attaching at the same moment never hand out one address twice.
		const name, subnet, perHost = "many", "10.241.4.0/24", 4
		h1.mustCLI(t, "network", "create", name, "--subnet", subnet, "--scope", "cluster")
		for _, h := range c.hosts {
			poll(t, fmt.Sprintf("network %s on %s", name, h.name), func() string {
				if h.network(t, name) == nil {
					return "absent"
				}
				return ""
			})
		}
		type job struct {
			h        *clusterHost
			ns, port string
			res      cliResult
		}
		var jobs []*job
		for _, h := range c.hosts {
			for i := range perHost {
				port := fmt.Sprintf("m%s%d", h.name, i)
				jobs = append(jobs, &job{h: h, ns: c.newContainerNetns(t, port), port: port})
			}
		}
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Go(func() {
				j.res = runCLIQuiet(j.h.sock, "attach", j.ns, "--name", j.port, "--network", name)
			})
		}
		wg.Wait()
		owner := map[string]string{}
		for _, j := range jobs {
			if j.res.code != 0 {
				t.Errorf("%s: tapswitch attach %s --network %s: exit %d\n%s", j.h.name, j.port, name, j.res.code, j.res.stderr)
				continue
			}
			a := containerAddr(t, j.ns)
			if other, dup := owner[a]; dup {
				t.Errorf("%s and %s both have address %s", other, j.port, a)
			}
			owner[a] = j.port
		}
		t.Logf("%d attaches at once on %d hosts: %d distinct addresses", len(jobs), len(c.hosts), len(owner))
		h1.mustCLI(t, "network", "rm", "--force", name)
	})

	t.Run("network rm on one host removes it everywhere", func(t *testing.T) {
		const name, subnet = "gone", "10.241.2.0/24"
		h1.mustCLI(t, "network", "create", name, "--subnet", subnet, "--scope", "cluster")
		var vni uint32
		for _, h := range c.hosts {
			poll(t, fmt.Sprintf("network %s on %s", name, h.name), func() string {
				n := h.network(t, name)
				if n == nil {
					return "absent"
				}
				if vni == 0 {
					vni = n.VNI
				}
				if n.VNI == 0 || n.VNI == frontVNI || n.VNI != vni {
					return fmt.Sprintf("vni %d: want one VNI for %s on every host, not 0 nor front's %d", n.VNI, name, frontVNI)
				}
				return ""
			})
		}
		tmp := c.container(t, h3, "tmp", name)
		// A port remains on h3: rm without --force is refused, at once,
		// whether or not h2 has heard of the port yet.
		if r := h2.cli(t, "network", "rm", name); r.code == 0 {
			t.Errorf("h2: tapswitch network rm %s with a port on h3: exit 0, want a refusal", name)
		} else {
			t.Logf("h2: tapswitch network rm %s with a port on h3: %s", name, strings.TrimSpace(r.stderr))
			if !strings.Contains(r.stderr, "tmp") || strings.Count(r.stderr, "--force") != 1 {
				t.Errorf("h2: tapswitch network rm %s says %q: want the port named (tmp) and --force advised once", name, r.stderr)
			}
		}
		h2.mustCLI(t, "network", "rm", "--force", name)
		start := time.Now()
		for _, h := range c.hosts {
			poll(t, fmt.Sprintf("network %s gone from %s", name, h.name), func() string {
				if h.network(t, name) != nil {
					return "still listed"
				}
				return ""
			})
			t.Logf("network rm %s on h2: gone from %s after %v", name, h.name, time.Since(start).Round(time.Millisecond))
		}
		// And stays gone: no host makes it again from a view that was
		// late.
		time.Sleep(time.Second)
		for _, h := range c.hosts {
			if h.network(t, name) != nil {
				t.Errorf("%s: network %s back a second after it was gone", h.name, name)
			}
		}
		poll(t, "tmp's TAP on h3 removed", func() string {
			if l := leftovers(t, tmp); len(l) > 0 {
				return fmt.Sprintf("interfaces %v remain in %s", l, tmp)
			}
			return ""
		})
		for _, h := range c.hosts {
			if h.network(t, frontNet) == nil {
				t.Errorf("%s: network %s went too", h.name, frontNet)
			}
		}
	})

	t.Run("non-members and unknown VNIs are dropped and counted", func(t *testing.T) {
		const xAddr = ulPrefix + "4"
		c.joinUnderlay(t, "tse-x", xAddr)
		forged := net.HardwareAddr{0x02, 0x54, 0x53, 0x45, 0x00, 0x01}
		frontIP := net.ParseIP("10.241.1.200")

		before := h1.tunnelDrops(t)
		sendUDP(t, "tse-x", h1.vtep, 4789, vxlanPacket(frontVNI, forged, frontIP, frontIP))
		poll(t, "h1 counts a packet from a non-member", func() string {
			if got := h1.tunnelDrops(t); got["not_member"] <= before["not_member"] {
				return fmt.Sprintf("dropped %v, was %v", got, before)
			}
			return ""
		})

		const unknownVNI = 0xabcdef
		before = h1.tunnelDrops(t)
		forged2 := net.HardwareAddr{0x02, 0x54, 0x53, 0x45, 0x00, 0x02}
		sendUDP(t, h2.ns, h1.vtep, 4789, vxlanPacket(unknownVNI, forged2, frontIP, frontIP))
		poll(t, "h1 counts a packet of an unknown VNI from a member", func() string {
			if got := h1.tunnelDrops(t); got["unknown_vni"] <= before["unknown_vni"] {
				return fmt.Sprintf("dropped %v, was %v", got, before)
			}
			return ""
		})
		// Dropped, not learned: neither forged MAC is behind any peer or
		// in the forwarding table.
		for _, mac := range []net.HardwareAddr{forged, forged2} {
			for _, p := range h1.peers(t) {
				if peerHasMAC(p, mac, "") {
					t.Errorf("h1 peers: %s learned behind %s (%s)", mac, p.Name, p.VTEP)
				}
			}
			var entries []api.FDBEntry
			h1.mustJSON(t, &entries, "fdb", "-o", "json")
			for _, ent := range entries {
				if sameMAC(ent.MAC, mac) {
					t.Errorf("h1 fdb: %s learned on port %s", mac, ent.Port)
				}
			}
		}
		t.Logf("h1 tunnel drops: %v", h1.tunnelDrops(t))
	})

	t.Run("a host's daemon killed: the others' traffic goes on, it rejoins", func(t *testing.T) {
		const count = 200
		// -D -O: a timestamp on every line and a line for every request
		// not answered in time, to tell a loss from h2's death from one
		// of the queue's.
		pingCmd := exec.Command("ip", "netns", "exec", web, "ping", "-n", "-D", "-O", "-c", strconv.Itoa(count), "-i", "0.05", "-W", "2", "cache")
		var pingOut syncBuffer
		pingCmd.Stdout, pingCmd.Stderr = &pingOut, &pingOut
		pingProc, err := startProc(pingCmd)
		if err != nil {
			t.Fatal(err)
		}
		c.procs = append(c.procs, pingProc)
		// A stream at a rate the machine keeps up with: a queue that
		// overflows under a saturating one would drop pings of its own.
		stream := c.startIperf(t, cache, "web", 5201, "-t", "8", "-b", "1G")

		time.Sleep(time.Second)
		killed := time.Now()
		h2.kill9(t)
		t.Logf("h2's tapswitchd killed at %.6f", float64(killed.UnixMicro())/1e6)
		for _, h := range []*clusterHost{h1, h3} {
			poll(t, fmt.Sprintf("h2 gone from %s's peers", h.name), func() string {
				if p := findPeer(h.peers(t), h2.vtep); p != nil {
					return fmt.Sprintf("h2 still listed: %+v", *p)
				}
				return ""
			})
			t.Logf("h2 gone from %s's peers %v after kill -9 (TTL %v)", h.name, time.Since(killed).Round(time.Millisecond), clusterTTL)
		}

		if err := pingProc.wait(time.Minute); err != nil {
			t.Errorf("ping -c %d -i 0.05 web -> cache while h2 died: %v\n%s", count, err, pingOut.String())
		}
		if sent, got := pingCounts(pingOut.String()); sent != count || got != count {
			t.Errorf("ping web -> cache while h2 died: %d sent, %d received, want %d and %d\n%s", sent, got, count, count, pingOut.String())
		}
		r := stream.result(t, time.Minute)
		t.Logf("iperf3 -t 8 cache -> web while h2 died: %d bytes at %.2f Gbit/s, %d retransmits", r.End.SumReceived.Bytes, r.gbps(), r.End.SumSent.Retransmits)

		restarted := time.Now()
		h2.start(t)
		took := poll(t, "ping db from web after h2's restart", func() string {
			if out, err := pingName(web, "db"); err != nil {
				return fmt.Sprintf("%v\n%s", err, out)
			}
			return ""
		})
		t.Logf("db answered web by name %v after h2's restart", took.Round(time.Millisecond))
		mustPingName(t, db, "cache")
		if findPeer(h1.peers(t), h2.vtep) == nil {
			t.Errorf("h1's peers: no h2 after its restart")
		}
		t.Logf("h2 back %v after its restart", time.Since(restarted).Round(time.Millisecond))
	})

	t.Run("etcd down for 20s: a TCP stream across hosts goes on", func(t *testing.T) {
		const outage = 20 * time.Second
		stream := c.startIperf(t, web, "cache", 5201, "-t", "30", "--get-server-output")
		time.Sleep(3 * time.Second)
		stopped := time.Now()
		c.etcd.Stop()

		poll(t, "h1's status says the store is unreachable", func() string {
			if s := h1.status(t); s.Cluster == nil || s.Cluster.Connected {
				return fmt.Sprintf("cluster %+v", s.Cluster)
			}
			return ""
		})
		out := h1.mustCLI(t, "status")
		if !strings.Contains(out, "not connected") {
			t.Errorf("tapswitch status on h1 with etcd down does not say \"not connected\":\n%s", out)
		}
		t.Logf("tapswitch status on h1 with etcd down:\n%s", out)

		late := c.newContainerNetns(t, "late")
		r := h1.cli(t, "attach", late, "--name", "late", "--network", frontNet)
		if r.code == 0 {
			t.Errorf("attach to %s with etcd down: exit 0, want a failure", frontNet)
		} else {
			t.Logf("attach to %s with etcd down: %s", frontNet, strings.TrimSpace(r.stderr))
			if !strings.Contains(strings.ToLower(r.stderr), "etcd") {
				t.Errorf("attach to %s with etcd down says %q: want it to name etcd", frontNet, r.stderr)
			}
		}
		if l := leftovers(t, late); len(l) > 0 {
			t.Errorf("failed attach left %v in %s", l, late)
		}

		time.Sleep(time.Until(stopped.Add(outage)))
		c.etcd.Restart()
		back := time.Now()
		for _, h := range c.hosts {
			poll(t, fmt.Sprintf("%s's store connected again", h.name), func() string {
				if s := h.status(t); s.Cluster == nil || !s.Cluster.Connected {
					return fmt.Sprintf("cluster %+v", s.Cluster)
				}
				return ""
			})
		}
		t.Logf("every store connected %v after etcd's restart", time.Since(back).Round(time.Millisecond))

		res := stream.result(t, time.Minute)
		secs := serverSeconds(t, stream, res)
		silent := silentSeconds(secs)
		t.Logf("iperf3 -t 30 web -> cache across a %v etcd outage: %d bytes in %.1fs at %.2f Gbit/s, %d retransmits, %d of the receiver's %d seconds without bytes",
			outage, res.End.SumReceived.Bytes, res.End.SumReceived.Seconds, res.gbps(), res.End.SumSent.Retransmits, silent, len(secs))
		if silent > 0 {
			t.Errorf("the stream stalled while etcd was down: %d of the receiver's %d seconds carried no bytes", silent, len(secs))
		}
		if sent, got := res.End.SumSent.Bytes, res.End.SumReceived.Bytes; sent == 0 || got < sent-sent/10 {
			t.Errorf("%s: %d bytes sent, %d received; want the transfer whole", stream.desc, sent, got)
		}

		// Changes resume: an attach succeeds and its name resolves on
		// another host.
		poll(t, "attach after etcd's restart", func() string {
			if r := h1.cli(t, "attach", late, "--name", "late", "--network", frontNet); r.code != 0 {
				return r.stderr
			}
			return ""
		})
		poll(t, "ping late from cache", func() string {
			if out, err := pingName(cache, "late"); err != nil {
				return fmt.Sprintf("%v\n%s", err, out)
			}
			return ""
		})
		// The cluster is whole again: every host lists the others, and
		// the names of before still resolve.
		for _, h := range c.hosts {
			poll(t, fmt.Sprintf("%s's peers after etcd's restart", h.name), func() string {
				ps := h.peers(t)
				for _, o := range c.hosts {
					if p := findPeer(ps, o.vtep); p == nil || p.Name != o.name {
						return fmt.Sprintf("no %s (%s) in %+v", o.name, o.vtep, ps)
					}
				}
				return ""
			})
		}
		mustPingName(t, web, "db")
	})
}

// peerHasMAC reports whether mac is behind p, on network (any when "").
func peerHasMAC(p api.Peer, mac net.HardwareAddr, network string) bool {
	for _, m := range p.MACs {
		if sameMAC(m.MAC, mac) && (network == "" || m.Network == network) {
			return true
		}
	}
	return false
}
