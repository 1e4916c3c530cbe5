package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
)

func newPorts(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ports",
		Aliases: []string{"ps"},
		Short:   "List attached ports with their addresses and counters",
		Long: `List the ports of attached namespaces with their addresses, published
ports and counters. The networks' gateway ports, the daemon's own side of
each network, are left out unless --all.`,
		Args: cobra.NoArgs,
	}
	var all bool
	cmd.Flags().BoolVarP(&all, "all", "a", false, "list the networks' gateway ports too")
	out := addOutput(cmd, "table", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		c := g.client()
		list := c.Ports
		if all {
			list = c.AllPorts
		}
		ports, err := list(cmd.Context())
		if err != nil {
			return g.advise(cmd, err, "")
		}
		if out.format == "json" {
			return writeJSON(cmd.OutOrStdout(), ports)
		}
		tw := newTable(cmd.OutOrStdout())
		// KIND tells gateways apart, so it is only worth a column when
		// they are listed.
		kind := func(p api.Port) string { return "" }
		head := "ID\tNAME\tNETWORK\tNETNS\tIFNAME\tMAC\tIP\tPUBLISH\tREFUSED\tSECURITY\tMACS\tSTORM B/M/U\tRX FRAMES\tRX BYTES\tTX FRAMES\tTX BYTES\tTX COALESCED\tDROPS"
		if all {
			kind = func(p api.Port) string { return p.Kind + "\t" }
			head = strings.Replace(head, "NAME\t", "NAME\tKIND\t", 1)
		}
		fmt.Fprintln(tw, head)
		for _, p := range ports {
			fmt.Fprintf(tw, "%d\t%s\t%s%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%d\t%d\t%d\t%d\t%d/%d\t%s\n",
				p.ID, p.Name, kind(p), p.Network, dash(p.Netns), p.Ifname, p.MAC,
				dash(strings.Join(p.IPs, ",")), dash(strings.Join(p.Publish, ",")), formatRefused(p), onOff(p.PortSecurity), p.MACs, p.MACLimit,
				formatStorm(p),
				p.Stats.RxFrames, p.Stats.RxBytes, p.Stats.TxFrames, p.Stats.TxBytes, p.Stats.TxCoalescedFrames, p.Stats.TxCoalescedWrites, formatDrops(p.Stats.Drops))
		}
		return tw.Flush()
	}
	return cmd
}

// formatDrops renders drop counters as "total (reason=n,...)".
func formatDrops(d map[string]uint64) string {
	if len(d) == 0 {
		return "0"
	}
	var total uint64
	reasons := make([]string, 0, len(d))
	for r, n := range d {
		total += n
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(reasons)
	return fmt.Sprintf("%d (%s)", total, strings.Join(reasons, ","))
}

// formatRefused renders the clients of a port's published ports turned
// away by a limit as formatDrops does, or "-" when it publishes none.
func formatRefused(p api.Port) string {
	if len(p.Published) == 0 {
		return "-"
	}
	sum := map[string]uint64{}
	for _, c := range p.Published {
		for r, n := range c.Refused {
			sum[r] += n
		}
	}
	return formatDrops(sum)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// formatStorm renders a port's storm control rates, broadcast, multicast
// and unknown unicast, in frames a second: "2000/2000/2000", "off" for
// a class without a limit.
func formatStorm(p api.Port) string {
	rate := func(n int) string {
		if n < 0 {
			return "off"
		}
		return fmt.Sprint(n)
	}
	return rate(p.StormBroadcast) + "/" + rate(p.StormMulticast) + "/" + rate(p.StormUnknown)
}
