package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
)

func newAttach(g *globals) *cobra.Command {
	var req api.AttachRequest
	cmd := &cobra.Command{
		Use:   "attach NETNS",
		Short: "Create a TAP inside a network namespace and plug it into the switch",
		Long: `Create a TAP device inside a network namespace, bring it up with the given
addresses, and attach it to a network of the switch.

NETNS is a name under /run/netns (ip netns add NAME), pid:PID for the
namespace of a process, or a path to a namespace file such as /proc/PID/ns/net.
The port is named after the namespace unless --name says otherwise; the
command prints the port's name. The name is also the port's DNS name on
the network.

Without --ip the port gets the next free address of the network's subnet;
an --ip inside the subnet is reserved for it. Either way, the namespace's
first port gets a default route via the network's gateway, and a namespace
attached by name gets /etc/netns/NETNS/resolv.conf naming the gateway as its
nameserver (used by 'ip netns exec'). An --ip outside the subnet is only put
on the TAP, as on a plain wire between namespaces.

--publish [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp] forwards a host port to
the port's address in the subnet, as docker run -p does.

Port security is on unless --port-security=false: the port may send only
from its own MAC and addresses (see tapswitch port set --help).

NETNS may not be tapswitchd's own namespace, the host's, however it is
named (pid:1, the daemon's pid, /proc/self/ns/net as the daemon reads it,
a /run/netns entry bound to it): the port's TAP and a route for the
network's subnet would go into the host. --allow-host-netns attaches there
anyway.

Addresses may not come from the loopback, link-local, multicast or
reserved ranges (127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4, 240.0.0.0/4,
0.0.0.0/8, fe80::/10, ff00::/8, ::/96, ::ffff:0:0/96).`,
		Example: `  tapswitch attach web --network front
  tapswitch attach web2 --network front --publish 8080:80
  tapswitch attach a --ip 10.0.0.1/24
  tapswitch attach b --ip 10.0.0.2/24 --name web
  tapswitch attach pid:4242 --ip 10.0.0.3/24 --ip fd00::3/64
  tapswitch attach br --port-security=false --mac-limit 64`,
		Args: cobra.ExactArgs(1),
	}
	f := cmd.Flags()
	f.StringVar(&req.Network, "network", api.DefaultNetwork, "network to attach to")
	f.StringVar(&req.Name, "name", "", "port name (default: derived from NETNS)")
	f.StringVar(&req.Ifname, "ifname", "eth0", "interface name inside the namespace")
	f.StringSliceVar(&req.IPs, "ip", nil, "address ADDR/LEN to assign, IPv4 or IPv6 (repeatable; default: one from the network's subnet)")
	f.StringVar(&req.MAC, "mac", "", "MAC address (default: random)")
	f.IntVar(&req.MTU, "mtu", 0, "MTU (default 1500)")
	f.StringArrayVarP(&req.Publish, "publish", "p", nil, "publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp] (repeatable)")
	f.BoolVar(&req.AllowHostNetns, "allow-host-netns", false, "allow NETNS to be tapswitchd's own network namespace, the host's (refused otherwise)")
	pol := addPolicyFlags(f)
	out := addOutput(cmd, "name", "name", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(); err != nil {
			return err
		}
		req.Netns = args[0]
		req.PortPolicy = pol.policy()
		p, err := g.client().Attach(cmd.Context(), req)
		if err != nil {
			return g.advise(cmd, err, req.Network)
		}
		return out.printNamed(cmd.OutOrStdout(), p, p.Name)
	}
	return cmd
}

func newDetach(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "detach PORT...",
		Short: "Remove ports: their TAP devices and learned MAC addresses",
		Long: `Detach ports from the switch. Each PORT is a port name or id. The TAP is
removed from its namespace and the port's learned MAC addresses are
forgotten.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, p := range args {
				if err := g.client().Detach(cmd.Context(), p); err != nil {
					return g.advise(cmd, err, "")
				}
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return nil
		},
	}
}
