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
	storm  stormFlags
	flags  *pflag.FlagSet
}

func addPolicyFlags(f *pflag.FlagSet) *policyFlags {
	p := &policyFlags{flags: f}
	f.BoolVar(&p.secure, "port-security", true, "let the port send only from its own MAC and addresses (ARP and neighbour discovery included); --port-security=false for a namespace that bridges or routes for others")
	f.IntVar(&p.limit, "mac-limit", 0, fmt.Sprintf("most MAC addresses the network learns behind the port, 1 to %d (default %d)", api.MaxMACLimit, api.DefaultMACLimit))
	p.storm.add(f)
	return p
}

// stormFlags are the storm control flags, in frames a second.
type stormFlags struct {
	broadcast, multicast, unknown int
}

func (s *stormFlags) add(f *pflag.FlagSet) {
	usage := func(what string) string {
		return fmt.Sprintf("most %s frames a second the port may send, 1 to %d, 0 for the default (%d), -1 for no limit; more are dropped (storm)", what, api.MaxStormRate, api.DefaultStormRate)
	}
	f.IntVar(&s.broadcast, "storm-broadcast", 0, usage("broadcast"))
	f.IntVar(&s.multicast, "storm-multicast", 0, usage("multicast"))
	f.IntVar(&s.unknown, "storm-unknown", 0, usage("unknown-unicast"))
}

// update puts the storm flags given on the command line into req.
func (s *stormFlags) update(f *pflag.FlagSet, req *api.PortUpdateRequest) {
	if f.Changed("storm-broadcast") {
		req.StormBroadcast = &s.broadcast
	}
	if f.Changed("storm-multicast") {
		req.StormMulticast = &s.multicast
	}
	if f.Changed("storm-unknown") {
		req.StormUnknown = &s.unknown
	}
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
	pol.StormBroadcast, pol.StormMulticast, pol.StormUnknown = p.storm.broadcast, p.storm.multicast, p.storm.unknown
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
		Short: "Turn a port's security on or off, or change its MAC limit or storm control",
		Long: `Change the policy of an attached port (a name or id) while it runs.

With port security on (the default for every port) the switch drops, and
counts by reason, every frame from the port whose source MAC is not the
port's own (src_mac), ARP that claims another MAC or address (arp_spoof),
IPv4 or IPv6 from an address that is not the port's (ip_spoof), neighbour
advertisements for another's address and Neighbor Discovery in fragments
(nd_spoof), router advertisements, behind any extension headers (ra_guard),
Ethertypes other than IPv4, IPv6, ARP, RARP and the local experimental
0x88b5 and 0x88b6 (ethertype), and truncated headers or first fragments
without their upper-layer header (malformed). Turn it off for a namespace
that bridges or routes for others.

--mac-limit bounds the MAC addresses the network learns behind the port;
frames from further new addresses are dropped (mac_limit).

--storm-broadcast, --storm-multicast and --storm-unknown bound the
broadcast, multicast and unknown-unicast frames a second the port may
send, which the switch floods to every other port (storm control, on for
every port at ` + fmt.Sprint(api.DefaultStormRate) + ` a second each); frames over the rate are dropped
(storm). 0 puts a rate back to the default, -1 lifts it.

Whatever the policy, a port never sends frames larger than its MTU
(oversize) or to the IEEE 802.1D link-local group addresses
01:80:c2:00:00:00 to 0f, such as STP, pause and LLDP (link_local).

Changes are kept across daemon restarts.`,
		Example: `  tapswitch port set br0 --port-security=false --mac-limit 64
  tapswitch port set web --port-security=true
  tapswitch port set video --storm-multicast 20000
  tapswitch port set br0 --storm-broadcast -1`,
		Args: cobra.ExactArgs(1),
	}
	var secure bool
	var limit int
	f := cmd.Flags()
	f.BoolVar(&secure, "port-security", true, "port security on (true) or off (false)")
	f.IntVar(&limit, "mac-limit", api.DefaultMACLimit, fmt.Sprintf("most MAC addresses learned behind the port, 1 to %d", api.MaxMACLimit))
	var storm stormFlags
	storm.add(f)
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
		storm.update(f, &req)
		if req.Empty() {
			return errors.New("port set: nothing to change; give --port-security, --mac-limit, --storm-broadcast, --storm-multicast or --storm-unknown")
		}
		p, err := g.client().UpdatePort(cmd.Context(), args[0], req)
		if err != nil {
			return g.advise(cmd, err, "")
		}
		return out.printNamed(cmd.OutOrStdout(), p, p.Name)
	}
	return cmd
}
