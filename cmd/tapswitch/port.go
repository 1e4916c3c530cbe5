package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tapswitch/tapswitch/api"
)

// policyFlags are the port policy flags of attach and connect.
type policyFlags struct {
	secure bool
	limit  int
	flags  *pflag.FlagSet
}

func addPolicyFlags(f *pflag.FlagSet) *policyFlags {
	p := &policyFlags{flags: f}
	f.BoolVar(&p.secure, "port-security", true, "let the port send only from its own MAC and addresses (ARP and neighbour discovery included); --port-security=false for a namespace that bridges or routes for others")
	f.IntVar(&p.limit, "mac-limit", 0, fmt.Sprintf("most MAC addresses the network learns behind the port, 1 to %d (default %d)", api.MaxMACLimit, api.DefaultMACLimit))
	return p
}

// policy is the PortPolicy the flags ask for; unset flags are left to
// the daemon's defaults.
func (p *policyFlags) policy() api.PortPolicy {
	var pol api.PortPolicy
	if p.flags.Changed("port-security") {
		on := p.secure
		pol.PortSecurity = &on
	}
	if p.flags.Changed("mac-limit") {
		pol.MACLimit = p.limit
	}
	return pol
}

func newPort(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "port",
		Short: "Change an attached port",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newPortSet(g))
	return cmd
}

func newPortSet(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set PORT",
		Short: "Turn a port's security on or off, or change its MAC limit",
		Long: `Change the policy of an attached port (a name or id) while it runs.

With port security on (the default for every port) the switch drops, and
counts by reason, every frame from the port whose source MAC is not the
port's own (src_mac), ARP that claims another MAC or address (arp_spoof),
IPv4 or IPv6 from an address that is not the port's (ip_spoof), neighbour
advertisements for another's address (nd_spoof), router advertisements
(ra_guard) and truncated headers (malformed). Turn it off for a namespace
that bridges or routes for others.

--mac-limit bounds the MAC addresses the network learns behind the port;
frames from further new addresses are dropped (mac_limit). The change is
kept across daemon restarts.`,
		Example: `  tapswitch port set br0 --port-security=false --mac-limit 64
  tapswitch port set web --port-security=true`,
		Args: cobra.ExactArgs(1),
	}
	var secure bool
	var limit int
	f := cmd.Flags()
	f.BoolVar(&secure, "port-security", true, "port security on (true) or off (false)")
	f.IntVar(&limit, "mac-limit", api.DefaultMACLimit, fmt.Sprintf("most MAC addresses learned behind the port, 1 to %d", api.MaxMACLimit))
	out := addOutput(cmd, "name", "name", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(); err != nil {
			return err
		}
		var req api.PortUpdateRequest
		if f.Changed("port-security") {
			req.PortSecurity = &secure
		}
		if f.Changed("mac-limit") {
			req.MACLimit = &limit
		}
		if req.PortSecurity == nil && req.MACLimit == nil {
			return errors.New("port set: nothing to change; give --port-security or --mac-limit")
		}
		p, err := g.client().UpdatePort(cmd.Context(), args[0], req)
		if err != nil {
			return g.advise(cmd, err, "")
		}
		return out.printNamed(cmd.OutOrStdout(), p, p.Name)
	}
	return cmd
}
