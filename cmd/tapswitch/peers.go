package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
)

func newPeers(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the hosts cluster networks reach: cluster members and static peers",
		Long: `List the hosts the frames of cluster networks cross to: the members of
tapswitchd's --cluster (this host marked self) and its --vxlan-peer hosts
(marked static), each with its tunnel address (VTEP), when a packet last
came from it, the VXLAN packets received from it and sent to it, and the
MAC addresses known to be behind it, by network: published in the
cluster's store, or learned from its frames.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(cmd, "table", "table", "json")
	var asJSON bool
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (as -o json)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if asJSON {
			out.format = "json"
		}
		if err := out.check(); err != nil {
			return err
		}
		peers, err := g.client().Peers(cmd.Context())
		if err != nil {
			return g.advise(cmd, err, "")
		}
		if out.format == "json" {
			return writeJSON(cmd.OutOrStdout(), peers)
		}
		return writePeers(cmd.OutOrStdout(), peers, time.Now())
	}
	return cmd
}

// writePeers prints peers as a table: one line per host, its MACs
// listed in the last column as MAC@NETWORK, "(learned)" after those not
// from the store.
func writePeers(w io.Writer, peers []api.Peer, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tVTEP\tROLE\tLAST HEARD\tRX PKTS\tTX PKTS\tMACS")
	for _, p := range peers {
		var roles []string
		switch {
		case p.Self:
			roles = append(roles, "self")
		case p.Name != "":
			roles = append(roles, "member")
		}
		if p.Static {
			roles = append(roles, "static")
		}
		heard := "never"
		switch {
		case p.Self:
			heard = "-"
		case !p.LastHeard.IsZero():
			heard = now.Sub(p.LastHeard).Round(time.Second).String() + " ago"
		}
		var macs []string
		for _, m := range p.MACs {
			s := m.MAC + "@" + m.Network
			if !m.Static {
				s += "(learned)"
			}
			macs = append(macs, s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", dash(p.Name), p.VTEP, strings.Join(roles, ","), heard,
			p.RxPackets, p.TxPackets, dash(strings.Join(macs, " ")))
	}
	return tw.Flush()
}
