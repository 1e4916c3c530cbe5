package segment

import (
	"bytes"
	"encoding/binary"

	"github.com/tapswitch/tapswitch/device"
)

// Coalescing is the reverse of the Splitter: the kernel's GRO done in the
// switch, before the write, for a receiver whose TAP takes super-frames.
// One write system call of a 64-datagram super-frame replaces 64, and
// the receiving stack handles it as one packet until the socket.
//
// The rules are those of Linux's GRO (net/ipv4/udp_offload.c,
// udp_gro_receive_segment; net/ipv4/tcp_offload.c, tcp_gro_receive;
// inet_gro_receive and ipv6_gro_receive), narrowed where the virtio net
// header cannot say what GRO could (fixed IPv4 IDs) or where a narrower
// rule costs nothing (no IPv4 options, no IPv6 extension headers, at most
// one 802.1Q tag), so that cutting a super-frame back, by the receiver's
// kernel or by a Splitter, gives exactly the frames that were merged.
//
// A frame is tracked when it is TCP or UDP over IPv4 or IPv6 with ports
// to read, of a kind the device takes super-frames of. A tracked frame
// joins the open item (the super-frame being built) of its flow
// (addresses, protocol, ports, VLAN tag) if it may, else it ends that
// item, so nothing of a flow is ever written ahead of what came before it
// in that flow. Frames not tracked pass unchanged.

// Limits of the coalescer.
const (
	// maxUDPSegs is the most datagrams in one UDP super-frame: the
	// kernel's UDP GRO stops at 64 (UDP_GRO_CNT_MAX), so that a flood of
	// small datagrams does not make one packet of huge truesize.
	maxUDPSegs = 64
	// maxOpen is the most items open at once, searched linearly: more
	// flows than this in one write is a batch of small groups that
	// gains little, and the oldest item is ended to make room.
	maxOpen = 16
	// maxIPLen is the most an IP length field holds: the IPv4 total
	// length, or the IPv6 payload length (not counting the fixed header).
	maxIPLen = 0xffff
)

// Kinds of frame the coalescer merges; 0 is none.
const (
	mergeUDP4 = 1 + iota
	mergeUDP6
	mergeTCP4
	mergeTCP6
)

// TCP flags that matter here, beyond those of segment.go.
const (
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
	tcpFlagURG = 0x20
)

// Marks in Coalescer.head for frames that do not start an item.
const (
	headAlone  = -1 // passes unchanged
	headJoined = -2 // inside an item started by an earlier frame
)

// Coalescer merges runs of frames of one flow, all going to one port, into
// virtio-net super-frames, as the kernel's GRO would have merged them: the
// receiving stack then takes one frame where the switch would have written
// many, and cuts it back into exactly the frames that were sent.
//
// A Coalescer belongs to one goroutine. Its zero value is ready to use.
type Coalescer struct {
	out  [][]byte
	segs []int
	// ones is a run of 1s that Segs returns a prefix of when nothing was
	// merged; segsOut is what Segs returns.
	ones    []int
	segsOut []int

	// head says for each input frame: the index in items of the item
	// it starts, headAlone or headJoined. next links the frames of an
	// item in order (-1 after the last).
	head []int32
	next []int32
	// items are the items of this call, open or ended.
	items []item
	// open are the indices in items of the open items, oldest first.
	open  [maxOpen]int32
	nopen int
	// arena holds the super-frames of the last call.
	arena []byte
}

// flowKey is what tells flows apart. Two frames with equal keys are one
// flow: if one may not join the other's item it ends it.
type flowKey struct {
	// addrs are the source and destination addresses (IPv4 in the
	// first 8 bytes).
	addrs [32]byte
	// ports are the source and destination ports.
	ports uint32
	// tci is the 802.1Q tag's TCI, if tagged.
	tci    uint16
	tagged bool
	kind   uint8
}

// item is a super-frame being built: the frames of one flow that merge.
type item struct {
	key flowKey
	// first and last are the indices of its first and last frame; n how
	// many it has.
	first, last int32
	n           int32
	// l3, l4 and hdrEnd are where the IP and transport headers and the
	// payload start, the same in every frame of the item.
	l3, l4, hdrEnd int
	// gsoSize is the payload of the first frame: every frame but the
	// last carries as much.
	gsoSize int
	// payload is the payload of all its frames.
	payload int
	// ipLen is the value of the IP length field of the super-frame so
	// far (IPv4 total length, IPv6 payload length).
	ipLen int
	// nextSeq is the TCP sequence number the next segment must have,
	// nextID the IPv4 identification.
	nextSeq uint32
	nextID  uint16
	// end is the FIN and PSH of the last segment, for the super-frame.
	end uint8
	// checked says whether the first frame's checksums were checked
	// (when a second frame came), verified whether they were good.
	checked, verified bool
	// ipSum is the sum of the first frame's IPv4 header but its total
	// length, identification and checksum, the fields in which the
	// headers of the item's frames differ; pseudo the sum of its
	// pseudo-header but the length.
	ipSum, pseudo uint32
}

