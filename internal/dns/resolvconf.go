package dns

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	mdns "github.com/miekg/dns"
)

// UpstreamsFromResolvConf returns the nameservers of the resolv.conf at path,
// in file order, on port 53. Lines the glibc resolver would ignore (comments,
// other keywords, unparsable addresses) are ignored here too; duplicates are
// dropped. A file without nameservers yields an empty list, and forwarding
// then answers SERVFAIL: glibc would fall back to 127.0.0.1, but that is the
// daemon's host, which need not run a resolver, and a guessed upstream hides
// the misconfiguration.
func UpstreamsFromResolvConf(path string) ([]netip.AddrPort, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dns: read resolv.conf: %w", err)
	}
	defer f.Close()

	out := []netip.AddrPort{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		ap := netip.AddrPortFrom(a.Unmap(), 53)
		if !slices.Contains(out, ap) {
			out = append(out, ap)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dns: read %s: %w", path, err)
	}
	return out, nil
}

// ErrInvalidSearch reports a search domain that cannot go into resolv.conf.
var ErrInvalidSearch = errors.New("dns: invalid search domain")

// WriteResolvConf writes a resolv.conf at path naming nameserver, with the
// search domains search, creating the parent directory. The file is written
// to a temporary file and renamed into place, so a process in the namespace
// never reads half of it. For a namespace NAME, path is
// /etc/netns/NAME/resolv.conf, which `ip netns exec NAME` bind-mounts over
// /etc/resolv.conf.
func WriteResolvConf(path string, nameserver netip.Addr, search []string) (err error) {
	if !nameserver.IsValid() {
		return fmt.Errorf("write %s: nameserver %v: %w", path, nameserver, ErrInvalidAddr)
	}
	var b strings.Builder
	b.WriteString("# Written by tapswitch: the network's gateway resolves its ports' names.\n")
	fmt.Fprintf(&b, "nameserver %s\n", nameserver.Unmap())
	if len(search) > 0 {
		for _, d := range search {
			// A domain with a space or newline would add keywords of its own.
			if _, ok := mdns.IsDomainName(d); !ok || d == "" || d == "." || strings.ContainsAny(d, " \t\r\n#;\\") {
				return fmt.Errorf("write %s: search %q: %w", path, d, ErrInvalidSearch)
			}
		}
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dns: write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, ".resolv.conf.*")
	if err != nil {
		return fmt.Errorf("dns: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file 0600; resolv.conf is read by every user in
	// the namespace.
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("dns: write %s: %w", path, err)
	}
	if _, err := tmp.WriteString(b.String()); err != nil {
		return fmt.Errorf("dns: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("dns: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("dns: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("dns: write %s: %w", path, err)
	}
	return nil
}

// RemoveResolvConf removes the resolv.conf at path, and its directory if
// that is left empty, as /etc/netns/NAME is once the namespace is gone. A
// missing file or a directory still holding other files is not an error.
func RemoveResolvConf(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dns: remove %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("dns: remove %s: %w", dir, err)
	}
	return nil
}
