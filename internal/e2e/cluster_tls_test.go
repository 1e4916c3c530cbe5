package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/etcdtest"
	"github.com/tapswitch/tapswitch/namespace"
)

// TestClusterTLS starts tapswitchd with its store on an etcd that serves
// TLS only, wants a client certificate and has authentication enabled:
// with the CA, the client certificate and a user that may use the
// store's prefix, the daemon connects and a cluster network it creates is
// in etcd. A second daemon given another CA starts all the same, and its
// status says that etcd's certificate is not trusted and what to check.
//
// Both daemons and etcd run in one namespace, tst-tls, on a veth
// underlay of 10.233.0.0/24: etcd on .10, the daemons on .1 and .2.
func TestClusterTLS(t *testing.T) {
	requirePrivileged(t, "ip")
	const (
		ns       = "tst-tls"
		etcdIP   = "10.233.0.10"
		user     = "tst-h1"
		password = "tst-secret"
		network  = "tstnet"
	)
	if namespace.Exists(nsPath(ns)) {
		t.Logf("removing namespace %s left by an earlier run", ns)
		run("ip", "netns", "del", ns)
	}
	if out, err := run("ip", "netns", "add", ns); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", ns, err, out)
	}
	// Registered first, so it runs last: after the daemons and etcd stop.
	t.Cleanup(func() {
		if out, err := run("ip", "netns", "del", ns); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
		os.RemoveAll(filepath.Join(netnsEtcDir, ns))
	})
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "ul0", "type", "veth", "peer", "name", "ul1"},
		{"link", "set", "ul1", "up"},
		{"addr", "add", "10.233.0.1/24", "dev", "ul0"},
		{"addr", "add", "10.233.0.2/24", "dev", "ul0"},
		{"addr", "add", etcdIP + "/24", "dev", "ul0"},
		{"link", "set", "ul0", "up"},
	} {
		if out, err := run("ip", append([]string{"-n", ns}, args...)...); err != nil {
			t.Fatalf("ip -n %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
		}
	}

	srv := etcdtest.Start(t, etcdtest.Options{Netns: ns, Addr: etcdIP, TLS: true, Auth: true})
	srv.AddUser(user, password, "/tapswitch/")
	certs := srv.Certs()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := etcdtest.NewCerts(t, t.TempDir(), netip.MustParseAddr(etcdIP), "tst-other")

	common := func(host, vtep string, port int) []string {
		return []string{
			"--state-dir", filepath.Join(dir, host+".state"),
			"--log-level", "debug",
			"--remove-on-exit",
			"--advertise", vtep,
			"--vxlan-port", fmt.Sprint(port),
			"--cluster", "etcd=" + srv.URL(),
			"--cluster-host", host,
			"--cluster-ttl", "3s",
			"--cluster-cert", certs.Cert,
			"--cluster-key", certs.Key,
			"--cluster-user", user,
			"--cluster-password-file", pwFile,
		}
	}
	sock1 := startNetnsDaemon(t, ns, dir, "tst-h1", append(common("tst-h1", "10.233.0.1", 4789), "--cluster-ca", certs.CA))
	sock2 := startNetnsDaemon(t, ns, dir, "tst-h2", append(common("tst-h2", "10.233.0.2", 4790), "--cluster-ca", other.CA))

	status := func(sock string) api.ClusterStatus {
		t.Helper()
		r := runCLI(t, sock, "status", "-o", "json")
		var st api.Status
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.Cluster == nil {
			t.Fatalf("tapswitch status on %s: exit %d, %s%s", sock, r.code, r.stdout, r.stderr)
		}
		return *st.Cluster
	}
	took := poll(t, "tst-h1 connected to the TLS store", func() string {
		if st := status(sock1); !st.Connected {
			return fmt.Sprintf("status %+v", st)
		}
		return ""
	})
	t.Logf("tst-h1 connected within %v", took)
	if r := runCLI(t, sock1, "network", "create", network, "--subnet", "10.243.0.0/24", "--scope", "cluster"); r.code != 0 {
		t.Fatalf("network create: exit %d\n%s", r.code, r.stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := srv.Client().Get(ctx, "/tapswitch/networks/"+network)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("etcd Get /tapswitch/networks/%s = %v, %v; want the network", network, resp, err)
	}
	t.Logf("etcd holds %s: %s", resp.Kvs[0].Key, resp.Kvs[0].Value)

	poll(t, "tst-h2's status says etcd's certificate is not trusted", func() string {
		st := status(sock2)
		if st.Connected || !strings.Contains(st.LastError, "x509") || !strings.Contains(st.LastError, "--cluster-ca") {
			return fmt.Sprintf("status %+v", st)
		}
		return ""
	})
	r := runCLI(t, sock2, "status")
	t.Logf("tst-h2: tapswitch status:\n%s", r.stdout)
	if !strings.Contains(r.stdout, "--cluster-ca") {
		t.Fatalf("tapswitch status on tst-h2 does not say to check --cluster-ca:\n%s", r.stdout)
	}
}

// startNetnsDaemon starts tapswitchd inside ns with args and a socket in
// dir, waits until it accepts, and stops it (SIGTERM, then by its pid)
// when the test ends. It returns the socket.
func startNetnsDaemon(t *testing.T, ns, dir, name string, args []string) string {
	t.Helper()
	sock := filepath.Join(dir, name+".sock")
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, filepath.Join(binDir, "tapswitchd"), "--socket", sock}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("start tapswitchd %s: %v", name, err)
	}
	showLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(os.Interrupt)
			if err := p.wait(stopTimeout); err != nil {
				p.kill()
				t.Errorf("tapswitchd %s: %v", name, err)
			}
		}
		if t.Failed() {
			t.Logf("tapswitchd %s log:\n%s", name, showLog())
		}
	})
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.done:
			t.Fatalf("tapswitchd %s exited before accepting: %v\n%s", name, p.err, showLog())
		default:
		}
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("tapswitchd %s not accepting on %s after %v\n%s", name, sock, startTimeout, showLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
