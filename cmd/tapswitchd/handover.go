package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/internal/fdset"
)

// Names of the daemon's own listeners among the descriptors handed over
// (the daemon package names the TAPs' and published ports').
const (
	apiFDName      = "api"
	handoverFDName = "handover"
)

// apiListener is the API listener handed over in set, if it listens on
// path, or a new one (listen).
func apiListener(path string, access apiserver.Access, set *fdset.Set, log *slog.Logger) (net.Listener, error) {
	if fd := set.TakeOne(apiFDName); fd >= 0 {
		ln, err := fileListener(fd)
		if err == nil {
			ul, ok := ln.(*net.UnixListener)
			_, statErr := os.Stat(path)
			switch {
			case !ok:
				err = fmt.Errorf("a %T, not a Unix socket", ln)
			case ul.Addr().String() != path:
				err = fmt.Errorf("it listens on %s, not --socket %s", ul.Addr(), path)
			case statErr != nil:
				err = fmt.Errorf("its socket file: %w", statErr)
			}
			if err == nil {
				ul.SetUnlinkOnClose(false)
				return ul, nil
			}
			ln.Close()
		}
		log.Warn("API listener handed over not used; listening afresh", "err", err)
	}
	return listen(path, access)
}

// handoverListener is the hand-over listener handed over in set, or a
// new one in the state directory dir.
func handoverListener(dir string, set *fdset.Set, log *slog.Logger) (*net.UnixListener, error) {
	if fd := set.TakeOne(handoverFDName); fd >= 0 {
		ln, err := fileListener(fd)
		if err == nil {
			if ul, ok := ln.(*net.UnixListener); ok && ul.Addr().String() == daemon.HandoverSocket(dir) {
				ul.SetUnlinkOnClose(false)
				return ul, nil
			}
			ln.Close()
			err = errors.New("not the state directory's hand-over socket")
		}
		log.Warn("hand-over listener handed over not used; listening afresh", "err", err)
	}
	return daemon.ListenHandover(dir)
}

// fileListener makes a listener of fd, which it takes.
func fileListener(fd int) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	return net.FileListener(f)
}

// dupListener returns a descriptor of ln's socket that the caller owns;
// ln stays as it is, non-blocking.
func dupListener(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("a %T has no descriptor", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return fd, dupErr
}

// acceptSuccessors hands each daemon that asks to take over to the main
// loop, one at a time: after one, it accepts again only when told to
// (the hand-over failed and this daemon resumed), so that a daemon that
// has handed over never takes a request meant for its successor.
func acceptSuccessors(ln *net.UnixListener, out chan<- *daemon.Successor, next <-chan struct{}, log *slog.Logger) {
	for {
		succ, err := daemon.AcceptSuccessor(ln)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			log.Warn("hand-over request refused", "err", err)
			continue
		}
		out <- succ
		<-next
	}
}

// notifyReady tells the service manager the daemon serves, and gives
// its store a copy of the API listener, so that clients queue on it
// while the daemon restarts.
func (s *server) notifyReady() {
	if s.notifier == nil {
		return
	}
	if !s.apiStored {
		fd, err := dupListener(s.ln)
		if err == nil {
			err = s.notifier.Store(apiFDName, fd)
			unix.Close(fd)
		}
		if err != nil {
			s.log.Warn("API listener not kept by the service manager", "err", err)
		} else {
			s.apiStored = true
		}
	}
	if err := s.notifier.Ready("serving " + s.o.socket); err != nil {
		s.log.Warn("READY=1 not sent to the service manager", "err", err)
	}
}

