package daemon

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/fdset"
)

// pipes returns n pipes' read ends in a set, named by group, and their
// write ends.
func pipes(t *testing.T, n int, group func(i int) string) (*fdset.Set, []int) {
	t.Helper()
	set := &fdset.Set{}
	var writers []int
	for i := range n {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		set.Add(group(i), p[0])
		writers = append(writers, p[1])
	}
	t.Cleanup(func() {
		set.Close()
		closeFDs(writers)
	})
	return set, writers
}

// TestHandoverWire hands 450 descriptors over, more than fit one
// message, and checks that each arrives under its name, in order, and
// is the very file that was sent.
func TestHandoverWire(t *testing.T) {
	dir := t.TempDir()
	ln, err := ListenHandover(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, err := os.Stat(HandoverSocket(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("hand-over socket: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	const n = 450
	set, writers := pipes(t, n, func(i int) string { return fmt.Sprintf("tap/p%d", i/3) })
	done := make(chan error, 1)
	go func() {
		succ, err := AcceptSuccessor(ln)
		if err != nil {
			done <- err
			return
		}
		defer succ.Close()
		if succ.Pid != os.Getpid() {
			done <- fmt.Errorf("successor pid %d, want %d", succ.Pid, os.Getpid())
			return
		}
		if err := succ.Send(set); err != nil {
			done <- err
			return
		}
		done <- succ.Wait()
	}()
	p, got, err := TakeOver(dir)
	if err != nil {
		t.Fatalf("TakeOver() = %v", err)
	}
	defer got.Close()
	if got.Len() != n || len(got.Names()) != n/3 {
		t.Fatalf("TakeOver() got %d descriptors under %d names, want %d under %d", got.Len(), len(got.Names()), n, n/3)
	}
	for i := range n / 3 {
		fds := got.Take(fmt.Sprintf("tap/p%d", i))
		if len(fds) != 3 {
			t.Fatalf("tap/p%d: %d descriptors, want 3", i, len(fds))
		}
		for k, fd := range fds {
			msg := fmt.Sprintf("%d", 3*i+k)
			unix.Write(writers[3*i+k], []byte(msg))
			buf := make([]byte, 8)
			m, _ := unix.Read(fd, buf)
			if string(buf[:m]) != msg {
				t.Fatalf("tap/p%d's descriptor %d reads %q, want %q: not the file sent", i, k, buf[:m], msg)
			}
		}
		closeFDs(fds)
	}
	if err := p.Done(); err != nil {
		t.Fatalf("Done() = %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("predecessor: %v", err)
	}
}

// TestHandoverRefusals: each side saying no reaches the other with its
// reason, and a state directory with no daemon is told apart.
func TestHandoverRefusals(t *testing.T) {
	t.Run("no predecessor", func(t *testing.T) {
		dir := t.TempDir()
		if _, _, err := TakeOver(dir); !errors.Is(err, ErrNoPredecessor) {
			t.Fatalf("TakeOver(empty dir) = %v, want ErrNoPredecessor", err)
		}
		// A socket a dead daemon left.
		ln, err := ListenHandover(dir)
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		if _, _, err := TakeOver(dir); !errors.Is(err, ErrNoPredecessor) {
			t.Fatalf("TakeOver(stale socket) = %v, want ErrNoPredecessor", err)
		}
		// And a daemon that starts replaces it.
		ln, err = ListenHandover(dir)
		if err != nil {
			t.Fatalf("ListenHandover over a stale socket = %v", err)
		}
		defer ln.Close()
		if _, err := ListenHandover(dir); err == nil {
			t.Fatal("ListenHandover while another listens = nil error, want a refusal")
		}
	})
	t.Run("predecessor refuses", func(t *testing.T) {
		dir := t.TempDir()
		ln, err := ListenHandover(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		refused := make(chan struct{})
		go func() {
			defer close(refused)
			if succ, err := AcceptSuccessor(ln); err == nil {
				succ.Refuse(errors.New("busy with something"))
			}
		}()
		_, _, err = TakeOver(dir)
		<-refused
		if !errors.Is(err, ErrHandoverRefused) || !contains(err, "busy with something") {
			t.Fatalf("TakeOver() = %v, want ErrHandoverRefused with the reason", err)
		}
	})
	t.Run("successor hangs", func(t *testing.T) {
		defer func(d time.Duration) { handoverTimeout = d }(handoverTimeout)
		handoverTimeout = 200 * time.Millisecond
		dir := t.TempDir()
		ln, err := ListenHandover(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		set, _ := pipes(t, 1, func(int) string { return "tap/x" })
		waited := make(chan error, 1)
		go func() {
			succ, err := AcceptSuccessor(ln)
			if err != nil {
				waited <- err
				return
			}
			defer succ.Close()
			if err := succ.Send(set); err != nil {
				waited <- err
				return
			}
			waited <- succ.Wait()
		}()
		p, got, err := TakeOver(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		got.Close()
		// Says nothing: the predecessor gives up waiting.
		if err := <-waited; err == nil || !contains(err, "did not take over within") {
			t.Fatalf("Wait() with a successor that says nothing = %v, want a time-out", err)
		}
	})
	t.Run("successor gives up", func(t *testing.T) {
		dir := t.TempDir()
		ln, err := ListenHandover(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		set, _ := pipes(t, 2, func(int) string { return "tap/x" })
		waited := make(chan error, 1)
		go func() {
			succ, err := AcceptSuccessor(ln)
			if err != nil {
				waited <- err
				return
			}
			defer succ.Close()
			if err := succ.Send(set); err != nil {
				waited <- err
				return
			}
			waited <- succ.Wait()
		}()
		p, got, err := TakeOver(dir)
		if err != nil {
			t.Fatal(err)
		}
		got.Close()
		p.Abort(errors.New("cannot listen"))
		if err := <-waited; err == nil || !contains(err, "cannot listen") {
			t.Fatalf("Wait() after Abort = %v, want the successor's reason", err)
		}
	})
}

func contains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}
