package fdb

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// testPort stands in for the switch's port type.
type testPort struct{ name string }

func (p *testPort) String() string {
	if p == nil {
		return "<nil>"
	}
	return p.name
}

var (
	portA = &testPort{"A"}
	portB = &testPort{"B"}
	portC = &testPort{"C"}
)

// t0 is an arbitrary fixed instant, so tests do not depend on the wall clock.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// mac returns a locally administered unicast address numbered n.
func mac(n int) uint64 { return 0x02_00_00_00_00_00 | uint64(n) }

// checkInvariants verifies the probe array against the table's counters:
// every entry is reachable from its hash position, keys are unique, and
// the counts of live and used slots are what the table believes.
func checkInvariants[P any](t *testing.T, tbl *Table[P]) {
	t.Helper()
	tbl.mu.Lock()
	defer tbl.mu.Unlock()
	a := tbl.slots.Load()
	live, used, nils := 0, 0, 0
	seen := make(map[uint64]bool)
	for i := range a.s {
		e := a.s[i].Load()
		switch {
		case e == nil:
			nils++
			continue
		case e == tbl.tomb:
			used++
			continue
		}
		used++
		live++
		if seen[e.key] {
			t.Fatalf("key %s in two slots", FormatMAC(e.key))
		}
		seen[e.key] = true
		if e.port.Load() == nil {
			t.Fatalf("entry %s in slot %d has a nil port", FormatMAC(e.key), i)
		}
		if got := a.find(e.key); got != e {
			t.Fatalf("find(%s) = %p, want the entry in slot %d (%p)", FormatMAC(e.key), got, i, e)
		}
	}
	if got := int(tbl.live.Load()); got != live {
		t.Fatalf("live = %d, want %d entries counted in slots", got, live)
	}
	if tbl.used != used {
		t.Fatalf("used = %d, want %d non-nil slots", tbl.used, used)
	}
	if used > a.maxUsed {
		t.Fatalf("used = %d, above maxUsed %d", used, a.maxUsed)
	}
	if nils == 0 {
		t.Fatalf("no nil slot left: probes would not end")
	}
	if live > tbl.Limit() {
		t.Fatalf("live = %d, above Limit() %d", live, tbl.Limit())
	}
}

