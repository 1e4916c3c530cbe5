package apiserver

import (
	"errors"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerClosed reports whether the peer of c has closed its end: a peek
// at what c has to read, without taking it and without waiting, finds
// the end of the stream (or a reset). Data waiting (a pipelined request)
// or nothing yet means the peer is still there.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		// recvfrom without an address: unix.Recvfrom would decode the
		// peer's, which a connected socket does not need.
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == 0:
			closed = n == 0
		case errors.Is(errno, unix.ECONNRESET), errors.Is(errno, unix.EPIPE):
			closed = true
		}
	})
	return err == nil && closed
}
