package taptest

import "slices"

// Names returns the names of the interfaces in netns ("" for the
// caller's own namespace), open or left persistent, sorted.
func (m *Maker) Names(netns string) []string {
	ns, err := keyOf(netns, "")
	if err != nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.links {
		if k.netns == ns.netns {
			out = append(out, k.name)
		}
	}
	slices.Sort(out)
	return out
}
