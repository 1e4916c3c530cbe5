package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newStatus(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show how tapswitchd is doing: its process, its ports and its last start",
		Long: `Show the daemon's process (pid, uptime, goroutines, open file descriptors,
resident memory), how many networks and ports it holds, and how its last
start went: the ports it took back from its state directory, the time
until it served its API, and the time until it forwarded its first frame,
which after a restart is the outage the restart caused.`,
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
		return tw.Flush()
	}
	return cmd
}
