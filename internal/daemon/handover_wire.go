package daemon

// The hand-over between a running daemon (the predecessor) and the one
// started with --upgrade (the successor), on a SOCK_SEQPACKET Unix
// socket in the state directory, root's only. Each message is one JSON
// object; descriptors ride with SCM_RIGHTS on "fds" messages, whose
// names say, in order, what each descriptor is.
//
//	successor                                predecessor
//	hello {pid, version}            ──►      (stops its API, stops reading
//	                                          its TAPs, writes the state)
//	                                ◄──      fds {names} + SCM_RIGHTS, ...
//	                                ◄──      end {count}
//	(restores from the state with
//	 those descriptors, forwards,
//	 serves the API)
//	done                            ──►      exits
//
// What each side does when the other fails:
//   - the successor refuses, dies, or says nothing for handoverTimeout
//     before "done": the predecessor makes sure it is dead (SIGKILL
//     through a pidfd, so no other process is hit), then resumes with
//     the descriptors it kept;
//   - the predecessor refuses ("abort"): the successor exits with its
//     reason, and the predecessor goes on as it was;
//   - the predecessor dies before "end": the successor checks that it is
//     gone and starts as after a crash, with the descriptors it got so
//     far and the rest opened by name.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/fdset"
	"github.com/tapswitch/tapswitch/internal/version"
)

// Hand-over errors.
var (
	// ErrNoPredecessor: no daemon listens on the state directory's
	// hand-over socket.
	ErrNoPredecessor = errors.New("no tapswitchd of this state directory is running to take over from")
	// ErrPredecessorGone: the predecessor went away before it handed
	// everything over.
	ErrPredecessorGone = errors.New("the running tapswitchd went away in the middle of the hand-over")
	// ErrHandoverRefused: the other side said no, with its reason.
	ErrHandoverRefused = errors.New("hand-over refused")
)

// handoverTimeout bounds each side's wait for the other: the successor
// restores every port before it says "done", about a millisecond a port
// (TestRestartKill's figures), so 30 s leaves room for thousands of
// ports on a loaded machine, while a successor that hangs gives the
// ports back to the predecessor within a minute. A variable for tests.
var handoverTimeout = 30 * time.Second

// fdsPerMessage bounds the descriptors of one message: the kernel takes
// at most 253 in one SCM_RIGHTS message (SCM_MAX_FD).
const fdsPerMessage = 200

// maxHandoverMessage bounds a message: fdsPerMessage names of at most
// 70 bytes (tap/ or pub/, a port name of 63, a mapping's index) in JSON.
const maxHandoverMessage = 64 << 10

// HandoverSocket is the hand-over socket of the state directory dir.
func HandoverSocket(dir string) string { return filepath.Join(dir, "handover.sock") }