// pkt is what parse finds in one frame.
type pkt struct {
	key            flowKey
	l3, l4, hdrEnd int
	payload        int
	seq            uint32
	id             uint16
	flags          uint8 // TCP
	// ok: the frame may start or join an item.
	ok bool
}

// Coalesce takes frames in the order they are to be written to one port
// whose device takes caps: for frame i, bufs[i][offset-device.VnetHdrLen:offset]
// is its virtio net header and bufs[i][offset:] the Ethernet frame. It
// returns the frames to write in their place, in the same layout: a frame
// not merged is bufs[i] itself, a merged one a super-frame in the
// Coalescer's own memory. Segs()[j] is how many of bufs out[j] carries.
// Both are valid until the next call. Coalesce never writes to bufs.
//
// UDP datagrams merge into a GSOUDPL4 super-frame when caps.GSO has
// GSOSetUDPL4, TCP segments into GSOTCPv4 or GSOTCPv6 when it has those;
// every super-frame leaves its checksum to fill in, so caps.Csum is
// needed for any. Frames of a flow keep their order; a super-frame takes
// the place of its first frame, so frames of other flows may move behind
// it, as GRO moves them.
//
// A frame merges only when its checksums are known good: the IPv4 header
// checksum verifies, and the transport checksum is a partial one
// (VnetFlagNeedsCsum, with the pseudo-header sum as Linux's stack leaves
// it), one the kernel vouches for (VnetFlagDataValid), or one verified
// here (no flag).
// A frame with a bad checksum passes unchanged, for the receiver to drop:
// a super-frame's checksums are computed afresh, which would make its
// corrupt data look good.
func (c *Coalescer) Coalesce(bufs [][]byte, offset int, caps device.Caps) (out [][]byte) {
	allow := allowed(caps)
	if allow == 0 || len(bufs) < 2 {
		return c.passAll(bufs)
	}
	if cap(c.head) < len(bufs) {
		c.head = make([]int32, len(bufs))
		c.next = make([]int32, len(bufs))
		c.items = make([]item, 0, len(bufs))
	}
	c.head, c.next = c.head[:len(bufs)], c.next[:len(bufs)]
	c.items = c.items[:0]
	c.nopen = 0
	merged := false
	var p pkt
	for i, b := range bufs {
		c.head[i] = headAlone
		if !p.parse(b, offset, allow) {
			continue
		}
		if j := c.find(&p.key); j >= 0 {
			it := &c.items[c.open[j]]
			if p.ok && it.canJoin(&p, bufs[it.first][offset:], b[offset:]) && it.verify(bufs, offset) {
				// The item's first frame is good; this one must be too.
				if it.good(b, offset) {
					c.next[it.last] = int32(i)
					if it.join(i, &p) {
						c.closeOpen(j)
					}
					c.head[i] = headJoined
					c.next[i] = -1
					merged = true
					continue
				}
				p.ok = false
			}
			c.closeOpen(j)
		}
		// A frame that ends a run cannot start one.
		if p.ok && p.flags&(tcpFlagFIN|tcpFlagPSH) == 0 {
			c.start(i, &p)
		}
	}
	if !merged {
		return c.passAll(bufs)
	}
	return c.emit(bufs, offset)
}

// Segs says, for each frame of the last Coalesce's result, how many of
// its input frames it carries (1 for a frame not merged).
func (c *Coalescer) Segs() []int { return c.segsOut }

// allowed returns the kinds of frame (bit 1<<kind) a device with caps
// takes super-frames of.
func allowed(caps device.Caps) uint8 {
	if !caps.Csum {
		return 0
	}
	var a uint8
	if caps.GSO.Has(device.GSOUDPL4) {
		a |= 1<<mergeUDP4 | 1<<mergeUDP6
	}
	if caps.GSO.Has(device.GSOTCPv4) {
		a |= 1 << mergeTCP4
	}
	if caps.GSO.Has(device.GSOTCPv6) {
		a |= 1 << mergeTCP6
	}
	return a
}

