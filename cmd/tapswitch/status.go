package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
)

func newStatus(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show how tapswitchd is doing: its process, its ports and its last start",
		Long: `Show the daemon's process (pid, uptime, goroutines, open file descriptors,
resident memory), how many networks and ports it holds, and how its last
start went: the ports it took back from its state directory, the time
until it served its API, and the time until it forwarded its first frame,
which after a restart is the outage the restart caused. With a cluster
(tapswitchd --cluster), whether its store is reachable and since when;
with a tunnel (tapswitchd --advertise), its packets and what it dropped.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(cmd, "table", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		s, err := g.client().Status(cmd.Context())
		if err != nil {
			return g.advise(cmd, err, "")
		}
		w := cmd.OutOrStdout()
		if out.format == "json" {
			return writeJSON(w, s)
		}
		first := "none yet"
		if s.FirstForwardMs >= 0 {
			first = fmt.Sprintf("%.1f ms after start", s.FirstForwardMs)
		}
		tw := newTable(w)
		fmt.Fprintf(tw, "version:\t%s\n", s.Version)
		fmt.Fprintf(tw, "pid:\t%d\n", s.PID)
		fmt.Fprintf(tw, "started:\t%s (up %s)\n", s.StartedAt.Format(time.RFC3339), time.Since(s.StartedAt).Round(time.Second))
		fmt.Fprintf(tw, "networks:\t%d\n", s.Networks)
		fmt.Fprintf(tw, "ports:\t%d\n", s.Ports)
		fmt.Fprintf(tw, "restored ports:\t%d (%d dropped)\n", s.RestoredPorts, s.DroppedPorts)
		fmt.Fprintf(tw, "restore:\t%.1f ms after start\n", s.RestoreMs)
		fmt.Fprintf(tw, "first frame forwarded:\t%s\n", first)
		fmt.Fprintf(tw, "goroutines:\t%d\n", s.Goroutines)
		fmt.Fprintf(tw, "open fds:\t%d\n", s.OpenFDs)
		fmt.Fprintf(tw, "rss:\t%.1f MiB\n", float64(s.RSSBytes)/(1<<20))
		writeClusterStatus(tw, s)
		return tw.Flush()
	}
	return cmd
}

// writeClusterStatus adds the cluster's and the tunnel's lines.
func writeClusterStatus(w io.Writer, s api.Status) {
	if c := s.Cluster; c != nil {
		state := "not connected"
		if c.Connected {
			state = "connected"
		}
		if !c.Since.IsZero() {
			state += fmt.Sprintf(" since %s (%s)", c.Since.Format(time.RFC3339), time.Since(c.Since).Round(time.Second))
		}
		fmt.Fprintf(w, "cluster host:\t%s (%s), %d host(s)\n", c.Host, c.Advertise, c.Hosts)
		fmt.Fprintf(w, "cluster store:\t%s, %s\n", strings.Join(c.Endpoints, ","), state)
		if c.LastError != "" {
			fmt.Fprintf(w, "store last error:\t%s\n", c.LastError)
		}
		if len(c.Avoided) > 0 {
			fmt.Fprintf(w, "store members avoided:\t%s (not answering as healthy; calls go to the others)\n", strings.Join(c.Avoided, ","))
		}
	}
	if t := s.Tunnel; t != nil {
		fmt.Fprintf(w, "tunnel:\tvxlan %s:%d, underlay MTU %d\n", t.Advertise, t.Port, t.UnderlayMTU)
		fmt.Fprintf(w, "tunnel packets:\trx %d, tx %d, tx errors %d\n", t.RxPackets, t.TxPackets, t.TxErrors)
		fmt.Fprintf(w, "tunnel dropped:\tnot member %d, unknown vni %d, malformed %d, host only %d\n",
			t.Dropped["not_member"], t.Dropped["unknown_vni"], t.Dropped["malformed"], t.Dropped["host_only"])
	}
}
