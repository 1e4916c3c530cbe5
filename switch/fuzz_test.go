package vswitch

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/fdb"
)

// FuzzForward feeds arbitrary buffers, as a TAP might return them, into the
// forwarding path of a three-port network, a, b and c, described by
// testInfo(0..2). Bits 0-2 of flags turn port security on for a, b and c;
// bit 3 pads the buffer to the receive buffer's size, as a read cut short
// would leave it; bit 4 gives a an MTU of 9000 and b and c one of 1500.
//
// Whatever the bytes, forward must not panic, must never write back to the
// ingress port, must write a frame whole or not at all, and must account
// for it exactly once: counted in rx and written, counted in rx and
// dropped as hairpin, or dropped under one reason. A frame whose virtio
// header device.ParseVnetHdr refuses must be dropped; a frame forwarded from
// a port with security on must pass an independent check of its source
// addresses, decoded by gopacket.
func FuzzForward(f *testing.F) {
	f.Add(frame(bcast, macA, "x"), uint8(0), uint8(0))
	f.Add(frame(macB, macA, "x"), uint8(1), uint8(0))
	f.Add(frame(macA, macB, "x")[:HdrLen+13], uint8(2), uint8(0))
	f.Add([]byte{}, uint8(0), uint8(0))
	f.Add(frame(bcast, macA, "x"), uint8(0), uint8(8))
	for _, tt := range securityCases {
		f.Add(tt.frame, uint8(0), uint8(1))
	}
	// A TSO super-frame, its header valid and not.
	tso := tcp4Frame(9000)
	f.Add(tso, uint8(0), uint8(7))
	bad := slices.Clone(tso)
	bad[1] = 2
	f.Add(bad, uint8(0), uint8(7))
	short := slices.Clone(tso)
	binary.LittleEndian.PutUint16(short[2:], 9001)
	f.Add(short, uint8(0), uint8(0))
	f.Add(frame(bcast, macA, string(make([]byte, 4000))), uint8(0), uint8(16))
	f.Add(tcp4FrameMSS(9000, 1460), uint8(0), uint8(16))
	f.Add(tcp4FrameMSS(9000, 8000), uint8(0), uint8(16+1))

	names := []string{"a", "b", "c"}
	f.Fuzz(func(t *testing.T, b []byte, from, flags uint8) {
		r := newRig(t)
		for i, n := range names {
			info := testInfo(i)
			info.NoSecurity = flags&(1<<i) == 0
			if flags&16 != 0 {
				info.MTU = 1500
				if i == 0 {
					info.MTU = 9000
				}
			}
			r.addInfo(t, "n", n, info)
		}
		ii := int(from) % 3
		in := names[ii]
		// Learn b and c first so unicast paths run too.
		r.forward("b", frame(bcast, macB, ""))
		r.forward("c", frame(bcast, macC, ""))
		r.reset()
		if flags&8 != 0 && len(b) < HdrLen+frameRoom {
			b = append(b, make([]byte, HdrLen+frameRoom-len(b))...)
		}
		if len(b) > HdrLen+frameRoom {
			// No read returns more than a buffer holds.
			b = b[:HdrLen+frameRoom]
		}
		before := make(map[string]Counters)
		for _, n := range names {
			before[n] = r.ports[n].Counters()
		}

		r.forward(in, slices.Clone(b))

		writes := 0
		for _, n := range names {
			got := r.devs[n].Frames()
			if n == in && len(got) > 0 {
				t.Fatalf("frame written back to its ingress port %s", in)
			}
			for _, w := range got {
				if string(w) != string(b) {
					t.Fatalf("port %s got %x, want the frame unchanged", n, w)
				}
				if len(w) < HdrLen+ethHdrLen {
					t.Fatalf("port %s got a %d-byte runt", n, len(w))
				}
			}
			writes += len(got)
			if d := r.ports[n].Counters().Drops["tx_error"] - before[n].Drops["tx_error"]; d != 0 {
				t.Fatalf("port %s: %d tx errors", n, d)
			}
		}

		after := r.ports[in].Counters()
		rx := after.RxFrames - before[in].RxFrames
		drops := map[string]uint64{}
		var dropped uint64
		for reason, k := range after.Drops {
			if d := k - before[in].Drops[reason]; d > 0 {
				drops[reason] = d
				dropped += d
			}
		}
		hairpin := drops["hairpin"]
		switch {
		case rx == 1 && dropped == 0:
			// Written somewhere, unless the ports it was for were too
			// small for it.
			too := 0
			for _, n := range names {
				if n != in && r.ports[n].Counters().Drops["oversize"] > before[n].Drops["oversize"] {
					too++
				}
			}
			if writes == 0 && too == 0 {
				t.Fatalf("frame counted in rx but written nowhere")
			}
			if writes+too != len(names)-1 && hairpin == 0 && b[HdrLen]&1 != 0 {
				t.Fatalf("flooded frame written %d times and too big for %d ports, want every other port once", writes, too)
			}
		case rx == 1 && dropped == 1 && hairpin == 1, rx == 0 && dropped == 1:
			if writes != 0 {
				t.Fatalf("frame dropped (%v) but written %d times", drops, writes)
			}
		default:
			t.Fatalf("frame accounted as rx %d, drops %v; want rx 1 or exactly one drop", rx, drops)
		}

		sized := len(b) >= HdrLen+ethHdrLen && len(b) != HdrLen+frameRoom
		if _, err := device.ParseVnetHdr(b); err != nil && sized && drops["bad_vnet_hdr"] != 1 {
			t.Fatalf("ParseVnetHdr: %v, but the frame was not dropped as bad_vnet_hdr (drops %v)", err, drops)
		}
		if rx == 1 && !validVnetHdr(b) {
			t.Fatalf("frame forwarded with a virtio header validVnetHdr refuses")
		}
		if len(b) >= HdrLen {
			if _, err := device.ParseVnetHdr(b); (err == nil) != validVnetHdr(b) {
				t.Fatalf("ParseVnetHdr says %v, validVnetHdr %v: the two checks differ", err, validVnetHdr(b))
			}
		}
		if rx == 1 && flags&(1<<ii) != 0 {
			checkSource(t, b[HdrLen:], testInfo(ii))
		}
	})
}

