package vswitch

import (
	"sync/atomic"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/device/devicetest"
	"github.com/tapswitch/tapswitch/fdb"
)

// newDiscardDev is a device that counts what it is written and keeps
// nothing, and whose own loop stays idle while the benchmark drives
// forward directly.
func newDiscardDev() *devicetest.Device {
	return devicetest.New(devicetest.Config{Discard: true, Caps: tapCaps})
}

// onLane places f, a virtio header and a frame, in a lane of its own, as
// a worker's Read would, and returns the lane and the buffer to forward.
func onLane(f []byte) (*lane, []byte) {
	l := newLane(0, 1)
	return l, placed(l.bufs[0], f)
}

// benchSwitch makes a network of n ports with port security on, port i
// described by testInfo(i).
func benchSwitch(b *testing.B, n int) (*Network, []*Port) {
	sw := New(Config{Logger: quietLogger()})
	b.Cleanup(sw.Close)
	net, err := sw.CreateNetwork("n")
	if err != nil {
		b.Fatal(err)
	}
	ports := make([]*Port, n)
	for i := range ports {
		// Storm control on, at a rate a benchmark's flood stays under, so
		// that its cost is counted but nothing is dropped.
		info := testInfo(i)
		info.Storm = StormLimits{MaxStormRate, MaxStormRate, MaxStormRate}
		if ports[i], err = sw.AddPort("n", string(rune('a'+i)), newDiscardDev(), info); err != nil {
			b.Fatal(err)
		}
	}
	return net, ports
}

// BenchmarkForwardUnicast is the steady state of a TCP flow: the source is
// known (refresh), the destination is learned (one write).
func BenchmarkForwardUnicast(b *testing.B) {
	for _, size := range []int{64, 1514, 65000} {
		b.Run(sizeName(size), func(b *testing.B) {
			net, ports := benchSwitch(b, 2)
			net.fwd(ports[1], frame(bcast, macB, "learn"))
			l, f := onLane(frame(macB, macA, string(make([]byte, size-ethHdrLen))))
			net.forward(ports[0], l, f)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				net.forward(ports[0], l, f)
			}
		})
	}
}

// BenchmarkFlood is a broadcast on a network of 8 ports.
func BenchmarkFlood(b *testing.B) {
	net, ports := benchSwitch(b, 8)
	l, f := onLane(frame(bcast, macA, string(make([]byte, 50))))
	b.ReportAllocs()
	for b.Loop() {
		net.forward(ports[0], l, f)
	}
	if d := ports[0].Counters().Drops; len(d) != 0 {
		b.Fatalf("drops %v: the benchmark measured drops, not floods", d)
	}
}

// BenchmarkForwardParallel forwards from two ports at once, as two loops
// do with traffic in both directions.
func BenchmarkForwardParallel(b *testing.B) {
	net, ports := benchSwitch(b, 2)
	net.fwd(ports[0], frame(bcast, macA, "learn"))
	net.fwd(ports[1], frame(bcast, macB, "learn"))
	var next atomic.Int32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1) % 2
		in := ports[i]
		l, f := onLane(frame(macB, macA, string(make([]byte, 1500))))
		if i == 1 {
			l, f = onLane(frame(macA, macB, string(make([]byte, 1500))))
		}
		for pb.Next() {
			net.forward(in, l, f)
		}
	})
}

