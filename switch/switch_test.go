package vswitch

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/device/devicetest"
	"github.com/tapswitch/tapswitch/fdb"
)

// newFakeDev is a device of one queue whose frames the test sends in and
// whose writes it reads back, taking what a TAP takes.
func newFakeDev() *devicetest.Device {
	return devicetest.New(devicetest.Config{Caps: tapCaps})
}

// tapCaps are what a TAP takes on a kernel with USO.
var tapCaps = device.Caps{GSO: device.GSOSetTCP | device.GSOSetUDPL4 | device.GSOSetUDP, Csum: true}

// testLanes are lanes for tests that drive forward themselves.
var testLanes = sync.Pool{New: func() any { return newLane(0, 1) }}

// fwd forwards b, a virtio net header and a frame, from port in, on
// queue 0, as a worker would after reading it.
func (n *Network) fwd(in *Port, b []byte) {
	l := testLanes.Get().(*lane)
	defer testLanes.Put(l)
	n.forward(in, l, placed(l.bufs[0], b))
}

// placed copies b, a virtio net header and a frame, into buf as a Read
// puts it (the frame at headroom) and returns the buffer cut to its end.
func placed(buf, b []byte) []byte {
	return buf[:headroom-HdrLen+copy(buf[headroom-HdrLen:], b)]
}

// frame builds a virtio header (all zero) and an Ethernet frame.
func frame(dst, src string, payload string) []byte {
	b := make([]byte, HdrLen, HdrLen+ethHdrLen+len(payload))
	d, _ := net.ParseMAC(dst)
	s, _ := net.ParseMAC(src)
	b = append(b, d...)
	b = append(b, s...)
	b = append(b, 0x88, 0xb5)
	return append(b, payload...)
}

const (
	macA  = "02:00:00:00:00:0a"
	macB  = "02:00:00:00:00:0b"
	macC  = "02:00:00:00:00:0c"
	bcast = "ff:ff:ff:ff:ff:ff"
)

// testInfo describes port i of a test with port security on: MAC
// 02:00:00:00:00:0a+i (macA, macB, macC for the first three), addresses
// 10.0.0.1+i/24 and fd00::1+i/64.
func testInfo(i int) PortInfo {
	return PortInfo{
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(0x0a + i)},
		IPs: []netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i)}), 24),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(1 + i)}), 64),
		},
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type rig struct {
	sw    *Switch
	net   *Network
	ports map[string]*Port
	devs  map[string]*devicetest.Device
}

// newRig makes a switch with one network "n" and a port per name.
func newRig(t testing.TB, names ...string) *rig {
	t.Helper()
	r := &rig{sw: New(Config{Logger: quietLogger()}), ports: map[string]*Port{}, devs: map[string]*devicetest.Device{}}
	t.Cleanup(r.sw.Close)
	var err error
	if r.net, err = r.sw.CreateNetwork("n"); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		r.add(t, "n", name)
	}
	return r
}

// add attaches a port with security and storm control off, so that
// tests of forwarding can send from any MAC and as many broadcasts as
// they like; security and storm control have tests of their own.
func (r *rig) add(t testing.TB, network, name string) {
	t.Helper()
	r.addInfo(t, network, name, PortInfo{Ifname: "eth0", NoSecurity: true, Storm: noStorm})
}

// noStorm turns storm control off.
var noStorm = StormLimits{-1, -1, -1}

func (r *rig) addInfo(t testing.TB, network, name string, info PortInfo) {
	t.Helper()
	d := newFakeDev()
	p, err := r.sw.AddPort(network, name, d, info)
	if err != nil {
		t.Fatalf("AddPort(%q, %q) = %v", network, name, err)
	}
	r.ports[name], r.devs[name] = p, d
}

// forward runs one frame through the network of port from, synchronously.
func (r *rig) forward(from string, b []byte) {
	p := r.ports[from]
	p.net.fwd(p, b)
}

func (r *rig) reset() {
	for _, d := range r.devs {
		d.Reset()
	}
}

// receivers lists, in order, the ports that got exactly b.
func (r *rig) receivers(b []byte, names ...string) []string {
	var out []string
	for _, n := range names {
		for _, w := range r.devs[n].Frames() {
			if bytes.Equal(w, b) {
				out = append(out, n)
			}
		}
	}
	return out
}

