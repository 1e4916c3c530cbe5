package apiserver

import (
	"net/netip"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/ipam"
)

// Pool families: a SubnetRequest whose Subnet is one of these asks for a
// free subnet of that family from the daemon's pool.
const (
	PoolIPv4 = "ipv4"
	PoolIPv6 = "ipv6"
)

// SubnetSpec is one subnet of a network create request, checked: a
// prefix with an optional gateway, or a free subnet of a family from the
// pool (Prefix not valid, IPv6 telling the family).
type SubnetSpec struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
	IPv6    bool
}

// FromPool reports whether the subnet is to come from the pool.
func (s SubnetSpec) FromPool() bool { return !s.Prefix.IsValid() }

// Family names the subnet's family for messages.
func (s SubnetSpec) Family() string {
	if s.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// NetworkSubnets returns the subnets a network create request asks for,
// the IPv4 one first: Subnet and Gateway, then each of Subnets. A
// request that names none asks for a free IPv4 subnet. A network has at
// most one subnet of each family; every prefix and gateway is checked as
// the network's address management will take it (a network address with
// room for a gateway and a host, outside the unsafe ranges; the gateway
// a host address inside it). What depends on the daemon's state
// (overlap with other networks and host routes) is the daemon's to check.
func NetworkSubnets(r api.NetworkCreateRequest) ([]SubnetSpec, error) {
	asked := r.Subnets
	if r.Subnet != "" || r.Gateway != "" {
		asked = append([]api.SubnetRequest{{Subnet: r.Subnet, Gateway: r.Gateway}}, asked...)
	}
	if len(asked) > 2 {
		return nil, invalid("%d subnets: a network has at most one IPv4 and one IPv6 subnet", len(asked))
	}
	var out []SubnetSpec
	for _, a := range asked {
		s, err := subnetSpec(a)
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			if o.IPv6 == s.IPv6 {
				return nil, invalid("two %s subnets (%s and %s): a network has at most one subnet of each family; give one IPv4 and one IPv6 subnet", s.Family(), specString(o), specString(s))
			}
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return []SubnetSpec{{}}, nil
	}
	if len(out) == 2 && out[0].IPv6 {
		out[0], out[1] = out[1], out[0]
	}
	return out, nil
}

func specString(s SubnetSpec) string {
	if s.FromPool() {
		return "one from the pool"
	}
	return s.Prefix.String()
}

func subnetSpec(a api.SubnetRequest) (SubnetSpec, error) {
	switch a.Subnet {
	case "":
		if a.Gateway != "" {
			return SubnetSpec{}, api.Errorf(api.ErrInvalid, api.ReasonGatewayWithoutSubnet, "gateway %s without a subnet", quote(a.Gateway))
		}
		return SubnetSpec{}, invalid("a subnet entry without a subnet: give a prefix such as 10.20.0.0/24 or fd00:20::/64, or %q or %q for one from the pool", PoolIPv4, PoolIPv6)
	case PoolIPv4, PoolIPv6:
		if a.Gateway != "" {
			return SubnetSpec{}, api.Errorf(api.ErrInvalid, api.ReasonGatewayWithoutSubnet, "gateway %s for a subnet from the pool: give the subnet too, or leave the gateway out", quote(a.Gateway))
		}
		return SubnetSpec{IPv6: a.Subnet == PoolIPv6}, nil
	}
	prefix, err := netip.ParsePrefix(a.Subnet)
	if err != nil {
		return SubnetSpec{}, invalid("subnet %s: want a prefix such as 10.20.0.0/24 or fd00:20::/64", quote(a.Subnet))
	}
	var gw netip.Addr
	if a.Gateway != "" {
		if gw, err = netip.ParseAddr(a.Gateway); err != nil {
			return SubnetSpec{}, invalid("gateway %s: want an address such as 10.20.0.1", quote(a.Gateway))
		}
		if gw.Is4() != prefix.Addr().Is4() {
			return SubnetSpec{}, invalid("gateway %s is not in %s: choose a gateway inside the subnet, of its family", gw, prefix)
		}
	}
	if _, err := ipam.NewSubnet(prefix, gw); err != nil {
		return SubnetSpec{}, SubnetError(err)
	}
	return SubnetSpec{Prefix: prefix, Gateway: gw, IPv6: prefix.Addr().Is6() && !prefix.Addr().Is4In6()}, nil
}
