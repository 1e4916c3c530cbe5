package vxlan

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
)

// TestHandOverReceivers: an endpoint pauses its reads and exports its
// receiving socket; frames sent to it then wait in the socket; a new
// endpoint on the same address and port takes the socket over, and,
// once its tunnel is made and its reads resumed, reads every one of
// them.
func TestHandOverReceivers(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	ta := tunnel(t, ea, 42, 1450, netip.MustParseAddr("127.0.0.2"))
	tb := tunnel(t, eb, 42, 1450, netip.MustParseAddr("127.0.0.1"))
	send := func(seed byte) []byte {
		t.Helper()
		f := ethFrame(bcast, macA, 100, seed)
		if _, err := ta.Queues()[0].Write([][]byte{buffer(f, device.VnetHdr{})}, device.Headroom); err != nil {
			t.Fatal(err)
		}
		return f
	}
	want := send(1)
	if got := readFrames(t, tb.Queues()[0], 1); !bytes.Equal(got[0], want) {
		t.Fatalf("before the hand-over: got %x, want %x", got[0], want)
	}

	eb.PauseReads()
	fds, err := eb.ExportReceivers()
	if err != nil {
		t.Fatalf("ExportReceivers() = %v", err)
	}
	if len(fds) != 1 {
		t.Fatalf("ExportReceivers() = %d descriptors, want 1", len(fds))
	}
	var sent [][]byte
	for i := range 20 {
		sent = append(sent, send(byte(10+i)))
	}
	if rx := eb.Stats().RxPackets; rx != 1 {
		t.Errorf("paused endpoint: RxPackets = %d, want 1 (none read while paused)", rx)
	}
	eb.Close()

	nb, err := Listen(Config{Local: eb.cfg.Local, Port: eb.cfg.Port, Inherited: fds, Paused: true})
	if err != nil {
		t.Fatalf("Listen with the receiver handed over: %v", err)
	}
	defer nb.Close()
	// The descriptor handed over is closed once, by Listen, and not
	// again later by a finalizer, when its number is another file's:
	// here a pipe's, put there on purpose.
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pipe[1])
	if pipe[0] != fds[0] {
		if err := unix.Dup3(pipe[0], fds[0], unix.O_CLOEXEC); err != nil {
			t.Fatalf("dup3(%d, %d): %v", pipe[0], fds[0], err)
		}
		unix.Close(pipe[0])
	}
	defer unix.Close(fds[0])
	for range 3 {
		runtime.GC()
		// Finalizers run after the collection, in a goroutine of
		// their own.
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0); err != nil {
		t.Fatalf("descriptor %d, once the one handed over, now a pipe's: %v after a GC; want it open", fds[0], err)
	}
	nb.SetMembers([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	nt := tunnel(t, nb, 42, 1450, netip.MustParseAddr("127.0.0.1"))
	nb.ResumeReads()
	got := readFrames(t, nt.Queues()[0], len(sent))
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("frame %d after the hand-over: got %x, want %x", i, got[i], sent[i])
		}
	}
	if s := nb.Stats(); s.DropNotMember+s.DropUnknownVNI+s.DropMalformed != 0 {
		t.Errorf("successor's drops: %+v, want none", s)
	}

	// Pause and resume again, on the endpoint that took over.
	nb.PauseReads()
	again := send(99)
	nb.ResumeReads()
	if got := readFrames(t, nt.Queues()[0], 1); !bytes.Equal(got[0], again) {
		t.Fatalf("after a pause and a resume: got %x, want %x", got[0], again)
	}
}

// udpOn opens a UDP socket on addr and returns a descriptor of it that
// the caller owns, and the port.
func udpOn(t *testing.T, network, addr string) (int, int) {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return fd, c.LocalAddr().(*net.UDPAddr).Port
}

