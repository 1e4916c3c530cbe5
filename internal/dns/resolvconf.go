package dns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"
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

// ErrUnsafePath reports a resolv.conf, or its directory, that is not what
// its writer makes: a symbolic link, or a file that is not a regular one.
// Such a path is left alone: written through, a symbolic link
// /etc/netns/NAME -> /etc would put the file in /etc, and removed
// through, one to another directory would take that directory's file.
var ErrUnsafePath = errors.New("a symbolic link or special file, not followed")

// ErrInvalidOwner reports an owner that cannot go into a header line or a
// file name.
var ErrInvalidOwner = errors.New("dns: invalid resolv.conf owner")

// maxOwner bounds an owner: a short identifier, such as 8 hex digits.
const maxOwner = 32

// Header is the first line of a resolv.conf written for owner: "# Written
// by tapswitch OWNER: ..." ("# Written by tapswitch: ..." for no owner).
// A writer tells its own files from another's by it.
func Header(owner string) string {
	if owner != "" {
		owner = " " + owner
	}
	return "# Written by tapswitch" + owner + ": the network's gateway resolves its ports' names."
}

// TempPrefix starts the name of every temporary file WriteResolvConfAs
// makes for owner, next to the resolv.conf it replaces. A writer killed
// between making one and renaming it leaves it; this prefix is how the
// writer's next start finds its own among the directory's files.
func TempPrefix(owner string) string {
	if owner == "" {
		return ".resolv.conf.tapswitch."
	}
	return ".resolv.conf.tapswitch-" + owner + "."
}

func checkOwner(owner string) error {
	if len(owner) > maxOwner {
		return fmt.Errorf("%w: %q is longer than %d bytes", ErrInvalidOwner, owner, maxOwner)
	}
	for _, r := range owner {
		if !(r == '-' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9') {
			return fmt.Errorf("%w: %q: only a-z, 0-9 and '-'", ErrInvalidOwner, owner)
		}
	}
	return nil
}

// WriteResolvConf is WriteResolvConfAs with no owner.
func WriteResolvConf(path string, nameserver netip.Addr, search []string) error {
	return WriteResolvConfAs(path, "", nameserver, search)
}

// WriteResolvConfAs writes a resolv.conf at path naming nameserver, with
// the search domains search, under Header(owner). For a namespace NAME,
// path is /etc/netns/NAME/resolv.conf, which `ip netns exec NAME`
// bind-mounts over /etc/resolv.conf.
//
// The directory of path and its parent are made if missing; neither may
// be a symbolic link, and the file is written inside the directory as
// opened (openat), so nothing swapped in meanwhile redirects it: a
// symbolic link in their place gives ErrUnsafePath and nothing is
// written. The file is written to a temporary file (named with
// TempPrefix(owner)) and renamed over path, which replaces whatever path
// was, a symbolic link included, without following it; a process in the
// namespace never reads half of it.
func WriteResolvConfAs(path, owner string, nameserver netip.Addr, search []string) (err error) {
	if !nameserver.IsValid() {
		return fmt.Errorf("write %s: nameserver %v: %w", path, nameserver, ErrInvalidAddr)
	}
	text, err := ResolvConfText(owner, nameserver, search)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fail := func(err error) error { return fmt.Errorf("dns: write %s: %w", path, err) }

	base, name, file, err := splitPath(path)
	if err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return fail(err)
	}
	bfd, err := openDir(unix.AT_FDCWD, base, base)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(bfd)
	made := unix.Mkdirat(bfd, name, 0o755) == nil
	dfd, err := openDir(bfd, name, filepath.Dir(path))
	if err != nil {
		return fail(err)
	}
	defer unix.Close(dfd)
	if made {
		defer func() {
			if err != nil {
				// Only if still empty: never what another writer put there.
				unix.Unlinkat(bfd, name, unix.AT_REMOVEDIR)
			}
		}()
	}
	tmp, f, err := createTemp(dfd, TempPrefix(owner))
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			f.Close()
			unix.Unlinkat(dfd, tmp, 0)
		}
	}()
	// The umask may have taken bits off; resolv.conf is read by every
	// user in the namespace.
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if _, err := f.WriteString(text); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := unix.Renameat(dfd, tmp, dfd, file); err != nil {
		return fail(fmt.Errorf("rename %s to %s: %w", tmp, file, err))
	}
	return nil
}

