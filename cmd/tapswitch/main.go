// Command tapswitch drives a tapswitchd: it attaches network namespaces to
// the switch, detaches them, and shows ports, learned MACs and counters.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/version"
)

type globals struct {
	socket string
}

func (g *globals) client() *api.Client { return api.NewClient(g.socket) }

func main() {
	if err := newRoot().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "tapswitch: %v\n", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "tapswitch",
		Short: "Control tapswitchd, the userspace Ethernet switch for network namespaces",
		Long: `tapswitch attaches Linux network namespaces to tapswitchd, a userspace
Ethernet switch, manages its networks, and shows its ports, learned MAC
addresses and counters.

Start the daemon first, as root:  tapswitchd &`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv(api.SocketEnv)
	if def == "" {
		def = api.DefaultSocket
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", def, "tapswitchd's API socket (or set "+api.SocketEnv+")")
	root.AddCommand(newAttach(g), newDetach(g), newConnect(g), newPort(g), newPorts(g), newFDB(g), newNetwork(g), newStatus(g), newVersion(g), newEvents(g), newTop(g), newCapture(g), newPeers(g))
	addGenCommands(root)
	return root
}

// output is the -o flag shared by the listing commands.
type output struct {
	format  string
	allowed []string
}

func addOutput(cmd *cobra.Command, def string, allowed ...string) *output {
	o := &output{allowed: allowed}
	cmd.Flags().StringVarP(&o.format, "output", "o", def, "output format: "+joinOr(allowed))
	return o
}

func (o *output) check() error {
	for _, a := range o.allowed {
		if o.format == a {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q: use %s", o.format, joinOr(o.allowed))
}

// printNamed writes what a command made: the whole object as JSON with
// -o json, else only its name, for scripts to use.
func (o *output) printNamed(w io.Writer, v any, name string) error {
	if o.format == "json" {
		return writeJSON(w, v)
	}
	_, err := fmt.Fprintln(w, name)
	return err
}

func joinOr(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " or " + s[len(s)-1]
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}
