package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// tapswitchSystem runs a private tapswitchd, with its own socket and state
// directory, so the benchmark neither needs nor disturbs a daemon the
// host may already run.
type tapswitchSystem struct {
	// label names the system in the report: "tapswitch", or
	// "tapswitch-base" for an A/B run's other build.
	label               string
	daemonPath, cliPath string
	// extraArgs are more flags for the daemon, such as the Docker
	// driver's.
	extraArgs []string
	// netns, when set, is the network namespace the daemon runs in (a
	// host of -cluster); the CLI reaches it through its socket all the
	// same.
	netns string

	dir    string // temp dir holding the socket and the state
	socket string
	daemon *proc
	// stopGrace is how long the daemon may take to exit on SIGTERM
	// before it is killed; zero means daemonStopGrace.
	stopGrace time.Duration
	// exitShown is set once an error has shown the daemon's exit, so
	// teardown does not report it twice.
	exitShown bool

	ports, fdb string // the CLI's listings, for the demo
}

func newTapswitchSystem(label, daemonPath, cliPath string) *tapswitchSystem {
	return &tapswitchSystem{label: label, daemonPath: daemonPath, cliPath: cliPath}
}

func (s *tapswitchSystem) name() string { return s.label }

// switchPID is the daemon's pid: it is our child, started directly.
func (s *tapswitchSystem) switchPID() int {
	if s.daemon == nil || s.daemon.exited() {
		return 0
	}
	return s.daemon.pid()
}

// daemonStopGrace is the wait for a daemon with a couple of ports to
// exit on SIGTERM.
const daemonStopGrace = 10 * time.Second

// daemonStartTimeout bounds the wait for the API socket; a daemon that
// needs longer than this to listen is broken for our purpose.
const daemonStartTimeout = 10 * time.Second

func (s *tapswitchSystem) setup(ctx context.Context, tb *testbed) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	for _, end := range []struct{ ns, cidr string }{{tb.nsA, addrA}, {tb.nsB, addrB}} {
		if _, err := s.cli(ctx, "attach", end.ns, "--ip", end.cidr); err != nil {
			return s.withDaemonLog(err)
		}
	}
	return nil
}

// start runs the daemon and waits until it serves its API. Like setup,
// it leaves the undoing to teardown.
func (s *tapswitchSystem) start(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "tsb-"+fileSafe(s.label)+"-")
	if err != nil {
		return err
	}
	s.dir = dir
	s.socket = filepath.Join(dir, "tapswitch.sock")
	args := []string{
		"--socket", s.socket,
		"--state-dir", filepath.Join(dir, "state"),
		"--log-level", "warn",
		// The run's daemon is not restarted: everything it made goes
		// with it.
		"--remove-on-exit",
	}
	cmd := append([]string{s.daemonPath}, append(args, s.extraArgs...)...)
	if s.netns != "" {
		// ip netns exec execs the daemon, so the pid is still its own.
		cmd = append(netnsExec(s.netns), cmd...)
	}
	s.daemon, err = startProc(cmd[0], cmd[1:]...)
	if err != nil {
		return err
	}
	return s.waitSocket(ctx)
}

func (s *tapswitchSystem) waitSocket(ctx context.Context) error {
	deadline := time.Now().Add(daemonStartTimeout)
	for {
		c, err := net.DialTimeout("unix", s.socket, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if s.daemon.exited() {
			s.exitShown = true
			return fmt.Errorf("tapswitchd exited before serving %s: %v\n%s", s.socket, s.daemon.err, indent(s.daemon.output.String()))
		}
		if time.Now().After(deadline) {
			return s.withDaemonLog(fmt.Errorf("tapswitchd not serving %s after %v: %w", s.socket, daemonStartTimeout, err))
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// cli runs the tapswitch CLI against this run's daemon.
func (s *tapswitchSystem) cli(ctx context.Context, args ...string) (string, error) {
	return run(ctx, s.cliPath, append([]string{"--socket", s.socket}, args...)...)
}

// withDaemonLog adds what the daemon said to err: a failed attach is
// usually explained there rather than in the CLI's message.
func (s *tapswitchSystem) withDaemonLog(err error) error {
	if err == nil || s.daemon == nil {
		return err
	}
	if out := s.daemon.output.String(); out != "" {
		return fmt.Errorf("%w\ntapswitchd log:\n%s", err, indent(out))
	}
	return err
}

func (s *tapswitchSystem) listings() []listing {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Taken after the tests, so the counters show the traffic they sent.
	ports, err := s.cli(ctx, "ports")
	if err != nil {
		ports = err.Error()
	}
	fdb, err := s.cli(ctx, "fdb")
	if err != nil {
		fdb = err.Error()
	}
	s.ports, s.fdb = ports, fdb
	return []listing{
		{Title: s.label + " ports", Output: s.ports},
		{Title: s.label + " fdb", Output: s.fdb},
	}
}

func (s *tapswitchSystem) teardown() error {
	var errs []error
	if s.daemon != nil {
		exitedEarly := s.daemon.exited()
		grace := s.stopGrace
		if grace == 0 {
			grace = daemonStopGrace
		}
		if err := s.daemon.stop(grace); err != nil {
			errs = append(errs, err)
		} else if s.daemon.err != nil && !s.exitShown {
			// A daemon that crashed mid-run or failed its shutdown has to
			// show up in the report, not just in the numbers.
			what := "on SIGTERM"
			if exitedEarly {
				what = "during the run"
			}
			errs = append(errs, fmt.Errorf("tapswitchd exited %s: %v\n%s", what, s.daemon.err, indent(s.daemon.output.String())))
		}
		s.daemon = nil
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, err)
		}
		s.dir = ""
	}
	return errors.Join(errs...)
}

func indent(s string) string {
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