func TestLearnLookup(t *testing.T) {
	type step struct {
		op   string // "learn", "lookup" or "delete"
		mac  uint64
		port *testPort // learn: the ingress port; lookup: the port wanted
		want any       // learn: Result; delete: bool
	}
	tests := []struct {
		name      string
		steps     []step
		wantLen   int
		wantMoves uint64
	}{
		{
			name:  "miss on empty table",
			steps: []step{{op: "lookup", mac: mac(1), port: nil}},
		},
		{
			name: "learn then hit",
			steps: []step{
				{op: "learn", mac: mac(1), port: portA, want: Learned},
				{op: "lookup", mac: mac(1), port: portA},
				{op: "lookup", mac: mac(2), port: nil},
			},
			wantLen: 1,
		},
		{
			name: "refresh keeps one entry",
			steps: []step{
				{op: "learn", mac: mac(1), port: portA, want: Learned},
				{op: "learn", mac: mac(1), port: portA, want: Refreshed},
				{op: "learn", mac: mac(1), port: portA, want: Refreshed},
				{op: "lookup", mac: mac(1), port: portA},
			},
			wantLen: 1,
		},
		{
			name: "move repoints",
			steps: []step{
				{op: "learn", mac: mac(1), port: portA, want: Learned},
				{op: "learn", mac: mac(1), port: portB, want: Moved},
				{op: "lookup", mac: mac(1), port: portB},
				{op: "learn", mac: mac(1), port: portB, want: Refreshed},
				{op: "learn", mac: mac(1), port: portA, want: Moved},
				{op: "lookup", mac: mac(1), port: portA},
			},
			wantLen:   1,
			wantMoves: 2,
		},
		{
			name: "ports kept apart",
			steps: []step{
				{op: "learn", mac: mac(1), port: portA, want: Learned},
				{op: "learn", mac: mac(2), port: portB, want: Learned},
				{op: "learn", mac: mac(3), port: portC, want: Learned},
				{op: "lookup", mac: mac(1), port: portA},
				{op: "lookup", mac: mac(2), port: portB},
				{op: "lookup", mac: mac(3), port: portC},
			},
			wantLen: 3,
		},
		{
			name: "bits above 48 ignored",
			steps: []step{
				{op: "learn", mac: 1<<60 | mac(1), port: portA, want: Learned},
				{op: "lookup", mac: mac(1), port: portA},
				{op: "lookup", mac: 1<<52 | mac(1), port: portA},
				{op: "learn", mac: mac(1), port: portA, want: Refreshed},
			},
			wantLen: 1,
		},
		{
			name: "all-ones key is an address like any other",
			steps: []step{
				{op: "lookup", mac: ^uint64(0), port: nil},
				{op: "learn", mac: macMask, port: portA, want: Learned},
				{op: "lookup", mac: macMask, port: portA},
				{op: "delete", mac: macMask, want: true},
				{op: "lookup", mac: ^uint64(0), port: nil},
			},
		},
		{
			name: "delete",
			steps: []step{
				{op: "learn", mac: mac(1), port: portA, want: Learned},
				{op: "learn", mac: mac(2), port: portA, want: Learned},
				{op: "delete", mac: mac(1), want: true},
				{op: "delete", mac: mac(1), want: false},
				{op: "lookup", mac: mac(1), port: nil},
				{op: "lookup", mac: mac(2), port: portA},
				{op: "learn", mac: mac(1), port: portB, want: Learned},
				{op: "lookup", mac: mac(1), port: portB},
			},
			wantLen: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := New[testPort](Config{})
			for i, s := range tt.steps {
				switch s.op {
				case "learn":
					if got := tbl.Learn(s.mac, s.port); got != s.want {
						t.Fatalf("step %d: Learn(%s, %v) = %v, want %v", i, FormatMAC(s.mac), s.port, got, s.want)
					}
				case "lookup":
					if got := tbl.Lookup(s.mac); got != s.port {
						t.Fatalf("step %d: Lookup(%s) = %v, want %v", i, FormatMAC(s.mac), got, s.port)
					}
				case "delete":
					if got := tbl.Delete(s.mac); got != s.want {
						t.Fatalf("step %d: Delete(%s) = %v, want %v", i, FormatMAC(s.mac), got, s.want)
					}
				default:
					t.Fatalf("step %d: unknown op %q", i, s.op)
				}
			}
			if got := tbl.Len(); got != tt.wantLen {
				t.Fatalf("Len() = %d, want %d", got, tt.wantLen)
			}
			if got := tbl.Stats().Moves; got != tt.wantMoves {
				t.Fatalf("Stats().Moves = %d, want %d", got, tt.wantMoves)
			}
			checkInvariants(t, tbl)
		})
	}
}

func TestLearnNilPortPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatalf("Learn(%s, nil) did not panic", FormatMAC(mac(1)))
		}
	}()
	New[testPort](Config{}).Learn(mac(1), nil)
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		wantLimit  int
		wantAgeing time.Duration
	}{
		{"zero value", Config{}, DefaultLimit, DefaultAgeingTime},
		{"negative", Config{Limit: -1, AgeingTime: -time.Second}, DefaultLimit, DefaultAgeingTime},
		{"explicit", Config{Limit: 10, AgeingTime: time.Minute}, 10, time.Minute},
		{"above MaxLimit", Config{Limit: MaxLimit + 1}, MaxLimit, DefaultAgeingTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := New[testPort](tt.cfg)
			if got := tbl.Limit(); got != tt.wantLimit {
				t.Fatalf("Limit() = %d, want %d", got, tt.wantLimit)
			}
			if got := tbl.AgeingTime(); got != tt.wantAgeing {
				t.Fatalf("AgeingTime() = %v, want %v", got, tt.wantAgeing)
			}
			if n, min := len(tbl.slots.Load().s), 2*tt.wantLimit; n < min || n&(n-1) != 0 {
				t.Fatalf("%d slots for limit %d, want a power of two >= %d", n, tt.wantLimit, min)
			}
		})
	}
}

