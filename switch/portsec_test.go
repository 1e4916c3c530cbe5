package vswitch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestLinkLocalGroups(t *testing.T) {
	for _, tt := range []struct {
		dst  string
		drop bool
	}{
		{"01:80:c2:00:00:00", true}, // STP
		{"01:80:c2:00:00:01", true}, // pause
		{"01:80:c2:00:00:02", true}, // LACP
		{"01:80:c2:00:00:03", true}, // 802.1X
		{"01:80:c2:00:00:0e", true}, // LLDP
		{"01:80:c2:00:00:0f", true},
		{"01:80:c2:00:00:10", false}, // all bridges (802.1D's own list stops at 0f)
		{"01:80:c2:00:01:00", false},
		{"01:80:c3:00:00:00", false},
		{"01:00:5e:00:00:01", false},
	} {
		t.Run(tt.dst, func(t *testing.T) {
			// From a port with security off: the drop is not security's.
			r := newRig(t, "a", "b")
			f := frame(tt.dst, macA, "x")
			r.forward("a", f)
			got := r.receivers(f, "b")
			drops := r.ports["a"].Counters().Drops
			if tt.drop && (len(got) != 0 || drops["link_local"] != 1) {
				t.Fatalf("frame to %s went to %v with drops %v, want it dropped as link_local", tt.dst, got, drops)
			}
			if !tt.drop && (len(got) != 1 || len(drops) != 0) {
				t.Fatalf("frame to %s went to %v with drops %v, want it flooded", tt.dst, got, drops)
			}
		})
	}
}

// tagged returns b, a virtio header and an untagged frame, with n 802.1Q
// tags inserted after the MAC addresses.
func tagged(b []byte, n int) []byte {
	out := slices.Clone(b[:HdrLen+12])
	if out[0]&1 != 0 { // NEEDS_CSUM: csum_start moves with the headers
		binary.LittleEndian.PutUint16(out[6:], binary.LittleEndian.Uint16(out[6:])+uint16(4*n))
	}
	for range n {
		out = append(out, 0x81, 0x00, 0, 10)
	}
	return append(out, b[HdrLen+12:]...)
}

// tcp6Frame is a virtio header and an IPv6/TCP super-frame of size bytes
// with segment size mss; with csum, its header gives csum_start.
func tcp6Frame(size, mss int, csum bool) []byte {
	b := frame(bcast, macA, string(make([]byte, size-ethHdrLen)))
	f := b[HdrLen:]
	f[12], f[13] = 0x86, 0xdd
	ip := f[ethHdrLen:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(size-ethHdrLen-40))
	ip[6], ip[7] = 6, 64
	ip[40+12] = 8 << 4 // TCP with 12 bytes of options
	b[1] = 4           // GSO TCPv6
	binary.LittleEndian.PutUint16(b[4:], uint16(mss))
	if csum {
		b[0] = 1
		binary.LittleEndian.PutUint16(b[6:], 54)
		binary.LittleEndian.PutUint16(b[8:], 16)
	}
	return b
}

