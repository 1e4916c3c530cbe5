package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/tapswitch/tapswitch/api"
)

// The tests here attack the gaps port security had: Neighbor Discovery
// hidden behind IPv6 extension headers and fragments, frames over the
// MTU, link-local control frames, Ethertypes that carry addresses port
// security cannot see, and broadcast storms. Frames are written through
// a packet socket in the attacker's namespace, as in hostile_test.go.

// newPSNetns is newNetns with a name starting with "ps".
func (e *testEnv) newPSNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("ps", role)
}

// withExt returns f, an Ethernet/IPv6 frame, with ext, 8-byte extension
// headers, inserted after the IPv6 header: the first of type nh, the next
// header of the last one set to f's upper layer, and the payload length
// fixed. The upper layer's checksum stays right: extension headers are
// not part of its pseudo-header.
func withExt(f []byte, nh byte, ext ...byte) []byte {
	const ip = 14
	out := append(bytes.Clone(f[:ip+40]), ext...)
	out = append(out, f[ip+40:]...)
	out[ip+40+len(ext)-8] = f[ip+6]
	out[ip+6] = nh
	binary.BigEndian.PutUint16(out[ip+4:], binary.BigEndian.Uint16(f[ip+4:])+uint16(len(ext)))
	return out
}

// optsHdr is an empty 8-byte extension header in the uniform format
// (PadN), followed by next; fragHdr a Fragment header of offset 0.
func optsHdr(next byte) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }

func fragHdr(next byte, more bool) []byte {
	m := byte(0)
	if more {
		m = 1
	}
	return []byte{next, 0, 0, m, 0xca, 0xfe, 0xf0, 0x0d}
}

// trailer appends marker to f, after the IP packet: a receiver's stack
// ignores it, a packet socket sees it.
func trailer(f []byte, marker string) []byte { return append(bytes.Clone(f), marker...) }

