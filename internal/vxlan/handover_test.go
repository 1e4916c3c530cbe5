package vxlan

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
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

// handOverN hands the receiving sockets of an endpoint of from sockets
// over to one asked for to, while the predecessor still holds them:
// 32 outer flows send 10 frames each while neither reads, and 10 more
// once the successor reads and the predecessor is closed. It returns,
// per flow, the numbers of the frames the successor read, and per
// queue how many of the second ten it read.
func handOverN(t *testing.T, from, to int) (got map[byte][]uint32, second []int) {
	const flows, batch = 32, 10
	e := listenN(t, from)
	local, port := e.cfg.Local, e.cfg.Port
	tunnel(t, e, 5, 1450)
	e.PauseReads()
	fds, err := e.ExportReceivers()
	if err != nil || len(fds) != from {
		t.Fatalf("ExportReceivers() = %v, %v; want %d descriptors", fds, err, from)
	}
	senders := newFlowSenders(t, e, flows)
	for _, s := range senders {
		s.send(t, 5, batch)
	}
	for i, fd := range fds {
		// A datagram waits in every socket: the kernel spread 32 flows
		// over them.
		if n, err := unix.IoctlGetInt(fd, unix.SIOCINQ); err != nil || n == 0 {
			t.Fatalf("receiving socket %d of %d handed over: %d bytes waiting, %v; want some", i, from, n, err)
		}
	}
	if rx := e.Stats().RxPackets; rx != 0 {
		t.Fatalf("paused endpoint read %d datagrams", rx)
	}

	var handed []string
	for _, fd := range fds {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		handed = append(handed, fmt.Sprintf("socket:[%d]", st.Ino))
	}
	// The predecessor still holds the port.
	n, err := Listen(Config{Local: local, Port: port, Receivers: to, Inherited: fds, Paused: true})
	if err != nil {
		t.Fatalf("Listen with %d receiving sockets handed over, %d asked for: %v", from, to, err)
	}
	t.Cleanup(func() { n.Close() })
	if len(n.sock.rx) != to {
		t.Fatalf("successor reads %d sockets, want %d", len(n.sock.rx), to)
	}
	for i, r := range n.sock.rx {
		if got := r.conn.LocalAddr().(*net.UDPAddr).AddrPort(); got != netip.AddrPortFrom(local, uint16(port)) {
			t.Errorf("successor's socket %d on %v, want %v:%d", i, got, local, port)
		}
		var v int
		r.raw.Control(func(c uintptr) { v, _ = unix.GetsockoptInt(int(c), unix.SOL_SOCKET, unix.SO_REUSEPORT) })
		if to > 1 && v == 0 {
			t.Errorf("successor's socket %d of %d without SO_REUSEPORT", i, to)
		}
	}
	n.SetMembers([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	nt := tunnel(t, n, 5, 1450)
	var cs []*collector
	for _, q := range nt.Queues() {
		cs = append(cs, collect(t, q))
	}
	n.ResumeReads()
	e.Close()
	// Of the sockets handed over, those taken are open once each (the
	// successor's), the others not at all.
	if open := openHanded(t, handed); open != min(from, to) {
		t.Errorf("%d descriptors of the %d sockets handed over open, want %d", open, from, min(from, to))
	}
	for _, s := range senders {
		s.send(t, 5, batch)
	}

	got = map[byte][]uint32{}
	second = make([]int, len(cs))
	total := 0
	deadline := time.Now().Add(waitLimit)
	for {
		for qi, c := range cs {
			for more := true; more; {
				select {
				case f := <-c.ch:
					id, seq := frameOf(f)
					got[id] = append(got[id], seq)
					if seq >= batch {
						second[qi]++
						total++
					}
				default:
					more = false
				}
			}
		}
		if total >= flows*batch {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("successor read %d of the %d frames sent after it took over (per queue %v)", total, flows*batch, second)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	for _, c := range cs {
		for more := true; more; {
			select {
			case f := <-c.ch:
				id, seq := frameOf(f)
				got[id] = append(got[id], seq)
			default:
				more = false
			}
		}
	}
	for _, s := range senders {
		slices.Sort(got[s.id])
	}
	return got, second
}

// seqs returns the numbers from to up to to+n.
func seqs(from, n uint32) []uint32 {
	var s []uint32
	for i := range n {
		s = append(s, from+i)
	}
	return s
}

// TestHandOverTwoReceivers: an endpoint of two receiving sockets hands
// both over; the frames waiting in each are read by the successor,
// every one.
func TestHandOverTwoReceivers(t *testing.T) {
	got, second := handOverN(t, 2, 2)
	for id, s := range got {
		if !slices.Equal(s, seqs(0, 20)) {
			t.Errorf("flow %d: frames %v read, want 0-19", id, s)
		}
	}
	t.Logf("second ten per queue: %v", second)
}

// TestHandOverMoreReceivers: one receiving socket handed over to an
// endpoint asked for two: it takes the one, opens a second into its
// group while the predecessor still holds the port, reads every frame,
// and the kernel spreads the flows over both.
func TestHandOverMoreReceivers(t *testing.T) {
	got, second := handOverN(t, 1, 2)
	for id, s := range got {
		if !slices.Equal(s, seqs(0, 20)) {
			t.Errorf("flow %d: frames %v read, want 0-19", id, s)
		}
	}
	if second[0] == 0 || second[1] == 0 {
		t.Errorf("frames sent after the hand-over per queue: %v; want both sockets to receive", second)
	}
}

// TestHandOverFewerReceivers: two receiving sockets handed over to an
// endpoint asked for one: it reads the first, with every frame waiting
// in it, and closes the second, whose waiting frames are lost; once
// the predecessor is gone, every frame comes to the one socket.
func TestHandOverFewerReceivers(t *testing.T) {
	got, second := handOverN(t, 2, 1)
	whole := 0
	for id, s := range got {
		switch {
		case slices.Equal(s, seqs(0, 20)):
			whole++
		case slices.Equal(s, seqs(10, 10)):
		default:
			t.Errorf("flow %d: frames %v read, want 0-19 (waiting in the socket taken) or 10-19 (in the one closed)", id, s)
		}
	}
	if whole == 0 || whole == len(got) {
		t.Errorf("%d of %d flows read whole; want those of the socket taken, not those of the one closed", whole, len(got))
	}
	t.Logf("%d of %d flows waited in the socket taken; second ten: %v", whole, len(got), second)
}

// openHanded counts the descriptors of this process open on a socket
// of names ("socket:[inode]").
func openHanded(t *testing.T, names []string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + d.Name()); err == nil && slices.Contains(names, l) {
			n++
		}
	}
	return n
}
