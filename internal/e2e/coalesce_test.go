package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// The coalescing tests: traffic that the switch may merge into
// super-frames (userspace GRO) before it writes to a TAP must reach the
// receiving sockets exactly as it was sent. They use 10.160.0.0/16 and
// fd0a:a0::/48, and names that start with "gx".

// gxPair is two namespaces on one dual-stack network: nsA, the sender,
// on port portA with addresses a4 and a6, and nsB, the receiver, on
// portB with b4 and b6.
type gxPair struct {
	nsA, nsB       string
	portA, portB   string
	a4, a6, b4, b6 string
}

// gxPair makes a dual-stack network called network with subnets
// 10.160.n.0/24 and fd0a:a0:0:n::/64, attaches two namespaces to it as
// ports gxNa and gxNb, and pings both ways over both families so that
// the switch and both stacks know the MACs.
func (e *testEnv) gxPair(network string, n int) gxPair {
	e.t.Helper()
	v4, v6 := fmt.Sprintf("10.160.%d.0/24", n), fmt.Sprintf("fd0a:a0:0:%d::/64", n)
	e.mustCLI("network", "create", network, "--subnet", v4, "--subnet", v6)
	p := gxPair{
		nsA: e.newNetnsNamed("gx", "a"), nsB: e.newNetnsNamed("gx", "b"),
		portA: fmt.Sprintf("gx%da", n), portB: fmt.Sprintf("gx%db", n),
	}
	e.attach(p.nsA, "--network", network, "--name", p.portA)
	e.attach(p.nsB, "--network", network, "--name", p.portB)
	ports := e.ports()
	p.a4, p.a6 = portAddrs(e.t, findPort(ports, p.portA))
	p.b4, p.b6 = portAddrs(e.t, findPort(ports, p.portB))
	for _, c := range [][2]string{{p.nsA, p.b4}, {p.nsA, p.b6}, {p.nsB, p.a4}, {p.nsB, p.a6}} {
		mustPing(e.t, c[0], c[1])
	}
	return p
}

// udpMixedRuns is the schedule of TestCoalesceUDPMixedSizes: runs of
// equal sizes the switch may merge (the longest 30 datagrams), between
// other sizes and short datagrams that end a run, down to 8 bytes. Each
// flow starts at another place in the list, and the flows' bursts
// interleave.
const udpMixedRuns = "24x1200,1x40,16x600,3x8,30x100,1x1400,20x1400,2x33,10x64,7x999"

// udpMixed is one run of the mixed-size UDP schedule from nsA to a
// receiver in nsRecv at dst, through the switch's port portB, whose TAP
// is eth0 in nsB.
type udpMixed struct {
	nsA, nsRecv, dst, portB, nsB string
	port, rounds                 int
}

// udpMixedFlows is how many flows a udpMixed run sends at once.
const udpMixedFlows = 4

