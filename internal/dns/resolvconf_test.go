package dns

import (
	"errors"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestUpstreamsFromResolvConf(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		conf string
		want []netip.AddrPort
	}{
		{"systemd-resolved stub", "# This is /run/systemd/resolve/stub-resolv.conf\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n",
			[]netip.AddrPort{ap("127.0.0.53:53")}},
		{"several in order", "nameserver 192.168.1.1\nnameserver 2001:db8::1\nnameserver 1.1.1.1\n",
			[]netip.AddrPort{ap("192.168.1.1:53"), ap("[2001:db8::1]:53"), ap("1.1.1.1:53")}},
		{"zone", "nameserver fe80::1%eth0\n", []netip.AddrPort{ap("[fe80::1%eth0]:53")}},
		{"tabs, blanks and trailing words", "\n  nameserver\t10.0.0.1   # router\n\n", []netip.AddrPort{ap("10.0.0.1:53")}},
		{"comments and other keywords", "#nameserver 10.0.0.9\n;nameserver 10.0.0.8\ndomain lan\nnameservers 10.0.0.7\n", []netip.AddrPort{}},
		{"invalid addresses skipped", "nameserver dns.example\nnameserver 10.0.0.1:5353\nnameserver\nnameserver 10.0.0.2\n", []netip.AddrPort{ap("10.0.0.2:53")}},
		{"mapped and duplicate", "nameserver ::ffff:10.0.0.1\nnameserver 10.0.0.1\n", []netip.AddrPort{ap("10.0.0.1:53")}},
		{"CRLF", "nameserver 10.0.0.1\r\nnameserver 10.0.0.2\r\n", []netip.AddrPort{ap("10.0.0.1:53"), ap("10.0.0.2:53")}},
		{"empty", "", []netip.AddrPort{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := UpstreamsFromResolvConf(path)
			if err != nil || got == nil || !slices.Equal(got, tt.want) {
				t.Fatalf("UpstreamsFromResolvConf(%q) = %v, %v, want %v, nil", tt.conf, got, err, tt.want)
			}
		})
	}

	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := UpstreamsFromResolvConf(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("UpstreamsFromResolvConf(%s) = %v, want %v", missing, err, fs.ErrNotExist)
	}
}