func TestLimit(t *testing.T) {
	for _, limit := range []int{1, 2, 7, 64, 1000} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			tbl := New[testPort](Config{Limit: limit})
			for i := range limit {
				if got := tbl.Learn(mac(i), portA); got != Learned {
					t.Fatalf("Learn(%s, A) = %v, want %v", FormatMAC(mac(i)), got, Learned)
				}
			}
			over := mac(limit)
			if got := tbl.Learn(over, portA); got != LimitReached {
				t.Fatalf("Learn(%s, A) at limit = %v, want %v", FormatMAC(over), got, LimitReached)
			}
			if got := tbl.Lookup(over); got != nil {
				t.Fatalf("Lookup(%s) = %v, want nil", FormatMAC(over), got)
			}
			if got := tbl.Stats().LimitDrops; got != 1 {
				t.Fatalf("Stats().LimitDrops = %d, want 1", got)
			}
			if got := tbl.Len(); got != limit {
				t.Fatalf("Len() = %d, want %d", got, limit)
			}
			// Known addresses keep working at the limit.
			for i := range limit {
				if got := tbl.Lookup(mac(i)); got != portA {
					t.Fatalf("Lookup(%s) = %v, want A", FormatMAC(mac(i)), got)
				}
				if got := tbl.Learn(mac(i), portA); got != Refreshed {
					t.Fatalf("Learn(%s, A) = %v, want %v", FormatMAC(mac(i)), got, Refreshed)
				}
			}
			if got := tbl.Learn(mac(0), portB); got != Moved {
				t.Fatalf("Learn(%s, B) at limit = %v, want %v", FormatMAC(mac(0)), got, Moved)
			}
			if got := tbl.Lookup(mac(0)); got != portB {
				t.Fatalf("Lookup(%s) = %v, want B", FormatMAC(mac(0)), got)
			}
			if got := tbl.FlushPort(portB); got != 1 {
				t.Fatalf("FlushPort(B) = %d, want 1", got)
			}
			if got := tbl.Learn(over, portC); got != Learned {
				t.Fatalf("Learn(%s, C) after FlushPort = %v, want %v", FormatMAC(over), got, Learned)
			}
			if got := tbl.Learn(mac(limit+1), portC); got != LimitReached {
				t.Fatalf("Learn(%s, C) = %v, want %v", FormatMAC(mac(limit+1)), got, LimitReached)
			}
			if got := tbl.Stats().LimitDrops; got != 2 {
				t.Fatalf("Stats().LimitDrops = %d, want 2", got)
			}
			checkInvariants(t, tbl)
		})
	}
}

func TestExpire(t *testing.T) {
	const ageing = 10 * time.Second
	// Addresses 1-4 are learned at t0; 1 and 2 are seen again at t0+6s.
	tests := []struct {
		name      string
		at        time.Duration // Expire(t0 + at)
		wantGone  int
		wantAlive []int
	}{
		{"before ageing", 9 * time.Second, 0, []int{1, 2, 3, 4}},
		{"at ageing", 10 * time.Second, 2, []int{1, 2}},
		{"refreshed still young", 15 * time.Second, 2, []int{1, 2}},
		{"refreshed aged", 16 * time.Second, 4, nil},
		{"clock behind entries", -time.Hour, 0, []int{1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := New[testPort](Config{AgeingTime: ageing})
			tbl.Tick(t0)
			for i := 1; i <= 4; i++ {
				tbl.Learn(mac(i), portA)
			}
			tbl.Tick(t0.Add(6 * time.Second))
			tbl.Learn(mac(1), portA) // refresh
			tbl.Learn(mac(2), portB) // a move counts as being seen
			if got := tbl.Expire(t0.Add(tt.at)); got != tt.wantGone {
				t.Fatalf("Expire(t0+%v) = %d, want %d", tt.at, got, tt.wantGone)
			}
			if got := tbl.Len(); got != len(tt.wantAlive) {
				t.Fatalf("Len() = %d, want %d", got, len(tt.wantAlive))
			}
			for _, i := range tt.wantAlive {
				if got := tbl.Lookup(mac(i)); got == nil {
					t.Fatalf("Lookup(%s) = nil, want a port", FormatMAC(mac(i)))
				}
			}
			if got := tbl.Stats().Expired; got != uint64(tt.wantGone) {
				t.Fatalf("Stats().Expired = %d, want %d", got, tt.wantGone)
			}
			checkInvariants(t, tbl)
		})
	}
}

