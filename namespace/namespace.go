// Package namespace is the one place tapswitch enters a network
// namespace. Everything that must happen inside a namespace (opening a
// TAP, making a netlink socket, opening a packet socket in a test) goes
// through Do, which runs on a locked OS thread and always returns the
// thread to the namespace it came from before unlocking it.
//
// It is also where a user's namespace spec becomes a file: ParseSpec
// checks its form, and Resolve checks that the file it names is a network
// namespace. The daemon opens these files as root for whoever may use its
// socket, so a file is examined through an O_PATH descriptor, which opens
// nothing, and only a network namespace file is ever opened for real.
package namespace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RunDir is where iproute2 keeps named network namespaces.
const RunDir = "/run/netns"

// ErrNotFound reports a namespace spec that names no namespace.
var ErrNotFound = errors.New("network namespace not found")

// ErrNotNetns reports a file that exists but is not a network namespace:
// a regular file, a directory, a device, or a namespace of another type.
var ErrNotNetns = errors.New("not a network namespace")

// specHelp says what a spec may be, for messages.
const specHelp = "give a name under " + RunDir + ", pid:PID, or a path such as /proc/PID/ns/net"

// maxSpec bounds a spec: PATH_MAX, the longest path the kernel takes.
const maxSpec = 4096

// maxName bounds a name under RunDir: NAME_MAX.
const maxName = 255

// ParseSpec checks the form of a user's namespace spec and returns the
// path it stands for, without looking at the file system:
//
//	"NAME"      -> /run/netns/NAME (ip netns add NAME)
//	"pid:PID"   -> /proc/PID/ns/net
//	"/a/path"   -> the path, cleaned
//
// A path must be absolute: the daemon resolves it, and does not share the
// caller's working directory. Use Resolve to also check the file.
func ParseSpec(spec string) (string, error) {
	switch {
	case spec == "":
		return "", fmt.Errorf("empty network namespace: %s", specHelp)
	case len(spec) > maxSpec:
		return "", fmt.Errorf("network namespace %.40q...: longer than %d bytes", spec, maxSpec)
	case strings.ContainsFunc(spec, isControl):
		return "", fmt.Errorf("network namespace %q: contains a control character; %s", spec, specHelp)
	}
	if p, ok := strings.CutPrefix(spec, "pid:"); ok {
		pid, err := strconv.ParseUint(p, 10, 31)
		if err != nil || pid == 0 {
			return "", fmt.Errorf("network namespace %q: pid must be a positive number", spec)
		}
		return fmt.Sprintf("/proc/%d/ns/net", pid), nil
	}
	if strings.ContainsRune(spec, '/') {
		if !filepath.IsAbs(spec) {
			return "", fmt.Errorf("network namespace %q: a path must be absolute, such as /proc/PID/ns/net or %s/NAME (tapswitchd does not share your working directory)", spec, RunDir)
		}
		return filepath.Clean(spec), nil
	}
	if spec == "." || spec == ".." {
		return "", fmt.Errorf("network namespace %q: not a valid name; %s", spec, specHelp)
	}
	if len(spec) > maxName {
		return "", fmt.Errorf("network namespace %.40q...: a name is at most %d bytes", spec, maxName)
	}
	return filepath.Join(RunDir, spec), nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Resolve turns a user's namespace spec (see ParseSpec) into the path of
// a network namespace file, with symbolic links resolved:
// /var/run/netns/NAME becomes /run/netns/NAME and /proc/self/ns/net
// becomes /proc/PID/ns/net of the caller.
//
// The file must be a network namespace: one under /run/netns, the
// namespace of a process or thread (/proc/PID/ns/net,
// /proc/PID/task/TID/ns/net), or a bind mount of one elsewhere. Anything
// else (a regular file, a directory, a device, another type of namespace
// such as /proc/PID/ns/mnt) is refused, wrapping ErrNotNetns, without
// being opened. A spec naming no file wraps ErrNotFound.
func Resolve(spec string) (string, error) {
	path, err := ParseSpec(spec)
	if err != nil {
		return "", err
	}
	real, err := resolve(path)
	if err != nil {
		if path != spec {
			return "", fmt.Errorf("network namespace %q: %s: %w", spec, path, err)
		}
		return "", fmt.Errorf("network namespace %q: %w", spec, err)
	}
	return real, nil
}

// Exists reports whether path still names a file.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
