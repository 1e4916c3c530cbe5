package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newFDB(g *globals) *cobra.Command {
	var network string
	cmd := &cobra.Command{
		Use:   "fdb",
		Short: "List learned MAC addresses: the forwarding table",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&network, "network", "", "show one network only (default: all)")
	out := addOutput(cmd, "table", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		entries, err := g.client().FDB(cmd.Context(), network)
		if err != nil {
			return g.advise(cmd, err, network)
		}
		if out.format == "json" {
			return writeJSON(cmd.OutOrStdout(), entries)
		}
		tw := newTable(cmd.OutOrStdout())
		fmt.Fprintln(tw, "NETWORK\tMAC\tPORT\tAGE")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%ds\n", e.Network, e.MAC, e.Port, e.AgeSeconds)
		}
		return tw.Flush()
	}
	return cmd
}
