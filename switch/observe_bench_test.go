package vswitch

import "testing"

// BenchmarkForwardCapture forwards 1500-byte unicast from port 0 to 1
// with the capture machinery in the states it can be in when this flow
// is not captured: none anywhere ("off"); a capture of another network
// of the switch, read ("other-network"); a capture of another port of
// this network ("other-port"); a capture of this network whose filter
// refuses the flow ("filtered"). The first two are the forwarding path
// as it is without captures: one atomic load of a nil pointer.
func BenchmarkForwardCapture(b *testing.B) {
	for _, mode := range []string{"off", "other-network", "other-port", "filtered"} {
		b.Run("capture="+mode, func(b *testing.B) {
			net, ports := benchSwitch(b, 3)
			net.fwd(ports[1], frame(bcast, macB, "learn"))
			l, f := onLane(frame(macB, macA, string(make([]byte, 1500-ethHdrLen))))
			var o *Observer
			var err error
			switch mode {
			case "other-network":
				other, _ := net.sw.CreateNetwork("other")
				o, err = other.Observe(ObserverConfig{})
			case "other-port":
				o, err = net.Observe(ObserverConfig{Port: ports[2]})
			case "filtered":
				o, err = net.Observe(ObserverConfig{Match: func(f []byte) bool { return f[23] == 1 }}) // ICMP only
			}
			if err != nil {
				b.Fatal(err)
			}
			if o != nil {
				b.Cleanup(o.Close)
			}
			b.ReportAllocs()
			b.SetBytes(1500)
			for b.Loop() {
				net.forward(ports[0], l, f)
			}
			if o != nil {
				if seen, _ := o.Stats(); seen != 0 {
					b.Fatalf("the observer saw %d frames, want none of this flow", seen)
				}
			}
		})
	}
}
