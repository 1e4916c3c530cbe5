package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/fdset"
)

// fakeStore is a service manager's descriptor store in memory: it keeps
// copies of what it is given, as SCM_RIGHTS would.
type fakeStore struct {
	mu     sync.Mutex
	fds    map[string][]int
	stores map[string]int
	log    []string
}

func (s *fakeStore) Store(name string, fds ...int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fds == nil {
		s.fds, s.stores = map[string][]int{}, map[string]int{}
	}
	for _, fd := range fds {
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return err
		}
		s.fds[name] = append(s.fds[name], dup)
	}
	s.stores[name]++
	s.log = append(s.log, "store "+name)
	return nil
}

func (s *fakeStore) Remove(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	closeFDs(s.fds[name])
	delete(s.fds, name)
	s.log = append(s.log, "remove "+name)
	return nil
}

// take hands what the store keeps to the next start, as LISTEN_FDS does;
// the store keeps its own.
func (s *fakeStore) take(t *testing.T) *fdset.Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := &fdset.Set{}
	for name, fds := range s.fds {
		for _, fd := range fds {
			dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			set.Add(name, dup)
		}
	}
	return set
}

func (s *fakeStore) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.fds {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// TestFDStoreBookkeeping: a published port's socket goes to the store
// when the port is attached; the next start takes it from what the store
// passes instead of listening afresh, and does not store it twice;
// descriptors of ports the state does not know are closed and dropped
// from the store; a port detached leaves it.
func TestFDStoreBookkeeping(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHost()
	store := &fakeStore{}
	t.Cleanup(func() {
		for _, n := range store.names() {
			store.Remove(n)
		}
	})
	cfg := Config{StateDir: dir, TAPs: h.taps, Queues: 1, DNSUpstreams: []netip.AddrPort{},
		Logger: slog.New(slog.DiscardHandler), FDStore: store}
	d, err := newDaemon(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	frontNet(t, d)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if _, err := attach(d, "web", "t0", func(r *api.AttachRequest) {
		r.Publish = []string{fmt.Sprintf("127.0.0.1:%d:80", port)}
	}); err != nil {
		t.Fatal(err)
	}
	if got := store.names(); !slices.Equal(got, []string{"pub/web/0"}) {
		t.Fatalf("store after attach = %v, want [pub/web/0] (in-memory TAPs cannot be stored)", got)
	}
	d.Close()

	// While no daemon runs the store holds the listener: a client
	// connects and waits.
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("connect to the published port while the store holds it: %v", err)
	}
	c.Close()

	set := store.take(t)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	set.Add("tap/ghost", p[0])
	store.Store("tap/ghost", p[1])
	defer unix.Close(p[1])
	cfg.Inherited = set
	d, err = newDaemon(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	defer d.CloseAndRemove()
	if set.Len() != 0 {
		t.Errorf("descriptors left in the inherited set after New: %v", set.Names())
	}
	// Its number may be another file's by now; that the pipe has no
	// reader left says it was closed.
	if _, err := unix.Write(p[1], []byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Errorf("write to a pipe whose read end was handed over for a port the state does not know = %v, want EPIPE: the read end is still open", err)
	}
	if got := store.names(); !slices.Equal(got, []string{"pub/web/0"}) {
		t.Errorf("store after the restart = %v, want [pub/web/0]: tap/ghost dropped", got)
	}
	if n := store.stores["pub/web/0"]; n != 1 {
		t.Errorf("pub/web/0 stored %d times, want once: the restart took it from the store", n)
	}
	if d.inherited.sockets != 1 {
		t.Errorf("sockets taken from the store = %d, want 1", d.inherited.sockets)
	}
	if err := d.Detach(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	if got := store.names(); len(got) != 0 {
		t.Errorf("store after detaching web = %v, want empty", got)
	}
}
