// Package etcdtest starts a real etcd server, or a cluster of several,
// for tests of any package.
//
// Each Server of Start is a single-member cluster with its own temporary data
// directory, listening on Options.Addr for clients and on a free port of
// the same address for its peer port, optionally inside a network
// namespace (ip netns exec). It is stopped by its pid and its directory
// removed when the test ends, whether it passed or not. With Options.TLS
// it serves its clients over TLS only, from certificates of a CA made for
// the test, and wants a client certificate of that CA; with Options.Auth
// it has etcd's authentication enabled, with user root.
//
// StartCluster starts several members that make one etcd cluster (see
// Cluster): each a Server with its own data directory and ports, which a
// test may kill, stop and restart one by one.
//
// The etcd binary is the first of: $TAPSWITCH_ETCD, $GOPATH/bin/etcd
// (where `make etcd` builds the server at the client's version), etcd on
// PATH. Without one, Start skips the test, or fails it when
// TAPSWITCH_REQUIRE_PRIVILEGED=1.
package etcdtest

import (
	"bytes"
	"context"
	"go/build"
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

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/tapswitch/tapswitch/internal/etcdhealth"
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
	// TLS serves clients over https only, from a certificate of a CA the
	// test makes (Server.Certs), and refuses clients without a client
	// certificate of that CA (--client-cert-auth).
	TLS bool
	// Auth enables etcd's authentication: user root, with password
	// RootPassword, and the users AddUser adds.
	Auth bool
}

// RootPassword is the password of user root when Options.Auth is set.
const RootPassword = "root-secret"

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
	// name is the member's name; initialCluster, when set, is etcd's
	// --initial-cluster of a cluster of several members.
	name           string
	initialCluster string
	clusterToken   string
	// certs are the TLS files when Options.TLS is set.
	certs *Certs
	auth  bool

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
	s := newServer(tb, o.Netns, o.Addr, o.Port, nil)
	if o.TLS {
		dir := filepath.Join(s.dir, "tls")
		if err := os.Mkdir(dir, 0o700); err != nil {
			tb.Fatalf("etcdtest: %v", err)
		}
		c := NewCerts(tb, dir, s.addr, "tapswitch-client")
		s.certs = &c
	}
	s.start()
	if o.Auth {
		s.enableAuth()
	}
	return s
}

// newServer prepares a stopped server: its binary, namespace, address,
// ports (none of taken) and data directory, and its stop at cleanup.
func newServer(tb testing.TB, netns, addr string, port int, taken map[int]bool) *Server {
	tb.Helper()
	bin := Binary()
	if bin == "" {
		cannot := tb.Skipf
		if privtest.Required() {
			cannot = tb.Fatalf
		}
		cannot("needs an etcd server binary: run `make etcd` (builds it into $(go env GOPATH)/bin), or set %s to one (set %s=1 to fail instead of skip)", EnvBinary, privtest.Env)
	}
	s := &Server{tb: tb, bin: bin, port: port, name: "tsc"}
	if netns != "" {
		privtest.Require(tb, "run etcd in network namespace "+netns, "ip")
		path, err := namespace.Resolve(netns)
		if err != nil {
			tb.Fatalf("etcdtest: %v", err)
		}
		s.netns = path
	}
	s.addr = netip.MustParseAddr("127.0.0.1")
	if addr != "" {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			tb.Fatalf("etcdtest: listen address %q: %v", addr, err)
		}
		s.addr = a
	}
	if taken == nil {
		taken = map[int]bool{}
	}
	if s.port == 0 {
		s.port = s.freePort(taken)
	}
	taken[s.port] = true
	s.peerPort = s.freePort(taken)
	taken[s.peerPort] = true
	s.dir = tb.TempDir()
	// Registered after TempDir's own cleanup, so it runs before it: etcd
	// is gone before its directory is removed.
	tb.Cleanup(s.kill)
	return s
}

// URL returns the client URL, such as http://127.0.0.1:43127, or
// https://127.0.0.1:43127 with Options.TLS.
func (s *Server) URL() string {
	scheme := "http://"
	if s.certs != nil {
		scheme = "https://"
	}
	return scheme + netip.AddrPortFrom(s.addr, uint16(s.port)).String()
}

// Certs returns the CA, client and server certificate files of a server
// started with Options.TLS.
func (s *Server) Certs() Certs {
	s.tb.Helper()
	if s.certs == nil {
		s.tb.Fatalf("etcdtest: Certs of a server started without Options.TLS")
	}
	return *s.certs
}

// Client connects to the server, with the client certificate under
// Options.TLS and as root under Options.Auth. It is closed when the test
// ends.
func (s *Server) Client() *clientv3.Client {
	s.tb.Helper()
	cfg := clientv3.Config{
		Endpoints:   []string{s.URL()},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return s.dial(ctx, "tcp", addr)
		})},
	}
	if s.certs != nil {
		cfg.TLS = s.certs.TLS(s.tb)
	}
	if s.auth {
		cfg.Username, cfg.Password = "root", RootPassword
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		s.tb.Fatalf("etcdtest: connect to %s: %v", s.URL(), err)
	}
	s.tb.Cleanup(func() { _ = cli.Close() })
	return cli
}

