package vswitch

import (
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/device/devicetest"
	"github.com/tapswitch/tapswitch/fdb"
)

// stationMAC is a locally administered unicast address numbered n.
func stationMAC(n int) string {
	return fdb.FormatMAC(0x02_00_00_01_00_00 | uint64(n))
}

func TestMACLimit(t *testing.T) {
	r := newRig(t)
	r.addInfo(t, "n", "a", PortInfo{NoSecurity: true, MACLimit: 3})
	r.add(t, "n", "b")
	r.add(t, "n", "c")
	a, b := r.ports["a"], r.ports["b"]
	// send forwards a broadcast from port from with source MAC n, and
	// reports whether it was flooded.
	send := func(from string, n int) bool {
		t.Helper()
		r.reset()
		f := frame(bcast, stationMAC(n), "x")
		r.forward(from, f)
		var others []string
		for _, p := range r.net.Ports() {
			if p.Name() != from {
				others = append(others, p.Name())
			}
		}
		got := r.receivers(f, others...)
		if len(got) != 0 && len(got) != len(others) {
			t.Fatalf("frame from %s reached %v, want all of %v or none", from, got, others)
		}
		return len(got) != 0
	}
	counts := func(wantA, wantB int) {
		t.Helper()
		if a.MACs() != wantA || b.MACs() != wantB {
			t.Fatalf("MACs(): a %d, b %d; want %d, %d", a.MACs(), b.MACs(), wantA, wantB)
		}
	}
	lookup := func(n int, want *Port) {
		t.Helper()
		if got := r.net.fdb.Lookup(fdb.Key(mustMAC(stationMAC(n)))); got != want {
			t.Fatalf("Lookup(%s) = %v, want %v", stationMAC(n), got, want)
		}
	}
	limitDrops := func() uint64 { return a.Counters().Drops["mac_limit"] }

	if got := a.MACLimit(); got != 3 {
		t.Fatalf("MACLimit() = %d, want 3", got)
	}
	for n := 1; n <= 3; n++ {
		if !send("a", n) {
			t.Fatalf("frame from MAC %d of 3 not flooded", n)
		}
	}
	counts(3, 0)
	if send("a", 4) {
		t.Fatal("frame from a fourth MAC flooded, want it dropped at the limit")
	}
	if limitDrops() != 1 {
		t.Fatalf("drops %v, want mac_limit=1", a.Counters().Drops)
	}
	lookup(4, nil)
	if !send("a", 1) {
		t.Fatal("frame from a known MAC at the limit not flooded")
	}

	// A MAC moving to b frees a place on a.
	send("b", 1)
	counts(2, 1)
	if !send("a", 4) {
		t.Fatal("frame from a new MAC after a move away not flooded")
	}
	counts(3, 1)
	// A MAC moving onto a full port is refused, and stays where it was.
	if send("a", 1) {
		t.Fatal("MAC of b moving onto full port a: frame flooded, want it dropped")
	}
	if limitDrops() != 2 {
		t.Fatalf("drops %v, want mac_limit=2", a.Counters().Drops)
	}
	lookup(1, b)
	counts(3, 1)

	// Delete and ageing give places back.
	r.net.fdb.Delete(fdb.Key(mustMAC(stationMAC(4))))
	counts(2, 1)
	r.net.fdb.Expire(time.Now().Add(r.net.fdb.AgeingTime() + time.Minute))
	counts(0, 0)

	// Detaching flushes the port's MACs and their count.
	send("b", 7)
	send("b", 8)
	counts(0, 2)
	if err := r.sw.RemovePort(b); err != nil {
		t.Fatal(err)
	}
	counts(0, 0)

	// Changing the limit at run time.
	send("a", 1)
	send("a", 2)
	a.SetMACLimit(1)
	if got := a.MACLimit(); got != 1 {
		t.Fatalf("MACLimit() = %d after SetMACLimit(1), want 1", got)
	}
	if got := a.Info().MACLimit; got != 1 {
		t.Fatalf("Info().MACLimit = %d after SetMACLimit(1), want 1", got)
	}
	if send("a", 3) || !send("a", 2) {
		t.Fatal("after lowering the limit: want known MACs through, new ones dropped")
	}
	for _, tt := range []struct{ set, want int }{
		{0, DefaultPortMACLimit},
		{-1, r.net.fdb.Limit()},
		{5, 5},
	} {
		a.SetMACLimit(tt.set)
		if got := a.MACLimit(); got != tt.want {
			t.Fatalf("SetMACLimit(%d): MACLimit() = %d, want %d", tt.set, got, tt.want)
		}
	}
	if !send("a", 3) {
		t.Fatal("after raising the limit: new MAC dropped")
	}
}

