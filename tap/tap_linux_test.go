package tap

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/namespace"
	"github.com/tapswitch/tapswitch/internal/privtest"
)

// newNetns makes a namespace for one test and removes it afterwards.
func newNetns(t *testing.T) string {
	t.Helper()
	privtest.Require(t, "create namespaces and TAP devices", "ip")
	name := fmt.Sprintf("tstap%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	path, err := namespace.Resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func linkExists(t *testing.T, netns, name string) bool {
	t.Helper()
	err := exec.Command("ip", "netns", "exec", netns[len("/run/netns/"):], "ip", "link", "show", name).Run()
	return err == nil
}

func TestCreateAndClose(t *testing.T) {
	ns := newNetns(t)
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) {
			start := time.Now()
			d, err := Create(Config{Netns: ns, Name: "eth0", MTU: 9000, Queues: queues,
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.93.0.1/24"), netip.MustParsePrefix("fd93::1/64")}})
			if err != nil {
				t.Fatalf("Create() = %v", err)
			}
			created := time.Since(start)
			if got := len(d.Queues()); got != queues {
				t.Fatalf("len(Queues()) = %d, want %d", got, queues)
			}
			if d.Offloads()&offloadsBase != offloadsBase {
				t.Fatalf("Offloads() = %#x, want at least %#x", d.Offloads(), offloadsBase)
			}
			if !linkExists(t, ns, "eth0") {
				t.Fatal("eth0 missing in the namespace after Create")
			}
			if _, err := Create(Config{Netns: ns, Name: "eth0"}); !errors.Is(err, ErrExists) {
				t.Fatalf("second Create(eth0) = %v, want ErrExists", err)
			}
			// A reader blocked on an empty queue is woken by Close. The
			// kernel's own frames (IPv6 router solicitations and the like)
			// are read until the queue runs dry.
			done := make(chan error, 1)
			go func() {
				buf := make([]byte, 65536)
				for {
					if _, err := d.Queues()[0].Read(buf); err != nil {
						done <- err
						return
					}
				}
			}()
			time.Sleep(20 * time.Millisecond)
			start = time.Now()
			if err := d.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			closed := time.Since(start)
			if err := <-done; !errors.Is(err, os.ErrClosed) {
				t.Fatalf("Read during Close = %v, want os.ErrClosed", err)
			}
			if _, err := d.Queues()[0].Write(make([]byte, 60)); !errors.Is(err, os.ErrClosed) {
				t.Fatalf("Write after Close = %v, want os.ErrClosed", err)
			}
			if linkExists(t, ns, "eth0") {
				t.Fatal("eth0 still in the namespace after Close")
			}
			t.Logf("create %v, close %v", created, closed)
		})
	}
}
