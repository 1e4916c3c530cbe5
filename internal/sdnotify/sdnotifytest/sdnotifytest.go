// Package sdnotifytest is the service manager's side of the protocols of
// package sdnotify, for tests: a Supervisor receives a service's
// notifications on its own socket, keeps the descriptors the service
// stores as systemd's file descriptor store does (FDSTORE=1, FDNAME=,
// FDSTOREREMOVE=1, up to a maximum like FileDescriptorStoreMax=), and
// starts the next instance of the service with them (LISTEN_FDS,
// LISTEN_PID, LISTEN_FDNAMES).
package sdnotifytest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/sdnotify"
)

// Supervisor emulates the service manager for one service.
type Supervisor struct {
	path string
	conn *net.UnixConn
	max  int
	done chan struct{}

	mu sync.Mutex
	// stored is the descriptor store, in the order descriptors came.
	stored []entry
	// ready is closed when the current instance sends READY=1.
	ready chan struct{}
	// readies counts READY=1 messages; refused counts descriptors
	// refused beyond the maximum; messages counts every message.
	readies, refused, messages int
	// log records every message, for a test's failure output.
	log []string
}

type entry struct {
	name string
	f    *os.File
}

// New listens for notifications on a socket in dir and keeps at most max
// descriptors, as FileDescriptorStoreMax=max does.
func New(dir string, max int) (*Supervisor, error) {
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	// The service sends its descriptors' copies; a big buffer keeps a
	// burst of them (one message per port) from being refused.
	conn.SetReadBuffer(4 << 20)
	s := &Supervisor{path: path, conn: conn, max: max, done: make(chan struct{}), ready: make(chan struct{})}
	go s.receive()
	return s, nil
}

// Socket is the path to give the service as NOTIFY_SOCKET.
func (s *Supervisor) Socket() string { return s.path }

func (s *Supervisor) receive() {
	defer close(s.done)
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(253*4))
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		var fds []int
		if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, c := range cmsgs {
				if got, err := unix.ParseUnixRights(&c); err == nil {
					fds = append(fds, got...)
				}
			}
		}
		s.handle(string(buf[:n]), fds)
	}
}

// handle does what the manager does with one message.
func (s *Supervisor) handle(msg string, fds []int) {
	for _, fd := range fds {
		unix.CloseOnExec(fd)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(msg, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages++
	s.log = append(s.log, fmt.Sprintf("%q with %d descriptor(s)", msg, len(fds)))
	if kv["READY"] == "1" {
		s.readies++
		select {
		case <-s.ready:
		default:
			close(s.ready)
		}
	}
	name := kv["FDNAME"]
	if name == "" {
		name = "stored"
	}
	if kv["FDSTOREREMOVE"] == "1" {
		s.stored = slices.DeleteFunc(s.stored, func(e entry) bool {
			if e.name == name {
				e.f.Close()
				return true
			}
			return false
		})
	}
	if kv["FDSTORE"] != "1" || sdnotify.CheckName(name) != nil {
		// The manager closes descriptors it is not asked to keep.
		for _, fd := range fds {
			unix.Close(fd)
		}
		return
	}
	for _, fd := range fds {
		if s.storedLocked(fd) {
			// The same open file twice is kept once.
			unix.Close(fd)
			continue
		}
		if len(s.stored) >= s.max {
			s.refused++
			unix.Close(fd)
			continue
		}
		s.stored = append(s.stored, entry{name: name, f: os.NewFile(uintptr(fd), name)})
	}
}

// storedLocked reports whether fd is an open file already in the store
// (kcmp(2), as the manager compares them).
func (s *Supervisor) storedLocked(fd int) bool {
	const kcmpFile = 0
	pid := os.Getpid()
	for _, e := range s.stored {
		r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), kcmpFile, uintptr(fd), e.f.Fd(), 0)
		if errno == 0 && r == 0 {
			return true
		}
	}
	return false
}

// Command returns the command that starts the next instance of the
// service, path with args, as the manager would: with NOTIFY_SOCKET,
// and the stored descriptors from 3 up with LISTEN_FDS, LISTEN_FDNAMES
// and LISTEN_PID. The manager sets LISTEN_PID between fork and exec;
// here a shell does it before it execs the service in its place.
func (s *Supervisor) Command(path string, args ...string) *exec.Cmd {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = make(chan struct{})
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, path}, args...)...)
	names := make([]string, len(s.stored))
	for i, e := range s.stored {
		cmd.ExtraFiles = append(cmd.ExtraFiles, e.f)
		names[i] = e.name
	}
	cmd.Env = append(os.Environ(), sdnotify.EnvNotifySocket+"="+s.path)
	if len(s.stored) > 0 {
		cmd.Env = append(cmd.Env,
			sdnotify.EnvListenFDs+"="+strconv.Itoa(len(s.stored)),
			sdnotify.EnvListenNames+"="+strings.Join(names, ":"))
	}
	return cmd
}

// Ready is closed once the instance last started by Command sends
// READY=1.
func (s *Supervisor) Ready() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// Stored counts the descriptors in the store by name.
func (s *Supervisor) Stored() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, e := range s.stored {
		out[e.name]++
	}
	return out
}

// Refused counts descriptors refused because the store was full.
func (s *Supervisor) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Messages counts the messages received.
func (s *Supervisor) Messages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messages
}

// Log is every message received, in order.
func (s *Supervisor) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Close stops receiving and closes the store, as the manager does when
// the service is stopped for good.
func (s *Supervisor) Close() {
	s.conn.Close()
	<-s.done
	os.Remove(s.path)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.stored {
		e.f.Close()
	}
	s.stored = nil
}