// run sends the schedule, checks every datagram that arrived and the
// coalescing counters of portB, and returns the receiver's UDP counters'
// rise.
func (u udpMixed) run(t *testing.T, e *testEnv, bin string, v6 bool) map[string]uint64 {
	t.Helper()
	sched := []string{"-runs", udpMixedRuns, "-flows", fmt.Sprint(udpMixedFlows), "-rounds", fmt.Sprint(u.rounds)}
	before := e.coalesced(u.portB)
	txBefore := findPort(e.ports(), u.portB).Stats.TxFrames
	dropBefore := txDropped(t, u.nsA, "eth0")
	mibBefore := udpMIB(t, u.nsRecv, v6)
	recv := e.startFlowReceiver(bin, u.nsRecv, append([]string{"udp-recv", "-bind", u.dst, "-port", fmt.Sprint(u.port)}, sched...)...)
	var sent flowSendResult
	// Each round's bursts leave back to back; a short pause between
	// rounds lets the switch catch up, which keeps losses at the
	// sender's TAP low even on a busy machine.
	e.runFlowSender(bin, u.nsA, &sent, append([]string{"udp-send", "-dst", u.dst, "-port", fmt.Sprint(u.port), "-pause", "2ms"}, sched...)...)
	var got udpRecvResult
	recv.finish(&got)
	after := e.coalesced(u.portB)
	txFrames := findPort(e.ports(), u.portB).Stats.TxFrames - txBefore
	senderDrops := txDropped(t, u.nsA, "eth0") - dropBefore
	mib := mibDelta(mibBefore, udpMIB(t, u.nsRecv, v6))

	expected, received, good := 0, 0, 0
	for _, f := range got.Flows {
		t.Logf("%v", f)
		expected += f.Expected
		received += f.Received
		good += f.Good
		if f.Longer > 0 {
			t.Errorf("flow %d: %d datagrams arrived longer than sent: merged (%s)", f.Flow, f.Longer, f.FirstError)
		}
		if f.Shorter+f.Corrupt+f.BadHeader > 0 {
			t.Errorf("flow %d: %d datagrams cut, %d corrupt, %d naming another flow or sequence number (%s)", f.Flow, f.Shorter, f.Corrupt, f.BadHeader, f.FirstError)
		}
		if f.OutOfOrder > 0 {
			t.Errorf("flow %d: %d datagrams out of order (%s)", f.Flow, f.OutOfOrder, f.FirstError)
		}
	}
	if len(got.Flows) != udpMixedFlows || sent.Sent != expected || expected == 0 {
		t.Fatalf("sender sent %d datagrams, receiver expected %d in %d flows; want the schedule's count, %d flows", sent.Sent, expected, len(got.Flows), udpMixedFlows)
	}
	lost := expected - received
	t.Logf("%d datagrams sent in %.3fs, %d received (%d lost, %.2f%%; %d dropped by the sender's eth0, its reader the switch behind), %d good; receiver's socket buffer %d bytes, UDP counters InDatagrams +%d, InCsumErrors +%d, RcvbufErrors +%d; %s tx_frames +%d, tx_coalesced_frames +%d in %d writes (%.1f a write)",
		sent.Sent, sent.Seconds, received, lost, 100*float64(lost)/float64(expected), senderDrops, good, got.Rcvbuf,
		mib["InDatagrams"], mib["InCsumErrors"], mib["RcvbufErrors"],
		u.portB, txFrames, after.frames-before.frames, after.writes-before.writes, ratio(after.frames-before.frames, after.writes-before.writes))
	// Losses are reported, not asserted away: the sender outruns a
	// race-built switch on a busy machine. What the switch took must
	// mostly arrive, and a tenth at least of all that was sent.
	if took := expected - int(min(senderDrops, uint64(expected))); received < took/2 || received < expected/10 {
		t.Errorf("%d of %d datagrams arrived, %d dropped before the switch; want at least half of the %d it took, and a tenth of all", received, expected, senderDrops, took)
	}
	if good != received {
		t.Errorf("%d of %d datagrams that arrived were as sent; want all", good, received)
	}
	if txFrames < uint64(received) {
		t.Errorf("tapswitch ports: %s tx_frames rose by %d, want at least the %d datagrams received (frames inside a super-frame count one by one)", u.portB, txFrames, received)
	}
	// The switch merges UDP only for a TAP that takes UDP super-frames
	// (USO, Linux 6.2 and later), which then has tx-udp-segmentation.
	if out, err := nsRun(u.nsB, "ethtool", "-k", "eth0"); err != nil || !strings.Contains(out, "\ntx-udp-segmentation: on") {
		t.Logf("eth0 in %s does not take UDP super-frames (ethtool -k: %v): coalescing not checked\n%s", u.nsB, err, out)
		return mib
	}
	checkCoalesced(t, u.portB, before, after)
	return mib
}

// TestCoalesceUDPMixedSizes sends UDP datagrams of mixed sizes, in
// bursts (sendmmsg) from four flows, from one namespace to another over
// IPv4 and IPv6, and checks at sockets without UDP_GRO that every
// datagram that arrived is whole and as sent (length and content for its
// sequence number), that none was merged, that each flow's arrive in
// order, and that most arrive; and that the switch did merge some into
// super-frames on the receiver's port.
func TestCoalesceUDPMixedSizes(t *testing.T) {
	e := newEnv(t, "ethtool")
	bin := e.buildFlowcheck()
	p := e.gxPair("gxudp", 1)
	t.Run("IPv4", func(t *testing.T) {
		udpMixed{nsA: p.nsA, nsRecv: p.nsB, dst: p.b4, portB: p.portB, nsB: p.nsB, port: 16001, rounds: 20}.run(t, e, bin, false)
	})
	t.Run("IPv6", func(t *testing.T) {
		udpMixed{nsA: p.nsA, nsRecv: p.nsB, dst: p.b6, portB: p.portB, nsB: p.nsB, port: 16101, rounds: 20}.run(t, e, bin, true)
	})
}

