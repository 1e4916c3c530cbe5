// Package mangen writes the manual pages of a cobra command tree, for
// `make install`: a hidden "gen-man DIR" command that both programs
// carry, so that the pages say what the binary installed beside them
// does.
package mangen

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/tapswitch/tapswitch/internal/version"
)

// Section is the manual section of every page: tapswitchd and tapswitch
// are run by the administrator (root, or members of tapswitchd's
// --group), as ip(8) and bridge(8) are.
const Section = "8"

// Command returns the hidden "gen-man DIR" command, which writes a page
// for root and each of its visible subcommands into DIR:
// NAME.8 for root and NAME-SUB.8 for a subcommand.
func Command(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the manual pages into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return Write(root, args[0])
		},
	}
}

// Write writes the pages of root's tree into dir, made if missing. The
// date in them is SOURCE_DATE_EPOCH's when set, for reproducible builds.
func Write(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("manual pages: %w", err)
	}
	// No "Auto generated" history section: the page is the same whoever
	// builds it.
	root.DisableAutoGenTag = true
	h := &doc.GenManHeader{
		Section: Section,
		Source:  "tapswitch " + version.String(),
		Manual:  "tapswitch manual",
	}
	if err := doc.GenManTree(root, h, dir); err != nil {
		return fmt.Errorf("manual pages in %s: %w", dir, err)
	}
	return nil
}
