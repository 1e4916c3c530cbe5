package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapswitch/tapswitch/api"
)

// The tests here play a hostile neighbour: a namespace that spoofs,
// sends malformed frames, floods the MAC table or blasts traffic. Every
// frame is written through a packet socket inside the namespace, so it
// reaches the switch the way anything a container sends would.

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// serialize builds a frame from layers, computing lengths and checksums.
func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("build frame: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// randomMAC is a random unicast, locally administered address.
func randomMAC() net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	for i := range m {
		m[i] = byte(rand.Uint32())
	}
	m[0] = m[0]&^1 | 2
	return m
}

// linkLocal is the EUI-64 link-local address the kernel gives an
// interface with this MAC (addr_gen_mode eui64, the default).
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	b[8], b[9], b[10] = mac[0]^2, mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

// udp4 builds an Ethernet/IPv4/UDP frame carrying payload, with an
// optional 802.1Q tag.
func udp4(t *testing.T, src, dst net.HardwareAddr, vlan uint16, from, to netip.Addr, payload string) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: from.AsSlice(), DstIP: to.AsSlice()}
	udp := &layers.UDP{SrcPort: 9999, DstPort: 9999}
	udp.SetNetworkLayerForChecksum(ip)
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	if vlan == 0 {
		return serialize(t, eth, ip, udp, gopacket.Payload(payload))
	}
	eth.EthernetType = layers.EthernetTypeDot1Q
	tag := &layers.Dot1Q{VLANIdentifier: vlan, Type: layers.EthernetTypeIPv4}
	return serialize(t, eth, tag, ip, udp, gopacket.Payload(payload))
}

// arp builds an ARP reply frame from ethSrc claiming that senderIP is
// at senderMAC.
func arp(t *testing.T, ethSrc, senderMAC net.HardwareAddr, senderIP, targetIP netip.Addr) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: ethSrc, DstMAC: broadcastMAC, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPReply,
		SourceHwAddress: senderMAC, SourceProtAddress: senderIP.AsSlice(),
		DstHwAddress: broadcastMAC, DstProtAddress: targetIP.AsSlice(),
	}
	return serialize(t, eth, a)
}

// neighborAdvert builds an unsolicited IPv6 neighbour advertisement from
// mac's link-local address claiming target.
func neighborAdvert(t *testing.T, mac net.HardwareAddr, target netip.Addr) []byte {
	t.Helper()
	dst := netip.MustParseAddr("ff02::1")
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: linkLocal(mac).AsSlice(), DstIP: dst.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	na := &layers.ICMPv6NeighborAdvertisement{
		Flags: 0x20, TargetAddress: target.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: mac}},
	}
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6}
	return serialize(t, eth, ip, icmp, na)
}

// routerAdvert builds a router advertisement from mac's link-local
// address, offering itself as the default router.
func routerAdvert(t *testing.T, mac net.HardwareAddr) []byte {
	t.Helper()
	dst := netip.MustParseAddr("ff02::1")
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: linkLocal(mac).AsSlice(), DstIP: dst.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeRouterAdvertisement, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	ra := &layers.ICMPv6RouterAdvertisement{HopLimit: 64, RouterLifetime: 1800,
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: mac}}}
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6}
	return serialize(t, eth, ip, icmp, ra)
}

// truncated is an Ethernet header of the given type followed by n bytes
// of what should be its payload's header.
func truncated(src, dst net.HardwareAddr, et layers.EthernetType, n int) []byte {
	f := make([]byte, 14+n)
	copy(f, dst)
	copy(f[6:], src)
	f[12], f[13] = byte(et>>8), byte(et)
	if et == layers.EthernetTypeIPv4 && n > 0 {
		f[14] = 0x45
	}
	return f
}

// portDrops returns the drop counters of port name.
func (e *testEnv) portDrops(name string) map[string]uint64 {
	e.t.Helper()
	p := findPort(e.ports(), name)
	if p == nil {
		e.t.Fatalf("tapswitch ports: no port %s", name)
	}
	return p.Stats.Drops
}

