package vswitch

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/device/devicetest"
)

// next returns the next record of o, failing t if none comes.
func next(t *testing.T, o *Observer) *Record {
	t.Helper()
	select {
	case r := <-o.C():
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no record from the observer within 5s")
		return nil
	}
}

func TestObserverSeesEveryFate(t *testing.T) {
	r := newRig(t, "a", "b", "c")
	o, err := r.net.Observe(ObserverConfig{Records: 8})
	if err != nil {
		t.Fatalf("Observe() = %v", err)
	}
	defer o.Close()
	learn := frame(bcast, macB, "learn")
	uni := frame(macB, macA, "unicast")
	bad := frame(bcast, "01:00:00:00:00:01", "bad source")
	r.forward("b", learn)
	r.forward("a", uni)
	r.forward("a", bad)
	tests := []struct {
		name    string
		frame   []byte
		in, out string
		flooded bool
		drop    DropReason
	}{
		{name: "flood", frame: learn, in: "b", flooded: true, drop: noDrop},
		{name: "unicast", frame: uni, in: "a", out: "b", drop: noDrop},
		{name: "dropped", frame: bad, in: "a", drop: DropBadSource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := next(t, o)
			defer o.Release(rec)
			if !bytes.Equal(rec.Frame, tt.frame[HdrLen:]) || rec.Len != len(tt.frame)-HdrLen {
				t.Fatalf("record frame = %x (len %d), want %x", rec.Frame, rec.Len, tt.frame[HdrLen:])
			}
			if rec.In != r.ports[tt.in] {
				t.Fatalf("record In = %v, want port %s", rec.In.Name(), tt.in)
			}
			if out := ""; rec.Out != nil {
				out = rec.Out.Name()
				if out != tt.out {
					t.Fatalf("record Out = %s, want %q", out, tt.out)
				}
			} else if tt.out != "" {
				t.Fatalf("record Out = nil, want %s", tt.out)
			}
			if rec.Flooded() != tt.flooded || rec.Dropped != (tt.drop != noDrop) || rec.Dropped && rec.Reason != tt.drop {
				t.Fatalf("record flooded %v dropped %v (%v), want %v, %v", rec.Flooded(), rec.Dropped, rec.Reason, tt.flooded, tt.drop)
			}
		})
	}
	if seen, lost := o.Stats(); seen != 3 || lost != 0 {
		t.Fatalf("Stats() = %d seen, %d lost; want 3, 0", seen, lost)
	}
}

// An observer nobody reads loses frames and counts them; the switch
// forwards every one regardless.
func TestObserverFallsBehind(t *testing.T) {
	r := newRig(t, "a", "b")
	o, err := r.net.Observe(ObserverConfig{Records: 4, Snap: 20})
	if err != nil {
		t.Fatal(err)
	}
	f := frame(bcast, macA, "a longer payload than the snap length keeps")
	for range 10 {
		r.forward("a", f)
	}
	if got := len(r.devs["b"].Frames()); got != 10 {
		t.Fatalf("b got %d frames, want all 10 whatever the observer", got)
	}
	if seen, lost := o.Stats(); seen != 10 || lost != 6 {
		t.Fatalf("Stats() = %d seen, %d lost; want 10, 6", seen, lost)
	}
	rec := next(t, o)
	if len(rec.Frame) != 20 || rec.Len != len(f)-HdrLen {
		t.Fatalf("record holds %d bytes of a %d-byte frame, want 20 of %d", len(rec.Frame), rec.Len, len(f)-HdrLen)
	}
	// A record given back takes the next frame.
	o.Release(rec)
	r.forward("a", f)
	if _, lost := o.Stats(); lost != 6 {
		t.Fatalf("after Release, lost = %d, want still 6", lost)
	}
	o.Close()
	if r.net.observers.Load() != nil {
		t.Fatal("the network still lists an observer after Close")
	}
	// Records filled before Close are still there, then the end.
	for range 4 {
		if _, err := o.Next(); err != nil {
			t.Fatalf("Next() after Close = %v, want the records filled before", err)
		}
	}
	if _, err := o.Next(); err != ErrObserverClosed {
		t.Fatalf("Next() = %v, want ErrObserverClosed", err)
	}
	r.forward("a", f)
	if seen, _ := o.Stats(); seen != 11 {
		t.Fatalf("a closed observer was offered a frame: seen %d, want 11", seen)
	}
}

