package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

func TestSubnetRequests(t *testing.T) {
	tests := []struct {
		name     string
		subnets  []string
		gateways []string
		ipv6     bool
		want     api.NetworkCreateRequest
		errText  string
	}{
		{name: "none"},
		{name: "one, as before", subnets: []string{"10.141.0.0/24"}, gateways: []string{"10.141.0.254"},
			want: api.NetworkCreateRequest{Subnet: "10.141.0.0/24", Gateway: "10.141.0.254"}},
		{name: "two with gateways in any order", subnets: []string{"fd41::/64", "10.141.0.0/24"}, gateways: []string{"10.141.0.254", "fd41::fe"},
			want: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "fd41::/64", Gateway: "fd41::fe"}, {Subnet: "10.141.0.0/24", Gateway: "10.141.0.254"}}}},
		{name: "--ipv6 alone", ipv6: true,
			want: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "ipv4"}, {Subnet: "ipv6"}}}},
		{name: "--ipv6 with an IPv4 subnet", ipv6: true, subnets: []string{"10.141.0.0/24"},
			want: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "10.141.0.0/24"}, {Subnet: "ipv6"}}}},
		{name: "--ipv6 with an IPv6 subnet", ipv6: true, subnets: []string{"fd41::/64"},
			want: api.NetworkCreateRequest{Subnets: []api.SubnetRequest{{Subnet: "fd41::/64"}, {Subnet: "ipv4"}}}},
		{name: "gateway of no subnet's family", subnets: []string{"10.141.0.0/24", "10.141.1.0/24"}, gateways: []string{"fd41::1"}, errText: "no --subnet of its family (IPv6)"},
		{name: "two gateways of a family", subnets: []string{"10.141.0.0/24", "fd41::/64"}, gateways: []string{"10.141.0.1", "10.141.0.2"}, errText: "one gateway per subnet"},
		{name: "gateway not an address", subnets: []string{"10.141.0.0/24", "fd41::/64"}, gateways: []string{"x", "10.141.0.2"}, errText: "not an address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req api.NetworkCreateRequest
			err := subnetRequests(&req, tt.subnets, tt.gateways, tt.ipv6)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("subnetRequests(%v, %v, %v) = %v, want an error containing %q", tt.subnets, tt.gateways, tt.ipv6, err, tt.errText)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(req, tt.want) {
				t.Fatalf("subnetRequests(%v, %v, %v) = %+v, %v; want %+v", tt.subnets, tt.gateways, tt.ipv6, req, err, tt.want)
			}
		})
	}
}
