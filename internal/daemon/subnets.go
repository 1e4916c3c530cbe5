package daemon

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/ipam"
)

// A network has one subnet, or two of different families (a dual-stack
// network): n.subnets, the IPv4 one first, and n.subnet the first of
// them. The gateway holds an address in each, and a port an address of
// each that the network hands out (see addresses).

// subnetFor returns the subnet of n that holds a, or nil.
func (n *network) subnetFor(a netip.Addr) *ipam.Subnet {
	for _, s := range n.subnets {
		if s.Contains(a) {
			return s
		}
	}
	return nil
}

// contains reports whether a is inside one of n's subnets.
func (n *network) contains(a netip.Addr) bool { return n.subnetFor(a) != nil }

// release gives a back to the subnet that holds it.
func (n *network) release(a netip.Addr) {
	if s := n.subnetFor(a); s != nil {
		s.Release(a)
	}
}

// prefixes returns n's subnets' prefixes.
func (n *network) prefixes() []netip.Prefix {
	out := make([]netip.Prefix, len(n.subnets))
	for i, s := range n.subnets {
		out[i] = s.Prefix()
	}
	return out
}

// gatewayPrefixes are the gateway's addresses with their subnets'
// lengths, as the gateway interface holds them.
func (n *network) gatewayPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, len(n.subnets))
	for i, s := range n.subnets {
		out[i] = netip.PrefixFrom(s.Gateway(), s.Prefix().Bits())
	}
	return out
}

// subnetsString lists n's subnets for messages and events.
func (n *network) subnetsString() string {
	var s []string
	for _, p := range n.prefixes() {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

// gatewaysString lists n's gateway addresses for logs and events.
func (n *network) gatewaysString() string {
	var s []string
	for _, sub := range n.subnets {
		s = append(s, sub.Gateway().String())
	}
	return strings.Join(s, ",")
}

// subnetViews is n's subnets as the API shows them.
func (n *network) subnetViews() []api.NetworkSubnet {
	out := make([]api.NetworkSubnet, len(n.subnets))
	for i, s := range n.subnets {
		out[i] = api.NetworkSubnet{Subnet: s.Prefix().String(), Gateway: s.Gateway().String()}
	}
	return out
}

// newSubnetsLocked makes the subnets a create request asks for: each
// prefix given, checked against the other networks and the host's routes,
// and a free one of the pool of its family for each asked from the pool.
func (d *Daemon) newSubnetsLocked(req api.NetworkCreateRequest) ([]*ipam.Subnet, error) {
	specs, err := apiserver.NetworkSubnets(req)
	if err != nil {
		return nil, err
	}
	inUse, err := d.inUseLocked()
	if err != nil {
		return nil, err
	}
	var out []*ipam.Subnet
	for _, sp := range specs {
		prefix := sp.Prefix
		if sp.FromPool() {
			pool := d.pool
			if sp.IPv6 {
				pool = d.pool6
			}
			if prefix, err = pool.Next(slices.Collect(maps.Values(inUse))); err != nil {
				return nil, ipamError(err)
			}
		} else if err := ipam.CheckOverlap(prefix, inUse); err != nil {
			return nil, ipamError(err)
		}
		sub, err := ipam.NewSubnet(prefix, sp.Gateway)
		if err != nil {
			return nil, ipamError(err)
		}
		out = append(out, sub)
	}
	return out, nil
}

// addresses returns the addresses a port on n gets and those of them
// that n's IPAM now holds for it. With none asked for, it gets one of
// each of n's subnets. Each asked for inside a subnet is reserved there,
// and a port that asks for an address in one subnet of a dual-stack
// network gets one of the other family too unless it asks for that as
// well (as Docker's --ip without --ip6). Addresses outside every subnet
// are the user's own business, as on a plain wire, and a port with only
// such addresses gets none of the network's.
func addresses(n *network, asked []netip.Prefix) (ips []netip.Prefix, owned []netip.Addr, err error) {
	release := func() {
		for _, a := range owned {
			n.release(a)
		}
	}
	inSubnet := make(map[*ipam.Subnet]bool)
	for _, ip := range asked {
		a := ip.Addr()
		sub := n.subnetFor(a)
		if sub == nil {
			continue
		}
		bits := sub.Prefix().Bits()
		if ip.Bits() != bits {
			release()
			return nil, nil, invalid("address %s is in network %q's subnet %s: give it as %s", ip, n.name, sub.Prefix(), netip.PrefixFrom(a, bits))
		}
		if err := sub.Reserve(a); err != nil {
			release()
			if errors.Is(err, ipam.ErrInUse) {
				return nil, nil, api.Errorf(api.ErrConflict, api.ReasonAddressInUse, "address %s already in use in network %q", a, n.name)
			}
			return nil, nil, fmt.Errorf("network %q: %w", n.name, ipamError(err))
		}
		inSubnet[sub] = true
		owned = append(owned, a)
	}
	ips = slices.Clone(asked)
	if len(asked) > 0 && len(owned) == 0 {
		return ips, nil, nil
	}
	for _, sub := range n.subnets {
		if inSubnet[sub] {
			continue
		}
		a, err := sub.Allocate()
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("network %q: %w", n.name, ipamError(err))
		}
		owned = append(owned, a)
		ips = append(ips, netip.PrefixFrom(a, sub.Prefix().Bits()))
	}
	return ips, owned, nil
}

// defaultGateways are the gateways a namespace's first port on n routes
// through by default: n's gateway of each family the port has an address
// of in n's subnets (local), in n's order.
func defaultGateways(n *network, local []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, sub := range n.subnets {
		if slices.ContainsFunc(local, sub.Contains) {
			out = append(out, sub.Gateway())
		}
	}
	return out
}
