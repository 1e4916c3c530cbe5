package main

import (
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

// TestBuildResultDualStack: on a dual-stack network each address gets
// its own family's gateway and, for the namespace's first port, a
// default route through it; DNS is the first gateway.
func TestBuildResultDualStack(t *testing.T) {
	det := api.NetworkDetail{Network: api.Network{Name: "ds", Subnet: "10.141.30.0/24", Gateway: "10.141.30.1", Bridge: "tsw-ds",
		Subnets: []api.NetworkSubnet{{Subnet: "10.141.30.0/24", Gateway: "10.141.30.1"}, {Subnet: "fd41:0:0:30::/64", Gateway: "fd41:0:0:30::1"}}}}
	port := &api.Port{Name: "p", Ifname: "eth0", IPs: []string{"10.141.30.2/24", "fd41:0:0:30::2/64"}}
	res, err := buildResult(det, port, "/run/netns/x", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 2 || res.IPs[0].Gateway.String() != "10.141.30.1" || res.IPs[1].Gateway.String() != "fd41:0:0:30::1" {
		t.Fatalf("buildResult() IPs %v, want each with its family's gateway", res.IPs)
	}
	if len(res.Routes) != 2 || res.Routes[0].Dst.String() != "0.0.0.0/0" || res.Routes[1].Dst.String() != "::/0" || res.Routes[1].GW.String() != "fd41:0:0:30::1" {
		t.Fatalf("buildResult() routes %v, want a default route of each family", res.Routes)
	}
	if len(res.DNS.Nameservers) != 1 || res.DNS.Nameservers[0] != "10.141.30.1" {
		t.Fatalf("buildResult() DNS %v, want the IPv4 gateway", res.DNS)
	}
	// A daemon that sends Subnet and Gateway only.
	det.Subnets = nil
	port.IPs = port.IPs[:1]
	if res, err = buildResult(det, port, "/run/netns/x", false); err != nil || len(res.Routes) != 0 || res.IPs[0].Gateway.String() != "10.141.30.1" {
		t.Fatalf("buildResult() from an older daemon = %+v, %v", res, err)
	}
}
