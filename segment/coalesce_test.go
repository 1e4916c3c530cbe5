package segment

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

// Caps of a TAP that takes every super-frame, and of some that do not.
var (
	capsAll   = device.Caps{GSO: device.GSOSetTCP | device.GSOSetUDPL4, Csum: true}
	capsTCP   = device.Caps{GSO: device.GSOSetTCP, Csum: true}
	capsTCP4  = device.Caps{GSO: device.GSOSetTCPv4, Csum: true}
	capsUSO   = device.Caps{GSO: device.GSOSetUDPL4, Csum: true}
	capsNoCsm = device.Caps{GSO: device.GSOSetTCP | device.GSOSetUDPL4}
)

var (
	specUDP4 = frameSpec{udp: true}
	specUDP6 = frameSpec{udp: true, v6: true}
	specTCP4 = frameSpec{tcpOpts: 12, flags: flagsACK}
	specTCP6 = frameSpec{v6: true, tcpOpts: 12, flags: flagsACK}
)

// sizes returns n copies of size.
func sizes(n, size int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

// at returns frames with frames[i] replaced by fn's edit of it.
func at(frames []built, i int, fn func(f []byte, b built)) []built {
	frames = slices.Clone(frames)
	frames[i] = edit(frames[i], fn)
	return frames
}

// from returns frames with frames[i:] each replaced by fn's edit of it.
func from(frames []built, i int, fn func(f []byte, b built)) []built {
	frames = slices.Clone(frames)
	for k := i; k < len(frames); k++ {
		frames[k] = edit(frames[k], fn)
	}
	return frames
}

// setH returns frames with frames[i]'s virtio net header changed by fn.
func setH(frames []built, i int, fn func(h *device.VnetHdr)) []built {
	frames = slices.Clone(frames)
	fn(&frames[i].h)
	return frames
}

// other is a frame that is neither TCP nor UDP: an ARP request.
func other() built {
	f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06}
	f = append(f, make([]byte, 28)...)
	return built{frame: f}
}