// ResolvConfText is what WriteResolvConfAs writes: Header(owner), the
// nameserver and the search domains, if any.
func ResolvConfText(owner string, nameserver netip.Addr, search []string) (string, error) {
	if !nameserver.IsValid() {
		return "", fmt.Errorf("nameserver %v: %w", nameserver, ErrInvalidAddr)
	}
	if err := checkOwner(owner); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(Header(owner) + "\n")
	fmt.Fprintf(&b, "nameserver %s\n", nameserver.Unmap())
	if len(search) > 0 {
		for _, d := range search {
			// A domain with a space or newline would add keywords of its own.
			if _, ok := mdns.IsDomainName(d); !ok || d == "" || d == "." || strings.ContainsAny(d, " \t\r\n#;\\") {
				return "", fmt.Errorf("search %q: %w", d, ErrInvalidSearch)
			}
		}
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return b.String(), nil
}

// FirstLine returns the first line of the resolv.conf at path, without
// its newline, as RemoveResolvConf's ours sees it; ErrUnsafePath if path
// or its directory is a symbolic link or path is not a regular file.
func FirstLine(path string) (string, error) {
	base, name, file, err := splitPath(path)
	if err != nil {
		return "", fmt.Errorf("dns: read %s: %w", path, err)
	}
	// The errors below name the path.
	bfd, err := openDir(unix.AT_FDCWD, base, base)
	if err != nil {
		return "", fmt.Errorf("dns: %w", err)
	}
	defer unix.Close(bfd)
	dfd, err := openDir(bfd, name, filepath.Dir(path))
	if err != nil {
		return "", fmt.Errorf("dns: %w", err)
	}
	defer unix.Close(dfd)
	line, err := firstLineAt(dfd, file, path)
	if err != nil {
		return "", fmt.Errorf("dns: %w", err)
	}
	return line, nil
}

// RemoveResolvConf removes, in the directory of the resolv.conf at path,
// the temporary files a writer for owner left (see TempPrefix), the
// resolv.conf itself if ours says its first line is the writer's, and
// then the directory if nothing else is left in it, as /etc/netns/NAME
// is once the namespace is gone. It reports whether it removed the
// resolv.conf. A missing file or directory is no error, and neither is a
// directory still holding other files. A directory that is a symbolic
// link is left alone, with ErrUnsafePath; so is a resolv.conf that is a
// symbolic link or not a regular file, though the directory's other
// files of owner still go.
func RemoveResolvConf(path, owner string, ours func(firstLine string) bool) (removed bool, err error) {
	fail := func(err error) (bool, error) { return removed, fmt.Errorf("dns: remove %s: %w", path, err) }
	base, name, file, err := splitPath(path)
	if err != nil {
		return fail(err)
	}
	bfd, err := openDir(unix.AT_FDCWD, base, base)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return fail(err)
	}
	defer unix.Close(bfd)
	dfd, err := openDir(bfd, name, filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return fail(err)
	}
	defer unix.Close(dfd)
	if err := removeTemps(dfd, TempPrefix(owner)); err != nil {
		return fail(err)
	}
	var unsafe error
	line, err := firstLineAt(dfd, file, path)
	switch {
	case err == nil && ours(line):
		if err := unix.Unlinkat(dfd, file, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fail(err)
		}
		removed = true
	case errors.Is(err, ErrUnsafePath):
		unsafe = err
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fail(err)
	}
	err = unix.Unlinkat(bfd, name, unix.AT_REMOVEDIR)
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return fail(fmt.Errorf("%s: %w", filepath.Dir(path), err))
	}
	if unsafe != nil {
		return fail(unsafe)
	}
	return removed, nil
}

// splitPath cuts path into the directory trusted as named (base), the
// directory of the file in it (name) and the file's name.
func splitPath(path string) (base, name, file string, err error) {
	clean := filepath.Clean(path)
	if clean != path || !filepath.IsAbs(path) {
		return "", "", "", fmt.Errorf("%q: want a clean absolute path", path)
	}
	dir, file := filepath.Split(clean)
	base, name = filepath.Split(filepath.Clean(dir))
	if file == "" || name == "" || name == "." || name == ".." {
		return "", "", "", fmt.Errorf("%q: want BASE/NAME/FILE", path)
	}
	return filepath.Clean(base), name, file, nil
}

// openDir opens the directory name relative to dirfd without following
// a symbolic link in its last component; shown is its path, for errors.
func openDir(dirfd int, name, shown string) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return -1, fmt.Errorf("%s: %w, where a directory should be; remove it", shown, ErrUnsafePath)
	case errors.Is(err, unix.ENOENT):
		return -1, fmt.Errorf("%s: %w", shown, fs.ErrNotExist)
	}
	return -1, fmt.Errorf("open %s: %w", shown, err)
}

// maxHeader bounds what firstLineAt reads: a header line is shorter.
const maxHeader = 256

// firstLineAt reads the first line of the regular file name in dirfd,
// without following a symbolic link and without waiting on a FIFO; shown
// is its path, for errors.
func firstLineAt(dirfd int, name, shown string) (string, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ELOOP):
		return "", fmt.Errorf("%s: %w, where a regular file should be; remove it", shown, ErrUnsafePath)
	case errors.Is(err, unix.ENOENT):
		return "", fmt.Errorf("%s: %w", shown, fs.ErrNotExist)
	case err != nil:
		return "", fmt.Errorf("open %s: %w", shown, err)
	}
	f := os.NewFile(uintptr(fd), shown)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %w, where a regular file should be; remove it", shown, ErrUnsafePath)
	}
	buf := make([]byte, maxHeader)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	return line, nil
}

// createTemp makes a new file named prefix and a random suffix in dirfd,
// never through a symbolic link.
func createTemp(dirfd int, prefix string) (string, *os.File, error) {
	for range 16 {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 36)
		fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("create %s: %w", name, err)
		}
		return name, os.NewFile(uintptr(fd), name), nil
	}
	return "", nil, fmt.Errorf("create %s*: every name tried exists", prefix)
}

// removeTemps removes the files of dirfd whose names start with prefix.
func removeTemps(dirfd int, prefix string) error {
	// ReadDir on a descriptor of its own: closing the file closes it.
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), ".")
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type()&fs.ModeDir == 0 {
			if err := unix.Unlinkat(dirfd, e.Name(), 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}