func TestWriteRemoveResolvConf(t *testing.T) {
	netns := filepath.Join(t.TempDir(), "etc", "netns")
	path := filepath.Join(netns, "web", "resolv.conf")
	gw := netip.MustParseAddr("10.20.0.1")

	if err := WriteResolvConf(path, gw, []string{"front"}); err != nil {
		t.Fatalf("WriteResolvConf(%s) = %v", path, err)
	}
	for p, want := range map[string]fs.FileMode{path: 0o644, filepath.Dir(path): 0o755 | fs.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		// The umask may only take bits away.
		if fi.Mode()&^want != 0 || fi.Mode()&0o444 == 0 {
			t.Fatalf("mode of %s = %v, want %v", p, fi.Mode(), want)
		}
	}
	got, err := UpstreamsFromResolvConf(path)
	if want := []netip.AddrPort{netip.AddrPortFrom(gw, 53)}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("UpstreamsFromResolvConf of written file = %v, %v, want %v", got, err, want)
	}
	b, _ := os.ReadFile(path)
	if !slices.Contains(splitLines(string(b)), "search front") {
		t.Fatalf("written resolv.conf = %q, want a line %q", b, "search front")
	}

	// Rewriting replaces the file and leaves no temporary behind.
	if err := WriteResolvConf(path, netip.MustParseAddr("fd00:20::1"), nil); err != nil {
		t.Fatalf("WriteResolvConf(%s) again = %v", path, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("%s holds %d entries after rewrite, want 1", filepath.Dir(path), len(entries))
	}

	if removed, err := RemoveResolvConf(path, "", isHeader("")); err != nil || !removed {
		t.Fatalf("RemoveResolvConf(%s) = %v, %v, want true, nil", path, removed, err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat %s after remove = %v, want it gone", filepath.Dir(path), err)
	}
	if _, err := os.Stat(netns); err != nil {
		t.Fatalf("stat %s after remove = %v, want it kept", netns, err)
	}
	if removed, err := RemoveResolvConf(path, "", isHeader("")); err != nil || removed {
		t.Fatalf("RemoveResolvConf(%s) twice = %v, %v, want false, nil", path, removed, err)
	}

	// A directory holding other files stays.
	other := filepath.Join(netns, "db", "hosts")
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dbConf := filepath.Join(netns, "db", "resolv.conf")
	if err := WriteResolvConf(dbConf, gw, nil); err != nil {
		t.Fatalf("WriteResolvConf(%s) = %v", dbConf, err)
	}
	if _, err := RemoveResolvConf(dbConf, "", isHeader("")); err != nil {
		t.Fatalf("RemoveResolvConf(%s) = %v", dbConf, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("stat %s after removing its neighbour = %v", other, err)
	}
}

func TestWriteResolvConfInvalid(t *testing.T) {
	tests := []struct {
		name   string
		ns     netip.Addr
		search []string
		want   error
	}{
		{"no nameserver", netip.Addr{}, nil, ErrInvalidAddr},
		{"newline in search", netip.MustParseAddr("10.20.0.1"), []string{"front\nnameserver 6.6.6.6"}, ErrInvalidSearch},
		{"space in search", netip.MustParseAddr("10.20.0.1"), []string{"a b"}, ErrInvalidSearch},
		{"empty search", netip.MustParseAddr("10.20.0.1"), []string{""}, ErrInvalidSearch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "netns", "x", "resolv.conf")
			if err := WriteResolvConf(path, tt.ns, tt.search); !errors.Is(err, tt.want) {
				t.Fatalf("WriteResolvConf(%v, %q) = %v, want %v", tt.ns, tt.search, err, tt.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("stat %s after failed write = %v, want no file", path, err)
			}
		})
	}
}

// isHeader is RemoveResolvConf's ours for the files of owner.
func isHeader(owner string) func(string) bool {
	return func(line string) bool { return line == Header(owner) }
}

// TestResolvConfSymlinks puts symbolic links where the directory or the
// file should be: nothing is written, read or removed through them, and
// the error says so.
func TestResolvConfSymlinks(t *testing.T) {
	gw := netip.MustParseAddr("10.20.0.1")
	for _, tt := range []struct {
		name string
		// setup makes base/web as a hostile neighbour would; outside is
		// a directory elsewhere holding a file of value.
		setup func(t *testing.T, base, outside string)
		// written says whether a resolv.conf is then written (over the
		// link, not through it).
		written bool
	}{
		{name: "directory is a link to another directory", setup: func(t *testing.T, base, outside string) {
			mustSymlink(t, outside, filepath.Join(base, "web"))
		}},
		{name: "directory is a link to a file", setup: func(t *testing.T, base, outside string) {
			mustSymlink(t, filepath.Join(outside, "shadow"), filepath.Join(base, "web"))
		}},
		{name: "resolv.conf is a link to a file", setup: func(t *testing.T, base, outside string) {
			mustMkdir(t, filepath.Join(base, "web"))
			mustSymlink(t, filepath.Join(outside, "shadow"), filepath.Join(base, "web", "resolv.conf"))
		}, written: true},
		{name: "resolv.conf is a link to our own file elsewhere", setup: func(t *testing.T, base, outside string) {
			mustMkdir(t, filepath.Join(base, "web"))
			if err := WriteResolvConfAs(filepath.Join(outside, "x", "resolv.conf"), "a1", gw, nil); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, filepath.Join(outside, "x", "resolv.conf"), filepath.Join(base, "web", "resolv.conf"))
		}, written: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			base, outside := filepath.Join(root, "netns"), filepath.Join(root, "etc")
			mustMkdir(t, base)
			mustMkdir(t, outside)
			shadow := filepath.Join(outside, "shadow")
			if err := os.WriteFile(shadow, []byte("root:secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, base, outside)
			before := snapshot(t, outside)
			path := filepath.Join(base, "web", "resolv.conf")

			if line, err := FirstLine(path); !errors.Is(err, ErrUnsafePath) {
				t.Errorf("FirstLine(%s) = %q, %v, want %v", path, line, err, ErrUnsafePath)
			}
			if removed, err := RemoveResolvConf(path, "a1", func(string) bool { return true }); removed || !errors.Is(err, ErrUnsafePath) {
				t.Errorf("RemoveResolvConf(%s) = %v, %v, want false, %v", path, removed, err, ErrUnsafePath)
			}
			err := WriteResolvConfAs(path, "a1", gw, nil)
			if tt.written != (err == nil) {
				t.Errorf("WriteResolvConfAs(%s) = %v, want written: %v", path, err, tt.written)
			}
			if err != nil && !errors.Is(err, ErrUnsafePath) {
				t.Errorf("WriteResolvConfAs(%s) = %v, want %v", path, err, ErrUnsafePath)
			}
			if after := snapshot(t, outside); !maps.Equal(before, after) {
				t.Errorf("files outside changed: before %v, after %v", before, after)
			}
			if tt.written {
				fi, err := os.Lstat(path)
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("lstat %s = %v, %v, want a regular file in place of the link", path, fi, err)
				}
				if line, err := FirstLine(path); err != nil || line != Header("a1") {
					t.Errorf("FirstLine(%s) = %q, %v, want the header", path, line, err)
				}
			}
		})
	}
}

// TestRemoveResolvConfTemps removes the temporary files of its owner
// only, and the directory once nothing else is in it.
func TestRemoveResolvConfTemps(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "web")
	mustMkdir(t, dir)
	for _, name := range []string{TempPrefix("a1") + "x1", TempPrefix("a1") + "x2", TempPrefix("b2") + "x3", ".resolv.conf.123"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "resolv.conf")
	if err := WriteResolvConfAs(path, "a1", netip.MustParseAddr("10.20.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	// Not ours to remove (held by a port, say): the temporaries go all the same.
	if removed, err := RemoveResolvConf(path, "a1", func(string) bool { return false }); err != nil || removed {
		t.Fatalf("RemoveResolvConf() = %v, %v, want false, nil", removed, err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{".resolv.conf.123", TempPrefix("b2") + "x3", "resolv.conf"}) {
		t.Fatalf("left %v, want the other owner's, the unnamed one and resolv.conf", got)
	}
	os.Remove(filepath.Join(dir, TempPrefix("b2")+"x3"))
	os.Remove(filepath.Join(dir, ".resolv.conf.123"))
	if removed, err := RemoveResolvConf(path, "a1", isHeader("a1")); err != nil || !removed {
		t.Fatalf("RemoveResolvConf() = %v, %v, want true, nil", removed, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat %s = %v, want it gone", dir, err)
	}
	// A directory left empty (the file went, then the writer was
	// killed) goes too.
	mustMkdir(t, dir)
	if _, err := RemoveResolvConf(path, "a1", isHeader("a1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat %s = %v, want the empty directory gone", dir, err)
	}
	if err := WriteResolvConfAs(path, "A/1", netip.MustParseAddr("10.20.0.1"), nil); !errors.Is(err, ErrInvalidOwner) {
		t.Fatalf("WriteResolvConfAs(owner A/1) = %v, want %v", err, ErrInvalidOwner)
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every file under dir to its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			b, _ := os.ReadFile(path)
			out[path] = string(b)
		}
		return nil
	})
	return out
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}
