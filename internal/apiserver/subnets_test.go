package apiserver

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

func TestNetworkSubnets(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("10.141.0.0/24"), netip.MustParsePrefix("fd41::/64")
	tests := []struct {
		name    string
		req     api.NetworkCreateRequest
		want    []SubnetSpec
		errText string
		reason  api.Reason
	}{
		{name: "nothing: IPv4 from the pool", want: []SubnetSpec{{}}},
		{name: "one IPv4", req: api.NetworkCreateRequest{Subnet: "10.141.0.0/24"}, want: []SubnetSpec{{Prefix: v4}}},
		{name: "one IPv6", req: api.NetworkCreateRequest{Subnet: "fd41::/64"}, want: []SubnetSpec{{Prefix: v6, IPv6: true}}},
		{name: "two in Subnets with gateways",
			req: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{
				{Subnet: "10.141.0.0/24", Gateway: "10.141.0.254"}, {Subnet: "fd41::/64", Gateway: "fd41::fe"}}},
			want: []SubnetSpec{{Prefix: v4, Gateway: netip.MustParseAddr("10.141.0.254")}, {Prefix: v6, Gateway: netip.MustParseAddr("fd41::fe"), IPv6: true}}},
		{name: "IPv6 first comes second",
			req:  api.NetworkCreateRequest{Subnet: "fd41::/64", Subnets: []api.SubnetRequest{{Subnet: "10.141.0.0/24"}}},
			want: []SubnetSpec{{Prefix: v4}, {Prefix: v6, IPv6: true}}},
		{name: "both from the pool",
			req:  api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "ipv6"}, {Subnet: "ipv4"}}},
			want: []SubnetSpec{{}, {IPv6: true}}},
		{name: "IPv4 given, IPv6 from the pool",
			req:  api.NetworkCreateRequest{Subnet: "10.141.0.0/24", Subnets: []api.SubnetRequest{{Subnet: "ipv6"}}},
			want: []SubnetSpec{{Prefix: v4}, {IPv6: true}}},
		{name: "two IPv4", req: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "10.141.0.0/24"}, {Subnet: "10.141.1.0/24"}}},
			errText: "two IPv4 subnets (10.141.0.0/24 and 10.141.1.0/24)"},
		{name: "two IPv6", req: api.NetworkCreateRequest{Subnet: "fd41::/64", Subnets: []api.SubnetRequest{{Subnet: "ipv6"}}},
			errText: "two IPv6 subnets (fd41::/64 and one from the pool)"},
		{name: "three", req: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "ipv4"}, {Subnet: "ipv6"}, {Subnet: "ipv6"}}},
			errText: "at most one IPv4 and one IPv6"},
		{name: "gateway outside its subnet", req: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "10.141.0.0/24"}, {Subnet: "fd41::/64", Gateway: "fd41:1::1"}}},
			errText: "fd41:1::1 is not in fd41::/64"},
		{name: "gateway of the other family", req: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "10.141.0.0/24", Gateway: "fd41::1"}, {Subnet: "fd41::/64"}}},
			errText: "fd41::1 is not in 10.141.0.0/24"},
		{name: "gateway with a pool subnet", req: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "ipv6", Gateway: "fd41::1"}}},
			errText: "from the pool", reason: api.ReasonGatewayWithoutSubnet},
		{name: "entry without a subnet", req: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{}}}, errText: "without a subnet"},
		{name: "unsafe IPv6", req: api.NetworkCreateRequest{Subnet: "10.141.0.0/24", Subnets: []api.SubnetRequest{{Subnet: "fe80::/64"}}},
			errText: "fe80::/10", reason: api.ReasonUnsafeRange},
		{name: "IPv6 not a prefix", req: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "fd41::"}}}, errText: "want a prefix"},
		{name: "IPv6 not a network address", req: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "fd41::1/64"}}}, errText: "did you mean fd41::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NetworkSubnets(tt.req)
			if tt.errText != "" {
				if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.errText) || api.ReasonOf(err) != tt.reason {
					t.Fatalf("NetworkSubnets(%+v) = %v (reason %q); want invalid containing %q, reason %q", tt.req, err, api.ReasonOf(err), tt.errText, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("NetworkSubnets(%+v) = %v", tt.req, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("NetworkSubnets(%+v) = %+v, want %+v", tt.req, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("NetworkSubnets(%+v) = %+v, want %+v", tt.req, got, tt.want)
				}
			}
		})
	}
}

// FuzzNetworkSubnets: whatever a request holds, NetworkSubnets answers
// an ErrInvalid or at most one subnet of each family, the IPv4 one
// first, each a network address holding its gateway.
func FuzzNetworkSubnets(f *testing.F) {
	f.Add(`{"name":"ds","subnets":[{"subnet":"10.141.0.0/24","gateway":"10.141.0.1"},{"subnet":"fd41::/64","gateway":"fd41::1"}]}`)
	f.Add(`{"name":"ds","subnet":"fd41::/64","subnets":[{"subnet":"ipv4"}]}`)
	f.Add(`{"name":"ds","subnets":[{"subnet":"ipv6","gateway":"x"},{"subnet":""}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := DecodeNetworkCreateRequest(strings.NewReader(body))
		if err != nil {
			return
		}
		specs, err := NetworkSubnets(req)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("NetworkSubnets(%+v) = %v, not an ErrInvalid", req, err)
			}
			return
		}
		if len(specs) == 0 || len(specs) > 2 || len(specs) == 2 && (specs[0].IPv6 || !specs[1].IPv6) {
			t.Fatalf("NetworkSubnets(%+v) = %+v: want one subnet, or an IPv4 one then an IPv6 one", req, specs)
		}
		for _, s := range specs {
			if s.FromPool() {
				if s.Gateway.IsValid() {
					t.Fatalf("NetworkSubnets(%+v) = %+v: a gateway for a subnet from the pool", req, specs)
				}
				continue
			}
			if s.Prefix.Masked() != s.Prefix || s.Prefix.Addr().Is6() != s.IPv6 {
				t.Fatalf("NetworkSubnets(%+v) = %+v: subnet %v", req, specs, s.Prefix)
			}
			if s.Gateway.IsValid() && !s.Prefix.Contains(s.Gateway) {
				t.Fatalf("NetworkSubnets(%+v) = %+v: gateway %v outside %v", req, specs, s.Gateway, s.Prefix)
			}
		}
	})
}
