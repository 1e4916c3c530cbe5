package mangen

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestWrite(t *testing.T) {
	root := &cobra.Command{Use: "tool", Short: "Do things", Long: "tool does things."}
	root.AddCommand(
		&cobra.Command{Use: "list", Short: "List things", Run: func(*cobra.Command, []string) {}},
		&cobra.Command{Use: "secret", Short: "Hidden", Hidden: true, Run: func(*cobra.Command, []string) {}},
	)
	root.AddCommand(Command(root))
	dir := filepath.Join(t.TempDir(), "man8")
	root.SetArgs([]string{"gen-man", dir})
	root.CompletionOptions.DisableDefaultCmd = true
	if err := root.Execute(); err != nil {
		t.Fatalf("tool gen-man %s: %v", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"tool-list.8", "tool.8"}; !slices.Equal(names, want) {
		t.Errorf("gen-man wrote %v, want %v (no page for hidden commands)", names, want)
	}
	page, err := os.ReadFile(filepath.Join(dir, "tool.8"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`.TH "TOOL" "8"`, "tool does things.", "tool-list(8)"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("tool.8 lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(string(page), "Auto generated") {
		t.Errorf("tool.8 carries a generator's tag:\n%s", page)
	}
}