// enableAuth adds user root with the root role and enables auth.
func (s *Server) enableAuth() {
	s.tb.Helper()
	cli := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.UserAdd(ctx, "root", RootPassword); err != nil {
		s.tb.Fatalf("etcdtest: add user root: %v", err)
	}
	if _, err := cli.RoleAdd(ctx, "root"); err != nil {
		s.tb.Fatalf("etcdtest: add role root: %v", err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		s.tb.Fatalf("etcdtest: grant role root: %v", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		s.tb.Fatalf("etcdtest: enable auth: %v", err)
	}
	s.auth = true
}

// AddUser adds a user with password who may read and write the keys
// under prefix, on a server started with Options.Auth.
func (s *Server) AddUser(name, password, prefix string) {
	s.tb.Helper()
	if !s.auth {
		s.tb.Fatalf("etcdtest: AddUser on a server started without Options.Auth")
	}
	cli := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	role := "rw-" + name
	steps := []struct {
		what string
		do   func() error
	}{
		{"add user", func() error { _, err := cli.UserAdd(ctx, name, password); return err }},
		{"add role", func() error { _, err := cli.RoleAdd(ctx, role); return err }},
		{"grant the prefix", func() error {
			_, err := cli.RoleGrantPermission(ctx, role, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"grant the role", func() error { _, err := cli.UserGrantRole(ctx, name, role); return err }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			s.tb.Fatalf("etcdtest: %s %s: %v", st.what, name, err)
		}
	}
}

// take marks etcd stopped and returns its process and the channel closed
// when it exits; nil if it was not running.
func (s *Server) take() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	return cmd, exited
}

// Stop sends SIGTERM and waits for etcd to exit (SIGKILL after 10 s); the
// data directory stays for Restart.
func (s *Server) Stop() {
	s.tb.Helper()
	cmd, exited := s.take()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	// A paused etcd (Pause) takes the signal once it runs again.
	_ = cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-exited
		s.tb.Logf("etcdtest: etcd (pid %d) ignored SIGTERM for %v; killed", cmd.Process.Pid, stopTimeout)
	}
}

// Kill sends SIGKILL to etcd's process, as a crash would, and waits for
// it to exit; the data directory stays for Restart.
func (s *Server) Kill() {
	s.tb.Helper()
	cmd, exited := s.take()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Kill(); err != nil {
		s.tb.Logf("etcdtest: kill etcd %s (pid %d): %v", s.name, cmd.Process.Pid, err)
	}
	<-exited
}

// Pause stops etcd's process (SIGSTOP) without ending it: its
// connections stay open and nothing answers on them, as when the member
// is cut off from the network; the other members elect another leader
// if it led. Resume lets it run again; Stop and Kill end it paused or
// not.
func (s *Server) Pause() {
	s.tb.Helper()
	if pid := s.Pid(); pid != 0 {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			s.tb.Fatalf("etcdtest: pause etcd %s (pid %d): %v", s.name, pid, err)
		}
	}
}

// Resume lets a paused etcd run again (SIGCONT).
func (s *Server) Resume() {
	s.tb.Helper()
	if pid := s.Pid(); pid != 0 {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			s.tb.Fatalf("etcdtest: resume etcd %s (pid %d): %v", s.name, pid, err)
		}
	}
}

// Pid is the pid of the running etcd (of ip netns exec, which execs it,
// inside a namespace), 0 when it is stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running says whether etcd was started and not stopped since.
func (s *Server) Running() bool { return s.Pid() != 0 }

// Name is the member's name: "tsc" for a Server of Start, m1, m2, ... in
// a Cluster.
func (s *Server) Name() string { return s.name }

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
	s.launch()
	s.waitHealthy()
}

// peerURL is the member's peer URL.
func (s *Server) peerURL() string {
	return "http://" + netip.AddrPortFrom(s.addr, uint16(s.peerPort)).String()
}

// launch runs etcd, without waiting for it to answer.
func (s *Server) launch() {
	s.tb.Helper()
	peer := s.peerURL()
	initial, token := s.initialCluster, s.clusterToken
	if initial == "" {
		initial, token = s.name+"="+peer, "tsc-"+strconv.Itoa(s.port)
	}
	args := []string{
		"--name", s.name,
		"--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", s.URL(),
		"--advertise-client-urls", s.URL(),
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", initial,
		"--initial-cluster-token", token,
		// Tests need no durability across a machine crash, and fsync on a
		// busy disk makes elections and puts slow enough to trip short
		// lease TTLs.
		"--unsafe-no-fsync",
		"--log-level", "warn",
	}
	if s.certs != nil {
		args = append(args,
			"--cert-file", s.certs.ServerCert,
			"--key-file", s.certs.ServerKey,
			"--client-cert-auth",
			"--trusted-ca-file", s.certs.CA)
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
}

// waitHealthy waits until the running etcd says it is healthy (a member
// of several: once the cluster has a leader), failing the test if it
// exits or takes longer than startTimeout.
func (s *Server) waitHealthy() {
	s.tb.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		s.tb.Fatalf("etcdtest: etcd %s is not running", s.name)
	}
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
	if s.certs != nil {
		tr.TLSClientConfig = s.certs.TLS(s.tb)
	}
	defer tr.CloseIdleConnections()
	return etcdhealth.Check(context.Background(), &http.Client{Transport: tr, Timeout: 2 * time.Second}, s.URL())
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
// caller's namespace; a test's fresh namespace has every port free) and
// not among taken.
func (s *Server) freePort(taken map[int]bool) int {
	s.tb.Helper()
	addr := s.addr
	if s.netns != "" {
		addr = netip.IPv4Unspecified()
	}
	for range 100 {
		l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		if err != nil {
			l, err = net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				s.tb.Fatalf("etcdtest: find a free port: %v", err)
			}
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !taken[p] {
			return p
		}
	}
	s.tb.Fatalf("etcdtest: no free port")
	return 0
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