// TestCoalesce checks every rule of merging, each by a case that merges
// and the cases that must not, with IPv4 and IPv6: the result is checked
// against the contract by checkCoalesce and its Segs() against want.
func TestCoalesce(t *testing.T) {
	u4 := stream(t, specUDP4, 40000, sizes(8, 100)...)
	u6 := stream(t, specUDP6, 40000, sizes(8, 100)...)
	t4 := stream(t, specTCP4, 40000, sizes(8, 1448)...)
	t6 := stream(t, specTCP6, 40000, sizes(8, 1428)...)
	tcpFlags := func(fl uint8) func(f []byte, b built) {
		return func(f []byte, b built) { f[b.l4+tcpFlagsOff] = fl }
	}
	tests := []struct {
		name   string
		frames []built
		caps   device.Caps
		want   []int
	}{
		// UDP.
		{"udp4 run", u4, capsAll, []int{8}},
		{"udp6 run", u6, capsAll, []int{8}},
		{"udp4 uso only", u4, capsUSO, []int{8}},
		{"udp4 without uso", u4, capsTCP, sizes(8, 1)},
		{"udp4 without csum", u4, capsNoCsm, sizes(8, 1)},
		{"udp4 no caps", u4, device.Caps{}, sizes(8, 1)},
		{"one frame", u4[:1], capsAll, []int{1}},
		{"udp4 shorter last ends the run", stream(t, specUDP4, 40000, 100, 100, 50, 100, 100), capsAll, []int{3, 2}},
		{"udp6 shorter last ends the run", stream(t, specUDP6, 40000, 100, 100, 50, 100, 100), capsAll, []int{3, 2}},
		{"udp4 longer starts a new run", stream(t, specUDP4, 40000, 100, 100, 200, 200), capsAll, []int{2, 2}},
		{"udp4 64 datagrams at most", stream(t, specUDP4, 40000, sizes(70, 64)...), capsAll, []int{64, 6}},
		{"udp6 64 datagrams at most", stream(t, specUDP6, 40000, sizes(130, 64)...), capsAll, []int{64, 64, 2}},
		{"udp4 ip length at most 64k", stream(t, specUDP4, 40000, sizes(50, 1400)...), capsAll, []int{46, 4}},
		{"udp6 ip length at most 64k", stream(t, specUDP6, 40000, sizes(50, 1400)...), capsAll, []int{46, 4}},
		{"udp4 id gap", from(u4, 4, func(f []byte, b built) { f[b.l3+5] += 1 }), capsAll, []int{4, 4}},
		{"udp4 ttl differs", from(u4, 4, func(f []byte, b built) { f[b.l3+8]-- }), capsAll, []int{4, 4}},
		{"udp4 tos differs", from(u4, 4, func(f []byte, b built) { f[b.l3+1] = 0x02 }), capsAll, []int{4, 4}},
		{"udp4 df differs", from(u4, 4, func(f []byte, b built) { f[b.l3+6] = 0 }), capsAll, []int{4, 4}},
		{"udp4 no df merges", noDF(u4), capsAll, []int{8}},
		{"udp4 more fragments", at(u4, 4, func(f []byte, b built) { f[b.l3+6] |= 0x20 }), capsAll, []int{4, 1, 3}},
		{"udp4 bad ip header checksum", badIPCsum(u4, 4), capsAll, []int{4, 1, 3}},
		{"udp4 ip options", ipOpts(t, u4, 4), capsAll, []int{4, 1, 3}},
		{"udp4 padding after the packet", pad(u4, 4), capsAll, []int{4, 1, 3}},
		{"udp4 mac differs", from(u4, 4, func(f []byte, b built) { f[0] = 0x04 }), capsAll, []int{4, 4}},
		{"udp4 udp length wrong", at(u4, 4, func(f []byte, b built) { f[b.l4+5]-- }), capsAll, []int{4, 1, 3}},
		{"udp4 empty datagrams", stream(t, specUDP4, 40000, 0, 0, 0), capsAll, []int{1, 1, 1}},
		{"udp4 bad seed", at(u4, 4, func(f []byte, b built) { f[b.l4+udpCsumOff]++ }), capsAll, []int{4, 1, 3}},
		{"udp6 bad seed", at(u6, 4, func(f []byte, b built) { f[b.l4+udpCsumOff]++ }), capsAll, []int{4, 1, 3}},
		{"udp4 csum_start elsewhere", setH(u4, 4, func(h *device.VnetHdr) { h.CsumStart-- }), capsAll, []int{4, 1, 3}},
		{"udp4 csum_offset elsewhere", setH(u4, 4, func(h *device.VnetHdr) { h.CsumOffset = 4 }), capsAll, []int{4, 1, 3}},
		{"udp4 data valid", csumAll(u4, csumValid), capsAll, []int{8}},
		{"udp4 checksum verified", csumAll(u4, csumNone), capsAll, []int{8}},
		{"udp6 checksum verified", csumAll(u6, csumNone), capsAll, []int{8}},
		{"udp4 bad checksum", at(csumAll(u4, csumNone), 4, func(f []byte, b built) { f[len(f)-1]++ }), capsAll, []int{4, 1, 3}},
		{"udp6 bad checksum", at(csumAll(u6, csumNone), 4, func(f []byte, b built) { f[len(f)-1]++ }), capsAll, []int{4, 1, 3}},
		{"udp4 no checksum", at(csumAll(u4, csumNone), 4, func(f []byte, b built) { clear(f[b.l4+6 : b.l4+8]) }), capsAll, []int{4, 1, 3}},
		{"udp4 data valid no checksum", at(csumAll(u4, csumValid), 4, func(f []byte, b built) { clear(f[b.l4+6 : b.l4+8]) }), capsAll, []int{4, 1, 3}},
		{"udp4 both flags", setH(u4, 4, func(h *device.VnetHdr) { h.Flags |= device.VnetFlagDataValid }), capsAll, []int{4, 1, 3}},
		{"udp4 mixed checksum forms", cat(u4[:2], csumAll(u4[2:4], csumValid), csumAll(u4[4:], csumNone)), capsAll, []int{8}},
		{"udp4 gso already", setH(u4, 4, func(h *device.VnetHdr) { h.GSOType, h.GSOSize = device.GSOUDPL4, 50 }), capsAll, []int{4, 1, 3}},
		{"udp4 ecn bit", setH(u4, 4, func(h *device.VnetHdr) { h.GSOType = device.GSOECN }), capsAll, []int{4, 1, 3}},
		{"udp6 flow label differs", from(u6, 4, func(f []byte, b built) { f[b.l3+3]++ }), capsAll, []int{4, 4}},
		{"udp6 traffic class differs", from(u6, 4, func(f []byte, b built) { f[b.l3+1] ^= 0x10 }), capsAll, []int{4, 4}},
		{"udp6 hop limit differs", from(u6, 4, func(f []byte, b built) { f[b.l3+7]-- }), capsAll, []int{4, 4}},
		{"udp6 extension header", cat(u6[:4], stream(t, frameSpec{udp: true, v6: true, destOpt: 8}, 40000, 100), u6[4:]), capsAll, []int{4, 1, 4}},
		{"udp6 jumbogram length", at(u6, 4, func(f []byte, b built) { clear(f[b.l3+4 : b.l3+6]) }), capsAll, []int{4, 1, 3}},
		{"udp4 vlan", stream(t, frameSpec{udp: true, tags: []uint16{etherTypeVLAN}}, 40000, sizes(5, 100)...), capsAll, []int{5}},
		{"udp4 vlan tags differ", cat(u4[:0], vlan(stream(t, specUDP4, 40000, 100, 100, 100, 100), 7, 7, 8, 8)), capsAll, []int{2, 2}},
		{"udp4 two tags pass", stream(t, frameSpec{udp: true, tags: []uint16{etherTypeQinQ, etherTypeVLAN}}, 40000, sizes(3, 100)...), capsAll, []int{1, 1, 1}},

		// Flows.
		{"two flows interleaved", interleave(u4, stream(t, specUDP4, 40001, sizes(8, 100)...)), capsAll, []int{8, 8}},
		{"udp4 and tcp4 interleaved", interleave(u4, t4), capsAll, []int{8, 8}},
		{"other frames pass in order", cat(u4[:3], []built{other()}, u4[3:], []built{other()}), capsAll, []int{8, 1, 1}},
		{"16 flows", interleave(flows(t, 16, 4)...), capsAll, sizes(16, 4)},
		// A cycle of more flows than maxOpen ends every item before its
		// second frame comes.
		{"17 flows", interleave(flows(t, 17, 2)...), capsAll, sizes(34, 1)},

		// TCP.
		{"tcp4 run", t4, capsAll, []int{8}},
		{"tcp6 run", t6, capsAll, []int{8}},
		{"tcp4 44 x 1448", stream(t, specTCP4, 40000, sizes(44, 1448)...), capsTCP, []int{44}},
		{"tcp4 ip length at most 64k", stream(t, specTCP4, 40000, sizes(46, 1448)...), capsTCP, []int{45, 1}},
		{"tcp6 ip length at most 64k", stream(t, specTCP6, 40000, sizes(47, 1428)...), capsTCP, []int{45, 2}},
		{"tcp4 without tso", t4, capsUSO, sizes(8, 1)},
		{"tcp6 without tso6", t6, capsTCP4, sizes(8, 1)},
		{"tcp4 shorter last ends the run", stream(t, specTCP4, 40000, 1448, 1448, 1000, 1448), capsAll, []int{3, 1}},
		{"tcp4 longer starts a new run", stream(t, specTCP4, 40000, 1000, 1000, 1448, 1448), capsAll, []int{2, 2}},
		{"tcp4 seq gap", from(t4, 4, func(f []byte, b built) { f[b.l4+7]++ }), capsAll, []int{4, 4}},
		{"tcp6 seq gap", from(t6, 4, func(f []byte, b built) { f[b.l4+7]++ }), capsAll, []int{4, 4}},
		{"tcp4 ack differs", from(t4, 4, func(f []byte, b built) { f[b.l4+11]++ }), capsAll, []int{4, 4}},
		{"tcp4 window differs", from(t4, 4, func(f []byte, b built) { f[b.l4+15]++ }), capsAll, []int{4, 4}},
		{"tcp4 urgent pointer differs", from(t4, 4, func(f []byte, b built) { f[b.l4+19]++ }), capsAll, []int{4, 4}},
		{"tcp4 timestamp differs", from(t4, 4, func(f []byte, b built) { f[b.l4+tcpMinLen+11]++ }), capsAll, []int{4, 4}},
		{"tcp6 timestamp differs", from(t6, 4, func(f []byte, b built) { f[b.l4+tcpMinLen+11]++ }), capsAll, []int{4, 4}},
		{"tcp4 options differ in length", cat(t4[:4], stream(t, frameSpec{tcpOpts: 16, flags: flagsACK}, 40000, 1448)), capsAll, []int{4, 1}},
		{"tcp4 id gap", from(t4, 4, func(f []byte, b built) { f[b.l3+5] += 2 }), capsAll, []int{4, 4}},
		{"tcp4 ttl differs", from(t4, 4, func(f []byte, b built) { f[b.l3+8]-- }), capsAll, []int{4, 4}},
		{"tcp6 hop limit differs", from(t6, 4, func(f []byte, b built) { f[b.l3+7]-- }), capsAll, []int{4, 4}},
		{"tcp4 psh joins and ends", at(t4, 4, tcpFlags(flagsACK|tcpFlagPSH)), capsAll, []int{5, 3}},
		{"tcp6 psh joins and ends", at(t6, 4, tcpFlags(flagsACK|tcpFlagPSH)), capsAll, []int{5, 3}},
		{"tcp4 fin joins and ends", cat(t4[:4], at(t4[4:5], 0, tcpFlags(flagsACK|tcpFlagFIN))), capsAll, []int{5}},
		{"tcp4 psh first passes", at(t4, 0, tcpFlags(flagsACK|tcpFlagPSH)), capsAll, []int{1, 7}},
		{"tcp4 syn", at(t4, 4, tcpFlags(flagsACK|tcpFlagSYN)), capsAll, []int{4, 1, 3}},
		{"tcp4 rst", at(t4, 4, tcpFlags(flagsACK|tcpFlagRST)), capsAll, []int{4, 1, 3}},
		{"tcp4 urg", at(t4, 4, tcpFlags(flagsACK|tcpFlagURG)), capsAll, []int{4, 1, 3}},
		{"tcp4 cwr first", at(t4, 0, tcpFlags(flagsACK|tcpFlagCWR)), capsAll, []int{8}},
		{"tcp4 cwr later starts a new run", at(t4, 4, tcpFlags(flagsACK|tcpFlagCWR)), capsAll, []int{4, 4}},
		{"tcp4 ece on all", allFlags(t4, flagsACK|0x40), capsAll, []int{8}},
		{"tcp4 ece differs", from(t4, 4, tcpFlags(flagsACK|0x40)), capsAll, []int{4, 4}},
		{"tcp4 pure ack", cat(t4[:4], stream(t, specTCP4, 40000, 0), t4[4:]), capsAll, []int{4, 1, 4}},
		{"tcp4 pure acks alone", stream(t, specTCP4, 40000, 0, 0, 0, 0), capsAll, sizes(4, 1)},
		{"tcp4 bad seed", at(t4, 4, func(f []byte, b built) { f[b.l4+tcpCsumOff]++ }), capsAll, []int{4, 1, 3}},
		{"tcp4 checksum verified", csumAll(t4, csumNone), capsAll, []int{8}},
		{"tcp6 checksum verified", csumAll(t6, csumNone), capsAll, []int{8}},
		{"tcp4 data valid", csumAll(t4, csumValid), capsAll, []int{8}},
		{"tcp4 bad checksum", at(csumAll(t4, csumNone), 4, func(f []byte, b built) { f[len(f)-1]++ }), capsAll, []int{4, 1, 3}},
		{"tcp4 gso already", setH(t4, 4, func(h *device.VnetHdr) { h.GSOType, h.GSOSize = device.GSOTCPv4, 1448 }), capsAll, []int{4, 1, 3}},
		{"tcp4 ip options", ipOpts(t, t4, 4), capsAll, []int{4, 1, 3}},
		{"tcp6 extension header", cat(t6[:4], stream(t, frameSpec{v6: true, destOpt: 8, tcpOpts: 12, flags: flagsACK}, 40000, 1428)), capsAll, []int{4, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Coalescer
			_, segs := checkCoalesce(t, &c, toBufs(tt.frames...), tt.caps)
			if !slices.Equal(segs, tt.want) {
				t.Fatalf("Segs() = %v, want %v", segs, tt.want)
			}
			// Again with the same Coalescer: nothing left over.
			_, segs = checkCoalesce(t, &c, toBufs(tt.frames...), tt.caps)
			if !slices.Equal(segs, tt.want) {
				t.Fatalf("second call: Segs() = %v, want %v", segs, tt.want)
			}
		})
	}
}

