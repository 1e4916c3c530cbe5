package nat

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	good := Network{Name: "front", Subnet: netip.MustParsePrefix("10.20.0.0/24"), Bridge: "tsw-front"}
	tests := []struct {
		name       string
		edit       func(*Network)
		wantSubnet string // when no error is expected
		errText    string
	}{
		{name: "ok", edit: func(*Network) {}, wantSubnet: "10.20.0.0/24"},
		{name: "gateway address", edit: func(n *Network) { n.Subnet = netip.MustParsePrefix("10.20.0.1/24") }, wantSubnet: "10.20.0.0/24"},
		{name: "ipv6", edit: func(n *Network) { n.Subnet = netip.MustParsePrefix("fd00:20::1/64") }, wantSubnet: "fd00:20::/64"},
		{name: "internal", edit: func(n *Network) { n.Internal = true }, wantSubnet: "10.20.0.0/24"},
		{name: "unicode name", edit: func(n *Network) { n.Name = "café" }, wantSubnet: "10.20.0.0/24"},
		{name: "longest bridge", edit: func(n *Network) { n.Bridge = strings.Repeat("b", 15) }, wantSubnet: "10.20.0.0/24"},
		{name: "empty name", edit: func(n *Network) { n.Name = "" }, errText: "empty name"},
		{name: "long name", edit: func(n *Network) { n.Name = strings.Repeat("n", MaxNameLen+1) }, errText: "longer than"},
		{name: "quote in name", edit: func(n *Network) { n.Name = `a"b` }, errText: "quote"},
		{name: "newline in name", edit: func(n *Network) { n.Name = "a\nb" }, errText: "control"},
		{name: "bad utf-8 name", edit: func(n *Network) { n.Name = "a\xffb" }, errText: "not UTF-8"},
		{name: "empty bridge", edit: func(n *Network) { n.Bridge = "" }, errText: "empty bridge"},
		{name: "long bridge", edit: func(n *Network) { n.Bridge = strings.Repeat("b", 16) }, errText: "longer than 15"},
		{name: "dot bridge", edit: func(n *Network) { n.Bridge = "." }, errText: "not valid"},
		{name: "slash in bridge", edit: func(n *Network) { n.Bridge = "a/b" }, errText: "'/'"},
		{name: "space in bridge", edit: func(n *Network) { n.Bridge = "a b" }, errText: "a space"},
		{name: "no subnet", edit: func(n *Network) { n.Subnet = netip.Prefix{} }, errText: "not a valid prefix"},
		{name: "mapped subnet", edit: func(n *Network) { n.Subnet = netip.MustParsePrefix("::ffff:10.20.0.0/120") }, errText: "IPv4-mapped"},
		{name: "gateway", edit: func(n *Network) { n.Gateway = netip.MustParseAddr("10.20.0.254") }, wantSubnet: "10.20.0.0/24"},
		{name: "gateway outside the subnet", edit: func(n *Network) { n.Gateway = netip.MustParseAddr("10.21.0.1") }, errText: "not an address of subnet"},
		{name: "ipv6 gateway of an ipv4 subnet", edit: func(n *Network) { n.Gateway = netip.MustParseAddr("fd00::1") }, errText: "not an address of subnet"},
		{name: "mapped gateway", edit: func(n *Network) { n.Gateway = netip.MustParseAddr("::ffff:10.20.0.1") }, errText: "not an address of subnet"},
		{name: "dual-stack", edit: func(n *Network) {
			n.Subnet6, n.Gateway6 = netip.MustParsePrefix("fd41::1/64"), netip.MustParseAddr("fd41::1")
		}, wantSubnet: "10.20.0.0/24"},
		{name: "dual-stack, IPv6 first", edit: func(n *Network) {
			n.Subnet, n.Subnet6 = netip.MustParsePrefix("fd41::/64"), netip.MustParsePrefix("10.20.0.0/24")
		}, errText: "an IPv4 Subnet and an IPv6 Subnet6"},
		{name: "dual-stack, two IPv4", edit: func(n *Network) { n.Subnet6 = netip.MustParsePrefix("10.21.0.0/24") }, errText: "an IPv4 Subnet and an IPv6 Subnet6"},
		{name: "IPv6 gateway outside", edit: func(n *Network) {
			n.Subnet6, n.Gateway6 = netip.MustParsePrefix("fd41::/64"), netip.MustParseAddr("fd42::1")
		}, errText: "not an address of subnet fd41::/64"},
		{name: "IPv6 gateway without IPv6 subnet", edit: func(n *Network) { n.Gateway6 = netip.MustParseAddr("fd41::1") }, errText: "without an IPv6 subnet"},
		{name: "zoned gateway", edit: func(n *Network) {
			n.Subnet = netip.MustParsePrefix("fd00:20::/64")
			n.Gateway = netip.MustParseAddr("fd00:20::1%eth0")
		}, errText: "not an address of subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := good
			tt.edit(&n)
			got, err := normalize(n)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) || !errors.Is(err, ErrInvalidNetwork) {
					t.Fatalf("normalize(%+v) = %v; want ErrInvalidNetwork containing %q", n, err, tt.errText)
				}
				return
			}
			if err != nil || got.Subnet.String() != tt.wantSubnet {
				t.Fatalf("normalize(%+v) = %v, %v; want subnet %s", n, got.Subnet, err, tt.wantSubnet)
			}
		})
	}
}
