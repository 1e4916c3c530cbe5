package dns

import (
	"errors"
	"io/fs"
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

	if err := RemoveResolvConf(path); err != nil {
		t.Fatalf("RemoveResolvConf(%s) = %v", path, err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat %s after remove = %v, want it gone", filepath.Dir(path), err)
	}
	if _, err := os.Stat(netns); err != nil {
		t.Fatalf("stat %s after remove = %v, want it kept", netns, err)
	}
	if err := RemoveResolvConf(path); err != nil {
		t.Fatalf("RemoveResolvConf(%s) twice = %v, want nil", path, err)
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
	if err := RemoveResolvConf(dbConf); err != nil {
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