func TestForwarding(t *testing.T) {
	all := []string{"a", "b", "c"}
	tests := []struct {
		name  string
		learn [][2]string // (port, src MAC) sent first, so the switch learns
		from  string
		frame []byte
		want  []string
	}{
		{name: "broadcast floods to all but ingress", from: "a", frame: frame(bcast, macA, "x"), want: []string{"b", "c"}},
		{name: "multicast floods", from: "b", frame: frame("01:00:5e:00:00:01", macB, "x"), want: []string{"a", "c"}},
		{name: "unknown unicast floods", from: "a", frame: frame(macB, macA, "x"), want: []string{"b", "c"}},
		{name: "learned unicast goes to one port", learn: [][2]string{{"b", macB}}, from: "a", frame: frame(macB, macA, "x"), want: []string{"b"}},
		{name: "learned on ingress is not sent back", learn: [][2]string{{"a", macB}}, from: "a", frame: frame(macB, macA, "x"), want: nil},
		{name: "moved MAC follows the move", learn: [][2]string{{"b", macC}, {"c", macC}}, from: "a", frame: frame(macC, macA, "x"), want: []string{"c"}},
		{name: "multicast source dropped", from: "a", frame: frame(macB, "03:00:00:00:00:01", "x"), want: nil},
		{name: "zero source dropped", from: "a", frame: frame(bcast, "00:00:00:00:00:00", "x"), want: nil},
		{name: "runt dropped", from: "a", frame: frame(bcast, macA, "")[:HdrLen+13], want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, all...)
			for _, l := range tt.learn {
				r.forward(l[0], frame(bcast, l[1], "learn"))
			}
			r.reset()
			r.forward(tt.from, tt.frame)
			got := r.receivers(tt.frame, all...)
			if !slicesEqual(got, tt.want) {
				t.Fatalf("frame from %s went to %v, want %v", tt.from, got, tt.want)
			}
			// Nothing else was written anywhere.
			for _, n := range all {
				if w := r.devs[n].Frames(); len(w) != len(r.receivers(tt.frame, n)) {
					t.Fatalf("port %s got %d writes, want only the forwarded frame", n, len(w))
				}
			}
		})
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCounters(t *testing.T) {
	r := newRig(t, "a", "b")
	f := frame(bcast, macA, "hello")
	r.forward("a", f)
	r.forward("a", frame(bcast, "01:00:00:00:00:01", "bad"))
	r.forward("a", f[:HdrLen+5])
	ca, cb := r.ports["a"].Counters(), r.ports["b"].Counters()
	flen := uint64(len(f) - HdrLen)
	if ca.RxFrames != 1 || ca.RxBytes != flen {
		t.Errorf("a rx = %d frames %d bytes, want 1, %d", ca.RxFrames, ca.RxBytes, flen)
	}
	if cb.TxFrames != 1 || cb.TxBytes != flen {
		t.Errorf("b tx = %d frames %d bytes, want 1, %d", cb.TxFrames, cb.TxBytes, flen)
	}
	if ca.Drops["bad_source"] != 1 || ca.Drops["runt"] != 1 {
		t.Errorf("a drops = %v, want bad_source=1 runt=1", ca.Drops)
	}
}

// TestSuperFramePassesUnchanged checks that a GSO frame, virtio header
// and all, reaches the other port byte for byte.
func TestSuperFramePassesUnchanged(t *testing.T) {
	r := newRig(t, "a", "b")
	r.forward("b", frame(bcast, macB, "learn"))
	f := frame(macB, macA, string(bytes.Repeat([]byte{0xab}, 65000)))
	// NEEDS_CSUM, TCPv4 GSO, hdr_len 66, gso_size 1448, csum 34+16.
	copy(f, []byte{1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0})
	r.reset()
	r.forward("a", f)
	if got := r.receivers(f, "b"); len(got) != 1 {
		t.Fatalf("super-frame reached %v, want [b] unchanged", got)
	}
}

func TestNetworksAreIsolated(t *testing.T) {
	r := newRig(t, "a", "b")
	if _, err := r.sw.CreateNetwork("other"); err != nil {
		t.Fatal(err)
	}
	r.add(t, "other", "x")
	r.add(t, "other", "y")
	// x learns macB in its own network; a broadcast and a unicast to macB
	// from a must still stay in network n.
	r.forward("x", frame(bcast, macB, "learn"))
	r.reset()
	for _, f := range [][]byte{frame(bcast, macA, "1"), frame(macB, macA, "2"), frame(macC, macA, "3")} {
		r.forward("a", f)
		if got := r.receivers(f, "x", "y"); len(got) != 0 {
			t.Fatalf("frame from network n reached %v in network other", got)
		}
		if got := r.receivers(f, "b"); len(got) != 1 {
			t.Fatalf("frame from a reached %v, want [b]", got)
		}
	}
}

func TestRemovePortFlushesAndStops(t *testing.T) {
	r := newRig(t, "a", "b", "c")
	r.forward("b", frame(bcast, macB, "learn"))
	if got := r.net.fdb.Lookup(fdb.Key(mustMAC(macB))); got != r.ports["b"] {
		t.Fatalf("Lookup(%s) = %v, want port b", macB, got)
	}
	if err := r.sw.RemovePort(r.ports["b"]); err != nil {
		t.Fatalf("RemovePort(b) = %v", err)
	}
	if got := r.net.fdb.Lookup(fdb.Key(mustMAC(macB))); got != nil {
		t.Fatalf("after RemovePort, Lookup(%s) = %v, want nil", macB, got)
	}
	select {
	case <-r.ports["b"].done:
	default:
		t.Fatal("receive loop of b still running after RemovePort")
	}
	r.reset()
	f := frame(bcast, macA, "after")
	r.forward("a", f)
	if got := r.receivers(f, "b", "c"); !slicesEqual(got, []string{"c"}) {
		t.Fatalf("flood after detach reached %v, want [c]", got)
	}
	if err := r.sw.RemovePort(r.ports["b"]); !errors.Is(err, ErrNoPort) {
		t.Fatalf("second RemovePort(b) = %v, want ErrNoPort", err)
	}
}

