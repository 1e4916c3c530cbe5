package main

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/tapswitch/tapswitch/api"
)

// buildResult is the ADD result of port on the network det: the
// network's gateway interface (host side) and the TAP (sandbox netns);
// the port's addresses, with the gateway of their subnet for those in one
// of the network's subnets (two for a dual-stack network); a default
// route via the gateway of each such address's family when the daemon
// made one (the namespace's first port, with an address in a subnet:
// first says whether port is); and the network's DNS server and domain
// when the port is in a subnet (DNS answers only there).
func buildResult(det api.NetworkDetail, port *api.Port, netns string, first bool) (*types100.Result, error) {
	subnets := det.Subnets
	if len(subnets) == 0 {
		// A daemon from before networks could have two subnets.
		subnets = []api.NetworkSubnet{{Subnet: det.Subnet, Gateway: det.Gateway}}
	}
	type subnetGW struct {
		prefix netip.Prefix
		gw     netip.Addr
	}
	var sgs []subnetGW
	for _, sn := range subnets {
		p, err := netip.ParsePrefix(sn.Subnet)
		if err != nil {
			return nil, fmt.Errorf("network %q has subnet %q: %w", det.Name, sn.Subnet, err)
		}
		gw, err := netip.ParseAddr(sn.Gateway)
		if err != nil {
			return nil, fmt.Errorf("network %q has gateway %q: %w", det.Name, sn.Gateway, err)
		}
		sgs = append(sgs, subnetGW{p, gw})
	}
	host := &types100.Interface{Name: det.Bridge}
	for _, q := range det.Ports {
		if q.Kind == api.KindGateway {
			host.Mac = q.MAC
		}
	}
	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{host, {Name: port.Ifname, Mac: port.MAC, Mtu: port.MTU, Sandbox: netns}},
	}
	// local marks the subnets the port has an address in.
	local := make([]bool, len(sgs))
	for _, s := range port.IPs {
		a, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("port %q has address %q: %w", port.Name, s, err)
		}
		ip := &types100.IPConfig{Interface: types100.Int(1), Address: ipNet(a)}
		for i, sg := range sgs {
			if sg.prefix.Contains(a.Addr()) {
				ip.Gateway = net.IP(sg.gw.AsSlice())
				local[i] = true
			}
		}
		res.IPs = append(res.IPs, ip)
	}
	// The gateways of the families the port has an address of, in the
	// network's order.
	var gws []netip.Addr
	for i, sg := range sgs {
		if local[i] {
			gws = append(gws, sg.gw)
		}
	}
	if len(gws) == 0 {
		return res, nil
	}
	if first {
		for _, gw := range gws {
			dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if gw.Is6() {
				dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
			res.Routes = append(res.Routes, &types.Route{Dst: ipNet(dst), GW: net.IP(gw.AsSlice())})
		}
	}
	// The DNS server listens on the first subnet's gateway.
	res.DNS = types.DNS{Nameservers: []string{sgs[0].gw.String()}, Domain: det.Name, Search: []string{det.Name}}
	return res, nil
}

func ipNet(p netip.Prefix) net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

// mergePrev puts res after what the plugins before this one made: their
// interfaces, addresses and routes first, then these (with interface
// indexes moved along); their DNS settings, with this network's added.
func mergePrev(prevResult types.Result, res *types100.Result) (*types100.Result, error) {
	prev, err := types100.NewResultFromResult(prevResult)
	if err != nil {
		return nil, err
	}
	off := len(prev.Interfaces)
	prev.Interfaces = append(prev.Interfaces, res.Interfaces...)
	for _, ip := range res.IPs {
		if ip.Interface != nil {
			ip.Interface = types100.Int(*ip.Interface + off)
		}
		prev.IPs = append(prev.IPs, ip)
	}
	prev.Routes = append(prev.Routes, res.Routes...)
	for _, s := range res.DNS.Nameservers {
		if !slices.Contains(prev.DNS.Nameservers, s) {
			prev.DNS.Nameservers = append(prev.DNS.Nameservers, s)
		}
	}
	if prev.DNS.Domain == "" {
		prev.DNS.Domain = res.DNS.Domain
	}
	for _, s := range res.DNS.Search {
		if !slices.Contains(prev.DNS.Search, s) {
			prev.DNS.Search = append(prev.DNS.Search, s)
		}
	}
	prev.CNIVersion = types100.ImplementedSpecVersion
	return prev, nil
}

// firstPort reports whether port is the first its container got, on any
// network: the one the daemon gave the namespace's default route.
func firstPort(ports []api.Port, port *api.Port) bool {
	for _, q := range ports {
		if q.ContainerID == port.ContainerID && q.ID < port.ID {
			return false
		}
	}
	return true
}