func TestMTU(t *testing.T) {
	const mtu = 1500
	full := frame(macB, macA, string(make([]byte, mtu)))
	tests := []struct {
		name string
		b    []byte
		size int // packetSize
	}{
		{"mtu", full, 1500},
		{"one over", frame(macB, macA, string(make([]byte, mtu+1))), 1501},
		{"one tag", tagged(full, 1), 1500},
		{"two tags", tagged(full, 2), 1500},
		{"three tags", tagged(full, 3), 1504},
		{"tso4 at the mtu", tcp4FrameMSS(9000, 1460), 1500},
		{"tso4 over", tcp4FrameMSS(9000, 1461), 1501},
		{"tso4 tagged", tagged(tcp4FrameMSS(9000, 1460), 1), 1500},
		{"tso4 shorter than one segment", tcp4FrameMSS(1000, 1460), 986},
		{"tso6 with csum_start", tcp6Frame(9000, 1428, true), 1500},
		{"tso6 with csum_start over", tcp6Frame(9000, 1429, true), 1501},
		{"tso6 found by parsing", tcp6Frame(9000, 1428, false), 1500},
		{"tso6 found by parsing over", tcp6Frame(9000, 1429, false), 1501},
		{"tso6 without ip", func() []byte { b := tcp6Frame(9000, 1428, false); b[HdrLen+14] = 0; return b }(), 8986},
		{"tso6 with csum_start set short", func() []byte {
			b := tcp6Frame(9000, 1428, true)
			binary.LittleEndian.PutUint16(b[6:], 34)
			return b
		}(), 1500},
		{"tso4 with ip options and csum_start set short", func() []byte {
			b := tcp4FrameMSS(9000, 1460)
			f := b[HdrLen+ethHdrLen:]
			f[0] = 0x4f // 40 bytes of options
			f[60+12] = 5 << 4
			return b
		}(), 1540},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := packetSize(tt.b); got != tt.size {
				t.Fatalf("packetSize = %d, want %d", got, tt.size)
			}
			// From a port of MTU 1500 to one of 9000: dropped on the
			// way in if over.
			r := newRig(t)
			in := PortInfo{NoSecurity: true, MTU: mtu}
			r.addInfo(t, "n", "a", in)
			r.addInfo(t, "n", "b", PortInfo{NoSecurity: true, MTU: 9000})
			r.forward("b", frame(bcast, macB, "learn"))
			r.reset()
			r.forward("a", tt.b)
			over := tt.size > mtu
			got := r.devs["b"].Frames()
			if d := r.ports["a"].Counters().Drops["oversize"]; over != (d == 1) || over == (len(got) == 1) {
				t.Fatalf("a (MTU %d) sent a packet of %d: b got %d frames, a's oversize drops %d", mtu, tt.size, len(got), d)
			}
			// From a port of MTU 9000 to one of 1500: dropped on the
			// way out, counted on the receiver.
			r.reset()
			rb := slices.Clone(tt.b)
			copy(rb[HdrLen:], mustMAC(bcast))
			r.forward("b", rb)
			if len(tt.b) > HdrLen+9014 {
				return
			}
			got = r.devs["a"].Frames()
			if d := r.ports["a"].Counters().Drops["oversize"]; over != (d == 2) || over == (len(got) == 1) {
				t.Fatalf("b (MTU 9000) sent a packet of %d to a (MTU %d): a got %d frames, a's oversize drops %d", tt.size, mtu, len(got), d)
			}
			if d := r.ports["b"].Counters().Drops; len(d) != 0 {
				t.Fatalf("b's drops %v, want none: it sent within its MTU", d)
			}
		})
	}
}

// TestMTUFlood checks that a flooded frame over one receiver's MTU still
// reaches the others.
func TestMTUFlood(t *testing.T) {
	r := newRig(t)
	r.addInfo(t, "n", "a", PortInfo{NoSecurity: true, MTU: 9000})
	r.addInfo(t, "n", "b", PortInfo{NoSecurity: true, MTU: 1500})
	r.addInfo(t, "n", "c", PortInfo{NoSecurity: true, MTU: 9000})
	r.addInfo(t, "n", "d", PortInfo{NoSecurity: true})
	r.addInfo(t, "n", "gw", PortInfo{NoSecurity: true, MTU: 1500, TakesAnySize: true})
	f := frame(bcast, macA, string(make([]byte, 4000)))
	r.forward("a", f)
	if got := r.receivers(f, "b", "c", "d", "gw"); !slicesEqual(got, []string{"c", "d", "gw"}) {
		t.Fatalf("4000-byte broadcast from a went to %v, want [c d gw] (b's MTU is 1500, gw takes any size)", got)
	}
	// What the gateway sends is held to its MTU.
	r.forward("gw", frame(bcast, "02:00:00:00:00:99", string(make([]byte, 4000))))
	if d := r.ports["gw"].Counters().Drops["oversize"]; d != 1 {
		t.Fatalf("gw: %d oversize drops of a 4000-byte frame it sent, want 1", d)
	}
	if d := r.ports["b"].Counters().Drops["oversize"]; d != 1 {
		t.Fatalf("b: %d oversize drops, want 1", d)
	}
}

