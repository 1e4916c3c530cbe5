package fdb

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrent runs the data path against every slow-path operation at
// once. Three groups of addresses make the outcome checkable:
//
//   - fixed: learned once on port A before the start and never touched
//     again. Nothing may lose them: every Lookup during the run and at the
//     end must find A, through rebuilds, flushes and expiries of others.
//     Their last-seen time, the starting clock, is never older than the
//     ageing time at any clock the run uses.
//   - movers: learned, refreshed and moved between A and B by several
//     goroutines; they may age out and be learned again.
//   - churn: a stream of new addresses on port F, removed by FlushPort(F),
//     Delete and Expire, filling the table to its limit so that inserts,
//     limit drops, tombstones and rebuilds all happen.
//
// Every port's entries are counted in a Quota; B's is bounded so that
// moves to B are refused now and then. At the end each count must match
// the entries on its port.
func TestConcurrent(t *testing.T) {
	const (
		limit  = 256
		fixed  = 64
		movers = 32
		ageing = time.Hour
	)
	d := 2 * time.Second
	if testing.Short() {
		d = 200 * time.Millisecond
	}
	pA, pB, pF := &testPort{"A"}, &testPort{"B"}, &testPort{"F"}
	quotas := map[*testPort]*Quota{pA: {}, pB: {}, pF: {}}
	quotas[pB].SetLimit(movers / 2)
	tbl := NewWithQuota(Config{Limit: limit, AgeingTime: ageing}, func(p *testPort) *Quota { return quotas[p] })
	// The clock moves between start-ageing and start+ageing-1s, so the
	// fixed group (seen at start) never ages, while churn learned at the
	// low end does when Expire runs at the high end.
	start := t0
	low, high := start.Add(-ageing), start.Add(ageing-time.Second)
	tbl.Tick(start)
	for i := range fixed {
		if got := tbl.Learn(mac(i), pA); got != Learned {
			t.Fatalf("Learn(%s, A) = %v, want %v", FormatMAC(mac(i)), got, Learned)
		}
	}
	moverMAC := func(i int) uint64 { return mac(1000 + i) }

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	fail := func(msg string) {
		select {
		case errs <- msg:
		default:
		}
		stop.Store(true)
	}
	run := func(f func(r *rand.Rand)) {
		seed := rand.Uint64()
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, 1))
			for !stop.Load() {
				f(r)
			}
		})
	}

	// Readers: the fixed group must always be on A; movers on A or B.
	for range 3 {
		run(func(r *rand.Rand) {
			for range 256 {
				if m := mac(r.IntN(fixed)); tbl.Lookup(m) != pA {
					fail("Lookup(" + FormatMAC(m) + ") of a fixed address did not return A")
					return
				}
				m := moverMAC(r.IntN(movers))
				if got := tbl.Lookup(m); got != nil && got != pA && got != pB {
					fail("Lookup(" + FormatMAC(m) + ") of a mover returned port " + got.name)
					return
				}
				tbl.Learn(m, pA)
			}
		})
	}
	// Movers flip between ports.
	for range 2 {
		run(func(r *rand.Rand) {
			p := pA
			if r.IntN(2) == 0 {
				p = pB
			}
			for range 64 {
				tbl.Learn(moverMAC(r.IntN(movers)), p)
			}
		})
	}
	// Churn: new addresses on F, with some deletes of its own.
	var next atomic.Uint64
	run(func(r *rand.Rand) {
		for range 64 {
			n := next.Add(1)
			m := mac(1<<20) + n
			tbl.Learn(m, pF)
			// Most churn is removed again soon, which leaves
			// tombstones behind; the rest fills the table up to the limit
			// until FlushPort or Expire clears it.
			if n%8 != 0 {
				tbl.Delete(m - 50)
			}
		}
		if n := tbl.Len(); n > limit {
			fail("Len() above the limit")
		}
	})
	run(func(r *rand.Rand) {
		time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
		tbl.FlushPort(pF)
	})
	run(func(r *rand.Rand) {
		time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
		tbl.Tick(low)
		time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
		tbl.Expire(high)
	})
	// Snapshots run concurrently too, and must never show a stranger.
	run(func(r *rand.Rand) {
		time.Sleep(time.Millisecond)
		for _, e := range tbl.Entries() {
			if e.Port != pA && e.Port != pB && e.Port != pF {
				fail("Entries() holds an entry on an unknown port")
			}
		}
	})

	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	if t.Failed() {
		return
	}

	checkInvariants(t, tbl)
	for i := range fixed {
		if got := tbl.Lookup(mac(i)); got != pA {
			t.Fatalf("Lookup(%s) = %v at the end, want A", FormatMAC(mac(i)), got)
		}
	}
	entries := tbl.Entries()
	if len(entries) != tbl.Len() {
		t.Fatalf("len(Entries()) = %d, want Len() = %d", len(entries), tbl.Len())
	}
	if len(entries) > limit {
		t.Fatalf("len(Entries()) = %d, above the limit %d", len(entries), limit)
	}
	for _, e := range entries {
		if e.Port != pA && e.Port != pB && e.Port != pF {
			t.Fatalf("entry %s on port %v, want A, B or F", FormatMAC(e.MAC), e.Port)
		}
	}
	per := map[*testPort]int{}
	for _, e := range entries {
		per[e.Port]++
	}
	for p, q := range quotas {
		if got := q.Len(); got != per[p] {
			t.Errorf("Quota of %s: Len() = %d, want %d entries on the port", p.name, got, per[p])
		}
	}
	if per[pB] > movers/2 {
		t.Errorf("%d entries on B, above its quota %d", per[pB], movers/2)
	}
	st := tbl.Stats()
	t.Logf("%d entries, stats %+v", len(entries), st)
	if st.Rebuilds == 0 || st.LimitDrops == 0 || st.Moves == 0 || st.Expired == 0 || st.PortLimitDrops == 0 {
		t.Errorf("the run did not reach every path: Stats() = %+v", st)
	}
}
