package ipam

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"sync"
)

// Subnet is the address space of one network: its prefix, its gateway and
// the addresses handed out to ports. It is safe for concurrent use.
type Subnet struct {
	// prefix is the subnet in canonical (masked) form.
	prefix netip.Prefix
	// gateway is the host's address on the network; it is never handed out.
	gateway netip.Addr
	// first and last bound the host addresses: the prefix without its
	// network address and, for IPv4, its broadcast address. In /31 and
	// /127 subnets they are the whole prefix.
	first, last netip.Addr
	// capacity is the number of host addresses other than the gateway.
	// It is meaningless when huge is set.
	capacity uint64
	// huge is set for subnets with more host addresses than a uint64
	// counts (IPv6 prefixes shorter than /64). Such a subnet cannot fill.
	huge bool

	mu sync.Mutex
	// allocated holds every address handed out by Allocate or Reserve.
	allocated map[netip.Addr]struct{}
	// next is where Allocate starts looking; always within [first, last].
	next netip.Addr
}

// NewSubnet returns an empty Subnet for prefix. A zero gateway means the
// first host address. The prefix must be a network address (host bits
// zero) with room for the gateway and at least one more host, and share
// no address with a range a network must not live in (CheckSubnetRange).
func NewSubnet(prefix netip.Prefix, gateway netip.Addr) (*Subnet, error) {
	return makeSubnet(prefix, gateway, true)
}

// makeSubnet is NewSubnet; checkRange false takes a prefix in an unsafe
// range, for a network saved before such ranges were refused.
func makeSubnet(prefix netip.Prefix, gateway netip.Addr, checkRange bool) (*Subnet, error) {
	if !prefix.IsValid() {
		return nil, fmt.Errorf("%w: no prefix given; give one such as 10.20.0.0/24", ErrInvalidSubnet)
	}
	if m := prefix.Masked(); m != prefix {
		return nil, fmt.Errorf("%w: %s is not a network address; did you mean %s?", ErrInvalidSubnet, prefix, m)
	}
	if prefix.Addr().Is4In6() {
		// The kernel carries these as IPv4, so the network would not be the
		// IPv6 network its prefix claims. A masked prefix can only keep the
		// ::ffff: marker with at least 96 bits, so the IPv4 form exists.
		v4 := netip.PrefixFrom(prefix.Addr().Unmap(), prefix.Bits()-96)
		return nil, fmt.Errorf("%w: %s is an IPv4-mapped IPv6 prefix; give it in IPv4 form: %s", ErrInvalidSubnet, prefix, v4)
	}
	if checkRange {
		if err := CheckSubnetRange(prefix); err != nil {
			return nil, err
		}
	}
	bitLen := prefix.Addr().BitLen()
	hostBits := bitLen - prefix.Bits()
	if hostBits < 1 {
		return nil, fmt.Errorf("%w: %s holds a single address, too few for a gateway and a host; use /%d or a shorter prefix", ErrInvalidSubnet, prefix, bitLen-1)
	}

	s := &Subnet{
		prefix:    prefix,
		first:     prefix.Addr(),
		last:      lastAddr(prefix),
		allocated: make(map[netip.Addr]struct{}),
	}
	// Point-to-point subnets (hostBits 1) have no network or broadcast
	// address to skip.
	excluded := uint64(0)
	if hostBits > 1 {
		s.first = s.first.Next()
		excluded++
		if prefix.Addr().Is4() {
			s.last = s.last.Prev()
			excluded++
		}
	}
	switch {
	case hostBits > 64:
		s.huge = true
	case hostBits == 64:
		// 2^64 - excluded - gateway, without overflowing on the way.
		s.capacity = math.MaxUint64 - excluded
	default:
		s.capacity = 1<<hostBits - excluded - 1
	}
	s.next = s.first

	if !gateway.IsValid() {
		gateway = s.first
	}
	if gateway.Zone() != "" {
		return nil, fmt.Errorf("%w: %s has an IPv6 zone; give the gateway without it", ErrInvalidGateway, gateway)
	}
	if !prefix.Contains(gateway) {
		return nil, fmt.Errorf("%w: %s is not in %s; choose a gateway inside the subnet", ErrInvalidGateway, gateway, prefix)
	}
	if r := s.role(gateway); r != "" {
		return nil, fmt.Errorf("%w: %s is %s of %s; choose a host address such as %s", ErrInvalidGateway, gateway, r, prefix, s.first)
	}
	s.gateway = gateway
	return s, nil
}

