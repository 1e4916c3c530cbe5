package vswitch

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// discardDev counts writes and blocks reads until closed, so a port's own
// loop stays idle while the benchmark drives forward directly.
type discardDev struct {
	writes atomic.Uint64
	closed chan struct{}
	once   sync.Once
}

func newDiscardDev() *discardDev { return &discardDev{closed: make(chan struct{})} }

func (d *discardDev) Read([]byte) (int, error) { <-d.closed; return 0, os.ErrClosed }
func (d *discardDev) Write(b []byte) (int, error) {
	d.writes.Add(1)
	return len(b), nil
}
func (d *discardDev) Queues() []Queue { return []Queue{d} }
func (d *discardDev) Close() error    { d.once.Do(func() { close(d.closed) }); return nil }

func benchSwitch(b *testing.B, n int) (*Network, []*Port) {
	sw := New(Config{Logger: quietLogger()})
	b.Cleanup(sw.Close)
	net, err := sw.CreateNetwork("n")
	if err != nil {
		b.Fatal(err)
	}
	ports := make([]*Port, n)
	for i := range ports {
		if ports[i], err = sw.AddPort("n", string(rune('a'+i)), newDiscardDev(), PortInfo{}); err != nil {
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
			net.forward(ports[1], 0, frame(bcast, macB, "learn"))
			f := frame(macB, macA, string(make([]byte, size-ethHdrLen)))
			net.forward(ports[0], 0, f)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				net.forward(ports[0], 0, f)
			}
		})
	}
}

// BenchmarkFlood is a broadcast on a network of 8 ports.
func BenchmarkFlood(b *testing.B) {
	net, ports := benchSwitch(b, 8)
	f := frame(bcast, macA, string(make([]byte, 50)))
	b.ReportAllocs()
	for b.Loop() {
		net.forward(ports[0], 0, f)
	}
}

// BenchmarkForwardParallel forwards from two ports at once, as two loops
// do with traffic in both directions.
func BenchmarkForwardParallel(b *testing.B) {
	net, ports := benchSwitch(b, 2)
	net.forward(ports[0], 0, frame(bcast, macA, "learn"))
	net.forward(ports[1], 0, frame(bcast, macB, "learn"))
	var next atomic.Int32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1) % 2
		in := ports[i]
		f := frame(macB, macA, string(make([]byte, 1500)))
		if i == 1 {
			f = frame(macA, macB, string(make([]byte, 1500)))
		}
		for pb.Next() {
			net.forward(in, 0, f)
		}
	})
}

func TestForwardAllocatesNothing(t *testing.T) {
	sw := New(Config{Logger: quietLogger()})
	defer sw.Close()
	net, _ := sw.CreateNetwork("n")
	a, _ := sw.AddPort("n", "a", newDiscardDev(), PortInfo{})
	bp, _ := sw.AddPort("n", "b", newDiscardDev(), PortInfo{})
	net.forward(bp, 0, frame(bcast, macB, "learn"))
	uni := frame(macB, macA, "payload")
	flood := frame(bcast, macA, "payload")
	for name, f := range map[string][]byte{"unicast": uni, "flood": flood} {
		if n := testing.AllocsPerRun(1000, func() { net.forward(a, 0, f) }); n != 0 {
			t.Errorf("forward(%s) allocates %v times per frame, want 0", name, n)
		}
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