func TestRxLoopForwards(t *testing.T) {
	r := newRig(t, "a", "b")
	f := frame(bcast, macA, "via loop")
	r.devs["a"].Send(0, f)
	deadline := time.Now().Add(5 * time.Second)
	for len(r.receivers(f, "b")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("frame read by a's loop never reached b")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPortNamesUnique(t *testing.T) {
	r := newRig(t, "a")
	d := newFakeDev()
	if _, err := r.sw.AddPort("n", "a", d, PortInfo{}); !errors.Is(err, ErrPortExists) {
		t.Fatalf("AddPort(duplicate) = %v, want ErrPortExists", err)
	}
	if !d.Closed() {
		t.Fatal("AddPort failed but left the device open")
	}
	if _, err := r.sw.AddPort("nope", "z", newFakeDev(), PortInfo{}); !errors.Is(err, ErrNoNetwork) {
		t.Fatalf("AddPort(unknown network) = %v, want ErrNoNetwork", err)
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestQueues(t *testing.T) {
	sw := New(Config{Logger: quietLogger()})
	defer sw.Close()
	if _, err := sw.CreateNetwork("n"); err != nil {
		t.Fatal(err)
	}
	a := devicetest.New(devicetest.Config{Queues: 2})
	b := devicetest.New(devicetest.Config{Queues: 2})
	c := devicetest.New(devicetest.Config{})
	pa, _ := sw.AddPort("n", "a", a, PortInfo{MAC: mustMAC(macA)})
	sw.AddPort("n", "b", b, PortInfo{MAC: mustMAC(macB)})
	sw.AddPort("n", "c", c, PortInfo{MAC: mustMAC(macC)})

	// A frame read on queue 1 of a goes out on queue 1 of b, and on the
	// only queue of c.
	f := frame(bcast, macA, "q1")
	a.Send(1, f)
	deadline := time.Now().Add(5 * time.Second)
	for len(b.FramesOn(1)) == 0 || len(c.FramesOn(0)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("frame read on queue 1 of a: b queues got %d/%d, c got %d; want b queue 1 and c queue 0",
				len(b.FramesOn(0)), len(b.FramesOn(1)), len(c.FramesOn(0)))
		}
		time.Sleep(time.Millisecond)
	}
	if n := len(b.FramesOn(0)); n != 0 {
		t.Fatalf("b queue 0 got %d frames, want 0", n)
	}
	// Both queues' loops count into the port's rx counters.
	a.Send(0, frame(bcast, macA, "q0"))
	for pa.Counters().RxFrames != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("a rx frames = %d, want 2 (one per queue)", pa.Counters().RxFrames)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRemoveNetwork(t *testing.T) {
	r := newRig(t, "a")
	if err := r.sw.RemoveNetwork("n"); !errors.Is(err, ErrNetworkInUse) {
		t.Fatalf("RemoveNetwork(n) with a port = %v, want ErrNetworkInUse", err)
	}
	if err := r.sw.RemovePort(r.ports["a"]); err != nil {
		t.Fatalf("RemovePort(a) = %v", err)
	}
	if err := r.sw.RemoveNetwork("n"); err != nil {
		t.Fatalf("RemoveNetwork(n) when empty = %v", err)
	}
	if _, err := r.sw.Network("n"); !errors.Is(err, ErrNoNetwork) {
		t.Fatalf("Network(n) after RemoveNetwork = %v, want ErrNoNetwork", err)
	}
	if err := r.sw.RemoveNetwork("n"); !errors.Is(err, ErrNoNetwork) {
		t.Fatalf("second RemoveNetwork(n) = %v, want ErrNoNetwork", err)
	}
	// The name can be used again, with a fresh table.
	if _, err := r.sw.CreateNetwork("n"); err != nil {
		t.Fatalf("CreateNetwork(n) after RemoveNetwork = %v", err)
	}
}

// A TCP/IPv4 segment's payload, after the Ethernet, IPv4 and TCP (with
// timestamps) headers of a frame at headroom, starts on a 64-byte
// boundary, and the buffer still holds exactly bufSize bytes.
func TestFrameBufferAlignsTCPPayload(t *testing.T) {
	for range 10 {
		b := newFrameBuffer()
		if len(b) != bufSize || cap(b) != bufSize {
			t.Fatalf("len %d cap %d, want %d", len(b), cap(b), bufSize)
		}
		payload := headroom + ethHdrLen + 20 + 32
		if a := uintptr(unsafe.Pointer(&b[payload])) % 64; a != 0 {
			t.Fatalf("payload at %d is %d bytes past a 64-byte boundary", payload, a)
		}
	}
}
