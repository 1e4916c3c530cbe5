package ipam

import (
	"fmt"
	"net/netip"
	"strings"
)

// defaultBase is where DefaultPool carves subnets from. Docker's default
// pools are 172.17.0.0/16 to 172.31.0.0/16 and 192.168.0.0/16, home and
// office LANs mostly use 192.168.x.0/24 and the bottom of 10.0.0.0/8, so
// 10.89.0.0/16 stays clear of docker0's 172.17.0.0/16 and of the other
// Docker networks on hosts running both. Podman also draws its named
// networks from 10.89.0.0/16; the host-route check keeps tapswitch off
// those whose bridges are up.
var defaultBase = netip.MustParsePrefix("10.89.0.0/16")

// defaultSize is the prefix length of DefaultPool's subnets: 253 ports per
// network and 256 networks.
const defaultSize = 24

// defaultBase6 is where DefaultPool6 carves IPv6 subnets from: a unique
// local /48 (RFC 4193, fd00::/8) whose 40-bit global id spells the 10.89
// of the IPv4 pool and "tsw" in hex (89:7473:77), so that it is easy to
// tell apart and collides with no well-known range. A fixed id rather
// than a random one: networks keep the same subnets on every host, as
// the IPv4 pool's do, and the host-route check keeps them off a LAN that
// happens to use it.
var defaultBase6 = netip.MustParsePrefix("fd89:7473:7700::/48")

// defaultSize6 is the prefix length of DefaultPool6's subnets: /64, the
// size SLAAC and every IPv6 host expect of a link, and 65536 networks.
const defaultSize6 = 64

// Pool is where networks created without a subnet get theirs: fixed-size
// blocks carved from a list of base prefixes. A Pool never changes once
// built, so it is safe for concurrent use.
type Pool struct {
	// bases are searched in order, each from its lowest block up.
	bases []netip.Prefix
	// size is the prefix length of the blocks handed out.
	size int
}

// NewPool returns a Pool handing out /size blocks of bases, searched in the
// order given. Each base must be a network address no longer than size,
// and a /size block must hold a gateway and a host.
func NewPool(bases []netip.Prefix, size int) (*Pool, error) {
	if len(bases) == 0 {
		return nil, fmt.Errorf("%w: no base prefixes given; give at least one, such as %s", ErrInvalidPool, defaultBase)
	}
	for _, b := range bases {
		if !b.IsValid() {
			return nil, fmt.Errorf("%w: base %s is not a valid prefix; give one such as %s", ErrInvalidPool, b, defaultBase)
		}
		if m := b.Masked(); m != b {
			return nil, fmt.Errorf("%w: base %s is not a network address; did you mean %s?", ErrInvalidPool, b, m)
		}
		if size < b.Bits() || size >= b.Addr().BitLen() {
			return nil, fmt.Errorf("%w: cannot carve /%d subnets from %s; use a size from /%d to /%d", ErrInvalidPool, size, b, b.Bits(), b.Addr().BitLen()-1)
		}
	}
	return &Pool{bases: append([]netip.Prefix(nil), bases...), size: size}, nil
}

// DefaultPool returns the pool used when none is configured: 10.89.0.0/16
// in /24 blocks.
func DefaultPool() *Pool {
	return &Pool{bases: []netip.Prefix{defaultBase}, size: defaultSize}
}

// DefaultPool6 returns the IPv6 pool used when none is configured:
// fd89:7473:7700::/48 in /64 blocks.
func DefaultPool6() *Pool {
	return &Pool{bases: []netip.Prefix{defaultBase6}, size: defaultSize6}
}

// Is6 reports whether the pool hands out IPv6 subnets.
func (p *Pool) Is6() bool { return p.bases[0].Addr().Is6() }

// Next returns the first block, in base order, that overlaps nothing in
// inUse: the other networks' subnets and the host's routes. Default
// routes (/0) are ignored: every address is under them, and a network's
// own more specific route wins over them.
func (p *Pool) Next(inUse []netip.Prefix) (netip.Prefix, error) {
	for _, base := range p.bases {
		block := netip.PrefixFrom(base.Addr(), p.size)
		for {
			q, ok := firstOverlap(block, inUse)
			if !ok {
				return block, nil
			}
			// Jump past whichever ends later: a route wider than a block
			// rules out every block under it, a narrower one only this block.
			// Each jump passes q for good, so the search takes at most
			// len(inUse)+1 steps per base.
			end := lastAddr(block)
			if q.Bits() < p.size {
				end = lastAddr(q)
			}
			start := end.Next()
			if !start.IsValid() || !base.Contains(start) {
				break
			}
			block = netip.PrefixFrom(start, p.size)
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: every /%d in %s overlaps a network or route in use", ErrPoolExhausted, p.size, p.basesString())
}

// firstOverlap returns the first prefix in inUse that overlaps block,
// skipping default routes.
func firstOverlap(block netip.Prefix, inUse []netip.Prefix) (netip.Prefix, bool) {
	for _, q := range inUse {
		if q.Bits() > 0 && block.Overlaps(q) {
			return q, true
		}
	}
	return netip.Prefix{}, false
}

// basesString lists the bases for messages.
func (p *Pool) basesString() string {
	s := make([]string, len(p.bases))
	for i, b := range p.bases {
		s[i] = b.String()
	}
	return strings.Join(s, ", ")
}
