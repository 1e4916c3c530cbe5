package fdb

import (
	"fmt"
	"testing"
	"time"
)

// quotaTable returns a table that counts ports A, B and C, each in its own
// Quota with the given limit (0: none), and the Quotas.
func quotaTable(cfg Config, limit int) (*Table[testPort], map[*testPort]*Quota) {
	qs := map[*testPort]*Quota{portA: {}, portB: {}, portC: {}}
	for _, q := range qs {
		q.SetLimit(limit)
	}
	return NewWithQuota(cfg, func(p *testPort) *Quota { return qs[p] }), qs
}

// checkQuotas verifies that every Quota holds exactly the number of
// entries pointing at its port.
func checkQuotas(t *testing.T, tbl *Table[testPort], qs map[*testPort]*Quota) {
	t.Helper()
	per := map[*testPort]int{}
	for _, e := range tbl.Entries() {
		per[e.Port]++
	}
	for p, q := range qs {
		if got, want := q.Len(), per[p]; got != want {
			t.Fatalf("Quota of %v: Len() = %d, want %d (entries on the port)", p, got, want)
		}
	}
}

func TestQuota(t *testing.T) {
	const limit = 3
	tbl, qs := quotaTable(Config{AgeingTime: 10 * time.Second}, limit)
	tbl.Tick(t0)
	learn := func(m int, p *testPort, want Result) {
		t.Helper()
		if got := tbl.Learn(mac(m), p); got != want {
			t.Fatalf("Learn(%s, %v) = %v, want %v", FormatMAC(mac(m)), p, got, want)
		}
		checkQuotas(t, tbl, qs)
		checkInvariants(t, tbl)
	}
	lookup := func(m int, want *testPort) {
		t.Helper()
		if got := tbl.Lookup(mac(m)); got != want {
			t.Fatalf("Lookup(%s) = %v, want %v", FormatMAC(mac(m)), got, want)
		}
	}

	for i := range limit {
		learn(i, portA, Learned)
	}
	// A is full: a new MAC is refused and nothing is learned.
	learn(10, portA, PortLimitReached)
	lookup(10, nil)
	// Refreshing what A has still works.
	learn(0, portA, Refreshed)
	// Other ports are not bound by A's quota.
	learn(10, portB, Learned)
	// A MAC moving to a full port is refused and stays where it was.
	learn(10, portA, PortLimitReached)
	lookup(10, portB)
	if got := tbl.Stats().PortLimitDrops; got != 2 {
		t.Fatalf("Stats().PortLimitDrops = %d, want 2", got)
	}
	// A move away from A frees a place on A.
	learn(0, portB, Moved)
	learn(11, portA, Learned)
	// Delete.
	if !tbl.Delete(mac(11)) {
		t.Fatalf("Delete(%s) = false, want true", FormatMAC(mac(11)))
	}
	checkQuotas(t, tbl, qs)
	// Ageing: entries of A seen at t0 go, B's seen later stay.
	tbl.Tick(t0.Add(5 * time.Second))
	learn(10, portB, Refreshed)
	learn(0, portB, Refreshed)
	if got := tbl.Expire(t0.Add(10 * time.Second)); got != 2 {
		t.Fatalf("Expire = %d, want 2", got)
	}
	checkQuotas(t, tbl, qs)
	if got := qs[portA].Len(); got != 0 {
		t.Fatalf("A has %d entries after expiry, want 0", got)
	}
	// FlushPort.
	if got := tbl.FlushPort(portB); got != 2 {
		t.Fatalf("FlushPort(B) = %d, want 2", got)
	}
	checkQuotas(t, tbl, qs)
	// Lowering the limit keeps what is there, refuses more.
	for i := range limit {
		learn(20+i, portC, Learned)
	}
	qs[portC].SetLimit(1)
	learn(30, portC, PortLimitReached)
	lookup(20, portC)
	qs[portC].SetLimit(0)
	learn(30, portC, Learned)
	// Flush empties every quota.
	tbl.Flush()
	checkQuotas(t, tbl, qs)
}

// TestQuotaTableLimit checks the order of the two limits: a full port is
// told so even when the table is full too, and a port with room is told
// the table is full.
func TestQuotaTableLimit(t *testing.T) {
	tbl, qs := quotaTable(Config{Limit: 4}, 2)
	tbl.Learn(mac(0), portA)
	tbl.Learn(mac(1), portA)
	tbl.Learn(mac(2), portB)
	tbl.Learn(mac(3), portB)
	if got := tbl.Learn(mac(4), portA); got != PortLimitReached {
		t.Fatalf("Learn(new, A) with A and table full = %v, want %v", got, PortLimitReached)
	}
	if got := tbl.Learn(mac(4), portC); got != LimitReached {
		t.Fatalf("Learn(new, C) with table full = %v, want %v", got, LimitReached)
	}
	// A move needs no room in the table, only in the port's quota.
	if got := tbl.Learn(mac(0), portC); got != Moved {
		t.Fatalf("Learn(%s, C) = %v, want %v", FormatMAC(mac(0)), got, Moved)
	}
	checkQuotas(t, tbl, qs)
}

// TestQuotaRebuild checks that the counts survive rebuilds of the probe
// array: churn through a small table leaves tombstones that rebuilds shed.
func TestQuotaRebuild(t *testing.T) {
	tbl, qs := quotaTable(Config{Limit: 16}, 0)
	ports := []*testPort{portA, portB, portC}
	for i := range 2000 {
		tbl.Learn(mac(i), ports[i%3])
		if i >= 10 {
			tbl.Delete(mac(i - 10))
		}
	}
	if tbl.Stats().Rebuilds == 0 {
		t.Fatalf("no rebuild happened; the test does not test what it says")
	}
	checkQuotas(t, tbl, qs)
	checkInvariants(t, tbl)
}

func TestQuotaNil(t *testing.T) {
	// A port for which quota returns nil is neither counted nor bounded.
	q := &Quota{}
	q.SetLimit(1)
	tbl := NewWithQuota(Config{}, func(p *testPort) *Quota {
		if p == portA {
			return q
		}
		return nil
	})
	for i := range 5 {
		if got := tbl.Learn(mac(i), portB); got != Learned {
			t.Fatalf("Learn(%s, B) = %v, want %v", FormatMAC(mac(i)), got, Learned)
		}
	}
	if got := tbl.Learn(mac(0), portA); got != Moved {
		t.Fatalf("Learn(%s, A) = %v, want %v", FormatMAC(mac(0)), got, Moved)
	}
	if got := tbl.Learn(mac(1), portA); got != PortLimitReached {
		t.Fatalf("Learn(%s, A) = %v, want %v", FormatMAC(mac(1)), got, PortLimitReached)
	}
	if got := tbl.Learn(mac(0), portB); got != Moved {
		t.Fatalf("Learn(%s, B) = %v, want %v", FormatMAC(mac(0)), got, Moved)
	}
	if got := q.Len(); got != 0 {
		t.Fatalf("A's Len() = %d after moving its only MAC away, want 0", got)
	}
}

func TestQuotaSetLimit(t *testing.T) {
	for _, tt := range []struct{ set, want int }{{5, 5}, {0, 0}, {-3, 0}} {
		t.Run(fmt.Sprint(tt.set), func(t *testing.T) {
			var q Quota
			q.SetLimit(tt.set)
			if got := q.Limit(); got != tt.want {
				t.Fatalf("SetLimit(%d); Limit() = %d, want %d", tt.set, got, tt.want)
			}
		})
	}
}
