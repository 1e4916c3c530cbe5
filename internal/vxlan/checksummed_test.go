package vxlan

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

// readOne reads one Read's worth from q and returns each frame's virtio
// net header and frame.
func readOne(t testing.TB, q device.Queue) ([]device.VnetHdr, [][]byte) {
	t.Helper()
	bufs := make([][]byte, q.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, device.Headroom+70000)
	}
	sizes := make([]int, len(bufs))
	n, err := q.Read(bufs, sizes, device.Headroom)
	if err != nil {
		t.Fatal(err)
	}
	var hs []device.VnetHdr
	var fs [][]byte
	for i := range n {
		h, err := device.ParseVnetHdr(bufs[i][device.Headroom-device.VnetHdrLen:])
		if err != nil {
			t.Fatalf("frame %d: virtio net header: %v", i, err)
		}
		hs = append(hs, h)
		fs = append(fs, append([]byte(nil), bufs[i][device.Headroom:device.Headroom+sizes[i]]...))
	}
	return hs, fs
}

// TestChecksummedPeer: a frame from a VTEP named to SetChecksummed comes
// out with VnetFlagDataValid (its outer UDP checksum covered it); from
// any other member, with no flag, to be checked where it merges.
func TestChecksummedPeer(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	ta := tunnel(t, ea, 42, 1450, netip.MustParseAddr("127.0.0.2"))
	tb := tunnel(t, eb, 42, 1450)
	f := ethFrame(bcast, macA, 100, 1)
	for _, c := range []struct {
		sums []netip.Addr
		flag uint8
	}{
		{nil, 0},
		{[]netip.Addr{netip.MustParseAddr("127.0.0.1")}, device.VnetFlagDataValid},
		{[]netip.Addr{netip.MustParseAddr("127.0.0.3")}, 0},
	} {
		eb.SetChecksummed(c.sums)
		if _, err := ta.Queues()[0].Write([][]byte{buffer(f, device.VnetHdr{})}, device.Headroom); err != nil {
			t.Fatal(err)
		}
		hs, fs := readOne(t, tb.Queues()[0])
		if len(fs) != 1 || !bytes.Equal(fs[0], f) {
			t.Fatalf("checksummed %v: got %d frames, want the one sent", c.sums, len(fs))
		}
		if want := (device.VnetHdr{Flags: c.flag}); hs[0] != want {
			t.Fatalf("checksummed %v: header %+v, want %+v", c.sums, hs[0], want)
		}
	}
}

// tcpSegments returns n full TCP segments of one flow from macA to macB
// (tcpSuperFrame's flow), each of size bytes of payload, with their
// checksums filled in: as a sender's segmentation makes them.
func tcpSegments(n, size int) [][]byte {
	var out [][]byte
	for i := range n {
		f, _ := tcpSuperFrame(payloadOf(size + i)[i:], 0)
		ip, tcp := f[14:34], f[34:]
		binary.BigEndian.PutUint16(ip[4:], 0x1234+uint16(i))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip, 0)))
		binary.BigEndian.PutUint32(tcp[4:], 0xfffff000+uint32(i*size))
		tcp[13] = 0x10 // ACK
		tcp[16], tcp[17] = 0, 0
		binary.BigEndian.PutUint16(tcp[16:], ^fold(sum(tcp, sum(ip[12:20], 6+uint32(len(tcp))))))
		out = append(out, f)
	}
	return out
}

// sendGSO sends frames, each behind a VXLAN header of vni, as one UDP
// GSO send from a socket on from to e: the datagrams arrive in one read.
func sendGSO(t *testing.T, from string, e *Endpoint, vni uint32, frames [][]byte) {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(from), 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b []byte
	for _, f := range frames {
		h := make([]byte, HeaderLen)
		putHeader(h, vni)
		b = append(append(b, h...), f...)
	}
	oob := make([]byte, cmsgSpace)
	oob = oob[:putSegmentCmsg(oob, HeaderLen+len(frames[0]))]
	if _, _, err := c.WriteMsgUDPAddrPort(b, oob, netip.AddrPortFrom(e.cfg.Local, uint16(e.cfg.Port))); err != nil {
		t.Fatal(err)
	}
}

// TestReadMerges: a run of one flow's segments read in one go comes out
// of Read as one super-frame with the header the kernel takes from a
// TAP; a segment with a bad checksum is not merged, unless it came from
// a checksummed VTEP, whose data the outer UDP checksum covered (so a
// bad inner checksum there is the sender's, passed on as it was).
func TestReadMerges(t *testing.T) {
	_, eb := pair(t, "127.0.0.1", "127.0.0.2")
	tb := tunnel(t, eb, 42, 1450)
	const size = 1398
	good := tcpSegments(4, size)
	bad := tcpSegments(4, size)
	bad[2][len(bad[2])-1]++
	wantHdr := device.VnetHdr{Flags: device.VnetFlagNeedsCsum, GSOType: device.GSOTCPv4, HdrLen: 66, GSOSize: size, CsumStart: 34, CsumOffset: 16}
	for _, c := range []struct {
		name    string
		frames  [][]byte
		sums    bool
		want    []device.VnetHdr
		segsOut []int
	}{
		{"checked", good, false, []device.VnetHdr{wantHdr}, []int{4}},
		{"checksummed", good, true, []device.VnetHdr{wantHdr}, []int{4}},
		{"bad checksum checked", bad, false, []device.VnetHdr{wantHdr, {}, {}}, []int{2, 1, 1}},
		{"bad checksum from a checksummed VTEP", bad, true, []device.VnetHdr{wantHdr}, []int{4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var sums []netip.Addr
			if c.sums {
				sums = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
			}
			eb.SetChecksummed(sums)
			sendGSO(t, "127.0.0.1", eb, 42, c.frames)
			hs, fs := readOne(t, tb.Queues()[0])
			if len(hs) != len(c.want) {
				t.Fatalf("read %d frames %+v, want %d", len(hs), hs, len(c.want))
			}
			k := 0
			for i, h := range hs {
				if h != c.want[i] {
					t.Fatalf("frame %d: header %+v, want %+v", i, h, c.want[i])
				}
				n := c.segsOut[i]
				var want []byte
				if h.GSOType == device.GSONone {
					want = c.frames[k]
				} else {
					// One frame's headers, every frame's payload; the
					// super-frame's IP length and checksums are the
					// Coalescer's, checked by TestLoopbackSuperFrame.
					want = append([]byte(nil), c.frames[k][:66]...)
					for _, f := range c.frames[k : k+n] {
						want = append(want, f[66:]...)
					}
					copy(fs[i][14:34], want[14:34])
					copy(fs[i][34+16:34+18], want[34+16:34+18])
				}
				if !bytes.Equal(fs[i], want) {
					t.Fatalf("frame %d: %d bytes differ from the %d frames sent", i, len(fs[i]), n)
				}
				k += n
			}
		})
	}
}
