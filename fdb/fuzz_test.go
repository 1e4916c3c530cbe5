package fdb

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// modelEntry is what the reference model keeps per address.
type modelEntry struct {
	port int
	seen time.Time
}

// FuzzTable runs a byte string as a program of table operations and checks
// every result against a map-based model. A few addresses over a tiny
// table keep probe runs colliding, tombstones accumulating and the limit
// in reach.
//
// Program: byte 0 picks the limit (1-8, its low three bits) and each
// port's Quota limit (none or 1-3, the next two bits); then each pair of
// bytes is an operation and its argument.
func FuzzTable(f *testing.F) {
	f.Add([]byte{3, 0, 1, 0, 2, 1, 1, 2, 1})
	f.Add([]byte{1, 0, 0, 0, 17, 3, 0, 0, 17, 2, 0})
	f.Add([]byte{8, 0, 0, 0, 1, 0, 2, 0, 3, 5, 3, 0, 4, 6, 7, 1, 4, 2, 0})
	f.Add([]byte{2, 0, 5, 0, 6, 0, 7, 4, 1, 0, 7, 3, 6, 6, 0, 7, 0})
	// Per-port limits of 1 and 2, with moves between the ports.
	f.Add([]byte{8 + 7, 0, 0, 0, 1, 0, 24, 0, 25, 1, 48, 4, 0, 0, 24, 6, 7, 0, 2})
	f.Add([]byte{16 + 5, 0, 0, 0, 1, 0, 2, 0, 24, 0, 25, 0, 3, 3, 0, 0, 1, 4, 24})

	const (
		ageing = 4 * time.Second
		nMACs  = 24
		nPorts = 3
	)
	// Addresses spread over the whole 48 bits, plus neighbours that differ
	// in one low bit.
	macs := make([]uint64, nMACs)
	for i := range macs {
		macs[i] = (uint64(i/2)*0x9e3779b97f4a7c15)&macMask ^ uint64(i%2)
	}
	ports := make([]*testPort, nPorts)
	for i := range ports {
		ports[i] = &testPort{string(rune('A' + i))}
	}

	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) == 0 {
			return
		}
		limit := 1 + int(prog[0]%8)
		portLimit := int(prog[0] / 8 % 4)
		prog = prog[1:]
		quotas := make(map[*testPort]*Quota)
		for _, p := range ports {
			quotas[p] = &Quota{}
			quotas[p].SetLimit(portLimit)
		}
		tbl := NewWithQuota(Config{Limit: limit, AgeingTime: ageing}, func(p *testPort) *Quota { return quotas[p] })
		now := t0
		tbl.Tick(now)
		model := make(map[uint64]modelEntry)
		onPort := func(pi int) int {
			n := 0
			for _, e := range model {
				if e.port == pi {
					n++
				}
			}
			return n
		}

		for pc := 0; pc+1 < len(prog); pc += 2 {
			op, arg := prog[pc]%8, int(prog[pc+1])
			m := macs[arg%nMACs]
			pi := arg / nMACs % nPorts
			p := ports[pi]
			switch op {
			case 0, 1: // learn, twice as likely as the rest
				want := Learned
				cur, ok := model[m]
				switch {
				case ok && cur.port == pi:
					want = Refreshed
				case portLimit > 0 && onPort(pi) >= portLimit:
					want = PortLimitReached
				case ok:
					want = Moved
				case len(model) >= limit:
					want = LimitReached
				}
				if want != LimitReached && want != PortLimitReached {
					model[m] = modelEntry{pi, now}
				}
				if got := tbl.Learn(m, p); got != want {
					t.Fatalf("op %d: Learn(%s, %v) = %v, want %v", pc/2, FormatMAC(m), p, got, want)
				}
			case 2:
				var want *testPort
				if e, ok := model[m]; ok {
					want = ports[e.port]
				}
				if got := tbl.Lookup(m); got != want {
					t.Fatalf("op %d: Lookup(%s) = %v, want %v", pc/2, FormatMAC(m), got, want)
				}
			case 3:
				_, want := model[m]
				delete(model, m)
				if got := tbl.Delete(m); got != want {
					t.Fatalf("op %d: Delete(%s) = %v, want %v", pc/2, FormatMAC(m), got, want)
				}
			case 4:
				want := 0
				for k, e := range model {
					if e.port == pi {
						delete(model, k)
						want++
					}
				}
				if got := tbl.FlushPort(p); got != want {
					t.Fatalf("op %d: FlushPort(%v) = %d, want %d", pc/2, p, got, want)
				}
			case 5:
				now = now.Add(time.Duration(arg%4) * time.Second)
				tbl.Tick(now)
			case 6:
				now = now.Add(time.Duration(arg%8) * time.Second)
				want := 0
				for k, e := range model {
					if now.Sub(e.seen) >= ageing {
						delete(model, k)
						want++
					}
				}
				if got := tbl.Expire(now); got != want {
					t.Fatalf("op %d: Expire(t0+%v) = %d, want %d", pc/2, now.Sub(t0), got, want)
				}
			case 7:
				want := len(model)
				clear(model)
				if got := tbl.Flush(); got != want {
					t.Fatalf("op %d: Flush() = %d, want %d", pc/2, got, want)
				}
			}
			if got := tbl.Len(); got != len(model) {
				t.Fatalf("op %d: Len() = %d, want %d", pc/2, got, len(model))
			}
			for pi, p := range ports {
				if got, want := quotas[p].Len(), onPort(pi); got != want {
					t.Fatalf("op %d: Quota of %v: Len() = %d, want %d", pc/2, p, got, want)
				}
			}
		}

		checkInvariants(t, tbl)
		got := tbl.Entries()
		keys := slices.Sorted(maps.Keys(model))
		if len(got) != len(keys) {
			t.Fatalf("Entries() has %d entries, want %d", len(got), len(keys))
		}
		for i, k := range keys {
			want := model[k]
			if got[i].MAC != k || got[i].Port != ports[want.port] || !got[i].LastSeen.Equal(want.seen) {
				t.Fatalf("Entries()[%d] = {%s %v %v}, want {%s %v %v}", i,
					FormatMAC(got[i].MAC), got[i].Port, got[i].LastSeen,
					FormatMAC(k), ports[want.port], want.seen)
			}
		}
	})
}
