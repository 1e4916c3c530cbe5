package main

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/internal/etcdhealth"
	"github.com/tapswitch/tapswitch/namespace"
)

// The store of -cluster's tapswitch passes: one etcd, a single member
// with a data directory of its own under a temporary directory,
// listening only on an address of the underlay bridge in the underlay's
// namespace, which neither host has. It is started after the namespaces
// and stopped, its directory removed, after the daemons.

// etcdEnvBinary names the variable that points at an etcd binary, as
// for the cluster tests (internal/etcdtest).
const etcdEnvBinary = "TAPSWITCH_ETCD"

// etcdHowTo says how to get the etcd binary.
const etcdHowTo = "build it with `make etcd` (into $(go env GOPATH)/bin; make bench-cluster does), or point -etcd or $" + etcdEnvBinary + " at one"

// Where etcd listens on the underlay: clients (the daemons) on
// etcdClientPort, its own peer port, unused by a single member, on
// etcdPeerPort.
const (
	etcdClientPort = 2379
	etcdPeerPort   = 2380
	// etcdStartTimeout bounds the wait for a fresh etcd to answer; a
	// single member elects itself within a second or two.
	etcdStartTimeout = 30 * time.Second
	// etcdStopGrace is how long etcd may take to exit on SIGTERM.
	etcdStopGrace = 10 * time.Second
)

// findEtcd returns the etcd binary to run: flagPath (-etcd) when given,
// else the first of $TAPSWITCH_ETCD, $GOBIN/etcd, the first GOPATH's
// bin/etcd (where make etcd builds it) and etcd on PATH. The error says
// how to get one.
func findEtcd(flagPath string) (string, error) {
	if flagPath != "" {
		if err := executable(flagPath); err != nil {
			return "", fmt.Errorf("-etcd: %w", err)
		}
		return flagPath, nil
	}
	if p := os.Getenv(etcdEnvBinary); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("$%s: %w", etcdEnvBinary, err)
		}
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	gp := os.Getenv("GOPATH")
	if gp == "" {
		gp = build.Default.GOPATH
	}
	if gp != "" {
		dirs = append(dirs, filepath.Join(filepath.SplitList(gp)[0], "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "etcd"); executable(p) == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no etcd binary (looked at $%s, %s and PATH)", etcdEnvBinary, strings.Join(prefixEach(dirs, "/etcd"), ", "))
}

func prefixEach(dirs []string, suffix string) []string {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = d + suffix
	}
	return out
}

// etcdServer is one etcd run in a network namespace.
type etcdServer struct {
	bin   string
	netns string
	addr  string
	// dir is the temporary directory holding the data directory.
	dir string
	p   *proc
}

// clientURL is the URL the daemons give to --cluster etcd=.
func (e *etcdServer) clientURL() string {
	return fmt.Sprintf("http://%s:%d", e.addr, etcdClientPort)
}

// etcdArgs are the flags of a single-member etcd with its data in
// dataDir, listening only on addr.
func etcdArgs(dataDir, addr string) []string {
	client := fmt.Sprintf("http://%s:%d", addr, etcdClientPort)
	peer := fmt.Sprintf("http://%s:%d", addr, etcdPeerPort)
	return []string{
		"--name", "tsx",
		"--data-dir", dataDir,
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "tsx=" + peer,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "tsx",
		// Nothing in it outlives the pass: no need to wait for the disk.
		"--unsafe-no-fsync",
		"--log-level", "warn",
	}
}

// start runs etcd in its namespace, with a fresh data directory, and
// waits until it answers. Like a system's setup, it leaves the undoing
// to stop.
func (e *etcdServer) start(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "tsb-etcd-")
	if err != nil {
		return err
	}
	e.dir = dir
	// ip netns exec execs etcd, so the pid is etcd's.
	args := append([]string{"netns", "exec", e.netns, e.bin}, etcdArgs(filepath.Join(dir, "data"), e.addr)...)
	if e.p, err = startProc("ip", args...); err != nil {
		return err
	}
	deadline := time.Now().Add(etcdStartTimeout)
	for {
		err := e.healthy(ctx)
		if err == nil {
			return nil
		}
		if e.p.exited() {
			return fmt.Errorf("etcd exited while starting: %v\n%s", e.p.err, indent(e.p.output.String()))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd at %s did not answer within %v: %v\n%s", e.clientURL(), etcdStartTimeout, err, indent(e.p.output.String()))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// healthy asks etcd's /health, from inside its namespace.
func (e *etcdServer) healthy(ctx context.Context) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := namespace.Do(filepath.Join("/run/netns", e.netns), func() error {
				var err error
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return etcdhealth.Check(ctx, &http.Client{Transport: tr}, e.clientURL())
}

// stop stops etcd by its pid (SIGTERM, then SIGKILL after
// etcdStopGrace) and removes its directory.
func (e *etcdServer) stop() error {
	var errs []error
	if e.p != nil {
		if err := e.p.stop(etcdStopGrace); err != nil {
			errs = append(errs, err)
		}
		e.p = nil
	}
	if e.dir != "" {
		if err := os.RemoveAll(e.dir); err != nil {
			errs = append(errs, err)
		}
		e.dir = ""
	}
	return errors.Join(errs...)
}
