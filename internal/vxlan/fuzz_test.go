package vxlan

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
)

// FuzzParse feeds the receive path what a peer can send: one read of the
// socket (a datagram, or with UDP_GRO a run of them of the size in the
// control message), from a member. Every frame it hands the tunnel must
// lie inside the read, be a whole Ethernet header at least, and every
// datagram must be either handed over or counted as dropped; Read then
// gives every frame handed over back, alone or in a super-frame.
func FuzzParse(f *testing.F) {
	pkt := make([]byte, HeaderLen, 200)
	putHeader(pkt, 42)
	pkt = append(pkt, ethFrame(bcast, macA, 50, 0)...)
	f.Add(pkt, uint16(0))
	two := append(append([]byte(nil), pkt...), pkt...)
	f.Add(two, uint16(len(pkt)))
	f.Add(two[:len(two)-30], uint16(len(pkt)))
	f.Add([]byte{flagI, 0, 0, 0, 0, 0, 42, 0}, uint16(0))
	f.Add(pkt, uint16(3))
	// A GRO read of a TCP flow's segments, as a GSO send brings them.
	var run []byte
	for _, seg := range tcpSegments(4, 1398) {
		h := make([]byte, HeaderLen)
		putHeader(h, 42)
		run = append(append(run, h...), seg...)
	}
	f.Add(run, uint16(HeaderLen+66+1398))
	// One endpoint without sockets serves every input; counters are
	// compared before and after.
	member := netip.MustParseAddr("10.232.0.1")
	e := &Endpoint{log: slog.New(slog.NewTextHandler(io.Discard, nil)), peers: map[netip.Addr]*peer{}, done: make(chan struct{}), free: []chan *rxBuf{newFreeList()}}
	members := map[netip.Addr]*peer{member: {addr: member}}
	tn := newTunnel(e, 42, 1450, 1<<12)
	tn.hostOnly = []uint64{macKey(macB)}
	tq := tn.qs[0]
	tunnels := map[uint32]*Tunnel{42: tn}
	r := newReader(e, 0)
	q := tn.Queues()[0]
	rbufs := make([][]byte, readBatch)
	for i := range rbufs {
		rbufs[i] = make([]byte, device.Headroom+70000)
	}
	rsizes := make([]int, len(rbufs))
	f.Fuzz(func(t *testing.T, data []byte, gro uint16) {
		if len(data) == 0 || len(data) > rxBufSize {
			return
		}
		before := e.Stats()
		// The member is checksummed or not, by the length's parity.
		members[member].sums.Store(len(data)%2 == 1)
		r.msgs[0] = unix.Mmsghdr{}
		n := copy(r.bufs[0].b, data)
		r.msgs[0].Len = uint32(n)
		r.names[0] = makeSockaddr(member, 4789)
		if gro != 0 {
			oob := unsafe.Slice((*byte)(unsafe.Pointer(&r.oob[0][0])), len(r.oob[0])*8)
			h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
			h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_GRO
			h.SetLen(unix.CmsgLen(4))
			binary.NativeEndian.PutUint32(oob[unix.SizeofCmsghdr:], uint32(gro))
			r.msgs[0].Hdr.SetControllen(unix.CmsgSpace(4))
		}
		start := &r.bufs[0].b[0]
		if !r.handle(0, members, tunnels, 1) {
			t.Fatal("handle stopped")
		}
		r.deliver()
		seg := int(gro)
		if seg == 0 || seg > n {
			seg = n
		}
		datagrams := (n + seg - 1) / seg
		frames := 0
		var queued []*rxBatch
		for len(tq.rxch) > 0 {
			b := <-tq.rxch
			for _, fr := range b.frames {
				if &fr.buf.b[0] != start || fr.off < HeaderLen || fr.n < ethHdrLen || int(fr.off+fr.n) > n {
					t.Fatalf("frame at %d+%d outside the read of %d bytes", fr.off, fr.n, n)
				}
				frames++
			}
			queued = append(queued, b)
		}
		// Read takes them all, merged into super-frames or not: each
		// comes out well-formed, as one frame or as the segments it
		// carries.
		for _, b := range queued {
			tq.rxch <- b
		}
		out := 0
		for len(tq.rxch) > 0 || tq.cur != nil {
			k, err := q.Read(rbufs, rsizes, device.Headroom)
			if err != nil {
				t.Fatal(err)
			}
			for i := range k {
				if _, _, err := unmerge(rbufs[i], rsizes[i]); err != nil {
					t.Fatalf("Read: %v", err)
				}
				out += segsIn(rbufs[i], rsizes[i])
			}
		}
		if out != frames {
			t.Fatalf("%d frames handed over, %d came out of Read", frames, out)
		}
		s := e.Stats()
		dropped := s.DropMalformed + s.DropUnknownVNI + s.DropHostOnly - before.DropMalformed - before.DropUnknownVNI - before.DropHostOnly
		if got := frames + int(dropped); got != datagrams {
			t.Fatalf("%d datagrams, %d frames handed over and %+v dropped", datagrams, frames, s)
		}
		if len(e.free[0]) != rxBufs-rxMsgs {
			t.Fatalf("%d buffers free: one leaked", len(e.free[0]))
		}
	})
}