func TestRefreshOnlyWhenClockMoves(t *testing.T) {
	tbl := New[testPort](Config{})
	tbl.Tick(t0)
	tbl.Learn(mac(1), portA)
	e := tbl.slots.Load().find(mac(1))
	for range 3 {
		tbl.Learn(mac(1), portA)
		if got := e.seen.Load(); got != t0.UnixNano() {
			t.Fatalf("seen = %d after refresh without Tick, want %d", got, t0.UnixNano())
		}
	}
	t1 := t0.Add(time.Second)
	tbl.Tick(t1)
	tbl.Learn(mac(1), portA)
	if got := e.seen.Load(); got != t1.UnixNano() {
		t.Fatalf("seen = %d after Tick and refresh, want %d", got, t1.UnixNano())
	}
}

func TestFlushPort(t *testing.T) {
	ports := []*testPort{portA, portB, portC}
	// Address i lives on ports[i%3]; 9 addresses, 3 per port.
	tests := []struct {
		name  string
		flush *testPort
		want  int
	}{
		{"A", portA, 3},
		{"B", portB, 3},
		{"C", portC, 3},
		{"unknown port", &testPort{"D"}, 0},
		{"nil", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := New[testPort](Config{})
			for i := range 9 {
				tbl.Learn(mac(i), ports[i%3])
			}
			if got := tbl.FlushPort(tt.flush); got != tt.want {
				t.Fatalf("FlushPort(%v) = %d, want %d", tt.flush, got, tt.want)
			}
			if got := tbl.FlushPort(tt.flush); got != 0 {
				t.Fatalf("second FlushPort(%v) = %d, want 0", tt.flush, got)
			}
			for i := range 9 {
				want := ports[i%3]
				if want == tt.flush {
					want = nil
				}
				if got := tbl.Lookup(mac(i)); got != want {
					t.Fatalf("Lookup(%s) = %v, want %v", FormatMAC(mac(i)), got, want)
				}
			}
			if got := tbl.Len(); got != 9-tt.want {
				t.Fatalf("Len() = %d, want %d", got, 9-tt.want)
			}
			checkInvariants(t, tbl)
		})
	}
}

func TestFlush(t *testing.T) {
	for _, n := range []int{0, 1, 100, 1024} {
		t.Run(fmt.Sprintf("entries=%d", n), func(t *testing.T) {
			tbl := New[testPort](Config{Limit: 1024})
			for i := range n {
				tbl.Learn(mac(i), portA)
			}
			if got := tbl.Flush(); got != n {
				t.Fatalf("Flush() = %d, want %d", got, n)
			}
			if got := tbl.Len(); got != 0 {
				t.Fatalf("Len() = %d after Flush, want 0", got)
			}
			for i := range n {
				if got := tbl.Lookup(mac(i)); got != nil {
					t.Fatalf("Lookup(%s) = %v after Flush, want nil", FormatMAC(mac(i)), got)
				}
			}
			checkInvariants(t, tbl)
			if got := tbl.Learn(mac(0), portB); got != Learned {
				t.Fatalf("Learn(%s, B) after Flush = %v, want %v", FormatMAC(mac(0)), got, Learned)
			}
		})
	}
}

func TestEntries(t *testing.T) {
	tbl := New[testPort](Config{})
	if got := tbl.Entries(); len(got) != 0 {
		t.Fatalf("Entries() on empty table = %v, want none", got)
	}
	t1 := t0.Add(5 * time.Second)
	tbl.Tick(t0)
	tbl.Learn(mac(3), portA)
	tbl.Learn(mac(1), portB)
	tbl.Learn(mac(2), portC)
	tbl.Tick(t1)
	tbl.Learn(mac(2), portC)
	tbl.Learn(mac(1), portA)
	tbl.Learn(mac(4), portC)
	tbl.Learn(mac(4), portC)
	tbl.Delete(mac(4))

	want := []Entry[testPort]{
		{MAC: mac(1), Port: portA, LastSeen: t1},
		{MAC: mac(2), Port: portC, LastSeen: t1},
		{MAC: mac(3), Port: portA, LastSeen: t0},
	}
	got := tbl.Entries()
	if len(got) != len(want) {
		t.Fatalf("Entries() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].MAC != want[i].MAC || got[i].Port != want[i].Port || !got[i].LastSeen.Equal(want[i].LastSeen) {
			t.Fatalf("Entries()[%d] = {%s %v %v}, want {%s %v %v}", i,
				FormatMAC(got[i].MAC), got[i].Port, got[i].LastSeen,
				FormatMAC(want[i].MAC), want[i].Port, want[i].LastSeen)
		}
	}
}

