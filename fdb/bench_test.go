package fdb

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// forwarder is the part of a forwarding table the benchmarks drive, so the
// table and the two obvious alternatives run the same code.
type forwarder interface {
	Lookup(mac uint64) *testPort
	Learn(mac uint64, port *testPort) Result
	Delete(mac uint64) bool
}

var _ forwarder = (*Table[testPort])(nil)

// rwMutexTable is the textbook table: a map under a read-write lock.
// It keeps no last-seen time, so it does less work than Table.
type rwMutexTable struct {
	mu sync.RWMutex
	m  map[uint64]*testPort
}

func (t *rwMutexTable) Lookup(mac uint64) *testPort {
	t.mu.RLock()
	p := t.m[mac]
	t.mu.RUnlock()
	return p
}

func (t *rwMutexTable) Learn(mac uint64, port *testPort) Result {
	t.mu.RLock()
	old, ok := t.m[mac]
	t.mu.RUnlock()
	if old == port {
		return Refreshed
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[mac] = port
	if ok {
		return Moved
	}
	return Learned
}

func (t *rwMutexTable) Delete(mac uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.m[mac]
	delete(t.m, mac)
	return ok
}

// syncMapTable is the standard library's concurrent map. Like
// rwMutexTable it keeps no last-seen time.
type syncMapTable struct{ m sync.Map }

func (t *syncMapTable) Lookup(mac uint64) *testPort {
	p, _ := t.m.Load(mac)
	port, _ := p.(*testPort)
	return port
}

func (t *syncMapTable) Learn(mac uint64, port *testPort) Result {
	old, ok := t.m.Load(mac)
	if ok && old.(*testPort) == port {
		return Refreshed
	}
	t.m.Store(mac, port)
	if ok {
		return Moved
	}
	return Learned
}

func (t *syncMapTable) Delete(mac uint64) bool {
	_, ok := t.m.LoadAndDelete(mac)
	return ok
}

var impls = []struct {
	name string
	new  func() forwarder
}{
	{"fdb", func() forwarder { return New[testPort](Config{}) }},
	{"rwmutex", func() forwarder { return &rwMutexTable{m: make(map[uint64]*testPort)} }},
	{"syncmap", func() forwarder { return &syncMapTable{} }},
}

// benchMACs is the size of the pre-filled working set: a busy network
// segment, well inside the default limit.
const benchMACs = 1024

// benchKey numbers addresses sequentially under one prefix, the way a
// container runtime hands them out; churn uses numbers from 1<<28 up.
func benchKey(i int) uint64 {
	return 0x02_42_00_00_00_00 | uint64(i)&0xffff_ffff
}

var benchPorts = []*testPort{{"p0"}, {"p1"}, {"p2"}, {"p3"}}

func filled(newf func() forwarder) forwarder {
	f := newf()
	for i := range benchMACs {
		f.Learn(benchKey(i), benchPorts[i%len(benchPorts)])
	}
	return f
}

var sinkPort *testPort

func BenchmarkLookupHit(b *testing.B) {
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			f := filled(impl.new)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkPort = f.Lookup(benchKey(i & (benchMACs - 1)))
				i++
			}
		})
	}
}

func BenchmarkLookupMiss(b *testing.B) {
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			f := filled(impl.new)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkPort = f.Lookup(benchKey(benchMACs + i&(benchMACs-1)))
				i++
			}
		})
	}
}

func BenchmarkLearnRefresh(b *testing.B) {
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			f := filled(impl.new)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				n := i & (benchMACs - 1)
				f.Learn(benchKey(n), benchPorts[n%len(benchPorts)])
				i++
			}
		})
	}
}

// BenchmarkMixedParallel is the switch under load: every parallel
// goroutine is an rx loop doing what a frame costs (learn the source,
// look up the destination) while one more goroutine keeps learning new
// addresses and deleting old ones, as hosts come and go. ns/op is per
// frame per rx loop; allocs/op include the background learner's.
func BenchmarkMixedParallel(b *testing.B) {
	const window = 512 // background addresses alive at once
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			f := filled(impl.new)
			churn := &testPort{"churn"}
			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Go(func() {
				for n := 0; !stop.Load(); n++ {
					f.Learn(benchKey(1<<28+n), churn)
					if n >= window {
						f.Delete(benchKey(1<<28 + n - window))
					}
				}
			})
			var loops atomic.Uint32
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// Each rx loop owns one port and sources a quarter of
				// the addresses, as hosts behind a port would.
				id := int(loops.Add(1))
				port := benchPorts[id%len(benchPorts)]
				i := id * 7919
				var p *testPort
				for pb.Next() {
					src := (i*len(benchPorts) + id%len(benchPorts)) & (benchMACs - 1)
					f.Learn(benchKey(src), port)
					p = f.Lookup(benchKey((i * 31) & (benchMACs - 1)))
					i++
				}
				sinkPort = p
			})
			b.StopTimer()
			stop.Store(true)
			wg.Wait()
		})
	}
}

// BenchmarkLearnNew measures the slow path: one new address per op,
// deleting old ones to stay below the limit.
func BenchmarkLearnNew(b *testing.B) {
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			f := filled(impl.new)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				f.Learn(benchKey(1<<28+n), benchPorts[0])
				if n >= benchMACs {
					f.Delete(benchKey(1<<28 + n - benchMACs))
				}
				n++
			}
		})
	}
}

// BenchmarkLookupHitSize shows how lookups scale with the working set
// once it no longer fits in cache.
func BenchmarkLookupHitSize(b *testing.B) {
	for _, size := range []int{64, 1024, 8192} {
		b.Run("entries="+strconv.Itoa(size), func(b *testing.B) {
			t := New[testPort](Config{Limit: size})
			for i := range size {
				t.Learn(benchKey(i), benchPorts[0])
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkPort = t.Lookup(benchKey(i % size))
				i++
			}
		})
	}
}
