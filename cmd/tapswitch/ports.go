package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

func newPorts(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ports",
		Aliases: []string{"ps"},
		Short:   "List attached ports with their addresses and counters",
		Args:    cobra.NoArgs,
	}
	out := addOutput(cmd, "table", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		ports, err := g.client().Ports(cmd.Context())
		if err != nil {
			return err
		}
		if out.format == "json" {
			return writeJSON(cmd.OutOrStdout(), ports)
		}
		tw := newTable(cmd.OutOrStdout())
		fmt.Fprintln(tw, "ID\tNAME\tNETWORK\tNETNS\tIFNAME\tMAC\tIP\tRX FRAMES\tRX BYTES\tTX FRAMES\tTX BYTES\tDROPS")
		for _, p := range ports {
			ips := strings.Join(p.IPs, ",")
			if ips == "" {
				ips = "-"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n",
				p.ID, p.Name, p.Network, p.Netns, p.Ifname, p.MAC, ips,
				p.Stats.RxFrames, p.Stats.RxBytes, p.Stats.TxFrames, p.Stats.TxBytes, formatDrops(p.Stats.Drops))
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