func TestBucket(t *testing.T) {
	var b bucket
	if got := b.set(10); got != 10 {
		t.Fatalf("set(10) = %d", got)
	}
	const s = int64(time.Second)
	now := 5 * s
	// A second's worth at once, then nothing.
	for i := range 10 {
		if !b.allowAt(now) {
			t.Fatalf("frame %d of a burst of 10 refused", i)
		}
	}
	if b.allowAt(now) {
		t.Fatalf("11th frame of a burst of 10 allowed")
	}
	// One more per tenth of a second.
	if b.allowAt(now+s/10-1) || !b.allowAt(now+s/10) || b.allowAt(now+s/10) {
		t.Fatalf("after a tenth of a second, want exactly one more frame")
	}
	// A long pause fills the bucket, but no more than the burst.
	now += 100 * s
	n := 0
	for b.allowAt(now) {
		n++
	}
	if n != 10 {
		t.Fatalf("after a long pause %d frames allowed at once, want 10", n)
	}
	// Steady at the rate: every frame passes.
	for i := range 100 {
		now += s / 10
		if !b.allowAt(now) {
			t.Fatalf("frame %d at the rate refused", i)
		}
	}
	if got := b.set(-1); got != -1 || !b.allowAt(now) {
		t.Fatalf("set(-1) = %d, want -1 and every frame allowed", got)
	}
	if got := b.set(0); got != DefaultStormRate {
		t.Fatalf("set(0) = %d, want DefaultStormRate", got)
	}
	if got := b.set(MaxStormRate * 2); got != MaxStormRate {
		t.Fatalf("set(2*MaxStormRate) = %d, want MaxStormRate", got)
	}
}

func TestStorm(t *testing.T) {
	const learned = "02:00:00:00:00:99"
	classes := []struct {
		name  string
		dst   string
		set   func(l *StormLimits, n int)
		other string // a frame of another class
	}{
		{"broadcast", bcast, func(l *StormLimits, n int) { l.Broadcast = n }, "01:00:5e:00:00:01"},
		{"multicast", "33:33:00:00:00:01", func(l *StormLimits, n int) { l.Multicast = n }, bcast},
		{"unknown unicast", "02:00:00:00:00:77", func(l *StormLimits, n int) { l.UnknownUnicast = n }, bcast},
	}
	for _, c := range classes {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, "a", "b")
			r.forward("b", frame(bcast, learned, "learn"))
			var l StormLimits
			c.set(&l, 5)
			r.ports["a"].SetStormLimits(l)
			r.reset()
			start := time.Now()
			const sent = 200
			for range sent {
				r.forward("a", frame(c.dst, macA, "storm"))
				r.forward("a", frame(c.other, macA, "other"))
				r.forward("a", frame(learned, macA, "known"))
			}
			elapsed := time.Since(start)
			var storm, other, known int
			for _, f := range r.devs["b"].Frames() {
				switch string(f[HdrLen+14:]) {
				case "storm":
					storm++
				case "other":
					other++
				case "known":
					known++
				}
			}
			// A burst of 5, then 5 a second: the test's own duration
			// bounds what more may pass.
			most := 5 + int(elapsed.Seconds()*5) + 1
			drops := r.ports["a"].Counters().Drops["storm"]
			if storm < 5 || storm > most || drops != uint64(sent-storm) {
				t.Fatalf("%d %s frames at rate 5: %d passed (want 5 to %d), %d dropped as storm", sent, c.name, storm, most, drops)
			}
			if other != sent || known != sent {
				t.Fatalf("other classes: %d of %d passed, known unicast %d of %d; want all", other, sent, known, sent)
			}
			if got := r.ports["a"].Counters().RxFrames; got != uint64(2*sent+storm) {
				t.Fatalf("rx frames %d, want %d: a storm drop is not counted in rx", got, 2*sent+storm)
			}
			// Off: all pass.
			c.set(&l, -1)
			r.ports["a"].SetStormLimits(l)
			r.reset()
			for range sent {
				r.forward("a", frame(c.dst, macA, "storm"))
			}
			if n := len(r.devs["b"].Frames()); n != sent {
				t.Fatalf("storm control off: %d of %d passed", n, sent)
			}
		})
	}
}

func TestStormLimits(t *testing.T) {
	r := newRig(t)
	r.addInfo(t, "n", "a", PortInfo{NoSecurity: true, Storm: StormLimits{Broadcast: 7, Multicast: -1}})
	p := r.ports["a"]
	want := StormLimits{Broadcast: 7, Multicast: -1, UnknownUnicast: DefaultStormRate}
	if got := p.StormLimits(); got != want {
		t.Fatalf("StormLimits() = %+v, want %+v", got, want)
	}
	if got := p.Info().Storm; got != (StormLimits{Broadcast: 7, Multicast: -1}) {
		t.Fatalf("Info().Storm = %+v, want what was asked", got)
	}
	p.SetStormLimits(StormLimits{})
	if got := p.StormLimits(); got != (StormLimits{DefaultStormRate, DefaultStormRate, DefaultStormRate}) {
		t.Fatalf("StormLimits() after SetStormLimits(zero) = %+v, want the defaults", got)
	}
}

