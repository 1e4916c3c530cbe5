package main

import (
	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/internal/mangen"
)

// addGenCommands adds the hidden `tapswitchd gen-man DIR`, which `make
// install` runs to write the manual page, when it is what is called:
// tapswitchd has no subcommands, and having one would change its usage
// line and add a help command, as cobra does for its own `tapswitchd
// completion bash|zsh|fish`.
func addGenCommands(root *cobra.Command, args []string) {
	if len(args) > 0 && args[0] == "gen-man" {
		// Nor does the page list cobra's completion command, as
		// tapswitchd --help does not (cobra adds it when called).
		root.CompletionOptions.HiddenDefaultCmd = true
		root.AddCommand(mangen.Command(root))
	}
}
