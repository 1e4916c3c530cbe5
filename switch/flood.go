package vswitch

// flood writes b to every port of the network but the one it came in on.
// The port list is an immutable snapshot, so a concurrent attach or detach
// never blocks it; a port detached mid-flood returns an error from its
// closed device and counts it.
func (n *Network) flood(in *Port, qi int, b []byte) {
	for _, p := range *n.ports.Load() {
		if p != in {
			p.send(qi, b)
		}
	}
}