// controlFrame is a frame to one of the 802.1D link-local group
// addresses: dst 01:80:c2:00:00:last, of Ethertype (or 802.3 length) et.
func controlFrame(src net.HardwareAddr, last byte, et uint16, body []byte) []byte {
	f := make([]byte, 14, 64)
	copy(f, []byte{0x01, 0x80, 0xc2, 0, 0, last})
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], et)
	f = append(f, body...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

// collectMarked reads frames arriving at pc until those holding each of
// last have arrived or timeout passes, and returns which of want were in
// a frame.
func (pc *packetConn) collectMarked(timeout time.Duration, last []string, want ...string) (map[string]bool, error) {
	got := make(map[string]bool)
	buf := make([]byte, 1<<16)
	deadline := time.Now().Add(timeout)
	done := func() bool {
		for _, m := range last {
			if !got[m] {
				return false
			}
		}
		return true
	}
	for !done() && time.Now().Before(deadline) {
		n, ok, err := pc.recv(buf)
		if err != nil {
			return got, err
		}
		if !ok {
			continue
		}
		for _, m := range want {
			if bytes.Contains(buf[:n], []byte(m)) {
				got[m] = true
			}
		}
	}
	return got, nil
}

// TestPortSecurityGaps writes, from a namespace, frames that got past the
// switch before: each must be dropped, counted under its reason on the
// port it is counted on, and not reach a neighbour.
func TestPortSecurityGaps(t *testing.T) {
	e := newEnv(t)
	e.mustCLI("network", "create", "ps1", "--subnet", "10.140.1.0/24")
	nsA, nsB, nsC := e.newPSNetns("a"), e.newPSNetns("b"), e.newPSNetns("c")
	const ipA, ipB, ipC = "10.140.1.11/24", "10.140.1.12/24", "10.140.1.13/24"
	portA := e.attach(nsA, "--network", "ps1", "--ip", ipA)
	portB := e.attach(nsB, "--network", "ps1", "--ip", ipB)
	portC := e.attach(nsC, "--network", "ps1", "--ip", ipC, "--mtu", "9000")
	pa, pb, pc := openPacketConn(t, nsA, "eth0"), openPacketConn(t, nsB, "eth0"), openPacketConn(t, nsC, "eth0")
	a, b := netip.MustParsePrefix(ipA).Addr(), netip.MustParsePrefix(ipB).Addr()
	mustPing(t, nsA, addr(ipB))

	token := fmt.Sprintf("tapswitch-e2e/%016x/", rand.Uint64())
	mark := func(s string) string { return token + s + "/" }
	// The NA claims the neighbour's link-local address.
	ra, na := routerAdvert(t, pa.mac), neighborAdvert(t, pa.mac, linkLocal(pb.mac))
	// The IPv6 header of the RA alone, its payload length 0: with a
	// Fragment header behind it, a first fragment with nothing after.
	raHead := bytes.Clone(ra[:14+40])
	binary.BigEndian.PutUint16(raHead[14+4:], 0)
	// Hop-by-Hop then Destination Options, then the message.
	hbhDst := append(optsHdr(60), optsHdr(0)...)
	// IPv4/UDP from an address that is not a's, inside MPLS and PPPoE.
	spoofed := func() (*layers.IPv4, *layers.UDP) {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: netip.MustParseAddr("10.140.1.99").AsSlice(), DstIP: b.AsSlice()}
		udp := &layers.UDP{SrcPort: 9, DstPort: 9}
		udp.SetNetworkLayerForChecksum(ip)
		return ip, udp
	}
	ip, udp := spoofed()
	mpls := serialize(t, &layers.Ethernet{SrcMAC: pa.mac, DstMAC: pb.mac, EthernetType: layers.EthernetTypeMPLSUnicast},
		&layers.MPLS{Label: 16, StackBottom: true, TTL: 64}, ip, udp)
	ip, udp = spoofed()
	pppoe := serialize(t, &layers.Ethernet{SrcMAC: pa.mac, DstMAC: pb.mac, EthernetType: layers.EthernetTypePPPoESession},
		&layers.PPPoE{Version: 1, Type: 1, Code: layers.PPPoECodeSession, SessionId: 1}, &layers.PPP{PPPType: layers.PPPTypeIPv4}, ip, udp)
	stp := controlFrame(pa.mac, 0x00, 38, append([]byte{0x42, 0x42, 0x03}, make([]byte, 35)...))
	pause := controlFrame(pa.mac, 0x01, 0x8808, []byte{0x00, 0x01, 0xff, 0xff})
	eapol := controlFrame(pa.mac, 0x03, 0x888e, []byte{0x01, 0x01, 0x00, 0x00})
	lldp := controlFrame(pa.mac, 0x0e, 0x88cc, []byte{0x02, 0x07, 0x04, 2, 0, 0, 0, 0, 1, 0x04, 0x03, 0x03, 'p', 's', 0x06, 0x02, 0, 120, 0, 0})
	// Over the MTU: a's namespace raises its own, which the switch
	// never agreed to; c was attached with 9000 and sends to b's 1500.
	big := strings.Repeat("x", 4000)
	if out, err := nsRun(nsA, "ip", "link", "set", "eth0", "mtu", "9000"); err != nil {
		t.Fatalf("raise the MTU in %s: %v\n%s", nsA, err, out)
	}

	cases := []struct {
		name   string
		from   *packetConn
		frame  []byte
		port   string // the port the drop is counted on
		reason string
	}{
		{"RA behind a fragment header", pa, withExt(ra, 44, fragHdr(0, false)...), portA, "ra_guard"},
		{"RA in a first fragment", pa, withExt(ra, 44, fragHdr(0, true)...), portA, "ra_guard"},
		{"NA for a neighbour's address behind a fragment header", pa, withExt(na, 44, fragHdr(0, false)...), portA, "nd_spoof"},
		{"RA behind hop-by-hop and destination options", pa, withExt(ra, 0, hbhDst...), portA, "ra_guard"},
		{"NA behind hop-by-hop and destination options", pa, withExt(na, 0, hbhDst...), portA, "nd_spoof"},
		{"RA behind hop-by-hop, destination options and a fragment header", pa, withExt(ra, 0, append(append(optsHdr(60), optsHdr(44)...), fragHdr(0, false)...)...), portA, "ra_guard"},
		{"first fragment without its upper layer", pa, withExt(raHead, 44, fragHdr(58, true)...), portA, "malformed"},
		{"MPLS around a spoofed IPv4 source", pa, mpls, portA, "ethertype"},
		{"PPPoE around a spoofed IPv4 source", pa, pppoe, portA, "ethertype"},
		{"STP BPDU", pa, stp, portA, "link_local"},
		{"pause frame", pa, pause, portA, "link_local"},
		{"EAPOL", pa, eapol, portA, "link_local"},
		{"LLDP", pa, lldp, portA, "link_local"},
		{"over the sender's MTU, raised in its namespace", pa, udp4(t, pa.mac, pb.mac, 0, a, b, big), portA, "oversize"},
		{"over the receiver's MTU", pc, udp4(t, pc.mac, pb.mac, 0, netip.MustParsePrefix(ipC).Addr(), b, big), portB, "oversize"},
	}
	before := map[string]map[string]uint64{portA: e.portDrops(portA), portB: e.portDrops(portB), portC: e.portDrops(portC)}
	want := map[string]map[string]uint64{portA: {}, portB: {}, portC: {}}
	var markers []string
	for i, c := range cases {
		m := mark(fmt.Sprint(i))
		f := trailer(c.frame, m)
		if c.reason == "oversize" {
			f = bytes.Replace(c.frame, []byte(big[:len(m)]), []byte(m), 1)
		}
		if err := c.from.sendRaw(f); err != nil {
			t.Fatalf("send %s from %s: %v", c.name, c.from.ns, err)
		}
		want[c.port][c.reason]++
		markers = append(markers, m)
	}
	// A well-formed frame from each sender last: once both arrive,
	// everything sent before them has been through the switch.
	goods := []string{mark("good-a"), mark("good-c")}
	if err := pa.sendRaw(udp4(t, pa.mac, pb.mac, 0, a, b, goods[0])); err != nil {
		t.Fatal(err)
	}
	if err := pc.sendRaw(udp4(t, pc.mac, pb.mac, 0, netip.MustParsePrefix(ipC).Addr(), b, goods[1])); err != nil {
		t.Fatal(err)
	}
	got, err := pb.collectMarked(3*time.Second, goods, append(markers, goods...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goods {
		if !got[g] {
			t.Fatalf("the well-formed frame %q never reached %s", g, nsB)
		}
	}
	for i, c := range cases {
		if got[markers[i]] {
			t.Errorf("%s from %s reached %s; it must be dropped", c.name, c.from.ns, nsB)
		}
	}
	for port, reasons := range want {
		after := e.portDrops(port)
		for reason, n := range reasons {
			if d := after[reason] - before[port][reason]; d != n {
				t.Errorf("port %s drops[%s] went up by %d, want %d (all drops: %v)", port, reason, d, n, after)
			}
		}
	}
	// The switch goes on forwarding, and a port's own frames within its
	// MTU pass.
	if out, err := nsRun(nsA, "ip", "link", "set", "eth0", "mtu", "1500"); err != nil {
		t.Fatalf("MTU back to 1500 in %s: %v\n%s", nsA, err, out)
	}
	mustPing(t, nsA, addr(ipB))
	if out, err := nsRun(nsC, "ping", "-c", "1", "-W", "2", "-s", "1472", "-M", "do", addr(ipB)); err != nil {
		t.Errorf("ping of 1500 bytes from %s (MTU 9000) to %s (MTU 1500): %v\n%s", nsC, nsB, err, out)
	}
}

// stormCounters returns the storm drops of port from and the frames the
// switch wrote to port to.
func (e *testEnv) stormCounters(from, to string) (storm, tx uint64) {
	ports := e.ports()
	return findPort(ports, from).Stats.Drops["storm"], findPort(ports, to).Stats.TxFrames
}

// TestStormControl has one namespace blast broadcast frames while two
// others run TCP. The storm counter must rise, an idle neighbour must
// receive no more broadcasts than the rate lets through, far fewer than
// were sent, and the rate must follow port set. The TCP transfer's speed
// during the storm is reported against its speed alone.
func TestStormControl(t *testing.T) {
	e := newEnv(t, "iperf3")
	e.mustCLI("network", "create", "ps2", "--subnet", "10.140.2.0/24")
	nsA, nsB, nsC, nsD := e.newPSNetns("a"), e.newPSNetns("b"), e.newPSNetns("c"), e.newPSNetns("d")
	portA := e.attach(nsA, "--network", "ps2", "--ip", "10.140.2.11/24")
	portB := e.attach(nsB, "--network", "ps2", "--ip", "10.140.2.12/24")
	e.attach(nsC, "--network", "ps2", "--ip", "10.140.2.13/24")
	e.attach(nsD, "--network", "ps2", "--ip", "10.140.2.14/24")

	srv := e.startIperfServer(nsD, "10.140.2.14")
	const secs = "2"

	pa := openPacketConn(t, nsA, "eth0")
	// storm blasts from a while fn runs, and checks what got through to
	// b against rate.
	storm := func(rate int, fn func()) {
		t.Helper()
		storm0, tx0 := e.stormCounters(portA, portB)
		stop := make(chan struct{})
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			n, err := blast(pa, stop)
			done <- result{n, err}
		}()
		fn()
		close(stop)
		res := <-done
		elapsed := time.Since(start)
		if res.err != nil {
			t.Fatalf("blast from %s: %v", nsA, res.err)
		}
		time.Sleep(200 * time.Millisecond) // what the switch still had queued
		storm1, tx1 := e.stormCounters(portA, portB)
		dropped, reached := storm1-storm0, tx1-tx0
		t.Logf("storm at %d/s for %v: %d broadcasts sent, %d dropped as storm, %d reached an idle neighbour",
			rate, elapsed.Round(time.Millisecond), res.n, dropped, reached)
		if dropped == 0 {
			t.Errorf("port %s: storm counter did not rise during a blast of %d broadcasts", portA, res.n)
		}
		// A second's worth at once, then the rate, over the time the
		// blast ran and the switch drained it; a few frames of the
		// namespaces' own on top.
		most := uint64(float64(rate)*(elapsed.Seconds()+1.2)) + 50
		if reached > most {
			t.Errorf("an idle neighbour received %d frames during a storm at %d/s of %v, want at most %d", reached, rate, elapsed, most)
		}
		if uint64(res.n) < 4*most {
			t.Logf("the blaster sent only %d frames, not much of a storm: the machine is busy", res.n)
		}
	}
	// The same blast into a veth pair of a namespace of its own, which
	// no switch reads: what the blaster alone takes from the machine's
	// CPUs, and so the best the switch can do.
	nsX := e.newPSNetns("x")
	for _, args := range [][]string{{"link", "add", "psv0", "type", "veth", "peer", "name", "psv1"}, {"link", "set", "psv0", "up"}, {"link", "set", "psv1", "up"}} {
		if out, err := nsRun(nsX, append([]string{"ip"}, args...)...); err != nil {
			t.Fatalf("ip %v in %s: %v\n%s", args, nsX, err, out)
		}
	}
	px := openPacketConn(t, nsX, "psv0")
	blastNowhere := func(fn func()) {
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := blast(px, stop)
			done <- err
		}()
		fn()
		close(stop)
		if err := <-done; err != nil {
			t.Fatalf("blast in %s: %v", nsX, err)
		}
	}

	// The machine's load varies: alone, during a storm, and during a
	// blast into nowhere alternate, three times, and the medians are
	// reported.
	var ratios, nowhere []float64
	for range 3 {
		base := e.iperf(nsC, srv, "-t", secs)
		var during, control *iperfRun
		storm(api.DefaultStormRate, func() { during = e.iperf(nsC, srv, "-t", secs) })
		blastNowhere(func() { control = e.iperf(nsC, srv, "-t", secs) })
		ratios = append(ratios, during.gbps()/base.gbps())
		nowhere = append(nowhere, control.gbps()/base.gbps())
		t.Logf("TCP c->d alone: %.2f Gbit/s; during a broadcast storm from a: %.2f Gbit/s, %.2fx; during the blast into nowhere: %.2f Gbit/s, %.2fx",
			base.gbps(), during.gbps(), during.gbps()/base.gbps(), control.gbps(), control.gbps()/base.gbps())
	}
	slices.Sort(ratios)
	slices.Sort(nowhere)
	t.Logf("TCP c->d during a broadcast storm: median %.2fx of alone (%.2f to %.2f); during the same blast into nowhere: median %.2fx (%.2f to %.2f)",
		ratios[1], ratios[0], ratios[2], nowhere[1], nowhere[0], nowhere[2])

	if p := findPort(e.ports(), portA); p.StormBroadcast != api.DefaultStormRate || p.StormMulticast != api.DefaultStormRate || p.StormUnknown != api.DefaultStormRate {
		t.Fatalf("port %s storm rates %d/%d/%d, want the default %d for each", portA, p.StormBroadcast, p.StormMulticast, p.StormUnknown, api.DefaultStormRate)
	}
	// Rates given at attach.
	nsE := e.newPSNetns("e")
	portE := e.attach(nsE, "--network", "ps2", "--ip", "10.140.2.15/24", "--storm-broadcast", "300", "--storm-unknown", "-1")
	if p := findPort(e.ports(), portE); p.StormBroadcast != 300 || p.StormMulticast != api.DefaultStormRate || p.StormUnknown != -1 {
		t.Fatalf("port %s storm rates %d/%d/%d, want 300/%d/-1 as attached", portE, p.StormBroadcast, p.StormMulticast, p.StormUnknown, api.DefaultStormRate)
	}

	// A lower rate, set on the running port.
	e.mustCLI("port", "set", portA, "--storm-broadcast", "100")
	if p := findPort(e.ports(), portA); p.StormBroadcast != 100 {
		t.Fatalf("after port set --storm-broadcast 100: port %s broadcast rate %d", portA, p.StormBroadcast)
	}
	storm(100, func() { time.Sleep(time.Second) })
	res := e.cli("port", "set", portA, "--storm-multicast", "-5")
	if res.code == 0 || !strings.Contains(res.stderr, "-1 for no limit") {
		t.Errorf("port set --storm-multicast -5: exit code %d, stderr %q; want a refusal that says what to use", res.code, res.stderr)
	}
}