// Prefix returns the subnet's prefix.
func (s *Subnet) Prefix() netip.Prefix { return s.prefix }

// Gateway returns the subnet's gateway address.
func (s *Subnet) Gateway() netip.Addr { return s.gateway }

// Contains reports whether a is inside the subnet's prefix, whether or not
// it is a host address.
func (s *Subnet) Contains(a netip.Addr) bool { return s.prefix.Contains(a) }

// Allocate hands out the lowest free host address at or after the cursor,
// wrapping to the start of the subnet, and moves the cursor past it.
func (s *Subnet) Allocate() (netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free() == 0 {
		return netip.Addr{}, fmt.Errorf("%w: no free address left in %s; detach a port or use a larger subnet", ErrFull, s.prefix)
	}
	// A free address exists, so this ends, after at most one probe per
	// allocated address plus the gateway.
	a := s.next
	for s.taken(a) {
		a = s.after(a)
	}
	s.allocated[a] = struct{}{}
	s.next = s.after(a)
	return a, nil
}

// Reserve takes a for a port with a static address. The cursor does not
// move: static addresses do not change the order of automatic ones.
func (s *Subnet) Reserve(a netip.Addr) error {
	if err := s.checkHost(a); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.allocated[a]; ok {
		return fmt.Errorf("%w: %s is already assigned in %s; choose another address or let one be assigned automatically", ErrInUse, a, s.prefix)
	}
	s.allocated[a] = struct{}{}
	return nil
}

// Release gives a back. Releasing an address that is not allocated,
// including the gateway, does nothing, so a retried detach is harmless.
func (s *Subnet) Release(a netip.Addr) {
	s.mu.Lock()
	delete(s.allocated, a)
	s.mu.Unlock()
}

// Allocated returns the allocated addresses in ascending order.
func (s *Subnet) Allocated() []netip.Addr {
	s.mu.Lock()
	out := slices.Collect(maps.Keys(s.allocated))
	s.mu.Unlock()
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Free returns how many addresses Allocate can still hand out, or
// math.MaxUint64 for subnets with more than that (IPv6 shorter than /64).
func (s *Subnet) Free() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.free()
}

// free is Free with s.mu held.
func (s *Subnet) free() uint64 {
	if s.huge {
		return math.MaxUint64
	}
	return s.capacity - uint64(len(s.allocated))
}

// taken reports whether Allocate must pass over host address a. s.mu held.
func (s *Subnet) taken(a netip.Addr) bool {
	if a == s.gateway {
		return true
	}
	_, ok := s.allocated[a]
	return ok
}

// after returns the host address that follows a, wrapping from last to first.
func (s *Subnet) after(a netip.Addr) netip.Addr {
	if a == s.last {
		return s.first
	}
	return a.Next()
}

// role names what a, an address inside the prefix, is reserved as, or
// returns "" for an address a port may have.
func (s *Subnet) role(a netip.Addr) string {
	switch {
	case a == s.gateway:
		return "the gateway"
	case a.Less(s.first):
		return "the network address"
	case s.last.Less(a):
		return "the broadcast address"
	}
	return ""
}

// isHost reports whether a lies within [first, last].
func (s *Subnet) isHost(a netip.Addr) bool {
	return s.prefix.Contains(a) && !a.Less(s.first) && !s.last.Less(a)
}

// checkHost returns why a cannot be given to a port, or nil if it can
// (when free).
func (s *Subnet) checkHost(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: no address given; give one inside %s", ErrOutOfRange, s.prefix)
	case a.Zone() != "":
		return fmt.Errorf("%w: %s has an IPv6 zone; give the address without it", ErrOutOfRange, a)
	case !s.prefix.Contains(a):
		return fmt.Errorf("%w: %s is not in %s; choose an address inside the subnet", ErrOutOfRange, a, s.prefix)
	}
	if r := s.role(a); r != "" {
		return fmt.Errorf("%w: %s is %s of %s; choose another address", ErrReserved, a, r, s.prefix)
	}
	return nil
}

// lastAddr returns the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		setHostBits(b[:], p.Bits())
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	setHostBits(b[:], p.Bits())
	return netip.AddrFrom16(b)
}

// setHostBits sets every bit of b after the first bits.
func setHostBits(b []byte, bits int) {
	for i := range b {
		if bits >= 8 {
			bits -= 8
			continue
		}
		b[i] |= 0xff >> bits
		bits = 0
	}
}
