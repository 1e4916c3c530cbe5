package main

import (
	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/internal/mangen"
)

// addGenCommands adds the hidden commands `make install` runs to write
// the manual pages (tapswitch gen-man DIR). The completion scripts come
// from cobra's own `tapswitch completion bash|zsh|fish`.
func addGenCommands(root *cobra.Command) {
	root.AddCommand(mangen.Command(root))
}
