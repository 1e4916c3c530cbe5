package vswitch

import (
	"testing"
)

// FuzzForward feeds arbitrary buffers, as a TAP might return them, into the
// forwarding path of a three-port network. Whatever the bytes, forward
// must not panic, must never write back to the ingress port, must write
// a frame whole or not at all, and must only forward frames long enough
// to hold an Ethernet header.
func FuzzForward(f *testing.F) {
	f.Add(frame(bcast, macA, "x"), uint8(0))
	f.Add(frame(macB, macA, "x"), uint8(1))
	f.Add(frame(macA, macB, "x")[:HdrLen+13], uint8(2))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, from uint8) {
		r := newRig(t, "a", "b", "c")
		names := []string{"a", "b", "c"}
		in := names[int(from)%3]
		// Learn a few stations first so unicast paths run too.
		r.forward("b", frame(bcast, macB, ""))
		r.forward("c", frame(bcast, macC, ""))
		r.reset()
		r.forward(in, b)
		for _, n := range names {
			got := r.devs[n].got()
			if n == in && len(got) > 0 {
				t.Fatalf("frame written back to its ingress port %s", in)
			}
			for _, w := range got {
				if string(w) != string(b) {
					t.Fatalf("port %s got %x, want the frame unchanged", n, w)
				}
				if len(w) < HdrLen+ethHdrLen {
					t.Fatalf("port %s got a %d-byte runt", n, len(w))
				}
			}
		}
	})
}
