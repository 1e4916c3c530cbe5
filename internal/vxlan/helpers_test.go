package vxlan

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/segment"
)

// pair opens two endpoints on loopback addresses a and b, on one free
// port, each taking the other as a member, and closes them when t ends.
// Each has one receiving socket, so that a tunnel's frames all come on
// its queue 0.
func pair(t testing.TB, a, b string) (*Endpoint, *Endpoint) {
	t.Helper()
	la, lb := netip.MustParseAddr(a), netip.MustParseAddr(b)
	for range 20 {
		port := 20000 + rand.IntN(10000)
		ea, err := Listen(Config{Local: la, Port: port, Receivers: 1})
		if err != nil {
			continue
		}
		eb, err := Listen(Config{Local: lb, Port: port, Receivers: 1})
		if err != nil {
			ea.Close()
			continue
		}
		t.Cleanup(func() { ea.Close(); eb.Close() })
		ea.SetMembers([]netip.Addr{lb})
		eb.SetMembers([]netip.Addr{la})
		return ea, eb
	}
	t.Fatalf("no free UDP port on %s and %s", a, b)
	return nil, nil
}

// tunnel opens vni on e with the given replication list.
func tunnel(t testing.TB, e *Endpoint, vni uint32, mtu int, vteps ...netip.Addr) *Tunnel {
	t.Helper()
	tn, err := e.Tunnel(vni, TunnelOptions{MTU: mtu})
	if err != nil {
		t.Fatal(err)
	}
	tn.SetVTEPs(vteps)
	return tn
}

var (
	macA  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	bcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// buffer returns a buffer with frame at device.Headroom and hdr before it.
func buffer(frame []byte, hdr device.VnetHdr) []byte {
	b := make([]byte, device.Headroom+len(frame))
	hdr.Put(b[device.Headroom-device.VnetHdrLen:])
	copy(b[device.Headroom:], frame)
	return b
}

// ethFrame builds an Ethernet frame of type 0x88b5 (local experimental)
// with n bytes of payload numbered from seed.
func ethFrame(dst, src net.HardwareAddr, n int, seed byte) []byte {
	f := make([]byte, 14+n)
	copy(f, dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], 0x88b5)
	for i := range n {
		f[14+i] = seed + byte(i)
	}
	return f
}

// readFrames reads from q until it has want frames, and returns them: a
// super-frame Read merged counts as the segments it carries (unmerge).
func readFrames(t testing.TB, q device.Queue, want int) [][]byte {
	t.Helper()
	bufs := make([][]byte, q.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, device.Headroom+70000)
	}
	sizes := make([]int, len(bufs))
	var out [][]byte
	for len(out) < want {
		n, err := q.Read(bufs, sizes, device.Headroom)
		if err != nil {
			t.Fatalf("read after %d of %d frames: %v", len(out), want, err)
		}
		for i := range n {
			frames, _, err := unmerge(bufs[i], sizes[i])
			if err != nil {
				t.Fatalf("frame %d: %v", len(out), err)
			}
			out = append(out, frames...)
		}
	}
	return out
}

// unmerge returns the frames in buf, as read from a tunnel (size bytes
// at device.Headroom, the virtio net header before): the frame itself,
// whose header must be of no GSO and flag no more than DataValid, or
// NeedsCsum (a frame from a checksummed VTEP, segment.Reseed) with the
// checksum completed as the kernel would; or for a super-frame the
// segments a Splitter cuts from it, as the kernel would; merged says
// which.
func unmerge(buf []byte, size int) (frames [][]byte, merged bool, err error) {
	h, err := device.ParseVnetHdr(buf[device.Headroom-device.VnetHdrLen:])
	if err != nil {
		return nil, false, err
	}
	frame := buf[device.Headroom : device.Headroom+size]
	if h.GSOType == device.GSONone {
		if h.Flags == device.VnetFlagNeedsCsum {
			var s segment.Splitter
			out := make([]byte, len(frame))
			if err := s.Reset(h, frame, 0); err != nil {
				return nil, false, fmt.Errorf("read with virtio net header %+v: %v", h, err)
			}
			if n, err := s.Next(out); err != nil || n != len(frame) {
				return nil, false, fmt.Errorf("read with virtio net header %+v: completing the checksum: %d bytes, %v", h, n, err)
			}
			return [][]byte{out}, false, nil
		}
		if h != (device.VnetHdr{}) && h != (device.VnetHdr{Flags: device.VnetFlagDataValid}) {
			return nil, false, fmt.Errorf("read with virtio net header %+v, want none, DataValid or NeedsCsum", h)
		}
		return [][]byte{bytes.Clone(frame)}, false, nil
	}
	if h.Flags != device.VnetFlagNeedsCsum || h.GSOSize == 0 {
		return nil, true, fmt.Errorf("super-frame read with virtio net header %+v: want NeedsCsum and a segment size", h)
	}
	var s segment.Splitter
	if err := s.Reset(h, frame, 65535); err != nil {
		return nil, true, fmt.Errorf("super-frame read with virtio net header %+v: %v", h, err)
	}
	for {
		seg := make([]byte, s.MaxSegment())
		n, err := s.Next(seg)
		if err != nil {
			return nil, true, err
		}
		if n == 0 {
			return frames, true, nil
		}
		frames = append(frames, seg[:n])
	}
}