// TestMalformedFrames writes spoofed and malformed frames into a port
// through a packet socket in its namespace. Each must be dropped and
// counted under its reason, none may reach a neighbour, and the switch
// must go on forwarding.
func TestMalformedFrames(t *testing.T) {
	e := newEnv(t)
	nsA, nsB := e.newNetns("a"), e.newNetns("b")
	const ipA, ipB = "10.77.11.1/24", "10.77.11.2/24"
	portA := e.attach(nsA, "--ip", ipA)
	e.attach(nsB, "--ip", ipB)
	pa, pb := openPacketConn(t, nsA, "eth0"), openPacketConn(t, nsB, "eth0")
	a, b := netip.MustParsePrefix(ipA).Addr(), netip.MustParsePrefix(ipB).Addr()
	stranger := netip.MustParseAddr("10.77.11.99")

	token := fmt.Sprintf("tapswitch-e2e/%016x/", rand.Uint64())
	mark := func(s string) string { return token + s + "/" }
	// Make sure b's MAC is learned, so frames to it are unicast.
	mustPing(t, nsA, addr(ipB))

	cases := []struct {
		name   string
		reason string
		frame  []byte
		marker string
	}{
		{"foreign source MAC", "src_mac", udp4(t, randomMAC(), pb.mac, 0, a, b, mark("src-mac")), mark("src-mac")},
		{"IPv4 source of a neighbour", "ip_spoof", udp4(t, pa.mac, pb.mac, 0, b, b, mark("ip-neighbour")), mark("ip-neighbour")},
		{"IPv4 source of no one", "ip_spoof", udp4(t, pa.mac, pb.mac, 0, stranger, b, mark("ip-stranger")), mark("ip-stranger")},
		{"VLAN-tagged IPv4 spoof", "ip_spoof", udp4(t, pa.mac, pb.mac, 7, stranger, b, mark("vlan-spoof")), mark("vlan-spoof")},
		{"ARP claiming the neighbour's address", "arp_spoof", arp(t, pa.mac, pa.mac, b, b), ""},
		{"ARP with a foreign sender MAC", "arp_spoof", arp(t, pa.mac, randomMAC(), a, b), ""},
		{"neighbour advertisement for a foreign address", "nd_spoof", neighborAdvert(t, pa.mac, netip.MustParseAddr("fe80::dead")), ""},
		{"router advertisement", "ra_guard", routerAdvert(t, pa.mac), ""},
		{"truncated IPv4 header", "malformed", truncated(pa.mac, pb.mac, layers.EthernetTypeIPv4, 8), ""},
		{"Ethernet header only", "malformed", truncated(pa.mac, pb.mac, layers.EthernetTypeIPv4, 0), ""},
		{"truncated ARP", "malformed", truncated(pa.mac, broadcastMAC, layers.EthernetTypeARP, 10), ""},
	}
	before := e.portDrops(portA)
	want := make(map[string]uint64)
	var markers []string
	for _, c := range cases {
		if err := pa.sendRaw(c.frame); err != nil {
			t.Fatalf("send %s from %s: %v", c.name, nsA, err)
		}
		want[c.reason]++
		if c.marker != "" {
			markers = append(markers, c.marker)
		}
	}
	// A well-formed frame last: once it arrives, everything sent before
	// it has been through the switch.
	good := mark("good")
	if err := pa.sendRaw(udp4(t, pa.mac, pb.mac, 0, a, b, good)); err != nil {
		t.Fatal(err)
	}
	got, err := pb.collectUDP(3*time.Second, good, append(markers, good)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[good]; !ok {
		t.Fatalf("the well-formed frame from %s never reached %s", nsA, nsB)
	}
	for _, m := range markers {
		if _, ok := got[m]; ok {
			t.Errorf("frame %q from %s reached %s; it must be dropped", m, nsA, nsB)
		}
	}
	after := e.portDrops(portA)
	for reason, n := range want {
		if d := after[reason] - before[reason]; d != n {
			t.Errorf("port %s drops[%s] went up by %d, want %d (all drops: %v)", portA, reason, d, n, after)
		}
	}
	mustPing(t, nsA, addr(ipB))
	mustPing(t, nsB, addr(ipA))

	t.Run("port security off", func(t *testing.T) {
		nsC := e.newNetns("c")
		const ipC = "10.77.11.3/24"
		portC := e.attach(nsC, "--ip", ipC, "--port-security=false")
		pc := openPacketConn(t, nsC, "eth0")
		spoofed := mark("spoof-allowed")
		if err := pc.sendRaw(udp4(t, randomMAC(), pb.mac, 0, stranger, b, spoofed)); err != nil {
			t.Fatal(err)
		}
		got, err := pb.collectUDP(3*time.Second, spoofed, spoofed)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got[spoofed]; !ok {
			t.Errorf("spoofed frame from %s (port security off) never reached %s; drops: %v", nsC, nsB, e.portDrops(portC))
		}

		// Back on, on the running port, with a MAC limit.
		e.mustCLI("port", "set", portC, "--port-security=true", "--mac-limit", "7")
		p := findPort(e.ports(), portC)
		if p == nil || !p.PortSecurity || p.MACLimit != 7 {
			t.Fatalf("tapswitch ports after port set: %+v, want port_security true and mac_limit 7", p)
		}
		before := e.portDrops(portC)["src_mac"]
		again := mark("spoof-refused")
		if err := pc.sendRaw(udp4(t, randomMAC(), pb.mac, 0, stranger, b, again)); err != nil {
			t.Fatal(err)
		}
		last := mark("after-port-set")
		if err := pc.sendRaw(udp4(t, pc.mac, pb.mac, 0, netip.MustParsePrefix(ipC).Addr(), b, last)); err != nil {
			t.Fatal(err)
		}
		got, err = pb.collectUDP(3*time.Second, last, again, last)
		if err != nil {
			t.Fatal(err)
		}
		if got[again] || !got[last] {
			t.Errorf("after port set --port-security=true: spoofed frame arrived %v, own frame arrived %v; want false, true", got[again], got[last])
		}
		if d := e.portDrops(portC)["src_mac"] - before; d != 1 {
			t.Errorf("port %s: src_mac drops went up by %d after port set, want 1", portC, d)
		}
	})
}

// collectUDP reads frames until the one carrying last arrives or timeout
// passes, and returns which of want arrived: a marker counts when it
// starts the payload of an IPv4/UDP datagram, tagged or not.
func (pc *packetConn) collectUDP(timeout time.Duration, last string, want ...string) (map[string]bool, error) {
	got := make(map[string]bool)
	buf := make([]byte, 1<<16)
	deadline := time.Now().Add(timeout)
	for !got[last] && time.Now().Before(deadline) {
		n, ok, err := pc.recv(buf)
		if err != nil {
			return got, err
		}
		if !ok {
			continue
		}
		p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
		u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if u == nil {
			continue
		}
		for _, m := range want {
			if len(u.Payload) >= len(m) && string(u.Payload[:len(m)]) == m {
				got[m] = true
			}
		}
	}
	return got, nil
}

// macFlood sends n frames of testEtherType to broadcast from pc, each
// with a fresh random source MAC, and returns how long it took.
func macFlood(t *testing.T, pc *packetConn, n int) time.Duration {
	t.Helper()
	frame := truncated(pc.mac, broadcastMAC, testEtherType, 46)
	start := time.Now()
	for i := range n {
		copy(frame[6:12], randomMAC())
		if err := pc.sendRaw(frame); err != nil {
			t.Fatalf("flood frame %d from %s: %v", i, pc.ns, err)
		}
		// The TAP's queue holds 1000 frames and drops beyond; pausing
		// now and then lets the switch see most of them.
		if i%256 == 255 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	return time.Since(start)
}

// fdbCount counts the table's entries on port, and in all.
func fdbCount(entries []api.FDBEntry, port string) (onPort, all int) {
	for _, ent := range entries {
		if ent.Port == port {
			onPort++
		}
	}
	return onPort, len(entries)
}

// seen adds up a port's received frames and its drops: every
// frame the switch read from it.
func seen(p *api.Port) uint64 {
	n := p.Stats.RxFrames
	for _, d := range p.Stats.Drops {
		n += d
	}
	return n
}

// TestMACFlood has one namespace, its port security off, send 100,000
// frames with random source MACs. The port's MAC limit must hold, the
// flood must not be flooded on to the others, and two other namespaces
// must go on talking by unicast at their usual speed, with the daemon's
// memory bounded.
func TestMACFlood(t *testing.T) {
	const macLimit = 256
	frames := 100_000
	t.Run("per-port limit", func(t *testing.T) {
		e := newEnv(t, "iperf3", "ss")
		nsA, nsB, nsC, nsD := e.newNetns("a"), e.newNetns("b"), e.newNetns("c"), e.newNetns("d")
		portA := e.attach(nsA, "--ip", "10.77.12.1/24", "--port-security=false", "--mac-limit", fmt.Sprint(macLimit))
		e.attach(nsB, "--ip", "10.77.12.2/24")
		portC := e.attach(nsC, "--ip", "10.77.12.3/24")
		portD := e.attach(nsD, "--ip", "10.77.12.4/24")
		srv := e.startIperfServer(nsC, "10.77.12.3")
		base := e.iperf(nsB, srv, "-t", "2")
		mem0 := e.daemonProcStats()

		pa := openPacketConn(t, nsA, "eth0")
		d0 := findPort(e.ports(), portD).Stats.TxFrames
		took := macFlood(t, pa, frames)
		time.Sleep(500 * time.Millisecond)
		ports := e.ports()
		a := findPort(ports, portA)
		flooded := findPort(ports, portD).Stats.TxFrames - d0
		onA, all := fdbCount(e.fdb(), portA)
		mem1 := e.daemonProcStats()
		t.Logf("sent %d frames with random source MACs in %v; the switch read %d, dropped %d as mac_limit; %d reached an idle port; fdb holds %d on the flooding port, %d in all",
			frames, took.Round(time.Millisecond), seen(a), a.Stats.Drops["mac_limit"], flooded, onA, all)
		if onA > macLimit {
			t.Errorf("fdb: %d MACs on port %s, want at most its limit %d", onA, portA, macLimit)
		}
		if a.Stats.Drops["mac_limit"] == 0 {
			t.Errorf("port %s: no mac_limit drops after %d random source MACs: %v", portA, frames, a.Stats.Drops)
		}
		// What the port learned before its limit is flooded, plus the
		// namespaces' own broadcasts; not the rest.
		if flooded > 2*macLimit {
			t.Errorf("an idle port received %d frames during the flood, want at most about %d", flooded, macLimit)
		}

		d1 := findPort(e.ports(), portD).Stats.TxFrames
		after := e.iperf(nsB, srv, "-t", "2")
		d2 := findPort(e.ports(), portD).Stats.TxFrames
		t.Logf("TCP b->c: %.2f Gbit/s before the flood, %.2f after (%.2fx); an idle port received %d frames during the transfer",
			base.gbps(), after.gbps(), after.gbps()/base.gbps(), d2-d1)
		t.Logf("daemon before the flood: %v; after: %v", mem0, mem1)
		// A flooded TCP stream would put tens of thousands of frames on
		// the idle port.
		if d2-d1 > 100 {
			t.Errorf("an idle port received %d frames while b sent to c: the stream was flooded, not forwarded", d2-d1)
		}
		if mem1.rssBytes > mem0.rssBytes+64<<20 {
			t.Errorf("daemon memory grew from %v to %v during the flood", mem0, mem1)
		}
		e.waitFDB(linkMAC(t, nsC, "eth0"), portC)
	})

	t.Run("network table full", func(t *testing.T) {
		const tableLimit = 128
		e := newEnvArgs(t, []string{"--fdb-limit", fmt.Sprint(tableLimit)})
		nsA, nsB, nsC := e.newNetns("a"), e.newNetns("b"), e.newNetns("c")
		portA := e.attach(nsA, "--ip", "10.77.13.1/24", "--port-security=false", "--mac-limit", "100000")
		portB := e.attach(nsB, "--ip", "10.77.13.2/24")
		portC := e.attach(nsC, "--ip", "10.77.13.3/24")
		mustPing(t, nsB, "10.77.13.3")
		pa := openPacketConn(t, nsA, "eth0")
		macFlood(t, pa, frames/5)
		time.Sleep(500 * time.Millisecond)
		a := findPort(e.ports(), portA)
		_, all := fdbCount(e.fdb(), portA)
		t.Logf("network table limit %d: holds %d; port %s dropped %d as fdb_full", tableLimit, all, portA, a.Stats.Drops["fdb_full"])
		if all > tableLimit {
			t.Errorf("fdb holds %d entries, limit %d", all, tableLimit)
		}
		if a.Stats.Drops["fdb_full"] == 0 {
			t.Errorf("port %s: no fdb_full drops with the table full: %v", portA, a.Stats.Drops)
		}
		mustPing(t, nsB, "10.77.13.3")
		e.waitFDB(linkMAC(t, nsB, "eth0"), portB)
		e.waitFDB(linkMAC(t, nsC, "eth0"), portC)
	})
}

// blast sends broadcast frames of testEtherType from pc as fast as it
// can until stop is closed, and returns how many it sent.
func blast(pc *packetConn, stop <-chan struct{}) (int, error) {
	frame := truncated(pc.mac, broadcastMAC, testEtherType, 46)
	for n := 0; ; n++ {
		select {
		case <-stop:
			return n, nil
		default:
		}
		if err := pc.sendRaw(frame); err != nil {
			return n, err
		}
	}
}

// TestFairness runs a TCP transfer between two namespaces while a third
// blasts broadcast frames, and then while it sends UDP at line rate to a
// fourth. The transfer must complete; its rate is logged against the
// same transfer with no blast.
func TestFairness(t *testing.T) {
	e := newEnv(t, "iperf3", "ss")
	nsA, nsB, nsC, nsD := e.newNetns("a"), e.newNetns("b"), e.newNetns("c"), e.newNetns("d")
	portA := e.attach(nsA, "--ip", "10.77.14.1/24")
	e.attach(nsB, "--ip", "10.77.14.2/24")
	e.attach(nsC, "--ip", "10.77.14.3/24")
	e.attach(nsD, "--ip", "10.77.14.4/24")
	tcp := e.startIperfServer(nsC, "10.77.14.3")
	udp := e.startIperfServer(nsD, "10.77.14.4")
	const secs = "3"
	base := e.iperf(nsB, tcp, "-t", secs)
	t.Logf("TCP b->c alone: %.2f Gbit/s", base.gbps())

	t.Run("broadcast blast", func(t *testing.T) {
		pa := openPacketConn(t, nsA, "eth0")
		rx0 := seen(findPort(e.ports(), portA))
		stop := make(chan struct{})
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		go func() {
			n, err := blast(pa, stop)
			done <- result{n, err}
		}()
		start := time.Now()
		r := e.iperf(nsB, tcp, "-t", secs)
		close(stop)
		res := <-done
		elapsed := time.Since(start)
		if res.err != nil {
			t.Fatalf("blast from %s: %v", nsA, res.err)
		}
		rx := seen(findPort(e.ports(), portA)) - rx0
		t.Logf("TCP b->c during a broadcast blast from a (%d frames sent, %.0f kframes/s read by the switch): %.2f Gbit/s, %.2fx of alone",
			res.n, float64(rx)/elapsed.Seconds()/1e3, r.gbps(), r.gbps()/base.gbps())
	})

	t.Run("line-rate UDP", func(t *testing.T) {
		u := e.startIperf(nsA, udp, "-u", "-b", "0", "-l", "64", "-t", "6")
		time.Sleep(500 * time.Millisecond)
		r := e.iperf(nsB, tcp, "-t", secs)
		ur, err := u.wait(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("TCP b->c during 64-byte UDP at full rate from a to d (%d datagrams, %.0f kpps): %.2f Gbit/s, %.2fx of alone",
			ur.End.Sum.Packets, float64(ur.End.Sum.Packets)/ur.End.Sum.Seconds/1e3, r.gbps(), r.gbps()/base.gbps())
	})
}
