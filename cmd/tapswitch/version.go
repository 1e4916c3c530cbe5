package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/version"
)

type versions struct {
	Client api.Version  `json:"client"`
	Server *api.Version `json:"server,omitempty"`
	// ServerError says why the daemon's version is missing.
	ServerError string `json:"server_error,omitempty"`
}

func newVersion(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the versions of tapswitch and of the running tapswitchd",
		Args:  cobra.NoArgs,
	}
	out := addOutput(cmd, "table", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		v := versions{Client: api.Version{Version: version.String(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}}
		sv, err := g.client().Version(cmd.Context())
		err = g.advise(cmd, err, "")
		if err == nil {
			v.Server = &sv
		} else {
			v.ServerError = err.Error()
		}
		w := cmd.OutOrStdout()
		if out.format == "json" {
			if err := writeJSON(w, v); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(w, "client: %s (%s, %s/%s)\n", v.Client.Version, v.Client.GoVersion, v.Client.OS, v.Client.Arch)
			if v.Server != nil {
				fmt.Fprintf(w, "server: %s (%s, %s/%s, pid %d)\n", sv.Version, sv.GoVersion, sv.OS, sv.Arch, sv.Pid)
			}
		}
		// The client's version is printed either way; an unreachable
		// daemon is still an error for scripts.
		return err
	}
	return cmd
}
