// Package etcdtest starts a real etcd server for tests of any package.
//
// Each Server is a single-member cluster with its own temporary data
// directory, listening on Options.Addr for clients and on a free port of
// the same address for its peer port, optionally inside a network
// namespace (ip netns exec). It is stopped by its pid and its directory
// removed when the test ends, whether it passed or not.
//
// The etcd binary is the first of: $TAPSWITCH_ETCD, $GOPATH/bin/etcd
// (where `make etcd` builds the server at the client's version), etcd on
// PATH. Without one, Start skips the test, or fails it when
// TAPSWITCH_REQUIRE_PRIVILEGED=1.
package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
)

// EnvBinary names the variable that points at an etcd binary to use.
const EnvBinary = "TAPSWITCH_ETCD"

// startTimeout bounds how long Start and Restart wait for etcd to answer.
// A fresh single-member etcd elects itself within a second or two; the
// margin is for a loaded machine running race-enabled tests.
const startTimeout = 60 * time.Second

// stopTimeout bounds the wait after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// Options says where the server listens.
type Options struct {
	// Netns, when set, runs etcd inside that network namespace (a name
	// under /run/netns or a path); it needs root.
	Netns string
	// Addr is the listen IP; "" means 127.0.0.1.
	Addr string
	// Port is the client port; 0 picks a free one.
	Port int
}

// Server is one etcd process, and the data directory it keeps across
// Stop and Restart.
type Server struct {
	tb       testing.TB
	bin      string
	netns    string // namespace file, "" for the caller's
	addr     netip.Addr
	port     int
	peerPort int
	dir      string

	mu sync.Mutex
	// cmd is the running etcd, nil when stopped.
	cmd *exec.Cmd
	// exited is closed when cmd has been waited for.
	exited chan struct{}
	// log collects etcd's output, shown when it fails to start.
	log *syncBuffer
}

// Binary returns the etcd binary Start would run, or "" if none is found.
func Binary() string {
	if p := os.Getenv(EnvBinary); p != "" {
		return p
	}
	if gp := build.Default.GOPATH; gp != "" {
		p := filepath.Join(strings.Split(gp, string(filepath.ListSeparator))[0], "bin", "etcd")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	return ""
}

// Start runs etcd with its own temporary data directory and waits until
// it answers. It is stopped and its directory removed in tb.Cleanup.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	bin := Binary()
	if bin == "" {
		cannot := tb.Skipf
		if privtest.Required() {
			cannot = tb.Fatalf
		}
		cannot("needs an etcd server binary: run `make etcd` (builds it into $(go env GOPATH)/bin), or set %s to one (set %s=1 to fail instead of skip)", EnvBinary, privtest.Env)
	}
	s := &Server{tb: tb, bin: bin, port: o.Port}
	if o.Netns != "" {
		privtest.Require(tb, "run etcd in network namespace "+o.Netns, "ip")
		path, err := namespace.Resolve(o.Netns)
		if err != nil {
			tb.Fatalf("etcdtest: %v", err)
		}
		s.netns = path
	}
	s.addr = netip.MustParseAddr("127.0.0.1")
	if o.Addr != "" {
		a, err := netip.ParseAddr(o.Addr)
		if err != nil {
			tb.Fatalf("etcdtest: listen address %q: %v", o.Addr, err)
		}
		s.addr = a
	}
	if s.port == 0 {
		s.port = s.freePort()
	}
	s.peerPort = s.freePort()
	for s.peerPort == s.port {
		s.peerPort = s.freePort()
	}
	s.dir = tb.TempDir()
	// Registered after TempDir's own cleanup, so it runs before it: etcd
	// is gone before its directory is removed.
	tb.Cleanup(s.kill)
	s.start()
	return s
}

// URL returns the client URL, such as http://127.0.0.1:43127.
func (s *Server) URL() string {
	return "http://" + netip.AddrPortFrom(s.addr, uint16(s.port)).String()
}

// Stop sends SIGTERM and waits for etcd to exit (SIGKILL after 10 s); the
// data directory stays for Restart.
func (s *Server) Stop() {
	s.tb.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-exited
		s.tb.Logf("etcdtest: etcd (pid %d) ignored SIGTERM for %v; killed", cmd.Process.Pid, stopTimeout)
	}
}

// Restart starts etcd again on the same data directory and ports, and
// waits until it answers.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.start()
}

// kill stops etcd for good at the end of the test.
func (s *Server) kill() {
	s.Stop()
}

// start runs etcd and waits until it answers.
func (s *Server) start() {
	s.tb.Helper()
	peer := "http://" + netip.AddrPortFrom(s.addr, uint16(s.peerPort)).String()
	args := []string{
		"--name", "tsc",
		"--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", s.URL(),
		"--advertise-client-urls", s.URL(),
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "tsc=" + peer,
		"--initial-cluster-token", "tsc-" + strconv.Itoa(s.port),
		// Tests need no durability across a machine crash, and fsync on a
		// busy disk makes elections and puts slow enough to trip short
		// lease TTLs.
		"--unsafe-no-fsync",
		"--log-level", "warn",
	}
	name := s.bin
	if s.netns != "" {
		args = append([]string{"netns", "exec", filepath.Base(s.netns), s.bin}, args...)
		name = "ip"
		if filepath.Dir(s.netns) != "/run/netns" {
			// ip netns exec takes only names; enter a namespace given
			// by another path with nsenter.
			args = append([]string{"--net=" + s.netns, s.bin}, args[4:]...)
			name = "nsenter"
		}
	}
	if s.log == nil {
		s.log = &syncBuffer{}
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	// If the test binary dies without running its cleanups, etcd goes
	// with it rather than outliving it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("etcdtest: start %s: %v", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			s.tb.Fatalf("etcdtest: etcd exited while starting (%v); its output:\n%s", cmd.ProcessState, s.log.String())
		default:
		}
		if lastErr = s.healthy(); lastErr == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.tb.Fatalf("etcdtest: etcd at %s did not answer within %v: %v; its output:\n%s", s.URL(), startTimeout, lastErr, s.log.String())
}

// healthy asks etcd's /health endpoint, from inside its namespace.
func (s *Server) healthy() error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return s.dial(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	resp, err := c.Get(s.URL() + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"health":"true"`)) {
		return fmt.Errorf("/health: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// dial connects from inside the server's namespace: a socket keeps the
// namespace it was made in.
func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if s.netns == "" {
		return d.DialContext(ctx, network, addr)
	}
	var c net.Conn
	err := namespace.Do(s.netns, func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// freePort returns a TCP port free on the listen address (in the
// caller's namespace; a test's fresh namespace has every port free).
func (s *Server) freePort() int {
	s.tb.Helper()
	addr := s.addr
	if s.netns != "" {
		addr = netip.IPv4Unspecified()
	}
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.tb.Fatalf("etcdtest: find a free port: %v", err)
		}
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for etcd's two output streams and a
// reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