func TestMACLimitDefault(t *testing.T) {
	r := newSecureRig(t)
	for name, p := range r.ports {
		if got := p.MACLimit(); got != DefaultPortMACLimit {
			t.Errorf("port %s: MACLimit() = %d, want DefaultPortMACLimit (%d)", name, got, DefaultPortMACLimit)
		}
	}
	r.forward("a", frame(bcast, macA, "x"))
	if got := r.ports["a"].MACs(); got != 1 {
		t.Fatalf("MACs() = %d after one frame, want 1", got)
	}
}

// TestFDBFull fills a network's table: frames from new sources are then
// dropped, not flooded, while hosts already known keep talking.
func TestFDBFull(t *testing.T) {
	r := &rig{sw: New(Config{Logger: quietLogger(), FDB: fdb.Config{Limit: 4}}), ports: map[string]*Port{}, devs: map[string]*devicetest.Device{}}
	t.Cleanup(r.sw.Close)
	var err error
	if r.net, err = r.sw.CreateNetwork("n"); err != nil {
		t.Fatal(err)
	}
	r.add(t, "n", "a")
	r.add(t, "n", "b")
	r.add(t, "n", "c")
	r.forward("a", frame(bcast, macA, "learn"))
	r.forward("b", frame(bcast, macB, "learn"))
	r.forward("c", frame(bcast, macC, "learn"))
	r.forward("a", frame(bcast, stationMAC(1), "learn"))
	if n := r.net.fdb.Len(); n != 4 {
		t.Fatalf("fdb Len() = %d, want 4 (full)", n)
	}

	tests := []struct {
		name  string
		from  string
		frame []byte
		want  []string
		drop  string
	}{
		{"new source dropped", "c", frame(bcast, stationMAC(2), "x"), nil, "fdb_full"},
		{"new source to a known host dropped", "a", frame(macB, stationMAC(3), "x"), nil, "fdb_full"},
		{"known hosts unicast", "a", frame(macB, macA, "x"), []string{"b"}, ""},
		{"and back", "b", frame(macA, macB, "x"), []string{"a"}, ""},
		{"known host floods", "c", frame(bcast, macC, "x"), []string{"a", "b"}, ""},
		{"known host to unknown destination floods", "b", frame(stationMAC(9), macB, "x"), []string{"a", "c"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.reset()
			before := r.ports[tt.from].Counters().Drops["fdb_full"]
			r.forward(tt.from, tt.frame)
			if got := r.receivers(tt.frame, "a", "b", "c"); !slicesEqual(got, tt.want) {
				t.Fatalf("frame from %s reached %v, want %v", tt.from, got, tt.want)
			}
			dropped := r.ports[tt.from].Counters().Drops["fdb_full"] - before
			if want := tt.drop == "fdb_full"; (dropped == 1) != want || dropped > 1 {
				t.Fatalf("fdb_full drops grew by %d, want dropped = %v", dropped, want)
			}
		})
	}
	if n := r.net.fdb.Len(); n != 4 {
		t.Fatalf("fdb Len() = %d, want 4: nothing learned or pushed out", n)
	}
	// Room comes back when an entry goes.
	r.net.fdb.Delete(fdb.Key(mustMAC(stationMAC(1))))
	f := frame(bcast, stationMAC(2), "x")
	r.reset()
	r.forward("c", f)
	if got := r.receivers(f, "a", "b"); len(got) != 2 {
		t.Fatalf("after a Delete, frame from a new source reached %v, want [a b]", got)
	}
}
