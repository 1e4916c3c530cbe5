package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/privtest"
)

func TestSocketAccess(t *testing.T) {
	tests := []struct {
		name, group string
		want        apiserver.Access
		errText     string
	}{
		{name: "root only", group: "", want: apiserver.RootOnly},
		{name: "by name", group: "root", want: apiserver.Access{GID: 0, Group: "root"}},
		{name: "by GID", group: "0", want: apiserver.Access{GID: 0, Group: "root"}},
		{name: "GID not in the database", group: "3999999", want: apiserver.Access{GID: 3999999}},
		{name: "unknown name", group: "no-such-group-for-tests", errText: "no such group"},
		{name: "negative GID", group: "-1", errText: "no such group"},
		{name: "GID -1 as unsigned", group: "4294967295", errText: "no such group"},
		{name: "GID too large", group: "4294967296", errText: "no such group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := socketAccess(tt.group)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) || !strings.Contains(err.Error(), "--group") {
					t.Fatalf("socketAccess(%q) = %+v, %v; want an error naming --group containing %q", tt.group, got, err, tt.errText)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("socketAccess(%q) = %+v, %v; want %+v", tt.group, got, err, tt.want)
			}
		})
	}
}

// TestListen checks the socket's owner and mode, and the directory made
// for it, with and without a group.
func TestListen(t *testing.T) {
	privtest.Require(t, "give a socket to a group")
	// A umask that would close a directory made with its default mode.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	tests := []struct {
		name   string
		access apiserver.Access
		mode   os.FileMode
		gid    uint32
	}{
		{"root only", apiserver.RootOnly, 0o600, 0},
		{"group", apiserver.Access{GID: 3999999}, 0o660, 3999999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run", "tapswitch")
			path := filepath.Join(dir, "tapswitch.sock")
			ln, err := listen(path, tt.access)
			if err != nil {
				t.Fatalf("listen(%s) = %v", path, err)
			}
			defer ln.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != tt.mode || st.Uid != 0 || st.Gid != tt.gid {
				t.Fatalf("socket %s: mode %v, owner %d:%d; want a socket, mode %v, owner 0:%d", path, fi.Mode(), st.Uid, st.Gid, tt.mode, tt.gid)
			}
			di, err := os.Stat(dir)
			if err != nil || di.Mode().Perm() != 0o755 {
				t.Fatalf("socket directory %s: %v, %v; want mode 0755", dir, di.Mode(), err)
			}
			if _, err := listen(path, tt.access); err == nil || !strings.Contains(err.Error(), "already serving") {
				t.Fatalf("second listen(%s) = %v, want 'already serving'", path, err)
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dial %s: %v", path, err)
			}
			c.Close()
		})
	}
}