func TestForwardAllocatesNothing(t *testing.T) {
	sw := New(Config{Logger: quietLogger(), FDB: fdb.Config{Limit: 4}})
	defer sw.Close()
	net, _ := sw.CreateNetwork("n")
	// a floods thousands of frames: storm control would drop them.
	infoA := testInfo(0)
	infoA.Storm = StormLimits{-1, -1, -1}
	a, _ := sw.AddPort("n", "a", newDiscardDev(), infoA)
	bp, _ := sw.AddPort("n", "b", newDiscardDev(), testInfo(1))
	open := testInfo(2)
	open.NoSecurity, open.MACLimit = true, 1
	c, _ := sw.AddPort("n", "c", newDiscardDev(), open)
	net.fwd(bp, frame(bcast, macB, "learn"))
	net.fwd(c, frame(bcast, macC, "learn"))
	badVnet := frame(bcast, macA, "payload")
	badVnet[1] = 2
	frames := map[string][]byte{
		"unicast":                       frame(macB, macA, "payload"),
		"flood":                         frame(bcast, macA, "payload"),
		"tcp4":                          tcp4Frame(1514),
		"tso4":                          tcp4Frame(65000),
		"na":                            pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", icmpv6), icmp6(136), na(ip6A, lla(optTgt, macA))),
		"vlan arp":                      pkt(eth(macA, bcast, etVLAN), vlan(10, etARP), arpPkt(1, macA, ipA, ipB)),
		"drop src_mac":                  frame(bcast, macB, "payload"),
		"drop ip_spoof":                 pkt(eth(macA, bcast, etIPv4), ip4(ipB, ipA, udp), &layers.UDP{}),
		"drop nd_spoof":                 pkt(eth(macA, bcast, etIPv6), ip6(ip6A, "ff02::1", icmpv6), icmp6(136), na(ip6B)),
		"drop malformed":                bare(etIPv6),
		"drop bad vnet":                 badVnet,
		"drop arp_spoof":                pkt(eth(macA, bcast, etARP), arpPkt(2, macA, ipB, ipA)),
		"drop bad source":               frame(bcast, bcast, "payload"),
		"drop link_local":               frame("01:80:c2:00:00:00", macA, "payload"),
		"drop ethertype":                bare(0x8847),
		"drop ra_guard in a fragment":   pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(58, 0, true), icmp6(134), ra()),
		"drop malformed first fragment": pkt(eth(macA, bcast, etIPv6), ip6(llA, "ff02::1", fragH), frag(58, 0, true)),
	}
	// A super-frame cut for a port that takes none.
	plain, _ := sw.AddPort("n", "plain", devicetest.New(devicetest.Config{Discard: true, Caps: device.Caps{MTU: 1500}}), PortInfo{NoSecurity: true})
	frames["tso4 segmented"] = tcp4Frame(65000)
	copy(frames["tso4 segmented"][HdrLen:], mustMAC(bcast))
	for name, f := range frames {
		l, buf := onLane(f)
		if n := testing.AllocsPerRun(1000, func() { net.forward(a, l, buf) }); n != 0 {
			t.Errorf("forward(%s) allocates %v times per frame, want 0", name, n)
		}
	}
	// Over the MTU: of the sender (a's MTU 1500), and of a receiver.
	small := testInfo(3)
	small.MTU = 1500
	sw.AddPort("n", "small", newDiscardDev(), small)
	a.mtu, a.maxFrame, a.maxTx = 1500, maxFrameFor(1500), maxFrameFor(1500)
	for name, f := range map[string][]byte{
		"drop oversize":           frame(macB, macA, string(make([]byte, 1600))),
		"drop oversize tso":       tcp4FrameMSS(9000, 1461),
		"tso over a receiver mtu": func() []byte { f := tcp4FrameMSS(9000, 1460); copy(f[HdrLen:], mustMAC(bcast)); return f }(),
	} {
		l, buf := onLane(f)
		if n := testing.AllocsPerRun(1000, func() { net.forward(a, l, buf) }); n != 0 {
			t.Errorf("forward(%s) allocates %v times per frame, want 0", name, n)
		}
	}
	// A broadcast storm, over b's rate.
	bp.SetStormLimits(StormLimits{Broadcast: 1})
	l, storm := onLane(frame(bcast, macB, "payload"))
	if n := testing.AllocsPerRun(1000, func() { net.forward(bp, l, storm) }); n != 0 {
		t.Errorf("forward(storm) allocates %v times per frame, want 0", n)
	}
	if d := bp.Counters().Drops["storm"]; d < 999 {
		t.Errorf("port b: %d storm drops of 1001 broadcasts at 1/s, want at least 999", d)
	}

	// A MAC flood from c, at its limit, then with the table full.
	l, flood := onLane(frame(bcast, macC, "payload"))
	i := 0
	newSource := func() {
		i++
		flood[headroom+10], flood[headroom+11] = byte(i>>8), byte(i)
		net.forward(c, l, flood)
	}
	if n := testing.AllocsPerRun(1000, newSource); n != 0 {
		t.Errorf("forward(new source at the port's limit) allocates %v times per frame, want 0", n)
	}
	c.SetMACLimit(-1)
	newSource() // fills the table
	if n := testing.AllocsPerRun(1000, newSource); n != 0 {
		t.Errorf("forward(new source with the table full) allocates %v times per frame, want 0", n)
	}
	if plain.Counters().TxFrames < 1000*45 {
		t.Fatalf("the port without offloads sent %d frames, want the super-frames cut", plain.Counters().TxFrames)
	}
	d := c.Counters().Drops
	if d["mac_limit"] < 1000 || d["fdb_full"] < 1000 {
		t.Fatalf("port c drops %v, want the flood dropped as mac_limit, then fdb_full", d)
	}
}