// passAll returns bufs as they are.
func (c *Coalescer) passAll(bufs [][]byte) [][]byte {
	c.out = append(c.out[:0], bufs...)
	for len(c.ones) < len(bufs) {
		c.ones = append(c.ones, 1)
	}
	c.segsOut = c.ones[:len(bufs)]
	return c.out
}

// find returns the index in open of the open item of flow k, or -1.
func (c *Coalescer) find(k *flowKey) int {
	for j := range c.nopen {
		it := &c.items[c.open[j]]
		if it.key.ports == k.ports && it.key == *k {
			return j
		}
	}
	return -1
}

// closeOpen ends the item open[j]: it takes no more frames.
func (c *Coalescer) closeOpen(j int) {
	copy(c.open[j:c.nopen], c.open[j+1:c.nopen])
	c.nopen--
}

// start opens an item with frame i, ending the oldest open one if there
// is no room.
func (c *Coalescer) start(i int, p *pkt) {
	if c.nopen == maxOpen {
		c.closeOpen(0)
	}
	c.head[i] = int32(len(c.items))
	c.next[i] = -1
	c.open[c.nopen] = int32(len(c.items))
	c.nopen++
	c.items = append(c.items, p.newItem(i))
}

// newItem returns an item that frame i, of p, starts.
func (p *pkt) newItem(i int) item {
	ipLen := p.hdrEnd - p.l3 + p.payload
	if p.key.kind == mergeUDP6 || p.key.kind == mergeTCP6 {
		ipLen -= ipv6Len
	}
	return item{
		key:     p.key,
		first:   int32(i),
		last:    int32(i),
		n:       1,
		l3:      p.l3,
		l4:      p.l4,
		hdrEnd:  p.hdrEnd,
		gsoSize: p.payload,
		payload: p.payload,
		ipLen:   ipLen,
		nextSeq: p.seq + uint32(p.payload),
		nextID:  p.id + 1,
	}
}

// canJoin reports whether p, of the item's flow, may be merged after the
// item's last frame: f is its frame and first the item's first frame.
// Every header field must equal the first frame's but those the
// super-frame's header and its cutting account for: the IP lengths, the
// IPv4 identification (one more than the last frame's) and header
// checksum, the UDP length, the transport checksum, the TCP sequence
// number (where the last frame's payload ends) and the FIN and PSH flags,
// which only a last segment may have.
func (it *item) canJoin(p *pkt, first, f []byte) bool {
	if p.l4 != it.l4 || p.hdrEnd != it.hdrEnd || p.payload > it.gsoSize || it.ipLen+p.payload > maxIPLen {
		return false
	}
	l3, l4 := it.l3, it.l4
	if !bytes.Equal(first[:l3], f[:l3]) {
		return false
	}
	switch p.key.kind {
	case mergeUDP4, mergeTCP4:
		// Version, IHL and TOS; flags and fragment offset, TTL and
		// protocol. The addresses are in the key.
		if p.id != it.nextID || !bytes.Equal(first[l3:l3+2], f[l3:l3+2]) || !bytes.Equal(first[l3+6:l3+10], f[l3+6:l3+10]) {
			return false
		}
	default:
		// Version, traffic class and flow label; next header and hop
		// limit.
		if !bytes.Equal(first[l3:l3+4], f[l3:l3+4]) || !bytes.Equal(first[l3+6:l3+8], f[l3+6:l3+8]) {
			return false
		}
	}
	if p.key.kind == mergeUDP4 || p.key.kind == mergeUDP6 {
		return true
	}
	// TCP. CWR may only be on a first segment (Linux's segmentation
	// clears it on the others); the acknowledgment, data offset, the
	// other flags, window, urgent pointer and options must be equal,
	// timestamps byte for byte.
	return p.seq == it.nextSeq && p.flags&tcpFlagCWR == 0 &&
		first[l4+tcpFlagsOff]&^tcpFlagCWR == p.flags&^(tcpFlagFIN|tcpFlagPSH) &&
		bytes.Equal(first[l4+8:l4+tcpFlagsOff], f[l4+8:l4+tcpFlagsOff]) &&
		bytes.Equal(first[l4+14:l4+16], f[l4+14:l4+16]) &&
		bytes.Equal(first[l4+18:it.hdrEnd], f[l4+18:it.hdrEnd])
}