func noDF(frames []built) []built {
	out := slices.Clone(frames)
	for i := range out {
		out[i] = edit(out[i], func(f []byte, b built) { f[b.l3+6] = 0 })
	}
	return out
}

func csumAll(frames []built, mode int) []built {
	out := slices.Clone(frames)
	for i := range out {
		out[i] = withCsum(out[i], mode)
	}
	return out
}

func allFlags(frames []built, fl uint8) []built {
	out := slices.Clone(frames)
	for i := range out {
		out[i] = edit(out[i], func(f []byte, b built) { f[b.l4+tcpFlagsOff] = fl })
	}
	return out
}

// badIPCsum returns frames with frames[i]'s IPv4 header checksum wrong.
func badIPCsum(frames []built, i int) []built {
	frames = slices.Clone(frames)
	frames[i] = edit(frames[i], func(f []byte, b built) {})
	frames[i].frame[frames[i].l3+11]++
	return frames
}

// ipOpts returns frames with frames[i] rebuilt with 4 bytes of IPv4
// options, its ID and (TCP) sequence number as they were.
func ipOpts(tb testing.TB, frames []built, i int) []built {
	frames = slices.Clone(frames)
	old := frames[i]
	sp := old.spec
	sp.ipOpts = 4
	b := buildFrame(tb, sp)
	copy(b.frame[b.l3+4:b.l3+6], old.frame[old.l3+4:old.l3+6])
	copy(b.frame[b.l4:b.hdrEnd], old.frame[old.l4:old.hdrEnd])
	copy(b.payload, old.payload)
	fixIPv4(b)
	frames[i] = b
	return frames
}