// tcpSuperFrame builds an IPv4 TCP frame from macA to macB with payload
// bytes as a TAP hands it over: with gso, a super-frame of segments of
// gso bytes, the checksum field holding the pseudo-header sum and
// NeedsCsum; without, a whole frame with its checksum filled in.
func tcpSuperFrame(payload []byte, gso int) ([]byte, device.VnetHdr) {
	const l3, l4, hdrEnd = 14, 34, 66
	f := make([]byte, hdrEnd+len(payload))
	copy(f, macB)
	copy(f[6:], macA)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[l3:]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(min(len(f)-l3, 0xffff)))
	binary.BigEndian.PutUint16(ip[4:], 0x1234)
	ip[6], ip[8], ip[9] = 0x40, 64, 6
	copy(ip[12:], []byte{10, 232, 9, 1, 10, 232, 9, 2})
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip[:20], 0)))
	tcp := f[l4:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 0xfffff000)
	binary.BigEndian.PutUint32(tcp[8:], 0x01020304)
	tcp[12], tcp[13] = 8<<4, 0x18 // 32 bytes of header; ACK, PSH
	binary.BigEndian.PutUint16(tcp[14:], 0xfaf0)
	copy(tcp[20:], []byte{1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78})
	copy(f[hdrEnd:], payload)
	pseudo := sum(ip[12:20], 6+uint32(len(f)-l4))
	if gso == 0 {
		binary.BigEndian.PutUint16(tcp[16:], ^fold(sum(f[l4:], pseudo)))
		return f, device.VnetHdr{}
	}
	binary.BigEndian.PutUint16(tcp[16:], fold(pseudo))
	return f, device.VnetHdr{Flags: device.VnetFlagNeedsCsum, GSOType: device.GSOTCPv4, HdrLen: hdrEnd,
		GSOSize: uint16(gso), CsumStart: l4, CsumOffset: 16}
}

func sum(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// payloadOf returns n bytes that differ from one offset to the next.
func payloadOf(n int) []byte {
	p := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// checkSuperFrame checks that frames, read from a tunnel, are the
// segments of a TCP super-frame of payload (as tcpSuperFrame builds it)
// cut to mtu, and that the switch's coalescer merges them back into one
// super-frame with exactly that payload.
func checkSuperFrame(t testing.TB, frames [][]byte, payload []byte, mtu int) {
	t.Helper()
	mss := mtu - 20 - 32
	if want := (len(payload) + mss - 1) / mss; len(frames) != want {
		t.Fatalf("got %d segments, want %d of at most %d bytes", len(frames), want, mss)
	}
	bufs := make([][]byte, len(frames))
	for i, f := range frames {
		if len(f) > 14+mtu {
			t.Fatalf("segment %d is %d bytes, over the overlay MTU %d", i, len(f), mtu)
		}
		bufs[i] = buffer(f, device.VnetHdr{})
	}
	var c segment.Coalescer
	out := c.Coalesce(bufs, device.Headroom, device.Caps{GSO: device.GSOSetTCP, Csum: true})
	if len(out) != 1 {
		t.Fatalf("the coalescer made %d frames of the %d segments, want 1 (a segment with a bad checksum or out of order?)", len(out), len(frames))
	}
	h, err := device.ParseVnetHdr(out[0][device.Headroom-device.VnetHdrLen:])
	if err != nil || h.GSOType != device.GSOTCPv4 {
		t.Fatalf("merged frame header %+v, %v: want a TCPv4 super-frame", h, err)
	}
	if got := out[0][device.Headroom+66:]; !bytes.Equal(got, payload) {
		t.Fatalf("merged payload differs: %d bytes, want %d", len(got), len(payload))
	}
}

// maxTCPPayload is the payload of the largest IPv4 TCP super-frame (with
// timestamps): 64 KiB less one byte of IP packet, as Linux makes them.
const maxTCPPayload = 0xffff - 20 - 32