// TestCoalesceUDPMixedSizesModes runs the IPv4 half of
// TestCoalesceUDPMixedSizes with other daemon flags: one queue a TAP
// (one worker serves every flow), and batches of 8 frames (runs cut at
// batch ends, so the coalescer sees pieces of them).
func TestCoalesceUDPMixedSizesModes(t *testing.T) {
	for i, mode := range []struct {
		name string
		args []string
	}{
		{"one queue", []string{"--queues", "1"}},
		{"batch 8", []string{"--batch", "8"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			e := newEnvArgs(t, mode.args, "ethtool")
			bin := e.buildFlowcheck()
			p := e.gxPair(fmt.Sprintf("gxmode%d", i), 5+i)
			udpMixed{nsA: p.nsA, nsRecv: p.nsB, dst: p.b4, portB: p.portB, nsB: p.nsB, port: 16601, rounds: 20}.run(t, e, bin, false)
		})
	}
}

// TestCoalesceUDPRoutedChecksums sends the datagrams of
// TestCoalesceUDPMixedSizes through the receiver's namespace, acting as
// a router, into a third namespace behind a veth whose transmit
// checksumming is off. A local socket trusts a partial checksum, so a
// super-frame whose UDP checksum field holds a wrong seed would reach it
// intact; routed, the router's stack cuts the super-frame and completes
// each datagram's checksum in software from that seed, and the third
// namespace verifies it: there a wrong seed shows as UdpInCsumErrors.
// Every datagram that arrives must be as sent, with no checksum errors,
// and the switch must have merged some on the router's port.
func TestCoalesceUDPRoutedChecksums(t *testing.T) {
	e := newEnv(t, "ethtool")
	bin := e.buildFlowcheck()
	p := e.gxPair("gxroute", 4)
	r := e.gxRouted(p, 4)
	for _, fam := range []struct {
		name string
		v6   bool
		dst  string
		port int
	}{
		{"IPv4", false, r.c4, 16401},
		{"IPv6", true, r.c6, 16501},
	} {
		t.Run(fam.name, func(t *testing.T) {
			mib := udpMixed{nsA: p.nsA, nsRecv: r.nsC, dst: fam.dst, portB: p.portB, nsB: p.nsB, port: fam.port, rounds: 10}.run(t, e, bin, fam.v6)
			if n := mib["InCsumErrors"]; n != 0 {
				t.Errorf("%s: InCsumErrors rose by %d behind the router: checksums completed from a wrong seed", r.nsC, n)
			}
		})
	}
}

// gxRoute is a namespace behind p.nsB, which routes for it.
type gxRoute struct {
	nsC    string
	c4, c6 string
}