// pad returns frames with a byte of Ethernet padding after frames[i]'s
// IP packet.
func pad(frames []built, i int) []built {
	frames = slices.Clone(frames)
	b := frames[i]
	b.frame = append(slices.Clone(b.frame), 0)
	b.payload = b.frame[b.hdrEnd:]
	frames[i] = b
	return frames
}

// vlan returns frames each tagged with its tci in turn.
func vlan(frames []built, tcis ...uint16) []built {
	out := slices.Clone(frames)
	for i, b := range out {
		f := make([]byte, 0, len(b.frame)+vlanLen)
		f = append(f, b.frame[:12]...)
		f = binary.BigEndian.AppendUint16(f, etherTypeVLAN)
		f = binary.BigEndian.AppendUint16(f, tcis[i])
		f = append(f, b.frame[12:]...)
		b.frame = f
		b.l3 += vlanLen
		b.l4 += vlanLen
		b.hdrEnd += vlanLen
		b.payload = f[b.hdrEnd:]
		if b.h.Flags&device.VnetFlagNeedsCsum != 0 {
			b.h.CsumStart += vlanLen
		}
		out[i] = b
	}
	return out
}

// flows returns n UDP flows of k 100-byte datagrams each.
func flows(tb testing.TB, n, k int) [][]built {
	out := make([][]built, n)
	for i := range out {
		out[i] = stream(tb, specUDP4, uint16(40000+i), sizes(k, 100)...)
	}
	return out
}

// TestCoalesceAllocs checks that Coalesce allocates nothing once its
// memory has grown for the batches it is given.
func TestCoalesceAllocs(t *testing.T) {
	var c Coalescer
	benches := coalesceBenches(t)
	for _, bb := range benches {
		c.Coalesce(bb.bufs, offset, capsAll)
	}
	for _, bb := range benches {
		if n := testing.AllocsPerRun(50, func() { c.Coalesce(bb.bufs, offset, capsAll) }); n != 0 {
			t.Errorf("Coalesce(%s) allocates %v times per call, want 0", bb.name, n)
		}
	}
}