func TestObserverConfig(t *testing.T) {
	r := newRig(t, "a")
	if _, err := r.net.Observe(ObserverConfig{Records: -1}); err == nil {
		t.Fatal("Observe(Records: -1) = nil error, want one")
	}
	if _, err := r.net.Observe(ObserverConfig{Records: 1 << 14}); err == nil {
		t.Fatal("Observe(16384 whole frames) = nil error, want one: a gigabyte")
	}
	o1, _ := r.net.Observe(ObserverConfig{Records: 1})
	o2, _ := r.net.Observe(ObserverConfig{Records: 1})
	r.forward("a", frame(bcast, macA, "x"))
	for _, o := range []*Observer{o1, o2} {
		if seen, _ := o.Stats(); seen != 1 {
			t.Fatalf("observer saw %d frames, want 1 each", seen)
		}
	}
	o1.Close()
	o1.Close()
	if obs := r.net.observers.Load(); obs == nil || len(*obs) != 1 || (*obs)[0] != o2 {
		t.Fatal("closing one observer did not leave exactly the other")
	}
	o2.Close()
}

// BenchmarkForwardObserved forwards unicast with no observer, with one
// whose reader keeps up, and with one nobody reads (every frame lost), in
// one run: with none, the path costs what it did before observers.
func BenchmarkForwardObserved(b *testing.B) {
	for _, mode := range []string{"none", "reader", "stuck"} {
		b.Run("observer="+mode, func(b *testing.B) {
			net, ports := benchSwitch(b, 2)
			net.fwd(ports[1], frame(bcast, macB, "learn"))
			l, f := onLane(frame(macB, macA, string(make([]byte, 1500-ethHdrLen))))
			switch mode {
			case "reader":
				o, _ := net.Observe(ObserverConfig{})
				b.Cleanup(o.Close)
				go func() {
					for {
						r, err := o.Next()
						if err != nil {
							return
						}
						o.Release(r)
					}
				}()
			case "stuck":
				o, _ := net.Observe(ObserverConfig{Records: 1})
				b.Cleanup(o.Close)
			}
			b.ReportAllocs()
			b.SetBytes(1500)
			for b.Loop() {
				net.forward(ports[0], l, f)
			}
		})
	}
}

// A frame flooded to a port that takes super-frames and to one that
// takes none goes whole to the first and cut to its MTU to the second;
// one the segmenter cannot cut is dropped at that port only.
func TestSendByCaps(t *testing.T) {
	r := newRig(t, "a", "tap")
	plain := devicetest.New(devicetest.Config{Caps: device.Caps{MTU: 1500}})
	pp, err := r.sw.AddPort("n", "plain", plain, PortInfo{NoSecurity: true})
	if err != nil {
		t.Fatal(err)
	}
	tso := tcp4Frame(65000)
	copy(tso[HdrLen:], mustMAC(bcast))
	r.forward("a", tso)
	if got := r.devs["tap"].Frames(); len(got) != 1 || !bytes.Equal(got[0], tso) {
		t.Fatalf("the TAP-like port got %d frames, want the super-frame whole", len(got))
	}
	segs, err := plain.Wait(45, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, s := range segs {
		if s[0] != 0 || s[1] != 0 || len(s)-HdrLen-ethHdrLen > 1500 {
			t.Fatalf("segment %d: header %x, %d bytes; want a plain frame of at most 1500 bytes of IP", i, s[:HdrLen], len(s)-HdrLen)
		}
		total += len(s) - HdrLen - 54
	}
	if want := len(tso) - HdrLen - 54; total != want {
		t.Fatalf("segments carry %d bytes of payload, want %d", total, want)
	}
	if c := pp.Counters(); c.TxFrames != uint64(len(segs)) {
		t.Fatalf("plain port tx frames = %d, want %d segments", c.TxFrames, len(segs))
	}
	// UFO is not cut by the segmenter: dropped for the plain port, whole
	// to the TAP.
	r.reset()
	plain.Reset()
	ufo := slices.Clone(tso)
	ufo[1] = device.GSOUDP
	r.forward("a", ufo)
	if got := len(r.devs["tap"].Frames()); got != 1 {
		t.Fatalf("the TAP-like port got %d frames of a UFO super-frame, want 1", got)
	}
	if d := pp.Counters().Drops["segment"]; d != 1 || len(plain.Frames()) != 0 {
		t.Fatalf("plain port: %d segment drops, %d frames; want 1 drop, no frame", d, len(plain.Frames()))
	}
}
