package vxlan

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

// pair opens two endpoints on loopback addresses a and b, on one free
// port, each taking the other as a member, and closes them when t ends.
func pair(t testing.TB, a, b string) (*Endpoint, *Endpoint) {
	t.Helper()
	la, lb := netip.MustParseAddr(a), netip.MustParseAddr(b)
	for range 20 {
		port := 20000 + rand.IntN(10000)
		ea, err := Listen(Config{Local: la, Port: port})
		if err != nil {
			continue
		}
		eb, err := Listen(Config{Local: lb, Port: port})
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

// readFrames reads from q until it has want frames, and returns them.
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
			hdr := bufs[i][device.Headroom-device.VnetHdrLen : device.Headroom]
			for _, c := range hdr {
				if c != 0 {
					t.Fatalf("frame %d read with virtio net header %x, want zero", len(out), hdr)
				}
			}
			out = append(out, append([]byte(nil), bufs[i][device.Headroom:device.Headroom+sizes[i]]...))
		}
	}
	return out
}
