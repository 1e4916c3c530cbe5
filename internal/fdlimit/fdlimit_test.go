package fdlimit

import (
	"sync"
	"testing"
)

func TestBudget(t *testing.T) {
	b := New(10)
	if !b.Acquire(6) {
		t.Fatal("6 of 10 refused")
	}
	if b.Acquire(6) {
		t.Fatal("12 of 10 admitted")
	}
	if got := b.Refused(); got != 1 {
		t.Fatalf("refused %d, want 1", got)
	}
	if !b.Acquire(4) || b.Used() != 10 {
		t.Fatalf("used %d, want 10", b.Used())
	}
	b.Release(6)
	if b.Used() != 4 || !b.Acquire(6) {
		t.Fatalf("after release: used %d", b.Used())
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := New(100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for range 50 {
		wg.Go(func() {
			for range 10 {
				if b.Acquire(1) {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if admitted != 100 || b.Used() != 100 || b.Refused() != 400 {
		t.Fatalf("admitted %d, used %d, refused %d; want 100, 100, 400", admitted, b.Used(), b.Refused())
	}
}

func TestNilBudget(t *testing.T) {
	var b *Budget
	if !b.Acquire(1 << 20) {
		t.Fatal("nil budget refused")
	}
	b.Release(1)
}

func TestProcess(t *testing.T) {
	p := Process()
	if p.Limit() <= 0 || p != Process() {
		t.Fatalf("process budget %d", p.Limit())
	}
}

func TestReserveOf(t *testing.T) {
	tests := []struct{ limit, reserve, budget int }{
		{1024, 1024, 256},
		{2048, 1024, 1024},
		{20000, 2500, 17500},
		{1 << 20, 1 << 17, 1<<20 - 1<<17},
	}
	for _, tt := range tests {
		if got := ReserveOf(tt.limit); got != tt.reserve {
			t.Errorf("ReserveOf(%d) = %d, want %d", tt.limit, got, tt.reserve)
		}
		if got := budgetOf(tt.limit); got != tt.budget {
			t.Errorf("budgetOf(%d) = %d, want %d", tt.limit, got, tt.budget)
		}
	}
}

func TestNROpen(t *testing.T) {
	n, err := NROpen()
	if err != nil {
		t.Skipf("no %s: %v", nrOpenPath, err)
	}
	if n < 1024 {
		t.Fatalf("NROpen() = %d, want at least 1024", n)
	}
}
