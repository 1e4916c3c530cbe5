package daemon

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/tapswitch/tapswitch/internal/docker"
	"github.com/tapswitch/tapswitch/internal/ipam"
)

// IPv6 on the Docker driver's networks (docker network create --ipv6).
// A Docker network with IPv6 data is a dual-stack tapswitch network: its
// IPv4 subnet first, its IPv6 one second, each with Docker's gateway (or
// the gateway tapswitch's IPAM driver gave the pool). An endpoint gets
// an address of each: the one Docker gives, held in tapswitch's IPAM too,
// or one the network hands out when Docker gives none. Docker 20.10 makes
// no network without IPv4 (its IPAM always gives IPv4 data), so an
// IPv6-only Docker network is refused with the reason.

// minIPv6MTU is the least MTU of a link that carries IPv6 (RFC 8200).
const minIPv6MTU = 1280

// checkDockerV6 refuses what a tapswitch network cannot be made of: more
// than one IPv6 subnet, --ipv6 without an IPv6 subnet, or an MTU under
// IPv6's minimum on a network with one.
func checkDockerV6(dn docker.Network, mtu int) error {
	switch {
	case len(dn.V6) > 1:
		return fmt.Errorf("the network has %d IPv6 subnets; a tapswitch network has one of each family: give one IPv4 and one IPv6 --subnet", len(dn.V6))
	case dn.IPv6 && len(dn.V6) == 0:
		return errors.New("--ipv6 without an IPv6 subnet: give one with --subnet (such as fd00:1::/64), or use --ipam-driver with tapswitch's driver for one from its IPv6 pool")
	case len(dn.V6) == 1 && mtu != 0 && mtu < minIPv6MTU:
		return fmt.Errorf("-o %s=%d: the network has an IPv6 subnet, which needs an MTU of at least %d", OptionMTU, mtu, minIPv6MTU)
	}
	return nil
}

// subnet6 is n's IPv6 subnet, or nil.
func (n *network) subnet6() *ipam.Subnet {
	for _, s := range n.subnets {
		if s.Prefix().Addr().Is6() {
			return s
		}
	}
	return nil
}

// subnetOfFamily is n's subnet of the family (IPv6 when v6), or nil.
func (n *network) subnetOfFamily(v6 bool) *ipam.Subnet {
	for _, s := range n.subnets {
		if s.Prefix().Addr().Is6() == v6 {
			return s
		}
	}
	return nil
}

// dockerEndpointAddrLocked is ep's address of one family (IPv6 when v6)
// on n: addr, as Docker gave it, held in n's IPAM unless the IPAM
// driver's pool of n handed it out; or, when Docker gave none, one n
// hands out. Addresses n's IPAM now holds for ep are added to ep.Owned.
// It is invalid when n has no subnet of the family and Docker gave none.
func (d *Daemon) dockerEndpointAddrLocked(n *network, nid string, addr netip.Prefix, v6 bool, ep *dockerEndpoint) (netip.Prefix, error) {
	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	sub := n.subnetOfFamily(v6)
	if sub == nil {
		if addr.IsValid() {
			return netip.Prefix{}, fmt.Errorf("address %s: network %s has no %s subnet; create it with one (--subnet, and --ipv6 for IPv6)", addr, docker.ShortID(nid), family)
		}
		return netip.Prefix{}, nil
	}
	if !addr.IsValid() {
		a, err := sub.Allocate()
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("network %s: %w", docker.ShortID(nid), ipamError(err))
		}
		ep.Owned = append(ep.Owned, a.String())
		return netip.PrefixFrom(a, sub.Prefix().Bits()), nil
	}
	if !sub.Contains(addr.Addr()) {
		return netip.Prefix{}, fmt.Errorf("address %s is outside network %s's %s subnet %s", addr, docker.ShortID(nid), family, sub.Prefix())
	}
	if d.givenByPoolLocked(n, addr.Addr()) {
		return addr, nil
	}
	// Docker's own IPAM chose it: tapswitch's IPAM holds it too.
	if err := sub.Reserve(addr.Addr()); err != nil {
		if errors.Is(err, ipam.ErrInUse) {
			return netip.Prefix{}, fmt.Errorf("address %s is already in use on tapswitch network %q; give the container another --ip/--ip6, or leave it to the IPAM", addr.Addr(), n.name)
		}
		return netip.Prefix{}, fmt.Errorf("address %s: %w", addr.Addr(), err)
	}
	ep.Owned = append(ep.Owned, addr.Addr().String())
	return addr, nil
}

// poolOf is the pool the IPAM driver takes a free subnet of: the IPv6
// one (--ipv6-pool) for an IPv6 pool Docker asks for.
func (d *Daemon) poolOf(v6 bool) *ipam.Pool {
	if v6 {
		return d.pool6
	}
	return d.pool
}

// poolSubnetOf is the subnet of n (nil for none) that an IPAM pool of the
// state file, whose subnet is prefix, was made into; nil if n has none
// such.
func poolSubnetOf(n *network, prefix string) *ipam.Subnet {
	if n == nil {
		return nil
	}
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return nil
	}
	for _, s := range n.subnets {
		if s.Prefix() == p {
			return s
		}
	}
	return nil
}