// gxRouted puts a third namespace behind p.nsB, over a veth (gxv0 in
// p.nsB, gxv1 in it) on 10.160.(100+n).0/24 and fd0a:a0:0:(100+n)::/64,
// makes p.nsB route between it and the switch, and p.nsA route to it
// through p.nsB. The veth's transmit checksumming is off in p.nsB, so
// that p.nsB completes in software every checksum it forwards, from the
// seed a partial checksum holds.
func (e *testEnv) gxRouted(p gxPair, n int) gxRoute {
	e.t.Helper()
	r := gxRoute{
		nsC: e.newNetnsNamed("gx", "c"),
		c4:  fmt.Sprintf("10.160.%d.2", 100+n), c6: fmt.Sprintf("fd0a:a0:0:%d::2", 100+n),
	}
	r4, r6 := fmt.Sprintf("10.160.%d.1", 100+n), fmt.Sprintf("fd0a:a0:0:%d::1", 100+n)
	// The router sends replies from r's addresses.
	e.mustCLI("port", "set", p.portB, "--port-security=false")
	for _, args := range [][]string{
		{"ip", "link", "add", "gxv0", "netns", p.nsB, "type", "veth", "peer", "name", "gxv1", "netns", r.nsC},
		{"ip", "netns", "exec", p.nsB, "ip", "addr", "add", r4 + "/24", "dev", "gxv0"},
		{"ip", "netns", "exec", p.nsB, "ip", "addr", "add", r6 + "/64", "dev", "gxv0", "nodad"},
		{"ip", "netns", "exec", p.nsB, "ip", "link", "set", "gxv0", "up"},
		{"ip", "netns", "exec", r.nsC, "ip", "addr", "add", r.c4 + "/24", "dev", "gxv1"},
		{"ip", "netns", "exec", r.nsC, "ip", "addr", "add", r.c6 + "/64", "dev", "gxv1", "nodad"},
		{"ip", "netns", "exec", r.nsC, "ip", "link", "set", "gxv1", "up"},
		{"ip", "netns", "exec", r.nsC, "ip", "route", "add", "default", "via", r4},
		{"ip", "netns", "exec", r.nsC, "ip", "-6", "route", "add", "default", "via", r6},
		{"ip", "netns", "exec", p.nsB, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"},
		{"ip", "netns", "exec", p.nsA, "ip", "route", "add", r.c4 + "/32", "via", p.b4},
		{"ip", "netns", "exec", p.nsA, "ip", "-6", "route", "add", r.c6 + "/128", "via", p.b6},
		{"ip", "netns", "exec", p.nsB, "ethtool", "-K", "gxv0", "tx", "off"},
	} {
		if out, err := run(args[0], args[1:]...); err != nil {
			e.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The veth goes with the namespaces; this is for a test that fails
	// half-way.
	e.t.Cleanup(func() { nsRun(p.nsB, "ip", "link", "del", "gxv0") })
	if out, err := nsRun(p.nsB, "ethtool", "-k", "gxv0"); err != nil || !strings.Contains(out, "\ntx-checksumming: off") {
		e.t.Fatalf("ethtool -k gxv0 in %s: %v; want tx-checksumming: off in\n%s", p.nsB, err, out)
	}
	mustPing(e.t, p.nsA, r.c4)
	if out, err := ping6(p.nsA, r.c6); err != nil {
		e.t.Fatalf("ping -6 %s from %s: %v\n%s", r.c6, p.nsA, err, out)
	}
	return r
}

// checkCoalesced fails t unless port's tx_coalesced_frames rose between
// before and after, by more than its tx_coalesced_writes (every such
// write carries two frames at least).
func checkCoalesced(t *testing.T, port string, before, after txCoalesced) {
	t.Helper()
	frames, writes := after.frames-before.frames, after.writes-before.writes
	if frames == 0 || writes == 0 || frames < 2*writes {
		t.Errorf("tapswitch ports: %s tx_coalesced_frames +%d in tx_coalesced_writes +%d; want some frames coalesced, at least two a write", port, frames, writes)
	}
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// setSegmentation turns TSO and GSO on or off on eth0 in ns and fails t
// unless ethtool -k then reports them so.
func setSegmentation(t *testing.T, ns string, on bool) {
	t.Helper()
	state := map[bool]string{true: "on", false: "off"}[on]
	if out, err := nsRun(ns, "ethtool", "-K", "eth0", "tso", state, "gso", state); err != nil {
		t.Fatalf("ethtool -K eth0 tso %s gso %s in %s: %v\n%s", state, state, ns, err, out)
	}
	out, err := nsRun(ns, "ethtool", "-k", "eth0")
	if err != nil {
		t.Fatalf("ethtool -k eth0 in %s: %v\n%s", ns, err, out)
	}
	for _, feature := range []string{"tcp-segmentation-offload", "generic-segmentation-offload"} {
		if !strings.Contains(out, "\n"+feature+": "+state) {
			t.Fatalf("ethtool -k eth0 in %s after -K %s %s: want %q in\n%s", ns, feature, state, feature+": "+state, out)
		}
	}
}

// TestCoalesceTCPNoTSO sends a 64 MiB TCP stream of a known pattern from
// a namespace whose eth0 has TSO and GSO off, so that the switch reads
// MSS-sized segments and may merge them into TCP super-frames, over IPv4
// and IPv6, and checks that every byte arrives as sent and that the
// switch did merge segments on the receiver's port. The usual path, TSO
// on (64 KiB frames, nothing to merge), runs first as a control. The
// stream also goes through the receiver's namespace, routing, to a third
// namespace that verifies every checksum (see
// TestCoalesceUDPRoutedChecksums): none may be wrong there.
func TestCoalesceTCPNoTSO(t *testing.T) {
	e := newEnv(t, "ethtool")
	bin := e.buildFlowcheck()
	p := e.gxPair("gxtcp", 2)
	r := e.gxRouted(p, 2)
	const total = 64 << 20
	for i, c := range []struct {
		name   string
		tso    bool
		nsRecv string
		dst    string
	}{
		{"TSO on IPv4 (control)", true, p.nsB, p.b4},
		{"TSO off IPv4", false, p.nsB, p.b4},
		{"TSO off IPv6", false, p.nsB, p.b6},
		{"TSO off IPv4 routed", false, r.nsC, r.c4},
		{"TSO off IPv6 routed", false, r.nsC, r.c6},
	} {
		t.Run(c.name, func(t *testing.T) {
			setSegmentation(t, p.nsA, c.tso)
			port := 16200 + i
			before := e.coalesced(p.portB)
			rxBefore := findPort(e.ports(), p.portA).Stats.RxFrames
			mibBefore := snmp(t, c.nsRecv, "Tcp")
			recv := e.startFlowReceiver(bin, c.nsRecv, "tcp-recv", "-bind", c.dst, "-port", fmt.Sprint(port))
			var sent struct {
				Bytes   uint64  `json:"bytes"`
				Seconds float64 `json:"seconds"`
				Error   string  `json:"error"`
			}
			e.runFlowSender(bin, p.nsA, &sent, "tcp-send", "-dst", c.dst, "-port", fmt.Sprint(port), "-bytes", fmt.Sprint(total))
			var got tcpRecvResult
			recv.finish(&got)
			after := e.coalesced(p.portB)
			rxFrames := findPort(e.ports(), p.portA).Stats.RxFrames - rxBefore
			mib := mibDelta(mibBefore, snmp(t, c.nsRecv, "Tcp"))
			t.Logf("%s: %d bytes sent in %.2fs, %d received in %.2fs, %d differ (first at %d); %s rx_frames +%d (%.0f bytes a frame); %s tx_coalesced_frames +%d in %d writes (%.1f a write); receiver's TCP counters InSegs +%d, InCsumErrors +%d, InErrs +%d",
				c.name, sent.Bytes, sent.Seconds, got.Bytes, got.Seconds, got.Mismatches, got.FirstMismatch,
				p.portA, rxFrames, float64(got.Bytes)/float64(max(rxFrames, 1)),
				p.portB, after.frames-before.frames, after.writes-before.writes, ratio(after.frames-before.frames, after.writes-before.writes),
				mib["InSegs"], mib["InCsumErrors"], mib["InErrs"])
			if sent.Error != "" {
				t.Errorf("sender: %s", sent.Error)
			}
			if got.Error != "" {
				t.Errorf("receiver: %s", got.Error)
			}
			if n := mib["InCsumErrors"]; n != 0 {
				t.Errorf("receiver's TCP InCsumErrors rose by %d; want none", n)
			}
			if sent.Bytes != total || got.Bytes != total || got.Mismatches != 0 {
				t.Fatalf("%d bytes sent, %d received, %d of them not as sent (the first at offset %d); want %d, all as sent", sent.Bytes, got.Bytes, got.Mismatches, got.FirstMismatch, total)
			}
			if c.tso {
				return
			}
			// With segmentation off, the sender's stack hands eth0 one
			// segment (at most 1448 bytes of data) at a time: the switch
			// read at least that many frames from its port.
			if min := uint64(total / 1500); rxFrames < min {
				t.Errorf("tapswitch ports: %s rx_frames rose by %d for %d bytes with TSO and GSO off; want at least %d (one a segment)", p.portA, rxFrames, total, min)
			}
			checkCoalesced(t, p.portB, before, after)
		})
	}
}

// TestCoalesceBadChecksumNotRepaired sends, through a packet socket in
// the sender's namespace, a run of UDP datagrams with their checksums
// right and then a run of the same shape with every checksum wrong, and
// checks that the receiver's stack takes the first and counts the second
// as checksum errors (UdpInCsumErrors) without delivering any: the
// switch must not merge frames whose checksum it has not verified into a
// super-frame, for which the receiver would compute a fresh, valid one.
func TestCoalesceBadChecksumNotRepaired(t *testing.T) {
	e := newEnv(t)
	bin := e.buildFlowcheck()
	p := e.gxPair("gxcsum", 3)
	macB := linkMAC(t, p.nsB, "eth0")
	for _, fam := range []struct {
		name     string
		v6       bool
		src, dst string
		port     int
	}{
		{"IPv4", false, p.a4, p.b4, 16301},
		{"IPv6", true, p.a6, p.b6, 16311},
	} {
		t.Run(fam.name, func(t *testing.T) {
			// Flow 0 has good checksums, flow 1 bad ones: 64 datagrams
			// each, in runs of 32 of one size, which the switch would
			// merge if it took them for good.
			sched := []string{"-runs", "32x200", "-flows", "2", "-rounds", "2"}
			const perFlow = 64
			before := e.coalesced(p.portB)
			mibBefore := udpMIB(t, p.nsB, fam.v6)
			recv := e.startFlowReceiver(bin, p.nsB, append([]string{"udp-recv", "-bind", fam.dst, "-port", fmt.Sprint(fam.port)}, sched...)...)
			raw := append([]string{"raw-udp-send", "-ifname", "eth0", "-src", fam.src, "-dst", fam.dst, "-dst-mac", macB.String(), "-port", fmt.Sprint(fam.port)}, sched...)
			// Each run is read off the counters once the switch has
			// written it, so that the coalescing of each is known.
			var good, bad flowSendResult
			tx := findPort(e.ports(), p.portB).Stats.TxFrames
			e.runFlowSender(bin, p.nsA, &good, append(raw, "-flow", "0")...)
			tx = e.waitTxFrames(p.portB, tx+uint64(good.Sent))
			mid := e.coalesced(p.portB)
			e.runFlowSender(bin, p.nsA, &bad, append(raw, "-flow", "1", "-bad-csum")...)
			e.waitTxFrames(p.portB, tx+uint64(bad.Sent))
			after := e.coalesced(p.portB)
			var got udpRecvResult
			recv.finish(&got)
			mib := mibDelta(mibBefore, udpMIB(t, p.nsB, fam.v6))
			for _, f := range got.Flows {
				t.Logf("%v", f)
			}
			t.Logf("%s: sent %d good and %d bad; receiver's UDP counters: InDatagrams +%d, InCsumErrors +%d, InErrors +%d, RcvbufErrors +%d; %s tx_coalesced_frames +%d in %d writes for the good run, +%d in %d for the bad",
				fam.name, good.Sent, bad.Sent, mib["InDatagrams"], mib["InCsumErrors"], mib["InErrors"], mib["RcvbufErrors"],
				p.portB, mid.frames-before.frames, mid.writes-before.writes, after.frames-mid.frames, after.writes-mid.writes)
			if n := after.frames - mid.frames; n != 0 {
				t.Errorf("tapswitch ports: %s tx_coalesced_frames rose by %d while datagrams with wrong checksums went through; want 0", p.portB, n)
			}
			if len(got.Flows) != 2 || good.Sent != perFlow || bad.Sent != perFlow {
				t.Fatalf("sent %d good, %d bad, receiver reported %d flows; want %d, %d, 2", good.Sent, bad.Sent, len(got.Flows), perFlow, perFlow)
			}
			g, b := got.Flows[0], got.Flows[1]
			// The control: frames built the same way with right
			// checksums arrive, so a missing bad one is not a broken
			// sender.
			if g.Good < perFlow/2 || g.Good != g.Received {
				t.Errorf("datagrams with right checksums: %v; want at least %d of %d, all as sent", g, perFlow/2, perFlow)
			}
			if b.Received != 0 {
				t.Errorf("datagrams with wrong checksums: %d delivered to the socket (%v); want none", b.Received, b)
			}
			if n := mib["InCsumErrors"]; n < perFlow/2 || n > perFlow {
				t.Errorf("receiver's InCsumErrors rose by %d; want the %d datagrams with wrong checksums (at least half of them)", n, perFlow)
			}
		})
	}
}
