package vswitch

import (
	"bytes"
	"testing"
)

// An observer of one port takes what that port sends and is sent,
// flooded frames included, and nothing of the others' traffic; a Match
// that refuses a frame keeps it from being seen or lost.
func TestObserverOfOnePortAndMatch(t *testing.T) {
	r := newRig(t, "a", "b", "c")
	o, err := r.net.Observe(ObserverConfig{Records: 16, Port: r.ports["a"],
		Match: func(f []byte) bool { return !bytes.Contains(f, []byte("skip")) }})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	r.forward("b", frame(bcast, macB, "b floods, a is sent it"))
	r.forward("c", frame(bcast, macC, "c floods, a is sent it"))
	r.forward("a", frame(macB, macA, "a to b"))
	r.forward("b", frame(macC, macB, "b to c: not a's"))
	r.forward("c", frame(macB, macC, "c to b: not a's"))
	r.forward("a", frame(macB, macA, "a to b, skip"))
	r.forward("a", frame(bcast, "01:00:00:00:00:01", "a's dropped frame"))
	want := []string{"b floods", "c floods", "a to b", "a's dropped"}
	for _, w := range want {
		rec := next(t, o)
		if !bytes.Contains(rec.Frame, []byte(w)) {
			t.Fatalf("record %q, want the frame %q", rec.Frame[14:], w)
		}
		o.Release(rec)
	}
	if seen, lost := o.Stats(); seen != uint64(len(want)) || lost != 0 {
		t.Fatalf("Stats() = %d seen, %d lost; want %d, 0", seen, lost, len(want))
	}
	other, _ := r.sw.CreateNetwork("m")
	if _, err := other.Observe(ObserverConfig{Port: r.ports["a"]}); err == nil {
		t.Fatal("Observe() of network m with a port of n = nil error, want one")
	}
}