func TestAdoptReceiversRefused(t *testing.T) {
	local := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name string
		// fds makes the descriptors handed over and returns the port
		// the endpoint wants.
		fds  func(t *testing.T) ([]int, int)
		want string
	}{
		{"the right one", func(t *testing.T) ([]int, int) {
			fd, port := udpOn(t, "udp4", "127.0.0.1:0")
			return []int{fd}, port
		}, ""},
		{"another port", func(t *testing.T) ([]int, int) {
			fd, port := udpOn(t, "udp4", "127.0.0.1:0")
			return []int{fd}, port + 1
		}, "bound to 127.0.0.1:"},
		{"another address", func(t *testing.T) ([]int, int) {
			fd, port := udpOn(t, "udp4", "127.0.0.3:0")
			return []int{fd}, port
		}, "bound to 127.0.0.3:"},
		{"IPv6", func(t *testing.T) ([]int, int) {
			fd, port := udpOn(t, "udp6", "[::1]:0")
			return []int{fd}, port
		}, "not a UDP socket"},
		{"TCP", func(t *testing.T) ([]int, int) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			f, err := ln.(*net.TCPListener).File()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fd, _ := unix.Dup(int(f.Fd()))
			return []int{fd}, ln.Addr().(*net.TCPAddr).Port
		}, "not a UDP socket"},
		{"a pipe", func(t *testing.T) ([]int, int) {
			var p [2]int
			if err := unix.Pipe(p[:]); err != nil {
				t.Fatal(err)
			}
			unix.Close(p[1])
			return []int{p[0]}, 4789
		}, "receiving socket handed over"},
		{"two on two ports", func(t *testing.T) ([]int, int) {
			a, port := udpOn(t, "udp4", "127.0.0.1:0")
			b, _ := udpOn(t, "udp4", "127.0.0.1:0")
			return []int{a, b}, port
		}, "does not share 127.0.0.1:"},
		{"two not sharing", func(t *testing.T) ([]int, int) {
			a, port := udpOn(t, "udp4", "127.0.0.1:0")
			b, err := unix.Dup(a)
			if err != nil {
				t.Fatal(err)
			}
			return []int{a, b}, port
		}, "does not share 127.0.0.1:"},
		{"two sharing", func(t *testing.T) ([]int, int) {
			return sharedOn(t, local, 2)
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fds, port := tt.fds(t)
			rx, surplus, err := adoptReceivers(fds, local, port, len(fds))
			defer func() {
				for _, r := range rx {
					r.conn.Close()
				}
			}()
			checkClosed(t, fds, rx)
			if tt.want == "" {
				if err != nil || len(rx) != len(fds) || surplus != 0 {
					t.Fatalf("adoptReceivers() = %d sockets, %d surplus, %v; want %d sockets", len(rx), surplus, err, len(fds))
				}
				for _, r := range rx {
					if got := r.conn.LocalAddr().(*net.UDPAddr).AddrPort(); got != netip.AddrPortFrom(local, uint16(port)) {
						t.Errorf("adopted socket on %v, want %v:%d", got, local, port)
					}
				}
				return
			}
			if err == nil || rx != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("adoptReceivers() = %d sockets, %v; want none and an error containing %q", len(rx), err, tt.want)
			}
		})
	}
}

// checkClosed fails t unless every descriptor of fds is closed but
// those that are now the descriptors of rx: taken or refused, the
// descriptors handed over are closed (nothing else opens one in
// between).
func checkClosed(t *testing.T, fds []int, rx []rxSock) {
	t.Helper()
	now := map[int]bool{}
	for _, r := range rx {
		r.raw.Control(func(c uintptr) { now[int(c)] = true })
	}
	for _, fd := range fds {
		if now[fd] {
			continue
		}
		if _, ferr := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); ferr != unix.EBADF {
			t.Errorf("descriptor %d after the hand-over: F_GETFD = %v, want EBADF", fd, ferr)
		}
	}
}

// sharedOn opens n UDP sockets sharing a port of local with
// SO_REUSEPORT and returns descriptors of them that the caller owns,
// and the port.
func sharedOn(t *testing.T, local netip.Addr, n int) ([]int, int) {
	t.Helper()
	var fds []int
	port := 0
	for range n {
		r, err := listenRx(local, port, true)
		if err != nil {
			t.Fatal(err)
		}
		port = r.conn.LocalAddr().(*net.UDPAddr).Port
		var fd int
		var derr error
		r.raw.Control(func(c uintptr) { fd, derr = unix.FcntlInt(c, unix.F_DUPFD_CLOEXEC, 0) })
		r.conn.Close()
		if derr != nil {
			t.Fatal(derr)
		}
		fds = append(fds, fd)
	}
	return fds, port
}

// TestListenRefusedBindsAfresh: a socket handed over that is not the
// endpoint's is refused, and the endpoint binds its own.
func TestListenRefusedBindsAfresh(t *testing.T) {
	fd, port := udpOn(t, "udp4", "127.0.0.1:0")
	want := port + 1
	e, err := Listen(Config{Local: netip.MustParseAddr("127.0.0.1"), Port: want, Inherited: []int{fd}})
	if err != nil {
		t.Skipf("port %d not free: %v", want, err)
	}
	defer e.Close()
	if got := e.sock.rx[0].conn.LocalAddr().(*net.UDPAddr).Port; got != want {
		t.Errorf("endpoint bound to port %d, want %d", got, want)
	}
}