func TestMACText(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		key  uint64
		text string
	}{
		{"zero", []byte{0, 0, 0, 0, 0, 0}, 0, "00:00:00:00:00:00"},
		{"broadcast", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0xffffffffffff, "ff:ff:ff:ff:ff:ff"},
		{"byte order", []byte{0x02, 0x42, 0xac, 0x11, 0x00, 0x02}, 0x0242ac110002, "02:42:ac:11:00:02"},
		{"longer slice", []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f, 0x99}, 0xaabbccddee0f, "aa:bb:cc:dd:ee:0f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Key(tt.b); got != tt.key {
				t.Fatalf("Key(% x) = %#x, want %#x", tt.b, got, tt.key)
			}
			if got := FormatMAC(tt.key); got != tt.text {
				t.Fatalf("FormatMAC(%#x) = %q, want %q", tt.key, got, tt.text)
			}
			if got, err := ParseMAC(tt.text); err != nil || got != tt.key {
				t.Fatalf("ParseMAC(%q) = %#x, %v, want %#x, nil", tt.text, got, err, tt.key)
			}
			var b [6]byte
			PutKey(b[:], tt.key)
			if got := Key(b[:]); got != tt.key {
				t.Fatalf("Key(PutKey(%#x)) = %#x", tt.key, got)
			}
		})
	}
}

func TestParseMACErrors(t *testing.T) {
	for _, s := range []string{"", "nope", "02:42:ac:11:00", "02:00:5e:10:00:00:00:01"} {
		t.Run(s, func(t *testing.T) {
			if got, err := ParseMAC(s); !errors.Is(err, ErrBadMAC) {
				t.Fatalf("ParseMAC(%q) = %#x, %v, want %v", s, got, err, ErrBadMAC)
			}
		})
	}
}

func TestKeyShortSlicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatalf("Key of 5 bytes did not panic")
		}
	}()
	Key(make([]byte, 5))
}

func TestResultString(t *testing.T) {
	tests := []struct {
		r    Result
		want string
	}{
		{Refreshed, "refreshed"},
		{Learned, "learned"},
		{Moved, "moved"},
		{LimitReached, "limit-reached"},
		{PortLimitReached, "port-limit-reached"},
		{Result(200), "Result(200)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.r.String(); got != tt.want {
				t.Fatalf("Result(%d).String() = %q, want %q", uint8(tt.r), got, tt.want)
			}
		})
	}
}

// TestChurn streams many distinct addresses through a small table, as a
// MAC flood or a busy network would, removing old ones by each means the
// table has. Tombstones pile up and must be cleared by rebuilds without
// losing or duplicating an entry.
func TestChurn(t *testing.T) {
	const (
		limit  = 64
		window = 48
		total  = 20000
	)
	tests := []struct {
		name string
		// evict removes address i-window after address i was learned, and
		// returns how many entries went.
		evict func(tbl *Table[testPort], ports []*testPort, i int) int
		// tick is the clock for address i, for evictions by age.
		tick func(i int) time.Time
	}{
		{
			name: "delete",
			evict: func(tbl *Table[testPort], _ []*testPort, i int) int {
				if tbl.Delete(mac(i - window)) {
					return 1
				}
				return 0
			},
		},
		{
			name: "expire",
			evict: func(tbl *Table[testPort], _ []*testPort, i int) int {
				return tbl.Expire(t0.Add(time.Duration(i) * time.Second))
			},
			tick: func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) },
		},
		{
			name: "flush port",
			evict: func(tbl *Table[testPort], ports []*testPort, i int) int {
				return tbl.FlushPort(ports[(i-window)%len(ports)])
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := New[testPort](Config{Limit: limit, AgeingTime: window * time.Second})
			ports := make([]*testPort, total)
			for i := range ports {
				ports[i] = &testPort{fmt.Sprint(i)}
			}
			for round := range 3 {
				base := round * total
				for i := range total {
					if tt.tick != nil {
						tbl.Tick(tt.tick(base + i))
					}
					if got := tbl.Learn(mac(base+i), ports[i]); got != Learned {
						t.Fatalf("Learn(%s) = %v, want %v", FormatMAC(mac(base+i)), got, Learned)
					}
					if i >= window {
						if got := tt.evict(tbl, ports, base+i); got != 1 {
							t.Fatalf("evicting %s removed %d, want 1", FormatMAC(mac(base+i-window)), got)
						}
					}
					if want := min(i+1, window); tbl.Len() != want {
						t.Fatalf("Len() = %d after %d learns, want %d", tbl.Len(), i+1, want)
					}
					if i%997 == 0 || i == total-1 {
						for j := max(0, i-window-8); j <= i; j++ {
							want := ports[j]
							if j <= i-window {
								want = nil
							}
							if got := tbl.Lookup(mac(base + j)); got != want {
								t.Fatalf("Lookup(%s) = %v, want %v", FormatMAC(mac(base+j)), got, want)
							}
						}
						checkInvariants(t, tbl)
					}
				}
				if got := tbl.Flush(); got != window {
					t.Fatalf("Flush() = %d, want %d", got, window)
				}
				if tt.tick != nil {
					// Restart the clock so the next round ages the same way.
					tbl.Tick(t0)
				}
			}
			st := tbl.Stats()
			if st.Rebuilds == 0 {
				t.Fatalf("Stats().Rebuilds = 0 after %d inserts into %d slots, want some", 3*total, len(tbl.slots.Load().s))
			}
			if st.Learned != 3*total {
				t.Fatalf("Stats().Learned = %d, want %d", st.Learned, 3*total)
			}
			t.Logf("%d rebuilds for %d inserts", st.Rebuilds, st.Learned)
		})
	}
}

