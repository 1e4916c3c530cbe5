package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/namespace"
)

// soak reports whether the long versions of the tests were asked for
// (make soak).
func soak() bool { return os.Getenv("TAPSWITCH_SOAK") == "1" }

// echoStream is one TCP connection between two namespaces that carries
// data both ways for as long as it is open: the client writes chunks,
// the server sends each back, the client checks it.
type echoStream struct {
	rounds atomic.Uint64
	// longest is the longest round, in nanoseconds.
	longest atomic.Int64
	stop    chan struct{}
	done    chan error
}

// startEcho listens on ip:port inside serverNS and connects to it from
// clientNS. Sockets belong to the namespace they were made in, so both
// are made inside theirs and used from here.
func (e *testEnv) startEcho(serverNS, clientNS, ip string, port int) *echoStream {
	e.t.Helper()
	hostPort := net.JoinHostPort(ip, strconv.Itoa(port))
	var ln net.Listener
	if err := namespace.Do(nsPath(serverNS), func() (err error) {
		ln, err = net.Listen("tcp", hostPort)
		return err
	}); err != nil {
		e.t.Fatalf("listen on %s in %s: %v", hostPort, serverNS, err)
	}
	e.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	var conn net.Conn
	if err := namespace.Do(nsPath(clientNS), func() (err error) {
		conn, err = net.DialTimeout("tcp", hostPort, 5*time.Second)
		return err
	}); err != nil {
		e.t.Fatalf("connect to %s from %s: %v", hostPort, clientNS, err)
	}
	s := &echoStream{stop: make(chan struct{}), done: make(chan error, 1)}
	e.t.Cleanup(func() { conn.Close() })
	go func() {
		out := make([]byte, 64<<10)
		in := make([]byte, len(out))
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				s.done <- nil
				return
			default:
			}
			for j := range out {
				out[j] = byte(i + j)
			}
			start := time.Now()
			conn.SetDeadline(start.Add(30 * time.Second))
			if _, err := conn.Write(out); err != nil {
				s.done <- fmt.Errorf("round %d: write: %w", i, err)
				return
			}
			if _, err := io.ReadFull(conn, in); err != nil {
				s.done <- fmt.Errorf("round %d: read: %w", i, err)
				return
			}
			if !bytes.Equal(in, out) {
				s.done <- fmt.Errorf("round %d: the echo differs from what was sent", i)
				return
			}
			if d := int64(time.Since(start)); d > s.longest.Load() {
				s.longest.Store(d)
			}
			s.rounds.Add(1)
		}
	}()
	return s
}

// end stops the stream and returns its first error.
func (s *echoStream) end() error {
	close(s.stop)
	return <-s.done
}

// TestChurn attaches and detaches a namespace over and over, by name and
// by pid, while two others keep one TCP connection busy. Afterwards the
// daemon's goroutines, fds and memory must be back near where they
// started, nothing may be left in the namespace or the state directory,
// and the connection must never have broken.
func TestChurn(t *testing.T) {
	cycles := 100
	if soak() {
		cycles = 1000
	}
	if s := os.Getenv("TAPSWITCH_CHURN"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("TAPSWITCH_CHURN=%q: want a positive count", s)
		}
		cycles = n
	}
	e := newEnv(t)
	nsA, nsB, nsC := e.newNetns("a"), e.newNetns("b"), e.newNetns("c")
	portA := e.attach(nsA, "--ip", "10.77.15.1/24")
	portB := e.attach(nsB, "--ip", "10.77.15.2/24")
	pid := e.startSleeper(nsC)
	stream := e.startEcho(nsB, nsA, "10.77.15.2", 7001)

	// One cycle first, so that what is made once and kept (buffers, the
	// first TAP's code paths) is in the baseline.
	churnOnce := func(i int) {
		spec := nsC
		if i%2 == 1 {
			spec = fmt.Sprintf("pid:%d", pid)
		}
		name := e.attach(spec, "--name", "churn", "--ip", "10.77.15.9/24")
		e.mustCLI("detach", name)
	}
	churnOnce(0)
	before := e.daemonProcStats()
	g0 := e.status().Goroutines

	start := time.Now()
	for i := range cycles {
		churnOnce(i + 1)
		select {
		case err := <-stream.done:
			t.Fatalf("TCP connection %s -> %s broke during cycle %d: %v", nsA, nsB, i+1, err)
		default:
		}
	}
	took := time.Since(start)

	// Goroutines and fds of a detached port may take a moment to go.
	var after procStats
	var g1 int
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = e.daemonProcStats()
		g1 = e.status().Goroutines
		if (g1 <= g0 && after.fds <= before.fds) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	rounds, longest := stream.rounds.Load(), time.Duration(stream.longest.Load())
	if err := stream.end(); err != nil {
		t.Fatalf("TCP connection %s -> %s broke: %v", nsA, nsB, err)
	}
	t.Logf("%d attach/detach cycles in %v (%v each); the TCP connection made %d echo rounds of 64 KiB meanwhile, the longest %v",
		cycles, took.Round(time.Millisecond), (took / time.Duration(cycles)).Round(time.Microsecond), rounds, longest.Round(time.Millisecond))
	t.Logf("daemon before: %d goroutines, %v", g0, before)
	t.Logf("daemon after:  %d goroutines, %v", g1, after)

	if rounds == 0 {
		t.Errorf("the TCP connection moved nothing during the churn")
	}
	if g1 > g0 {
		t.Errorf("goroutines: %d before the churn, %d after", g0, g1)
	}
	if after.fds > before.fds {
		t.Errorf("open fds: %d before the churn, %d after", before.fds, after.fds)
	}
	// Memory is noisier: the heap grows in steps and is returned lazily.
	if after.rssBytes > before.rssBytes+32<<20 {
		t.Errorf("memory: %v before the churn, %v after", before, after)
	}
	if l := leftovers(t, nsC); len(l) > 0 {
		t.Errorf("interfaces left in %s after detach: %v", nsC, l)
	}
	if pins, _ := filepath.Glob(filepath.Join(e.stateDir(), "netns", "*")); len(pins) > 0 {
		t.Errorf("namespace pins left in the state directory: %v", pins)
	}
	ports := e.ports()
	if len(ports) != 2 || findPort(ports, portA) == nil || findPort(ports, portB) == nil {
		t.Errorf("tapswitch ports after the churn: %+v, want only %s and %s", ports, portA, portB)
	}
}