type handoverMsg struct {
	Op      string   `json:"op"`
	Pid     int      `json:"pid,omitempty"`
	Version string   `json:"version,omitempty"`
	Names   []string `json:"names,omitempty"`
	Count   int      `json:"count,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// ListenHandover listens on the hand-over socket of the state directory
// dir, made mode 0600 from the start: only root may take over. A socket
// file a dead daemon left is replaced. The file stays when the listener
// closes, for the successor the listener is handed to.
func ListenHandover(dir string) (*net.UnixListener, error) {
	path := HandoverSocket(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("hand-over socket: %w", err)
	}
	if c, err := net.DialTimeout("unixpacket", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("hand-over socket %s: another tapswitchd answers on it; stop it first, or take over from it with --upgrade", path)
	}
	os.Remove(path)
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("hand-over socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

// handoverConn is one side's end of a hand-over.
type handoverConn struct {
	conn *net.UnixConn
	// Pid is the other side's process, and pidfd a descriptor of it
	// (pidfd_open), to wait for or end that very process.
	Pid   int
	pidfd int
}

func newHandoverConn(c *net.UnixConn) (*handoverConn, error) {
	var cred *unix.Ucred
	rc, err := c.SyscallConn()
	if err == nil {
		var credErr error
		err = rc.Control(func(fd uintptr) { cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
		err = errors.Join(err, credErr)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("hand-over: credentials of the other side: %w", err)
	}
	// The daemon runs as root, so the other side must too. (The socket
	// is root's, mode 0600, so no one else could connect anyway.)
	if int(cred.Uid) != os.Geteuid() {
		c.Close()
		return nil, fmt.Errorf("hand-over: %w: the other side (pid %d) runs as uid %d, not %d", ErrHandoverRefused, cred.Pid, cred.Uid, os.Geteuid())
	}
	h := &handoverConn{conn: c, Pid: int(cred.Pid), pidfd: -1}
	if fd, err := unix.PidfdOpen(h.Pid, 0); err == nil {
		h.pidfd = fd
	}
	return h, nil
}

func (h *handoverConn) send(m handoverMsg, fds ...int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	h.conn.SetWriteDeadline(time.Now().Add(handoverTimeout))
	if _, _, err := h.conn.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("hand-over: send %s: %w", m.Op, err)
	}
	return nil
}

// recv reads one message and its descriptors, waiting until deadline.
// The other side closing gives io.EOF.
func (h *handoverConn) recv(deadline time.Time) (handoverMsg, []int, error) {
	var m handoverMsg
	buf := make([]byte, maxHandoverMessage)
	oob := make([]byte, unix.CmsgSpace(fdsPerMessage*4))
	h.conn.SetReadDeadline(deadline)
	n, oobn, flags, _, err := h.conn.ReadMsgUnix(buf, oob)
	var fds []int
	if oobn > 0 {
		if cmsgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for _, c := range cmsgs {
				if got, perr := unix.ParseUnixRights(&c); perr == nil {
					for _, fd := range got {
						unix.CloseOnExec(fd)
					}
					fds = append(fds, got...)
				}
			}
		}
	}
	fail := func(err error) (handoverMsg, []int, error) {
		closeFDs(fds)
		return m, nil, err
	}
	switch {
	case err != nil:
		return fail(err)
	case n == 0:
		return fail(io.EOF)
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		return fail(fmt.Errorf("hand-over: a message was cut short (%d bytes, %d of control)", n, oobn))
	}
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		return fail(fmt.Errorf("hand-over: %w", err))
	}
	return m, fds, nil
}

// alive reports whether the other side's process still runs.
func (h *handoverConn) alive() bool {
	if h.pidfd < 0 {
		return unix.Kill(h.Pid, 0) == nil
	}
	// A pidfd polls readable once the process has exited.
	pfd := []unix.PollFd{{Fd: int32(h.pidfd), Events: unix.POLLIN}}
	n, _ := unix.Poll(pfd, 0)
	return n == 0
}

// waitGone waits up to limit for the other side's process to exit.
func (h *handoverConn) waitGone(limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for h.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Close closes the connection.
func (h *handoverConn) Close() error {
	if h.pidfd >= 0 {
		unix.Close(h.pidfd)
		h.pidfd = -1
	}
	return h.conn.Close()
}

// Successor is a daemon that asked to take over, as the predecessor
// sees it.
type Successor struct {
	*handoverConn
	// Version is the successor's.
	Version string
}

// AcceptSuccessor waits on ln for a successor and reads its hello. One
// that is not root is refused.
func AcceptSuccessor(ln *net.UnixListener) (*Successor, error) {
	c, err := ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	h, err := newHandoverConn(c)
	if err != nil {
		return nil, err
	}
	m, fds, err := h.recv(time.Now().Add(5 * time.Second))
	closeFDs(fds)
	if err == nil && m.Op != "hello" {
		err = fmt.Errorf("hand-over: want hello, got %q", m.Op)
	}
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("hand-over from pid %d: %w", h.Pid, err)
	}
	return &Successor{handoverConn: h, Version: m.Version}, nil
}

// Send hands set over to the successor: every descriptor with its name.
// The predecessor keeps its own copies until the successor is done.
func (s *Successor) Send(set *fdset.Set) error {
	var names []string
	var fds []int
	count := 0
	flush := func() error {
		if len(fds) == 0 {
			return nil
		}
		err := s.send(handoverMsg{Op: "fds", Names: names}, fds...)
		count += len(fds)
		names, fds = nil, nil
		return err
	}
	var err error
	set.Each(func(name string, group []int) {
		for _, fd := range group {
			if err != nil {
				return
			}
			names, fds = append(names, name), append(fds, fd)
			if len(fds) == fdsPerMessage {
				err = flush()
			}
		}
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	return s.send(handoverMsg{Op: "end", Count: count})
}

// Refuse tells the successor the hand-over will not happen, and why.
func (s *Successor) Refuse(reason error) {
	s.send(handoverMsg{Op: "abort", Error: reason.Error()})
	s.Close()
}

// Wait waits for the successor to say it has taken over. Any other end
// (its refusal, its death, handoverTimeout) is an error: the successor
// has not taken over, and must be stopped (Stop) before the predecessor
// resumes.
func (s *Successor) Wait() error {
	m, fds, err := s.recv(time.Now().Add(handoverTimeout))
	closeFDs(fds)
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("hand-over: the successor (pid %d) went away before it took over", s.Pid)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("hand-over: the successor (pid %d) did not take over within %v", s.Pid, handoverTimeout)
	case err != nil:
		return err
	case m.Op == "abort":
		return fmt.Errorf("hand-over: the successor (pid %d) gave up: %s", s.Pid, m.Error)
	case m.Op != "done":
		return fmt.Errorf("hand-over: want done from the successor, got %q", m.Op)
	}
	return nil
}

// Stop makes sure the successor no longer runs, killing it if it does,
// so that only one daemon ever reads the TAPs. It reports whether the
// successor is gone.
func (s *Successor) Stop() bool {
	if !s.alive() {
		return true
	}
	if s.pidfd >= 0 {
		unix.PidfdSendSignal(s.pidfd, unix.SIGKILL, nil, 0)
	} else {
		// Without a pidfd (kernels before 5.3) the pid may have been
		// reused already; a successor this old is not supported, and
		// one that is still connected holds its pid.
		unix.Kill(s.Pid, unix.SIGKILL)
	}
	return s.waitGone(10 * time.Second)
}

// Predecessor is the running daemon, as its successor sees it.
type Predecessor struct {
	*handoverConn
}

// TakeOver asks the daemon of the state directory dir to hand over, and
// receives its descriptors. With no daemon to take over from it returns
// ErrNoPredecessor; with one that refuses, ErrHandoverRefused and its
// reason. When the predecessor goes away in the middle, it returns
// ErrPredecessorGone with what it got so far, once the predecessor's
// process is gone: the caller starts as after a crash, with those.
func TakeOver(dir string) (*Predecessor, *fdset.Set, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: HandoverSocket(dir), Net: "unixpacket"})
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, nil, fmt.Errorf("%w (%s: %w)", ErrNoPredecessor, HandoverSocket(dir), err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("hand-over: %w", err)
	}
	h, err := newHandoverConn(c)
	if err != nil {
		return nil, nil, err
	}
	p := &Predecessor{h}
	if err := p.send(handoverMsg{Op: "hello", Pid: os.Getpid(), Version: version.String()}); err != nil {
		p.Close()
		return nil, nil, err
	}
	set := &fdset.Set{}
	deadline := time.Now().Add(handoverTimeout)
	got := 0
	for {
		m, fds, err := p.recv(deadline)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				if !p.waitGone(5 * time.Second) {
					set.Close()
					p.Close()
					return nil, nil, fmt.Errorf("hand-over: the running tapswitchd (pid %d) closed the connection but still runs; stop it first", p.Pid)
				}
				p.Close()
				return nil, set, fmt.Errorf("%w (pid %d), after %d descriptors", ErrPredecessorGone, p.Pid, got)
			}
			set.Close()
			p.Close()
			return nil, nil, fmt.Errorf("hand-over from pid %d: %w", p.Pid, err)
		}
		switch m.Op {
		case "fds":
			if len(m.Names) != len(fds) {
				closeFDs(fds)
				set.Close()
				p.Abort(fmt.Errorf("%d names for %d descriptors", len(m.Names), len(fds)))
				return nil, nil, fmt.Errorf("hand-over from pid %d: %d names for %d descriptors", p.Pid, len(m.Names), len(fds))
			}
			for i, fd := range fds {
				set.Add(m.Names[i], fd)
			}
			got += len(fds)
		case "end":
			if m.Count != got {
				set.Close()
				p.Abort(fmt.Errorf("got %d descriptors, want %d", got, m.Count))
				return nil, nil, fmt.Errorf("hand-over from pid %d: got %d descriptors, want %d", p.Pid, got, m.Count)
			}
			return p, set, nil
		case "abort":
			set.Close()
			p.Close()
			return nil, nil, fmt.Errorf("%w by the running tapswitchd (pid %d): %s", ErrHandoverRefused, p.Pid, m.Error)
		default:
			closeFDs(fds)
		}
	}
}

// Done tells the predecessor that the successor has taken over; the
// predecessor exits.
func (p *Predecessor) Done() error {
	defer p.Close()
	return p.send(handoverMsg{Op: "done"})
}

// Abort tells the predecessor the successor gives up, and why; the
// predecessor resumes.
func (p *Predecessor) Abort(reason error) {
	p.send(handoverMsg{Op: "abort", Error: reason.Error()})
	p.Close()
}
