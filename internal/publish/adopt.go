package publish

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Adopt is Start on sock, a socket another process listened on for m and
// handed over (see File): a TCP listener or a UDP socket bound to m's
// host address and port. Connections queued on the listener while it
// changed hands are accepted, and datagrams queued on the UDP socket
// read, by the new Proxy. Adopt owns sock from the call on: a socket
// that is not what m publishes is refused with an error, and closed.
func Adopt(m Mapping, target netip.Addr, log *slog.Logger, sock *os.File) (*Proxy, error) {
	return startOn(m, target, log, defaultLimits, sock)
}

// File returns a duplicate of the Proxy's listening socket, for another
// process to Adopt; the caller closes it. The Proxy keeps serving on its
// own until Close. Unlike the net package's File methods, it leaves the
// socket non-blocking, as the Proxy needs it while it serves, whatever
// the caller does with the duplicate's Fd.
func (p *Proxy) File() (*os.File, error) {
	var rc syscall.RawConn
	var err error
	if p.tcp != nil {
		rc, err = p.tcp.SyscallConn()
	} else {
		rc, err = p.udp.SyscallConn()
	}
	if err != nil {
		return nil, fmt.Errorf("publish %v: %w", p.m, err)
	}
	dup, ctlErr := -1, error(nil)
	err = rc.Control(func(fd uintptr) {
		dup, ctlErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	})
	if err = cmp.Or(err, ctlErr); err != nil {
		return nil, fmt.Errorf("publish %v: duplicate the socket: %w", p.m, err)
	}
	return os.NewFile(uintptr(dup), "publish "+p.m.String()), nil
}

// adoptSocket makes sock the Proxy's listener or UDP socket, once it is
// known to be bound where p's mapping says.
func (p *Proxy) adoptSocket(sock *os.File) error {
	defer sock.Close()
	var local net.Addr
	if p.m.Proto == "tcp" {
		ln, err := net.FileListener(sock)
		if err != nil {
			return fmt.Errorf("adopt a listener: %w", err)
		}
		tl, ok := ln.(*net.TCPListener)
		if !ok {
			ln.Close()
			return fmt.Errorf("adopt a listener: %w: a %T, not a TCP listener", errNotMapping, ln)
		}
		p.tcp, local = tl, tl.Addr()
	} else {
		pc, err := net.FilePacketConn(sock)
		if err != nil {
			return fmt.Errorf("adopt a UDP socket: %w", err)
		}
		uc, ok := pc.(*net.UDPConn)
		if !ok {
			pc.Close()
			return fmt.Errorf("adopt a UDP socket: %w: a %T, not a UDP socket", errNotMapping, pc)
		}
		p.udp, local = uc, uc.LocalAddr()
	}
	if err := p.m.boundTo(local); err != nil {
		if p.tcp != nil {
			p.tcp.Close()
			p.tcp = nil
		} else {
			p.udp.Close()
			p.udp = nil
		}
		return err
	}
	return nil
}

// errNotMapping: a socket handed over is not the one a mapping listens on.
var errNotMapping = errors.New("the socket handed over is not the published port's")

// boundTo checks that a socket bound to local listens for m: the same
// port, and the same address unless m has none (any address).
func (m Mapping) boundTo(local net.Addr) error {
	var ap netip.AddrPort
	switch a := local.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	}
	if ap.Port() == 0 || (m.HostPort != 0 && ap.Port() != m.HostPort) {
		return fmt.Errorf("%w: bound to %v, want port %d", errNotMapping, local, m.HostPort)
	}
	if m.HostIP.IsValid() && ap.Addr().Unmap() != m.HostIP.Unmap() {
		return fmt.Errorf("%w: bound to %v, want %v", errNotMapping, local, m.HostIP)
	}
	return nil
}