// TestWalkIPv6 checks the walk's answers beyond what TestSecurity sees.
func TestWalkIPv6(t *testing.T) {
	v6 := func(ls ...gopacket.SerializableLayer) []byte { return pkt(ls...)[HdrLen:] }
	tests := []struct {
		name  string
		h     []byte
		proto uint8
		frag  uint8
		off   int
	}{
		{"udp", v6(ip6(ip6A, ip6B, udp), &layers.UDP{}), 17, fragNone, 40},
		{"hop-by-hop, routing, fragment, AH, destination options",
			v6(ip6(ip6A, ip6B, 0), ext(43), ext(44), frag(51, 0, true), ah(60), ext(6), &layers.TCP{DataOffset: 5}), 6, fragFirst, 40 + 8 + 8 + 8 + 12 + 8},
		{"later fragment", v6(ip6(ip6A, ip6B, fragH), frag(6, 3, true), gopacket.Payload(make([]byte, 24))), 6, fragLater, 48},
		{"esp ends the walk", v6(ip6(ip6A, ip6B, 50), gopacket.Payload(make([]byte, 16))), 50, fragNone, 40},
		{"eight headers", v6(ip6(ip6A, ip6B, 60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(17), &layers.UDP{}), 17, fragNone, 40 + 64},
		{"nine headers", v6(ip6(ip6A, ip6B, 60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(17), &layers.UDP{}), 60, fragBad, 40 + 64},
		{"padding is not a header", append(v6(ip6(ip6A, ip6B, 60), ext(59)), 0, 0, 0, 0, 0, 0, 0, 0), 59, fragNone, 48},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := walkIPv6(tt.h)
			if c.proto != tt.proto || c.frag != tt.frag || (tt.frag != fragBad && c.off != tt.off) {
				t.Fatalf("walkIPv6 = %+v, want proto %d, frag %d, off %d", c, tt.proto, tt.frag, tt.off)
			}
		})
	}
}

// FuzzWalkIPv6 walks arbitrary IPv6 packets. The walk must not panic,
// must stay within the payload, must bound the headers it walks, and
// must agree with gopacket on the upper layer of a packet gopacket
// decodes whole without a fragment.
func FuzzWalkIPv6(f *testing.F) {
	for _, tt := range securityCases {
		fr := tt.frame[HdrLen:]
		if len(fr) >= ethHdrLen+40 && binary.BigEndian.Uint16(fr[12:]) == etherIPv6 {
			f.Add(fr[ethHdrLen:])
		}
	}
	f.Fuzz(func(t *testing.T, h []byte) {
		if len(h) < 40 {
			return
		}
		h[0] = 0x60 | h[0]&0xf
		c := walkIPv6(h)
		if c.end > len(h) || c.end < 40 {
			t.Fatalf("end %d outside the packet of %d", c.end, len(h))
		}
		if c.frag == fragBad {
			return
		}
		if c.off < 40 || c.off > c.end {
			t.Fatalf("upper layer at %d, outside the payload [40, %d]", c.off, c.end)
		}
		if c.off > 40+(maxExtHdrs+1)*2048 {
			t.Fatalf("walked %d bytes of headers", c.off-40)
		}
		if c.frag != fragNone {
			return
		}
		// gopacket decodes the extension headers it knows; where it
		// decodes the packet whole, the upper layer must be the same.
		p := gopacket.NewPacket(h[:c.end], layers.LayerTypeIPv6, gopacket.NoCopy)
		if p.ErrorLayer() != nil {
			return
		}
		for _, l := range p.Layers()[1:] {
			switch l.LayerType() {
			case layers.LayerTypeIPv6HopByHop, layers.LayerTypeIPv6Routing, layers.LayerTypeIPv6Destination:
				continue
			case layers.LayerTypeUDP:
				if c.proto != ip6UDP {
					t.Fatalf("gopacket finds UDP, the walk %d", c.proto)
				}
			case layers.LayerTypeTCP:
				if c.proto != ip6TCP {
					t.Fatalf("gopacket finds TCP, the walk %d", c.proto)
				}
			case layers.LayerTypeICMPv6:
				if c.proto != ip6ICMP {
					t.Fatalf("gopacket finds ICMPv6, the walk %d", c.proto)
				}
			}
			return
		}
	})
}