// checkSource fails t unless frame f, decoded by gopacket, sends only as
// info: its Ethernet source, and the sender of the ARP, IPv4 or IPv6
// packet right behind the Ethernet header and its VLAN tags.
func checkSource(t *testing.T, f []byte, info PortInfo) {
	t.Helper()
	own := map[netip.Addr]bool{}
	for _, p := range info.IPs {
		own[p.Addr()] = true
	}
	ll := linkLocal(info.MAC)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], ll.hi)
	binary.BigEndian.PutUint64(b[8:], ll.lo)
	own[netip.AddrFrom16(b)] = true
	addr := func(ip []byte) netip.Addr {
		a, _ := netip.AddrFromSlice(ip)
		return a.Unmap()
	}

	pk := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.NoCopy)
	ls := pk.Layers()
	if len(ls) == 0 {
		return
	}
	if e, ok := ls[0].(*layers.Ethernet); !ok || e.SrcMAC.String() != info.MAC.String() {
		t.Fatalf("forwarded a frame whose source is not %s: %v", info.MAC, ls[0])
	}
	i := 1
	for ; i < len(ls) && ls[i].LayerType() == layers.LayerTypeDot1Q; i++ {
	}
	if i > 3 {
		t.Fatalf("forwarded a frame with %d VLAN tags", i-1)
	}
	if i == len(ls) {
		return
	}
	switch l := ls[i].(type) {
	case *layers.ARP:
		spa := addr(l.SourceProtAddress)
		if string(l.SourceHwAddress) != string(info.MAC) || !own[spa] && spa != netip.IPv4Unspecified() {
			t.Fatalf("forwarded ARP from %x %v", l.SourceHwAddress, spa)
		}
	case *layers.IPv4:
		src := addr(l.SrcIP)
		if !own[src] && !(src == netip.IPv4Unspecified() && l.Protocol == layers.IPProtocolUDP) {
			t.Fatalf("forwarded IPv4 from %v", src)
		}
	case *layers.IPv6:
		if src := addr(l.SrcIP); !own[src] && src != netip.IPv6Unspecified() {
			t.Fatalf("forwarded IPv6 from %v", src)
		}
		// The Neighbor Advertisement of this packet, behind extension
		// headers other than a fragment header.
	walk:
		for _, x := range ls[i+1:] {
			switch x := x.(type) {
			case *layers.IPv6HopByHop, *layers.IPv6Destination, *layers.IPv6Routing, *layers.ICMPv6:
			case *layers.ICMPv6NeighborAdvertisement:
				if !own[addr(x.TargetAddress)] {
					t.Fatalf("forwarded a Neighbor Advertisement for %v", x.TargetAddress)
				}
				break walk
			default:
				break walk
			}
		}
	}
}

// FuzzCheck runs port security's parser alone over arbitrary frames, for
// a port with two IPv4 and two IPv6 addresses and for one with none. It
// must not panic, and its inlined shortcut, allows, must never let through
// a frame check refuses.
func FuzzCheck(f *testing.F) {
	for _, tt := range securityCases {
		f.Add(tt.frame[HdrLen:])
	}
	f.Add(tcp4Frame(1514)[HdrLen:])
	info := testInfo(0)
	info.IPs = append(info.IPs, netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8::1/64"))
	full, err := newIdentity(info.MAC, info.IPs)
	if err != nil {
		f.Fatal(err)
	}
	bare, err := newIdentity(info.MAC, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < ethHdrLen {
			return
		}
		src := fdb.Key(b[6:12])
		for _, id := range []*identity{full, bare} {
			why := id.check(src, b)
			if why != noDrop && (why < 0 || why >= numDropReasons) {
				t.Fatalf("check returned DropReason(%d)", why)
			}
			if id.allows(src, b) && why != noDrop {
				t.Fatalf("allows says yes, check says %v", why)
			}
		}
	})
}
