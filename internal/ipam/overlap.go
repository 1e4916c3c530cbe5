package ipam

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// Overlaps reports whether a and b share any address. Prefixes of
// different families never overlap.
func Overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// CheckOverlap returns ErrOverlap if p shares an address with any prefix
// in existing. Each key names what holds its prefix as the user should
// read it, such as `network "front"` or `route dev eth0`; the error names
// the first overlapping one in key order, so the message is the same on
// every run. Default routes (/0) are ignored, as in Pool.Next.
func CheckOverlap(p netip.Prefix, existing map[string]netip.Prefix) error {
	for _, name := range slices.Sorted(maps.Keys(existing)) {
		q := existing[name]
		if q.Bits() > 0 && Overlaps(p, q) {
			return fmt.Errorf("%w: subnet %s overlaps %s (%s)", ErrOverlap, p, name, q)
		}
	}
	return nil
}