// FuzzPacketSize measures arbitrary frames under arbitrary virtio
// headers: no panic, and never more than the frame holds.
func FuzzPacketSize(f *testing.F) {
	f.Add(tcp4FrameMSS(9000, 1460))
	f.Add(tcp6Frame(9000, 1428, false))
	f.Add(tcp6Frame(9000, 1428, true))
	f.Add(tagged(tcp4FrameMSS(9000, 1460), 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < HdrLen+ethHdrLen {
			return
		}
		n := packetSize(b)
		if n < 0 || n > len(b)-HdrLen-ethHdrLen {
			t.Fatalf("packetSize = %d of a %d-byte frame", n, len(b)-HdrLen)
		}
	})
}

// BenchmarkStormDrop is the cost of a broadcast from a port over its
// storm control rate: everything up to the bucket, then a drop.
func BenchmarkStormDrop(b *testing.B) {
	net, ports := benchSwitch(b, 8)
	ports[0].SetStormLimits(StormLimits{Broadcast: 1})
	l, f := onLane(frame(bcast, macA, string(make([]byte, 50))))
	net.forward(ports[0], l, f)
	b.ReportAllocs()
	for b.Loop() {
		net.forward(ports[0], l, f)
	}
	if d := ports[0].Counters().Drops["storm"]; d < uint64(b.N)/2 {
		b.Fatalf("%d storm drops", d)
	}
}

// BenchmarkCheckIPv6 is port security's check of IPv6 frames that take
// the walk: behind extension headers and in fragments.
func BenchmarkCheckIPv6(b *testing.B) {
	id, err := newIdentity(testInfo(0).MAC, testInfo(0).IPs)
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		f    []byte
	}{
		{"na", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", icmpv6), icmp6(136), na(ip6A, lla(optTgt, macA)))},
		{"udp behind dstopts", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, layers.IPProtocolIPv6Destination), ext(udp), &layers.UDP{})},
		{"first fragment", pkt(eth(macA, bcast, etIPv6), ip6(ip6A, ip6B, fragH), frag(17, 0, true), &layers.UDP{})},
		{"ra behind a fragment", pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(58, 0, false), icmp6(134), ra())},
	} {
		f := tt.f[HdrLen:]
		src := uint64(0x02000000000a)
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			var why DropReason
			for b.Loop() {
				why = id.check(src, f)
			}
			_ = fmt.Sprint(why)
		})
	}
}

// TestDropLog checks that the drops of a limit are logged, with their
// count, at most once a minute per port and reason.
func TestDropLog(t *testing.T) {
	var buf bytes.Buffer
	sw := New(Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	defer sw.Close()
	net, _ := sw.CreateNetwork("n")
	a, _ := sw.AddPort("n", "a", newFakeDev(), PortInfo{NoSecurity: true})
	sw.AddPort("n", "b", newFakeDev(), PortInfo{NoSecurity: true})
	stp := frame("01:80:c2:00:00:00", macA, "bpdu")
	buf.Reset()
	now := time.Now()
	sw.logDrops(now)
	if buf.Len() != 0 {
		t.Fatalf("logged without drops: %s", buf.String())
	}
	net.fwd(a, stp)
	net.fwd(a, stp)
	sw.logDrops(now)
	if got := buf.String(); strings.Count(got, "port dropping frames") != 1 || !strings.Contains(got, "reason=link_local count=2") {
		t.Fatalf("log after 2 link_local drops: %q, want one line with the count", got)
	}
	buf.Reset()
	net.fwd(a, stp)
	sw.logDrops(now.Add(30 * time.Second))
	if buf.Len() != 0 {
		t.Fatalf("logged again within a minute: %s", buf.String())
	}
	sw.logDrops(now.Add(61 * time.Second))
	if got := buf.String(); !strings.Contains(got, "reason=link_local count=1") {
		t.Fatalf("log a minute later: %q, want the one drop since", got)
	}
}