func sizeName(n int) string {
	switch n {
	case 64:
		return "64B"
	case 1514:
		return "1514B"
	}
	return "64KiB"
}

// tcp4Frame builds a virtio header and an IPv4/TCP frame of size bytes
// (Ethernet header included) from port 0 of benchSwitch to port 1. A
// frame over the MTU gets the header of a TSO super-frame.
func tcp4Frame(size int) []byte { return tcp4FrameMSS(size, 1448) }

// tcp4FrameMSS is tcp4Frame with segment size mss for a super-frame.
func tcp4FrameMSS(size, mss int) []byte {
	b := frame(macB, macA, string(make([]byte, size-ethHdrLen)))
	f := b[HdrLen:]
	f[12], f[13] = 0x08, 0x00
	ip := f[ethHdrLen:]
	ip[0] = 0x45
	ip[2], ip[3] = byte((size-ethHdrLen)>>8), byte(size-ethHdrLen)
	ip[8], ip[9] = 64, 6 // TTL, TCP
	copy(ip[12:16], []byte{10, 0, 0, 1})
	copy(ip[16:20], []byte{10, 0, 0, 2})
	ip[32] = 5 << 4 // TCP data offset
	if size > 1514 {
		// NEEDS_CSUM, TCPv4 GSO, hdr_len 54, gso_size 1448, csum 34+16.
		copy(b, []byte{1, 1, 54, 0, byte(mss), byte(mss >> 8), 34, 0, 16, 0})
	}
	return b
}

// BenchmarkForwardTCP4 is BenchmarkForwardUnicast with IPv4/TCP frames,
// so that port security parses the IPv4 header of every frame, and, for
// 64 KiB, a TSO virtio header to validate.
func BenchmarkForwardTCP4(b *testing.B) {
	for _, secure := range []bool{true, false} {
		for _, size := range []int{64, 1514, 65000} {
			name := "security=on/" + sizeName(size)
			if !secure {
				name = "security=off/" + sizeName(size)
			}
			b.Run(name, func(b *testing.B) {
				net, ports := benchSwitch(b, 2)
				for _, p := range ports {
					p.SetSecurity(secure)
				}
				net.fwd(ports[1], frame(bcast, macB, "learn"))
				l, f := onLane(tcp4Frame(size))
				net.forward(ports[0], l, f)
				if got := ports[1].Counters().TxFrames; got != 1 {
					b.Fatalf("port b sent %d frames, want 1: %v", got, ports[0].Counters().Drops)
				}
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for b.Loop() {
					net.forward(ports[0], l, f)
				}
			})
		}
	}
}

// BenchmarkForwardMTU is BenchmarkForwardTCP4 with security on between
// ports of MTU 1500, as the daemon attaches them: a 1514-byte frame
// passes on the length alone, a super-frame is measured by its segments,
// on the way in and on the way out.
func BenchmarkForwardMTU(b *testing.B) {
	for _, size := range []int{1514, 65000} {
		b.Run(sizeName(size), func(b *testing.B) {
			net, ports := benchSwitch(b, 2)
			for _, p := range ports {
				p.mtu, p.maxFrame, p.maxTx = 1500, maxFrameFor(1500), maxFrameFor(1500)
			}
			net.fwd(ports[1], frame(bcast, macB, "learn"))
			l, f := onLane(tcp4Frame(size))
			net.forward(ports[0], l, f)
			if got := ports[1].Counters().TxFrames; got != 1 {
				b.Fatalf("port b sent %d frames, want 1: %v", got, ports[0].Counters().Drops)
			}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				net.forward(ports[0], l, f)
			}
		})
	}
}
