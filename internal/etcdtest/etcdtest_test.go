package etcdtest

import (
	"context"
	"crypto/tls"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/internal/privtest"
)

// TestStopRestart puts a key, stops etcd, finds it unreachable, restarts
// it and reads the key back from the kept data directory.
func TestStopRestart(t *testing.T) {
	s := Start(t, Options{})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.URL()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/tsc/k", "v"); err != nil {
		t.Fatalf("Put: %v", err)
	}

	s.Stop()
	short, cancel2 := context.WithTimeout(context.Background(), time.Second)
	_, err = cli.Get(short, "/tsc/k")
	cancel2()
	if err == nil {
		t.Fatalf("Get after Stop succeeded; etcd still answers")
	}

	s.Restart()
	resp, err := cli.Get(ctx, "/tsc/k")
	if err != nil {
		t.Fatalf("Get after Restart: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("Get after Restart = %v, want one key with value v", resp.Kvs)
	}
}

// TestNetns runs etcd inside a network namespace and reaches it there.
func TestNetns(t *testing.T) {
	privtest.Require(t, "create a network namespace", "ip")
	privtest.Netns(t, "tsc-etcdtest")
	if out, err := exec.Command("ip", "-n", "tsc-etcdtest", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v\n%s", err, out)
	}
	s := Start(t, Options{Netns: "tsc-etcdtest"})
	if err := s.healthy(); err != nil {
		t.Fatalf("health from inside the namespace: %v", err)
	}
	s.Stop()
	if err := s.healthy(); err == nil {
		t.Fatalf("etcd answers after Stop")
	}
}

// TestTLSAuth starts etcd with TLS and auth, reaches it with the client
// certificate as root, and finds it refusing a client with neither.
func TestTLSAuth(t *testing.T) {
	s := Start(t, Options{TLS: true, Auth: true})
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL() = %s, want https", s.URL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client().Put(ctx, "/tsc/k", "v"); err != nil {
		t.Fatalf("Put as root: %v", err)
	}
	s.AddUser("u1", "p1", "/tsc/u1/")

	bare, err := clientv3.New(clientv3.Config{Endpoints: []string{s.URL()}, TLS: &tls.Config{RootCAs: s.Certs().TLS(t).RootCAs}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if _, err := bare.Get(short, "/tsc/k"); err == nil {
		t.Fatalf("Get without a client certificate succeeded")
	}
}
