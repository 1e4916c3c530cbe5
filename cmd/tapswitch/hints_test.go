package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

// runCLI runs the CLI in the test's process against the daemon at sock
// and returns what it printed and the error main would print.
func runCLI(t *testing.T, sock string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"--socket", sock}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, err := runCLI(t, sock, "ports")
	for _, want := range []string{"cannot connect to tapswitchd at " + sock, "no such file or directory", "is it running? Start it with 'tapswitchd &' as root", "--socket"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tapswitch ports with no daemon: %v, want it to contain %q", err, want)
		}
	}
}

func TestConnHint(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name string
		err  error
		want string // "" for no hint
	}{
		{"no socket", fmt.Errorf("cannot connect: %w", fs.ErrNotExist), "is it running?"},
		{"nobody listening", fmt.Errorf("cannot connect: %w", syscall.ECONNREFUSED), "is it running?"},
		{"permission", fmt.Errorf("cannot connect: %w", syscall.EACCES), "run as root, or as a member of the group tapswitchd was started with (--group)"},
		{"daemon answered", &api.DaemonError{Status: 404, Message: "not found: x"}, ""},
		{"other", fmt.Errorf("cannot connect: %w", syscall.ETIMEDOUT), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := connHint(tt.err, sock)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("connHint(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
