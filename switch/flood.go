package vswitch

// flood writes a frame to every port of the network but the one it came
// in on. The port list is an immutable snapshot, so a concurrent attach or
// detach never blocks it; a port detached mid-flood returns an error from
// its closed device and counts it. Each port gets the frame as its device
// takes it: whole to a TAP, segmented for a port that takes no
// super-frames.
func (n *Network) flood(in *Port, l *lane, buf []byte) {
	for _, p := range *n.ports.Load() {
		if p != in {
			p.send(l, buf)
		}
	}
}
