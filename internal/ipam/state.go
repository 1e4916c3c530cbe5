package ipam

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// SubnetState is a Subnet as the daemon saves it in its state file.
type SubnetState struct {
	// Prefix is the subnet, such as "10.20.0.0/24".
	Prefix string `json:"prefix"`
	// Gateway is the gateway address.
	Gateway string `json:"gateway"`
	// Allocated lists the addresses held by ports, in ascending order.
	Allocated []string `json:"allocated"`
	// Next is the allocation cursor. Saving it keeps a restarted daemon
	// from handing out recently released addresses early. Empty means the
	// first host address.
	Next string `json:"next,omitempty"`
}

// State returns s in the form RestoreSubnet reads.
func (s *Subnet) State() SubnetState {
	// One critical section, so the cursor saved matches the addresses saved.
	s.mu.Lock()
	addrs := slices.Collect(maps.Keys(s.allocated))
	next := s.next
	s.mu.Unlock()
	slices.SortFunc(addrs, netip.Addr.Compare)

	st := SubnetState{
		Prefix:    s.prefix.String(),
		Gateway:   s.gateway.String(),
		Allocated: make([]string, len(addrs)),
		Next:      next.String(),
	}
	for i, a := range addrs {
		st.Allocated[i] = a.String()
	}
	return st
}

// RestoreSubnet rebuilds a Subnet from saved state. It checks the state as
// it would a user's request, so a damaged state file yields
// ErrInvalidState rather than a subnet that hands out an address twice.
func RestoreSubnet(st SubnetState) (*Subnet, error) {
	s, err := restoreSubnet(st)
	if err != nil {
		return nil, fmt.Errorf("%w: subnet %q: %w; correct or remove this network in the state file", ErrInvalidState, st.Prefix, err)
	}
	return s, nil
}

func restoreSubnet(st SubnetState) (*Subnet, error) {
	prefix, err := netip.ParsePrefix(st.Prefix)
	if err != nil {
		return nil, err
	}
	if st.Gateway == "" {
		return nil, errors.New("no gateway recorded")
	}
	gw, err := netip.ParseAddr(st.Gateway)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	// A network saved before unsafe ranges were refused comes back; the
	// daemon warns about it (CheckSubnetRange).
	s, err := makeSubnet(prefix, gw, false)
	if err != nil {
		return nil, err
	}
	for _, str := range st.Allocated {
		a, err := netip.ParseAddr(str)
		if err != nil {
			return nil, fmt.Errorf("allocated address: %w", err)
		}
		if err := s.Reserve(a); err != nil {
			return nil, fmt.Errorf("allocated address %s: %w", str, err)
		}
	}
	if st.Next != "" {
		n, err := netip.ParseAddr(st.Next)
		if err != nil {
			return nil, fmt.Errorf("next address: %w", err)
		}
		if !s.isHost(n) {
			return nil, fmt.Errorf("next address %s is not a host address of %s", st.Next, prefix)
		}
		s.next = n
	}
	return s, nil
}
