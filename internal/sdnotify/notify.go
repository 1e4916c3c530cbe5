package sdnotify

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables of the protocol.
const (
	EnvNotifySocket = "NOTIFY_SOCKET"
	EnvListenPID    = "LISTEN_PID"
	EnvListenFDs    = "LISTEN_FDS"
	EnvListenNames  = "LISTEN_FDNAMES"
)

// ListenFDsStart is the first descriptor a manager passes
// (SD_LISTEN_FDS_START).
const ListenFDsStart = 3

// maxFDsPerMessage is how many descriptors one datagram carries: the
// kernel takes at most 253 (SCM_MAX_FD) in one SCM_RIGHTS message.
const maxFDsPerMessage = 253

// sendTimeout bounds one notification: the manager reads its socket as
// messages come, so a second means it is stuck.
const sendTimeout = time.Second

// ErrBadName: a descriptor name the protocol cannot carry.
var ErrBadName = errors.New("sdnotify: a descriptor name is 1 to 255 printable ASCII characters other than ':'")

// CheckName reports whether name can name stored descriptors: LISTEN_FDNAMES
// separates names with ':', and the manager refuses longer ones.
func CheckName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("%q: %w", name, ErrBadName)
	}
	for i := range len(name) {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == ':' {
			return fmt.Errorf("%q: %w", name, ErrBadName)
		}
	}
	return nil
}

// Notifier sends notifications to the service manager. Its methods are
// safe for concurrent use.
type Notifier struct {
	mu   sync.Mutex
	fd   int
	addr *unix.SockaddrUnix
}

// FromEnv returns a Notifier for the socket NOTIFY_SOCKET names, and
// unsets the variable so that child processes do not talk to the
// manager in the daemon's name; nil without it. A path is a socket
// file, and a leading '@' an abstract socket.
func FromEnv() (*Notifier, error) {
	path := os.Getenv(EnvNotifySocket)
	if path == "" {
		return nil, nil
	}
	os.Unsetenv(EnvNotifySocket)
	return Dial(path)
}

// Dial returns a Notifier for the notification socket at path.
func Dial(path string) (*Notifier, error) {
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("%s=%q: want an absolute path or an abstract name (@...)", EnvNotifySocket, path)
	}
	name := path
	if name[0] == '@' {
		// An abstract address: a NUL byte, then the name.
		name = "\x00" + name[1:]
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("notification socket: %w", err)
	}
	// The daemon notifies while it holds its lock; a manager that does
	// not read costs it a second per message, not forever.
	tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("notification socket: %w", err)
	}
	return &Notifier{fd: fd, addr: &unix.SockaddrUnix{Name: name}}, nil
}

// Close closes the Notifier's socket.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fd < 0 {
		return nil
	}
	err := unix.Close(n.fd)
	n.fd = -1
	return err
}

// Send sends state, newline-separated KEY=VALUE assignments, with fds
// attached. The manager takes them as one message, so a state naming
// descriptors must carry at most 253 of them (see Store).
func (n *Notifier) Send(state string, fds ...int) error {
	if n == nil {
		return nil
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fd < 0 {
		return fmt.Errorf("notify %q: %w", firstLine(state), os.ErrClosed)
	}
	if err := unix.Sendmsg(n.fd, []byte(state), oob, n.addr, 0); err != nil {
		return fmt.Errorf("notify %q: %w", firstLine(state), err)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Ready tells the manager that start-up is over (READY=1), with status
// as STATUS= when it is not empty.
func (n *Notifier) Ready(status string) error {
	if status != "" {
		return n.Send("READY=1\nSTATUS=" + status)
	}
	return n.Send("READY=1")
}

// Stopping tells the manager the service is shutting down.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Store hands copies of fds to the manager's descriptor store under
// name (FDSTORE=1, FDNAME=name); the caller keeps its own. The manager
// gives them back at the service's next start, in LISTEN_FDS, however
// the service ended. More than 253 go in several messages.
func (n *Notifier) Store(name string, fds ...int) error {
	if n == nil || len(fds) == 0 {
		return nil
	}
	if err := CheckName(name); err != nil {
		return err
	}
	for len(fds) > 0 {
		k := min(len(fds), maxFDsPerMessage)
		if err := n.Send("FDSTORE=1\nFDNAME="+name, fds[:k]...); err != nil {
			return err
		}
		fds = fds[k:]
	}
	return nil
}

// Remove drops every descriptor stored under name (FDSTOREREMOVE=1).
func (n *Notifier) Remove(name string) error {
	if n == nil {
		return nil
	}
	if err := CheckName(name); err != nil {
		return err
	}
	return n.Send("FDSTOREREMOVE=1\nFDNAME=" + name)
}
