package apiserver

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PeerOf returns the credentials of the process at the other end of the
// Unix socket connection c, as the kernel recorded them at connect().
func PeerOf(c net.Conn) (Peer, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return Peer{}, fmt.Errorf("peer credentials: %T is not a socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var p Peer
	var perr error
	err = rc.Control(func(fd uintptr) {
		uc, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			perr = fmt.Errorf("SO_PEERCRED: %w", err)
			return
		}
		p = Peer{PID: int(uc.Pid), UID: uc.Uid, GID: uc.Gid}
		p.Groups, perr = peerGroups(int(fd))
	})
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if perr != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", perr)
	}
	return p, nil
}

// peerGroups returns the supplementary groups of the peer of the socket
// fd (SO_PEERGROUPS), or nil where the kernel predates that option.
// x/sys/unix has no wrapper for it: its value is an array of gid_t.
func peerGroups(fd int) ([]uint32, error) {
	n := 64
	for {
		buf := make([]uint32, n)
		size := uint32(4 * n)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == 0:
			return buf[:size/4], nil
		case errno == unix.ERANGE && int(size/4) > n:
			// The kernel wrote back the size it needs.
			n = int(size / 4)
		case errors.Is(errno, unix.ENOPROTOOPT):
			return nil, nil
		default:
			return nil, fmt.Errorf("SO_PEERGROUPS: %w", errno)
		}
	}
}
