package sdnotify_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/sdnotify"
	"github.com/tapswitch/tapswitch/internal/sdnotify/sdnotifytest"
)

func TestCheckName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"tap/web", true},
		{"pub/web/0", true},
		{"", false},
		{"a:b", false},
		{"tab\there", false},
		{strings.Repeat("x", 255), true},
		{strings.Repeat("x", 256), false},
		{"caf\u00e9", false},
	} {
		if err := sdnotify.CheckName(c.name); (err == nil) != c.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStoreAndRemove: what Store sends, the supervisor keeps under its
// name, once however often it is sent; Remove drops it; the store keeps
// no more than its maximum.
func TestStoreAndRemove(t *testing.T) {
	sup, err := sdnotifytest.New(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	n, err := sdnotify.Dial(sup.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if err := n.Store("pipe", p[0], p[1]); err != nil {
		t.Fatalf("Store(pipe) = %v", err)
	}
	if err := n.Store("pipe", p[0]); err != nil {
		t.Fatalf("Store(pipe) again = %v", err)
	}
	waitFor(t, "two messages", func() bool { return sup.Messages() == 2 })
	if got := sup.Stored(); got["pipe"] != 2 || len(got) != 1 {
		t.Fatalf("stored after Store(pipe, r, w) and Store(pipe, r) = %v, want pipe: 2", got)
	}
	if err := n.Store("more", p[0], p[1]); err == nil {
		waitFor(t, "three messages", func() bool { return sup.Messages() == 3 })
	}
	if got, refused := sup.Stored(), sup.Refused(); got["more"] != 0 || refused != 0 {
		// The same files again: kept once, nothing over the maximum.
		t.Fatalf("stored after Store(more, r, w) = %v, %d refused; want the files kept once, under pipe", got, refused)
	}
	if err := n.Remove("pipe"); err != nil {
		t.Fatalf("Remove(pipe) = %v", err)
	}
	waitFor(t, "the removal", func() bool { return len(sup.Stored()) == 0 })
	var fds []int
	for range 2 {
		var q [2]int
		if err := unix.Pipe2(q[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(q[0])
		defer unix.Close(q[1])
		fds = append(fds, q[:]...)
	}
	if err := n.Store("four", fds...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the store to fill", func() bool { return sup.Refused() == 1 })
	if got := sup.Stored(); got["four"] != 3 {
		t.Fatalf("stored after 4 descriptors with a maximum of 3 = %v, want four: 3", got)
	}
	if err := n.Store("a:b", p[0]); !errors.Is(err, sdnotify.ErrBadName) {
		t.Fatalf("Store(a:b) = %v, want ErrBadName", err)
	}
}

// TestListenFromSupervisor starts a child through the supervisor: it
// gets the stored descriptors with their names, and READY=1 reaches the
// supervisor.
func TestListenFromSupervisor(t *testing.T) {
	if os.Getenv("SDNOTIFY_TEST_CHILD") == "1" {
		child()
		return
	}
	sup, err := sdnotifytest.New(t.TempDir(), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	n, err := sdnotify.Dial(sup.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(p[1], []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := n.Store("pipe-read", p[0]); err != nil {
		t.Fatal(err)
	}
	// The store has its own copy; the service that stored it dies.
	unix.Close(p[0])
	unix.Close(p[1])
	waitFor(t, "the store", func() bool { return sup.Stored()["pipe-read"] == 1 })

	cmd := sup.Command(os.Args[0], "-test.run=^TestListenFromSupervisor$")
	cmd.Env = append(cmd.Env, "SDNOTIFY_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "pipe-read: kept") {
		t.Fatalf("child output = %q, want it to read %q from the descriptor named pipe-read", out, "kept")
	}
	select {
	case <-sup.Ready():
	case <-time.After(5 * time.Second):
		t.Fatalf("no READY=1 from the child; messages: %q", sup.Log())
	}
}

func child() {
	set, err := sdnotify.Listen()
	if err != nil {
		fmt.Println("Listen:", err)
		os.Exit(1)
	}
	if os.Getenv(sdnotify.EnvListenFDs) != "" {
		fmt.Println("LISTEN_FDS still set")
		os.Exit(1)
	}
	fd := set.TakeOne("pipe-read")
	if fd < 0 {
		fmt.Println("no pipe-read in", set.Names())
		os.Exit(1)
	}
	buf := make([]byte, 16)
	k, _ := unix.Read(fd, buf)
	fmt.Printf("pipe-read: %s\n", buf[:k])
	n, err := sdnotify.FromEnv()
	if err != nil || n == nil {
		fmt.Println("FromEnv:", err)
		os.Exit(1)
	}
	if err := n.Ready("up"); err != nil {
		fmt.Println("Ready:", err)
		os.Exit(1)
	}
}