// handOver hands the daemon over to succ: the API stops (requests in
// progress finish), the daemon suspends (daemon.Suspend), and every
// descriptor goes to succ with the API and hand-over listeners. done
// reports that succ took over and this process is to exit, leaving
// everything as it is. On any failure this daemon resumes from the
// descriptors it kept, once succ is sure to be dead; err is set only
// when it cannot.
func (s *server) handOver(succ *daemon.Successor, upstreams []netip.AddrPort) (done bool, err error) {
	start := time.Now()
	log := s.log.With("successor_pid", succ.Pid, "successor_version", succ.Version)
	log.Info("hand-over requested")
	if s.notifier != nil {
		// The service manager would take this daemon's exit for a
		// crash and start another, which finds the successor in its
		// way; its restart keeps the descriptors in its store instead.
		err := errors.New("this tapswitchd runs under a service manager, which would start another when it exits: restart it there (systemctl restart tapswitchd); its file descriptor store makes that as lossless")
		succ.Refuse(err)
		log.Warn("hand-over refused", "err", err)
		return false, nil
	}
	pluginSet := &fdset.Set{}
	defer pluginSet.Close()
	apiFD, err := dupListener(s.ln)
	if err != nil {
		succ.Refuse(fmt.Errorf("API listener: %w", err))
		log.Error("hand-over refused", "err", err)
		return false, nil
	}
	hoFD, err := dupListener(s.hln)
	if err != nil {
		unix.Close(apiFD)
		succ.Refuse(fmt.Errorf("hand-over listener: %w", err))
		log.Error("hand-over refused", "err", err)
		return false, nil
	}
	s.handPluginOver(pluginSet, log)
	// Event streams last; they end now, or the API's stop would wait.
	s.d.HandingOver(succ.Pid)
	s.quiesceAPI(log)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s.srv.Shutdown(sctx)
	cancel()
	apiStopped := time.Since(start)
	set, err := s.d.Suspend()
	if err != nil {
		unix.Close(hoFD)
		succ.Refuse(err)
		log.Error("hand-over refused; serving on", "err", err)
		s.resumePlugin(pluginSet)
		return false, s.resumeAPI(apiFD)
	}
	suspended := time.Since(start)
	set.Add(apiFDName, apiFD)
	set.Add(handoverFDName, hoFD)
	if fd := pluginSet.TakeOne(pluginFDName); fd >= 0 {
		set.Add(pluginFDName, fd)
	}
	s.handMetricsOver(set, log)
	err = succ.Send(set)
	sent := time.Since(start)
	if err == nil {
		// Nothing more is done here until the successor answers: its
		// restore has the machine to itself. On exit this process's
		// copies of the descriptors close; the successor has its own.
		err = succ.Wait()
	}
	if err == nil {
		log.Info("handed over; exiting", "api_stopped_in", apiStopped, "suspended_in", suspended, "sent_in", sent, "taken_over_in", time.Since(start))
		return true, nil
	}
	log.Error("hand-over failed; resuming", "err", err)
	s.d.Close()
	if !succ.Stop() {
		set.Close()
		succ.Close()
		return false, fmt.Errorf("the successor (pid %d) of a failed hand-over still runs after SIGKILL; stop it, then start tapswitchd", succ.Pid)
	}
	succ.Close()
	if fd := set.TakeOne(handoverFDName); fd >= 0 {
		unix.Close(fd)
	}
	apiFD = set.TakeOne(apiFDName)
	if fd := set.TakeOne(pluginFDName); fd >= 0 {
		pluginSet.Add(pluginFDName, fd)
	}
	if s.d, err = daemon.New(s.daemonConfig(upstreams, set)); err != nil {
		if apiFD >= 0 {
			unix.Close(apiFD)
		}
		return false, fmt.Errorf("resume after a failed hand-over: %w; start tapswitchd again", err)
	}
	if err := s.resumeAPI(apiFD); err != nil {
		return false, err
	}
	s.serveMetrics()
	s.resumePlugin(pluginSet)
	log.Info("resumed after a failed hand-over", "took", time.Since(start))
	return false, nil
}

// quiesceAPI readies the API for Shutdown without dropping a request:
// Go's server closes, unanswered, a connection whose request it reads
// once Shutdown has begun. So the listener stops accepting first (the
// connections not accepted yet wait in its backlog, for the successor),
// and those accepted get up to apiQuiesce to send their request and
// have it reach the handler, whose answer Shutdown waits for.
func (s *server) quiesceAPI(log *slog.Logger) {
	if !s.lim.pause(apiQuiesce) {
		log.Warn("the API did not stop accepting in time; a request made now may go unanswered", "waited", apiQuiesce)
		return
	}
	deadline := time.Now().Add(apiQuiesce)
	for !s.conns.quiet() {
		if time.Now().After(deadline) {
			log.Warn("API connections silent or their requests unread; Shutdown may close them unanswered", "waited", apiQuiesce)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// apiQuiesce bounds each wait of quiesceAPI.
const apiQuiesce = time.Second

// resumeAPI serves the API again on fd, the listener kept through a
// hand-over that did not happen.
func (s *server) resumeAPI(fd int) error {
	ln, err := fileListener(fd)
	if err != nil {
		return fmt.Errorf("resume the API on its listener: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	s.ln = ln
	s.serve()
	return nil
}
