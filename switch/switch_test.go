package vswitch

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/tapswitch/tapswitch/fdb"
)

// fakeDev is a Device whose frames are pushed in by the test and whose
// writes are recorded.
type fakeDev struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once

	mu     sync.Mutex
	writes [][]byte
}

func newFakeDev() *fakeDev {
	return &fakeDev{in: make(chan []byte, 16), closed: make(chan struct{})}
}

func (d *fakeDev) Read(b []byte) (int, error) {
	select {
	case f := <-d.in:
		return copy(b, f), nil
	case <-d.closed:
		return 0, os.ErrClosed
	}
}

func (d *fakeDev) Write(b []byte) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	default:
	}
	d.mu.Lock()
	d.writes = append(d.writes, bytes.Clone(b))
	d.mu.Unlock()
	return len(b), nil
}

func (d *fakeDev) Queues() []Queue { return []Queue{d} }

func (d *fakeDev) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

func (d *fakeDev) got() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.writes...)
}

func (d *fakeDev) reset() {
	d.mu.Lock()
	d.writes = nil
	d.mu.Unlock()
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
	devs  map[string]*fakeDev
}

// newRig makes a switch with one network "n" and a port per name.
func newRig(t testing.TB, names ...string) *rig {
	t.Helper()
	r := &rig{sw: New(Config{Logger: quietLogger()}), ports: map[string]*Port{}, devs: map[string]*fakeDev{}}
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

// add attaches a port with security off, so that tests of forwarding can
// send from any MAC; security has tests of its own.
func (r *rig) add(t testing.TB, network, name string) {
	t.Helper()
	r.addInfo(t, network, name, PortInfo{Ifname: "eth0", NoSecurity: true})
}

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
	p.net.forward(p, 0, b)
}

func (r *rig) reset() {
	for _, d := range r.devs {
		d.reset()
	}
}

// receivers lists, in order, the ports that got exactly b.
func (r *rig) receivers(b []byte, names ...string) []string {
	var out []string
	for _, n := range names {
		for _, w := range r.devs[n].got() {
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
				if w := r.devs[n].got(); len(w) != len(r.receivers(tt.frame, n)) {
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
	r.devs["a"].in <- f
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
	select {
	case <-d.closed:
	default:
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

// mqDev is a device of several fakeDev queues.
type mqDev struct{ qs []*fakeDev }

func (d *mqDev) Queues() []Queue {
	out := make([]Queue, len(d.qs))
	for i, q := range d.qs {
		out[i] = q
	}
	return out
}

func (d *mqDev) Close() error {
	for _, q := range d.qs {
		q.Close()
	}
	return nil
}

func TestQueues(t *testing.T) {
	sw := New(Config{Logger: quietLogger()})
	defer sw.Close()
	if _, err := sw.CreateNetwork("n"); err != nil {
		t.Fatal(err)
	}
	a := &mqDev{qs: []*fakeDev{newFakeDev(), newFakeDev()}}
	b := &mqDev{qs: []*fakeDev{newFakeDev(), newFakeDev()}}
	c := &mqDev{qs: []*fakeDev{newFakeDev()}}
	pa, _ := sw.AddPort("n", "a", a, PortInfo{MAC: mustMAC(macA)})
	sw.AddPort("n", "b", b, PortInfo{MAC: mustMAC(macB)})
	sw.AddPort("n", "c", c, PortInfo{MAC: mustMAC(macC)})

	// A frame read on queue 1 of a goes out on queue 1 of b, and on the
	// only queue of c.
	f := frame(bcast, macA, "q1")
	a.qs[1].in <- f
	deadline := time.Now().Add(5 * time.Second)
	for len(b.qs[1].got()) == 0 || len(c.qs[0].got()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("frame read on queue 1 of a: b queues got %d/%d, c got %d; want b queue 1 and c queue 0",
				len(b.qs[0].got()), len(b.qs[1].got()), len(c.qs[0].got()))
		}
		time.Sleep(time.Millisecond)
	}
	if n := len(b.qs[0].got()); n != 0 {
		t.Fatalf("b queue 0 got %d frames, want 0", n)
	}
	// Both queues' loops count into the port's rx counters.
	a.qs[0].in <- frame(bcast, macA, "q0")
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

// A TCP/IPv4 segment's payload, after the virtio, Ethernet, IPv4 and TCP
// (with timestamps) headers, starts on a 64-byte boundary, and the
// buffer still holds exactly bufSize bytes.
func TestFrameBufferAlignsTCPPayload(t *testing.T) {
	for range 10 {
		b := newFrameBuffer()
		if len(b) != bufSize || cap(b) != bufSize {
			t.Fatalf("len %d cap %d, want %d", len(b), cap(b), bufSize)
		}
		payload := HdrLen + ethHdrLen + 20 + 32
		if a := uintptr(unsafe.Pointer(&b[payload])) % 64; a != 0 {
			t.Fatalf("payload at %d is %d bytes past a 64-byte boundary", payload, a)
		}
	}
}
