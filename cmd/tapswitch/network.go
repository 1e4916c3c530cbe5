package main

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
)

func newNetwork(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "network",
		Aliases: []string{"net"},
		Short:   "Create, list, inspect and remove networks",
		Long: `A network is an isolated switch with a subnet, a gateway in the daemon's
namespace, a DNS server on the gateway that answers with the names of the
network's ports, and (unless --internal) outbound access through the host.
The network "default" always exists and is used when attach is given no
--network.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newNetworkCreate(g), newNetworkLs(g), newNetworkInspect(g), newNetworkRm(g))
	return cmd
}

func newNetworkCreate(g *globals) *cobra.Command {
	var (
		req      api.NetworkCreateRequest
		subnets  []string
		gateways []string
		ipv6     bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--subnet PREFIX]... [--gateway ADDR]... [--ipv6] [--internal]",
		Short: "Create a network",
		Long: `Create a network. Its subnet is --subnet, or else the first free /24 of
10.89.0.0/16 that overlaps no other network and no route of the host. Its
gateway is --gateway, or else the subnet's first host address. NAME is also
the network's DNS domain: a port "web" answers as web and web.NAME.

A dual-stack network has an IPv4 and an IPv6 subnet: give --subnet twice,
once for each family, or --ipv6 for a free IPv6 /64 of tapswitchd's
--ipv6-pool (fd89:7473:7700::/48 unless it was given another) besides
the IPv4 subnet (given, or free from the pool). Each --gateway
goes with the subnet of its family. The gateway holds an address in each
subnet, ports get one address of each family, and DNS answers their names
with both (A and AAAA). A single --subnet of IPv6 makes an IPv6-only
network.

A subnet may not share an address with the loopback, link-local,
multicast or reserved ranges (0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16,
224.0.0.0/4, 240.0.0.0/4; ::/96, ::ffff:0:0/96, fe80::/10, ff00::/8):
the gateway is an address of the host and its DNS server listens there.

With --scope cluster the network spans hosts: its frames cross between
them in VXLAN with the network's VNI (--vni, or a free one), to the hosts
of tapswitchd's --cluster and to its --vxlan-peer hosts. With --cluster
the network is made on every host at once, and its addresses are handed
out through the cluster's store, so no two hosts give out one address.
Every host has the network's gateway with the same address and MAC, and
the network's DNS answers the names of its ports on every host. The
network's TAPs and gateway get the underlay's MTU less 50, the VXLAN
overhead.`,
		Example: `  tapswitch network create front --subnet 10.20.0.0/24
  tapswitch network create back
  tapswitch network create both --subnet 10.20.1.0/24 --subnet fd00:20:1::/64
  tapswitch network create six --ipv6
  tapswitch network create vault --internal
  tapswitch network create front --subnet 10.40.0.0/24 --scope cluster --vni 4242`,
		Args: cobra.ExactArgs(1),
	}
	f := cmd.Flags()
	f.StringArrayVar(&subnets, "subnet", nil, "subnet in CIDR form, at most one IPv4 and one IPv6 (repeatable; default: a free IPv4 /24 of 10.89.0.0/16)")
	f.StringArrayVar(&gateways, "gateway", nil, "gateway address in the --subnet of its family (repeatable; default: each subnet's first host address)")
	f.BoolVar(&ipv6, "ipv6", false, "dual-stack: also an IPv6 subnet, a free /64 of tapswitchd's --ipv6-pool (default fd89:7473:7700::/48) unless --subnet gives one")
	f.BoolVar(&req.Internal, "internal", false, "no access outside the network and no published ports")
	f.StringVar(&req.Scope, "scope", api.ScopeLocal, `"local" (this host only) or "cluster" (spanning hosts over VXLAN; needs tapswitchd --advertise)`)
	f.Uint32Var(&req.VNI, "vni", 0, "VXLAN network identifier of a --scope cluster network, 1 to 16777215 (default: a free one)")
	out := addOutput(cmd, "name", "name", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(); err != nil {
			return err
		}
		req.Name = args[0]
		if err := subnetRequests(&req, subnets, gateways, ipv6); err != nil {
			return err
		}
		n, err := g.client().CreateNetwork(cmd.Context(), req)
		if err != nil {
			return g.advise(cmd, err, req.Name)
		}
		return out.printNamed(cmd.OutOrStdout(), n, n.Name)
	}
	return cmd
}

// subnetRequests puts the --subnet, --gateway and --ipv6 of network
// create into req: one subnet and gateway as Subnet and Gateway, as
// before networks could have two; more, or --ipv6, as Subnets, each
// gateway with the subnet of its family and a subnet from the pool for
// each family --ipv6 asks for and no --subnet gives. What is wrong with
// a subnet or gateway itself the daemon says.
func subnetRequests(req *api.NetworkCreateRequest, subnets, gateways []string, ipv6 bool) error {
	if !ipv6 && len(subnets) <= 1 && len(gateways) <= 1 {
		if len(subnets) == 1 {
			req.Subnet = subnets[0]
		}
		if len(gateways) == 1 {
			req.Gateway = gateways[0]
		}
		return nil
	}
	// family is "ipv4" or "ipv6" for a parsable address or prefix, ""
	// for one the daemon is to refuse.
	family := func(s string) string {
		a, err := netip.ParseAddr(s)
		if p, perr := netip.ParsePrefix(s); perr == nil {
			a, err = p.Addr(), nil
		}
		switch {
		case err != nil:
			return ""
		case a.Is4() || a.Is4In6():
			return "ipv4"
		}
		return "ipv6"
	}
	for _, s := range subnets {
		req.Subnets = append(req.Subnets, api.SubnetRequest{Subnet: s})
	}
	for _, gw := range gateways {
		fam := family(gw)
		i := slices.IndexFunc(req.Subnets, func(r api.SubnetRequest) bool { return family(r.Subnet) == fam })
		switch {
		case fam == "" && len(req.Subnets) == 1:
			i = 0
		case fam == "":
			return fmt.Errorf("--gateway %q: not an address; give one such as 10.20.0.1 or fd00:20::1", gw)
		case i < 0:
			return fmt.Errorf("--gateway %s: no --subnet of its family (IPv%s); give the subnet it is in", gw, fam[3:])
		}
		if req.Subnets[i].Gateway != "" {
			return fmt.Errorf("--gateway %s and %s: one gateway per subnet", req.Subnets[i].Gateway, gw)
		}
		req.Subnets[i].Gateway = gw
	}
	if ipv6 {
		for _, fam := range []string{"ipv4", "ipv6"} {
			if !slices.ContainsFunc(req.Subnets, func(r api.SubnetRequest) bool { return family(r.Subnet) == fam }) {
				req.Subnets = append(req.Subnets, api.SubnetRequest{Subnet: fam})
			}
		}
	}
	return nil
}

func newNetworkLs(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
	}
	out := addOutput(cmd, "table", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		nets, err := g.client().Networks(cmd.Context())
		if err != nil {
			return g.advise(cmd, err, "")
		}
		if out.format == "json" {
			return writeJSON(cmd.OutOrStdout(), nets)
		}
		tw := newTable(cmd.OutOrStdout())
		fmt.Fprintln(tw, "NAME\tSUBNET\tGATEWAY\tINTERNAL\tSCOPE\tVNI\tMTU\tPORTS\tBRIDGE")
		for _, n := range nets {
			subnets, gateways := networkSubnets(n)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\t%d\t%s\n", n.Name, subnets, gateways, n.Internal,
				scopeOf(n), vniOf(n), mtuOf(n), n.Ports, n.Bridge)
		}
		return tw.Flush()
	}
	return cmd
}

func newNetworkInspect(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a network: subnet, gateway, DNS, and its ports with their addresses",
		Args:  cobra.ExactArgs(1),
	}
	out := addOutput(cmd, "json", "json", "table")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(); err != nil {
			return err
		}
		n, err := g.client().InspectNetwork(cmd.Context(), args[0])
		if err != nil {
			return g.advise(cmd, err, args[0])
		}
		if out.format == "json" {
			return writeJSON(cmd.OutOrStdout(), n)
		}
		return writeNetworkTable(cmd.OutOrStdout(), n)
	}
	return cmd
}

func writeNetworkTable(w io.Writer, n api.NetworkDetail) error {
	tw := newTable(w)
	subnets, gateways := networkSubnets(n.Network)
	for _, kv := range [][2]string{
		{"Name", n.Name},
		{"Subnet", subnets},
		{"Gateway", gateways},
		{"Internal", fmt.Sprint(n.Internal)},
		{"Scope", scopeOf(n.Network)},
		{"VNI", vniOf(n.Network)},
		{"MTU", mtuOf(n.Network)},
		{"Bridge", n.Bridge},
		{"DNS", n.DNS},
		{"MACs", fmt.Sprintf("%d of %d", n.MACs, n.MACLimit)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	if c := n.DNSCounters; c != nil {
		fmt.Fprintf(tw, "DNS queries:\tanswered %d, forwarded %d, not forwarded %d, rate-limited %d\n",
			c.Answered, c.Forwarded, c.NotForwarded, c.RateLimited)
		fmt.Fprintf(tw, "DNS refused:\tsource %d, interface %d, forwards %d, tcp %d, fds %d\n",
			c.Refused.Source, c.Refused.Interface, c.Refused.Forwards, c.Refused.TCP, c.Refused.FDs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "PORT\tKIND\tNETNS\tIFNAME\tMAC\tIP\tDNS NAME\tPUBLISH")
	for _, p := range n.Ports {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Kind, dash(p.Netns), p.Ifname, p.MAC,
			dash(strings.Join(p.IPs, ",")), dash(p.DNSName), dash(strings.Join(p.Publish, ",")))
	}
	return tw.Flush()
}

// networkSubnets lists a network's subnets and its gateways, each
// comma-separated, the IPv4 one first; a daemon from before networks
// could have two sends Subnet and Gateway only.
func networkSubnets(n api.Network) (subnets, gateways string) {
	if len(n.Subnets) == 0 {
		return n.Subnet, n.Gateway
	}
	var s, g []string
	for _, sub := range n.Subnets {
		s = append(s, sub.Subnet)
		g = append(g, sub.Gateway)
	}
	return strings.Join(s, ","), strings.Join(g, ",")
}

// scopeOf, vniOf and mtuOf are a network's scope, VNI and MTU as the
// tables show them; a daemon from before scopes sends none.
func scopeOf(n api.Network) string { return cmp.Or(n.Scope, api.ScopeLocal) }

func vniOf(n api.Network) string {
	if n.VNI == 0 {
		return "-"
	}
	return strconv.FormatUint(uint64(n.VNI), 10)
}

func mtuOf(n api.Network) string {
	if n.MTU == 0 {
		return "-"
	}
	return strconv.Itoa(n.MTU)
}

// dash shows an empty cell as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newNetworkRm(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove networks",
		Long: `Remove networks: their gateway interfaces, DNS servers and firewall rules.
A network with ports attached is refused unless --force, which detaches
them first. The network "default" cannot be removed. A cluster network
goes away on every host of the cluster; with ports on any host it is
refused unless --force, which detaches them on every host.`,
		Args: cobra.MinimumNArgs(1),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "detach the network's ports first")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		for _, name := range args {
			if err := g.client().RemoveNetwork(cmd.Context(), name, force); err != nil {
				return g.advise(cmd, err, name)
			}
			fmt.Fprintln(cmd.OutOrStdout(), name)
		}
		return nil
	}
	return cmd
}

func newConnect(g *globals) *cobra.Command {
	var req api.ConnectRequest
	cmd := &cobra.Command{
		Use:   "connect PORT NETWORK",
		Short: "Give the namespace of a port another interface, on another network",
		Long: `Create a further TAP in the namespace of PORT (named eth1, eth2, ...: the
first free ethN) and attach it to NETWORK. The new port is named
PORT-NETWORK unless --name says otherwise; NETWORK's DNS answers for it
with PORT's name. It gets an address of each of NETWORK's subnets (two
on a dual-stack network) unless --ip gives them, and no default route:
the namespace keeps the one it has. The namespace then resolves the
names of every network it is on, as NAME and NAME.NETWORK, and its
resolv.conf (for a namespace attached by name) lists each network as a
search domain; names of networks it is not on stay unknown to it.
A PORT in tapswitchd's own namespace, the host's (attached with
--allow-host-netns), needs --allow-host-netns here too.`,
		Example: `  tapswitch connect api back
  tapswitch connect api back --ip 10.89.1.10/24 --name api-db`,
		Args: cobra.ExactArgs(2),
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "port name (default: PORT-NETWORK)")
	f.StringSliceVar(&req.IPs, "ip", nil, "address ADDR/LEN to assign (repeatable; default: one from the network's subnet)")
	f.BoolVar(&req.AllowHostNetns, "allow-host-netns", false, "allow PORT's namespace to be tapswitchd's own, the host's (refused otherwise)")
	pol := addPolicyFlags(f)
	out := addOutput(cmd, "name", "name", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(); err != nil {
			return err
		}
		req.Port = args[0]
		req.PortPolicy = pol.policy()
		p, err := g.client().Connect(cmd.Context(), args[1], req)
		if err != nil {
			return g.advise(cmd, err, args[1])
		}
		return out.printNamed(cmd.OutOrStdout(), p, p.Name)
	}
	return cmd
}