// join adds frame i, which canJoin allowed, to the item and reports
// whether the item has ended: a short last frame, FIN or PSH, or as many
// datagrams as a UDP super-frame takes.
func (it *item) join(i int, p *pkt) (ended bool) {
	it.last = int32(i)
	it.n++
	it.payload += p.payload
	it.ipLen += p.payload
	it.nextSeq += uint32(p.payload)
	it.nextID++
	it.end = p.flags & (tcpFlagFIN | tcpFlagPSH)
	return p.payload < it.gsoSize || it.end != 0 ||
		(it.n == maxUDPSegs && (it.key.kind == mergeUDP4 || it.key.kind == mergeUDP6))
}

// parse reads the headers of b's frame (at offset, its virtio net header
// before it) and reports whether it is tracked: TCP or UDP of a kind in
// allow, with ports to read. p.ok says whether it may be merged.
func (p *pkt) parse(b []byte, offset int, allow uint8) bool {
	return p.parseFrame(b[offset:], b[offset-device.VnetHdrLen:offset], allow)
}

// parseFrame is parse of frame f with virtio net header vh.
func (p *pkt) parseFrame(f, vh []byte, allow uint8) bool {
	*p = pkt{}
	if len(f) < etherLen {
		return false
	}
	l3 := etherLen
	et := binary.BigEndian.Uint16(f[etherTypeOff:])
	if et == etherTypeVLAN {
		if len(f) < l3+vlanLen {
			return false
		}
		p.key.tagged, p.key.tci = true, binary.BigEndian.Uint16(f[l3:])
		et = binary.BigEndian.Uint16(f[l3+2:])
		l3 += vlanLen
	}
	var l4 int
	switch et {
	case etherTypeIPv4:
		if len(f) < l3+ipv4MinLen {
			return false
		}
		ip := f[l3:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[0]>>4 != 4 || ihl < ipv4MinLen || len(f) < l3+ihl {
			return false
		}
		switch {
		case ip[9] == protoUDP:
			p.key.kind = mergeUDP4
		case ip[9] == protoTCP:
			p.key.kind = mergeTCP4
		default:
			return false
		}
		frag := binary.BigEndian.Uint16(ip[6:])
		if allow&(1<<p.key.kind) == 0 || frag&ipv4FragOffMask != 0 {
			// Nothing of its kind is open, or a fragment past the
			// first, with no ports.
			return false
		}
		copy(p.key.addrs[:8], ip[12:20])
		l4 = l3 + ihl
		p.id = binary.BigEndian.Uint16(ip[4:])
		// No options (GRO takes none), not a fragment, no padding after
		// the packet (it would become payload). The header checksum
		// is checked before the frame is merged (good).
		p.ok = ihl == ipv4MinLen && frag&^0x4000 == 0 &&
			int(binary.BigEndian.Uint16(ip[2:])) == len(f)-l3
	case etherTypeIPv6:
		if len(f) < l3+ipv6Len {
			return false
		}
		ip := f[l3:]
		if ip[0]>>4 != 6 {
			return false
		}
		// Extension headers are walked only to find the flow, so that
		// such a frame ends its flow's item; GRO would merge some,
		// which is left undone.
		next, off := ip[6], l3+ipv6Len
		for next == ipv6HopByHop || next == ipv6Routing || next == ipv6DestOpts {
			if off+8 > len(f) || off > MaxHeaderLen {
				return false
			}
			next, off = f[off], off+(int(f[off+1])+1)*8
		}
		switch next {
		case protoUDP:
			p.key.kind = mergeUDP6
		case protoTCP:
			p.key.kind = mergeTCP6
		default:
			return false
		}
		if allow&(1<<p.key.kind) == 0 {
			return false
		}
		copy(p.key.addrs[:], ip[8:40])
		l4 = off
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		p.ok = l4 == l3+ipv6Len && plen != 0 && plen == len(f)-l4
	default:
		return false
	}

	csumOff := udpCsumOff
	if p.key.kind == mergeUDP4 || p.key.kind == mergeUDP6 {
		if len(f) < l4+udpLen {
			return false
		}
		p.hdrEnd = l4 + udpLen
		// The UDP length must be the datagram's, and a datagram without
		// payload is not merged (GRO takes none).
		ulen := int(binary.BigEndian.Uint16(f[l4+4:]))
		p.ok = p.ok && ulen == len(f)-l4 && ulen > udpLen
	} else {
		if len(f) < l4+tcpMinLen {
			return false
		}
		csumOff = tcpCsumOff
		p.flags = f[l4+tcpFlagsOff]
		p.seq = binary.BigEndian.Uint32(f[l4+4:])
		thlen := int(f[l4+12]>>4) * 4
		p.hdrEnd = l4 + thlen
		// SYN, RST and URG never merge; nor a segment without payload
		// (a pure ACK).
		p.ok = p.ok && thlen >= tcpMinLen && p.hdrEnd < len(f) &&
			p.flags&(tcpFlagSYN|tcpFlagRST|tcpFlagURG) == 0
		if p.hdrEnd > len(f) {
			p.hdrEnd = len(f)
		}
	}
	p.key.ports = binary.BigEndian.Uint32(f[l4:])
	p.l3, p.l4 = l3, l4
	p.payload = len(f) - p.hdrEnd
	// The virtio net header: not GSO, a header length the kernel would
	// have taken, and NeedsCsum at this transport checksum,
	// DataValid or no flag. The checksums themselves are checked only
	// when the frame is about to be merged.
	if vh[1] != device.GSONone || int(binary.LittleEndian.Uint16(vh[2:])) > len(f) {
		p.ok = false
	}
	switch vh[0] {
	case device.VnetFlagNeedsCsum:
		p.ok = p.ok && int(binary.LittleEndian.Uint16(vh[6:])) == l4 &&
			int(binary.LittleEndian.Uint16(vh[8:])) == csumOff
	case device.VnetFlagDataValid, 0:
	default:
		p.ok = false
	}
	return true
}

// verify reports whether the checksums of the item's first frame are
// good, checking them the first time it is asked.
func (it *item) verify(bufs [][]byte, offset int) bool {
	b := bufs[it.first]
	return it.verifyFrame(b[offset:], b[offset-device.VnetHdrLen])
}

// verifyFrame is verify of the item's first frame, first, with the
// virtio net header flags flag.
func (it *item) verifyFrame(first []byte, flag uint8) bool {
	if !it.checked {
		ip := first[it.l3:]
		proto := uint32(protoUDP)
		if it.key.kind == mergeTCP4 || it.key.kind == mergeTCP6 {
			proto = protoTCP
		}
		if it.key.kind == mergeUDP4 || it.key.kind == mergeTCP4 {
			it.ipSum = uint32(checksum(ip[0:2], 0)) + // version, IHL, TOS
				uint32(checksum(ip[6:10], 0)) + // flags, fragment offset, TTL, protocol
				uint32(checksum(ip[12:20], 0)) // addresses
			it.pseudo = uint32(checksum(ip[12:20], 0)) + proto
		} else {
			it.pseudo = uint32(checksum(ip[8:40], 0)) + proto
		}
		it.checked = true
		it.verified = it.goodFrame(first, flag)
	}
	return it.verified
}

// good reports whether the checksums of b's frame (at offset, its
// virtio net header before it), of the item's flow with headers equal
// to its first frame's but where they may differ, are known good: the
// IPv4 header checksum verifies, and the transport checksum is a partial
// one with the pseudo-header sum Linux leaves (NeedsCsum), one the
// kernel verified (DataValid) or one that verifies here; in the form the
// Splitter writes it.
func (it *item) good(b []byte, offset int) bool {
	return it.goodFrame(b[offset:], b[offset-device.VnetHdrLen])
}

// goodFrame is good of frame f with the virtio net header flags flag.
func (it *item) goodFrame(f []byte, flag uint8) bool {
	if it.key.kind == mergeUDP4 || it.key.kind == mergeTCP4 {
		ip := f[it.l3:]
		// The header's sum with its checksum, from the fields that
		// may differ and the sum of the rest, which do not.
		sum := uint64(it.ipSum) + uint64(binary.BigEndian.Uint16(ip[2:])) +
			uint64(binary.BigEndian.Uint16(ip[4:])) + uint64(binary.BigEndian.Uint16(ip[10:]))
		if fold(sum) != 0xffff {
			return false
		}
	}
	csumOff, tcp := udpCsumOff, false
	if it.key.kind == mergeTCP4 || it.key.kind == mergeTCP6 {
		csumOff, tcp = tcpCsumOff, true
	}
	pseudo := it.pseudo + uint32(len(f)-it.l4)
	field := binary.BigEndian.Uint16(f[it.l4+csumOff:])
	switch flag {
	case device.VnetFlagNeedsCsum:
		// The field holds the pseudo-header sum with the length, as
		// Linux leaves it: completing the checksum is summing from
		// csum_start, as the receiver does for a frame not merged.
		return field == fold(uint64(pseudo))
	case 0:
		if checksum(f[it.l4:], pseudo) != 0xffff {
			return false
		}
	}
	// A good checksum in the form the Splitter writes it: a TCP
	// checksum of 0 as 0, not 0xffff, and a UDP checksum present (0 is
	// none, which GRO does not merge, for symmetry with GSO).
	if tcp {
		return field != 0xffff
	}
	return field != 0
}

// emit builds the result of a call that merged something.
func (c *Coalescer) emit(bufs [][]byte, offset int) [][]byte {
	need := 0
	for k := range c.items {
		if it := &c.items[k]; it.n > 1 {
			need += (offset + it.hdrEnd + it.payload + 63) &^ 63
		}
	}
	if len(c.arena) < need {
		c.arena = make([]byte, max(need, 2*len(c.arena)))
	}
	c.out, c.segs = c.out[:0], c.segs[:0]
	pos := 0
	for i, h := range c.head {
		switch {
		case h == headJoined:
			continue
		case h == headAlone || c.items[h].n == 1:
			c.out = append(c.out, bufs[i])
			c.segs = append(c.segs, 1)
			continue
		}
		it := &c.items[h]
		n := offset + it.hdrEnd + it.payload
		dst := c.arena[pos : pos+n : pos+n]
		pos += (n + 63) &^ 63
		c.build(dst, it, bufs, offset)
		c.out = append(c.out, dst)
		c.segs = append(c.segs, int(it.n))
	}
	c.segsOut = c.segs
	return c.out
}

// build writes the item's super-frame into dst (its virtio net header at
// offset-VnetHdrLen, the frame from offset): the first frame's headers,
// every frame's payload, and the headers set as Linux's GRO completes
// them (inet_gro_complete, tcp_gro_complete, udp_gro_complete) and as
// the kernel takes them from a TAP.
func (c *Coalescer) build(dst []byte, it *item, bufs [][]byte, offset int) {
	f := dst[offset:]
	first := bufs[it.first][offset:]
	copy(f, first[:it.hdrEnd])
	pos := it.hdrEnd
	for j := it.first; j >= 0; j = c.next[j] {
		pos += copy(f[pos:], bufs[j][offset+it.hdrEnd:])
	}
	it.complete(dst, offset)
}

// complete sets the headers of the super-frame in dst (its virtio net
// header at offset-VnetHdrLen, the frame from offset to the end), whose
// first frame's headers and every frame's payload are in place, as
// build says.
func (it *item) complete(dst []byte, offset int) {
	f := dst[offset:]
	var proto uint32
	var addrs []byte
	ip := f[it.l3:]
	h := device.VnetHdr{
		Flags:     device.VnetFlagNeedsCsum,
		HdrLen:    uint16(it.hdrEnd),
		GSOSize:   uint16(it.gsoSize),
		CsumStart: uint16(it.l4),
	}
	switch it.key.kind {
	case mergeUDP4, mergeTCP4:
		binary.BigEndian.PutUint16(ip[2:], uint16(it.ipLen))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^checksum(ip[:ipv4MinLen], 0))
		addrs = ip[12:20]
	default:
		binary.BigEndian.PutUint16(ip[4:], uint16(it.ipLen))
		addrs = ip[8:40]
	}
	l4 := f[it.l4:]
	csumOff := udpCsumOff
	switch it.key.kind {
	case mergeUDP4, mergeUDP6:
		proto = protoUDP
		h.GSOType = device.GSOUDPL4
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	default:
		proto, csumOff = protoTCP, tcpCsumOff
		h.GSOType = device.GSOTCPv4
		if it.key.kind == mergeTCP6 {
			h.GSOType = device.GSOTCPv6
		}
		// As tcp_gro_complete: a CWR on the first segment is ECN's, for
		// segmentation to clear on the others.
		if l4[tcpFlagsOff]&tcpFlagCWR != 0 {
			h.GSOType |= device.GSOECN
		}
		l4[tcpFlagsOff] |= it.end
	}
	h.CsumOffset = uint16(csumOff)
	binary.BigEndian.PutUint16(l4[csumOff:], fold(uint64(checksum(addrs, 0))+uint64(proto)+uint64(len(l4))))
	h.Put(dst[offset-device.VnetHdrLen:])
}