// TestRebuildKeepsReaders checks what lock-free readers rely on: a reader
// still probing the array from before a rebuild finds every entry, and
// sees removals made after it.
func TestRebuildKeepsReaders(t *testing.T) {
	tbl := New[testPort](Config{Limit: 100})
	for i := range 100 {
		tbl.Learn(mac(i), portA)
	}
	old := tbl.slots.Load()
	tbl.mu.Lock()
	tbl.rebuild()
	tbl.mu.Unlock()
	if tbl.slots.Load() == old {
		t.Fatalf("rebuild did not replace the array")
	}
	tbl.Learn(mac(5), portB)
	tbl.Delete(mac(6))
	for i := range 100 {
		want := portA
		switch i {
		case 5:
			want = portB
		case 6:
			want = nil
		}
		var got *testPort
		if e := old.find(mac(i)); e != nil {
			got = e.port.Load()
		}
		if got != want {
			t.Fatalf("Lookup(%s) through the old array = %v, want %v", FormatMAC(mac(i)), got, want)
		}
		if got := tbl.Lookup(mac(i)); got != want {
			t.Fatalf("Lookup(%s) = %v, want %v", FormatMAC(mac(i)), got, want)
		}
	}
	checkInvariants(t, tbl)
}

func TestZeroAllocs(t *testing.T) {
	tbl := New[testPort](Config{})
	for i := range 1024 {
		tbl.Learn(mac(i), portA)
	}
	full := New[testPort](Config{Limit: 1})
	full.Learn(mac(0), portA)
	var q Quota
	q.SetLimit(1)
	portFull := NewWithQuota(Config{}, func(*testPort) *Quota { return &q })
	portFull.Learn(mac(0), portA)
	var sink *testPort
	n := 0
	tests := []struct {
		name string
		f    func()
	}{
		{"Lookup hit", func() { sink = tbl.Lookup(mac(n % 1024)); n++ }},
		{"Lookup miss", func() { sink = tbl.Lookup(mac(5000 + n%1024)); n++ }},
		{"Learn refresh", func() { tbl.Learn(mac(n%1024), portA); n++ }},
		{"Learn refresh after Tick", func() {
			tbl.Tick(t0.Add(time.Duration(n) * time.Second))
			tbl.Learn(mac(n%1024), portA)
			n++
		}},
		// A MAC flood at the limit must not cost memory either.
		{"Learn new at limit", func() { full.Learn(mac(2000+n%1024), portA); n++ }},
		{"Learn new at port limit", func() { portFull.Learn(mac(2000+n%1024), portA); n++ }},
		{"Learn move", func() {
			p := portA
			if n&1 == 0 {
				p = portB
			}
			tbl.Learn(mac(7), p)
			n++
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, tt.f); got != 0 {
				t.Fatalf("%s: %v allocs per run, want 0", tt.name, got)
			}
		})
	}
	_ = sink
}
