package vxlan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// txSockets is how many sockets send: one outer source port each, picked
// by the inner flow's hash. A UDP socket has one source port, and the
// underlay spreads flows over its paths by the ports (RFC 7348 section
// 5), so a few sockets give a few ports; the kernel picks them from its
// ephemeral range, as Linux's vxlan picks its source ports from it.
const txSockets = 8

// sockBuf is the socket buffer size asked for, within the kernel's limit
// for an unprivileged process, without one for a privileged one: a burst
// of GSO sends or of received packets must not overflow it.
const sockBuf = 4 << 20

// maxDatagram is the most bytes of UDP payload one IPv4 datagram holds,
// and so the most one GSO send may carry in all.
const maxDatagram = 65535 - 20 - 8

// sockets are an Endpoint's UDP sockets.
//
// The receiving sockets are Go's, waited on by the runtime's poller:
// one, or a few on the one address and port (SO_REUSEPORT), among which
// the kernel spreads datagrams by their addresses and ports, so that one
// flow (one outer source port) keeps to one socket and its order. The
// sending ones are plain blocking descriptors the poller never sees: a
// socket in the poller's epoll set has the kernel call into epoll each
// time one of its sent packets is freed (the socket has write space
// again), and wake the poller's thread for nothing; at a GSO send per
// few microseconds that was a tenth of the sending host's CPU. A UDP
// send blocks only while the socket's buffer is full, which the
// receiving end drains.
type sockets struct {
	rx []rxSock
	// txMu guards the sending descriptors against Close: sends hold it
	// shared, close exclusively, so that a descriptor is never used
	// after it is closed (and its number reused).
	txMu     sync.RWMutex
	txClosed bool
	tx       [txSockets]txSock
}

type rxSock struct {
	conn *net.UDPConn
	raw  syscall.RawConn
}

type txSock struct {
	fd   int
	port int
}

// sendTimeout bounds a send blocked on a full socket buffer, and so how
// long Close may wait for one.
const sendTimeout = time.Second

// sockaddr is a socket address as the kernel takes it: a sockaddr_in or
// sockaddr_in6 in raw, len bytes of it.
type sockaddr struct {
	raw [unix.SizeofSockaddrInet6]byte
	len uint32
}

func makeSockaddr(a netip.Addr, port int) sockaddr {
	var s sockaddr
	binary.BigEndian.PutUint16(s.raw[2:], uint16(port))
	if a.Is4() {
		binary.NativeEndian.PutUint16(s.raw[0:], unix.AF_INET)
		a4 := a.As4()
		copy(s.raw[4:8], a4[:])
		s.len = unix.SizeofSockaddrInet4
		return s
	}
	binary.NativeEndian.PutUint16(s.raw[0:], unix.AF_INET6)
	a16 := a.As16()
	copy(s.raw[8:24], a16[:])
	s.len = unix.SizeofSockaddrInet6
	return s
}

// addr returns the address in s, the zero Addr if it is neither IPv4 nor
// IPv6.
func (s *sockaddr) addr() netip.Addr {
	switch binary.NativeEndian.Uint16(s.raw[0:]) {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte(s.raw[4:8]))
	case unix.AF_INET6:
		return netip.AddrFrom16([16]byte(s.raw[8:24])).Unmap()
	}
	return netip.Addr{}
}

// adoption says what became of the receiving sockets handed over to
// openSockets.
type adoption struct {
	// taken is how many were taken and are read.
	taken int
	// opened is how many more were opened into their SO_REUSEPORT group
	// (fewer handed over than asked for); surplus how many were closed
	// (more handed over than asked for).
	opened, surplus int
	// refused says why none were taken (and the port bound afresh); nil
	// if none were handed over or they were taken.
	refused error
	// short says why fewer sockets than asked for are read: opening one
	// more into the group failed.
	short error
}

// openSockets opens n receiving sockets on local:port (sharing it with
// SO_REUSEPORT if n > 1) and the sending ones on local and ports the
// kernel picks. The receiving sockets handed over in inherited come
// first (adoptReceivers): if they are taken, the others are opened into
// their group without making sure the port is free (they hold it), and
// those beyond n are closed.
func openSockets(local netip.Addr, port, n int, inherited []int) (s *sockets, a adoption, err error) {
	s = &sockets{}
	for i := range s.tx {
		s.tx[i].fd = -1
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	inUse := func(err error) error {
		return fmt.Errorf("vxlan: listen on %v port %d: %w (is another VXLAN endpoint, such as a Linux vxlan device, on that port? is %v an address of this host?)", local, port, err, local)
	}
	if len(inherited) > 0 {
		s.rx, a.surplus, a.refused = adoptReceivers(inherited, local, port, n)
		a.taken = len(s.rx)
	}
	if len(s.rx) > 0 {
		for len(s.rx) < n {
			r, err := listenRx(local, port, true)
			if err != nil {
				// The sockets taken hold the port: read those.
				a.short = fmt.Errorf("vxlan: open receiving socket %d of %d into the group handed over on %v port %d: %w", len(s.rx)+1, n, local, port, err)
				break
			}
			s.rx = append(s.rx, r)
			a.opened++
		}
	} else {
		if n > 1 {
			// Sockets that share a port with SO_REUSEPORT share it with
			// any other of the same user that asks alike: a socket alone
			// on the port first makes sure nobody holds it.
			probe, err := listenRx(local, port, false)
			if err != nil {
				return s, a, inUse(err)
			}
			probe.conn.Close()
		}
		for range n {
			r, err := listenRx(local, port, n > 1)
			if err != nil {
				return s, a, inUse(err)
			}
			s.rx = append(s.rx, r)
		}
	}
	for i := range s.tx {
		if s.tx[i], err = openTx(local); err != nil {
			return s, a, fmt.Errorf("vxlan: open a sending socket on %v: %w", local, err)
		}
	}
	return s, a, nil
}

// adoptReceivers takes the receiving sockets fds handed over, at most n
// of them, and closes the descriptors: it returns the sockets taken and
// how many were closed as surplus, or none and why they were refused
// (one is not a UDP socket bound to local:port, or, of several, one
// does not share it with SO_REUSEPORT). With n > 1 the sockets taken
// have SO_REUSEPORT (set on one handed over alone), so that more can be
// opened into their group.
func adoptReceivers(fds []int, local netip.Addr, port, n int) (rx []rxSock, surplus int, err error) {
	fds = slices.Clone(fds)
	defer func() {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		if err != nil {
			for _, r := range rx {
				r.conn.Close()
			}
			rx, surplus = nil, 0
		}
	}()
	for _, fd := range fds {
		if err := checkReceiver(fd, local, port, len(fds) > 1); err != nil {
			return nil, 0, err
		}
	}
	surplus = max(len(fds)-n, 0)
	for i := range fds[:len(fds)-surplus] {
		// The file owns the descriptor from here: closed by it, and
		// only by it (its finalizer would close the number again, by
		// then another socket's).
		f := os.NewFile(uintptr(fds[i]), "vxlan receiver")
		fds[i] = -1
		pc, err := net.FilePacketConn(f)
		f.Close()
		if err != nil {
			return rx, 0, fmt.Errorf("vxlan: receiving socket handed over: %w", err)
		}
		c, ok := pc.(*net.UDPConn)
		if !ok {
			pc.Close()
			return rx, 0, fmt.Errorf("vxlan: receiving socket handed over is a %T, not a UDP socket", pc)
		}
		r := rxSock{conn: c}
		r.raw, err = c.SyscallConn()
		if err == nil {
			// Set again: the predecessor may be of a version that set
			// fewer, and what is set already is set the same.
			err = control(r.raw, rxOpts, local.Is6(), n > 1)
		}
		if err != nil {
			c.Close()
			return rx, 0, err
		}
		rx = append(rx, r)
	}
	return rx, surplus, nil
}

// checkReceiver checks that fd is a UDP socket of local's family bound
// to local:port, and with SO_REUSEPORT if shared.
func checkReceiver(fd int, local netip.Addr, port int, shared bool) error {
	family := unix.AF_INET
	if local.Is6() {
		family = unix.AF_INET6
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("vxlan: receiving socket handed over: %w", err)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("vxlan: receiving socket handed over: %w", err)
	}
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return fmt.Errorf("vxlan: receiving socket handed over: %w", err)
	}
	if dom != family || typ != unix.SOCK_DGRAM || proto != unix.IPPROTO_UDP {
		return fmt.Errorf("vxlan: receiving socket handed over is not a UDP socket of %v's family (domain %d, type %d, protocol %d)", local, dom, typ, proto)
	}
	got, err := boundTo(fd)
	if err != nil {
		return fmt.Errorf("vxlan: receiving socket handed over: %w", err)
	}
	want := netip.AddrPortFrom(local, uint16(port))
	if got != want {
		return fmt.Errorf("vxlan: receiving socket handed over is bound to %v, not %v", got, want)
	}
	if shared {
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT); err != nil || v == 0 {
			return fmt.Errorf("vxlan: receiving socket handed over, one of several, does not share %v with SO_REUSEPORT", want)
		}
	}
	return nil
}

// exportReceivers returns descriptors of the receiving sockets that the
// caller owns, in order.
func (s *sockets) exportReceivers() (fds []int, err error) {
	defer func() {
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			fds = nil
		}
	}()
	for _, r := range s.rx {
		fd, cerr := -1, error(nil)
		if err := r.raw.Control(func(c uintptr) { fd, cerr = unix.FcntlInt(c, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
			return fds, err
		}
		if cerr != nil {
			return fds, fmt.Errorf("vxlan: receiving socket: %w", cerr)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// listenRx opens a receiving socket on local:port, with SO_REUSEPORT if
// shared.
func listenRx(local netip.Addr, port int, shared bool) (rxSock, error) {
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error { return control(c, rxOpts, local.Is6(), shared) }}
	pc, err := lc.ListenPacket(context.Background(), network, net.JoinHostPort(local.String(), strconv.Itoa(port)))
	if err != nil {
		return rxSock{}, err
	}
	r := rxSock{conn: pc.(*net.UDPConn)}
	if r.raw, err = r.conn.SyscallConn(); err != nil {
		r.conn.Close()
		return rxSock{}, err
	}
	return r, nil
}

// openTx opens a blocking sending socket bound to local and a port the
// kernel picks.
func openTx(local netip.Addr) (t txSock, err error) {
	family := unix.AF_INET
	if local.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return txSock{fd: -1}, err
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
			t.fd = -1
		}
	}()
	if err := txOptions(fd); err != nil {
		return txSock{}, err
	}
	tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return txSock{}, err
	}
	var sa unix.Sockaddr
	if local.Is6() {
		sa = &unix.SockaddrInet6{Addr: local.As16()}
	} else {
		sa = &unix.SockaddrInet4{Addr: local.As4()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return txSock{}, err
	}
	got, err := boundTo(fd)
	if err != nil {
		return txSock{}, err
	}
	return txSock{fd: fd, port: int(got.Port())}, nil
}

// boundTo returns the address and port the socket fd is bound to.
func boundTo(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("bound to an address of family %T", sa)
}

func (s *sockets) sourcePorts() []int {
	ports := make([]int, 0, len(s.tx))
	for _, t := range s.tx {
		ports = append(ports, t.port)
	}
	return ports
}

func (s *sockets) close() error {
	var errs []error
	for _, r := range s.rx {
		errs = append(errs, r.conn.Close())
	}
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if !s.txClosed {
		s.txClosed = true
		for _, t := range s.tx {
			if t.fd >= 0 {
				errs = append(errs, unix.Close(t.fd))
			}
		}
	}
	return errors.Join(errs...)
}

const (
	rxOpts = iota
	txOpts
)

// dropAll is a socket filter that takes no packet: the sending sockets
// never receive, and must not keep what a stray sender sends them.
var dropAll = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

func control(c syscall.RawConn, kind int, v6, shared bool) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		f := int(fd)
		switch kind {
		case rxOpts:
			if shared {
				if err := unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
					serr = fmt.Errorf("vxlan: SO_REUSEPORT: %w", err)
					return
				}
			}
			// UDP_GRO: the kernel hands over a run of datagrams of one
			// flow as one read, with their size in a control message.
			if err := unix.SetsockoptInt(f, unix.IPPROTO_UDP, unix.UDP_GRO, 1); err != nil {
				serr = fmt.Errorf("vxlan: UDP_GRO: %w (a kernel of 5.0 or later is needed)", err)
				return
			}
			setBuf(f, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF)
			// Over IPv6, take datagrams without a UDP checksum too, as
			// a Linux vxlan device with udp6zerocsumtx sends them
			// (RFC 6935); an IPv4 socket takes them anyway.
			if v6 {
				unix.SetsockoptInt(f, unix.IPPROTO_UDP, unix.UDP_NO_CHECK6_RX, 1)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// txOptions sets up a sending socket: it never receives, and its buffer
// holds a burst of GSO sends.
func txOptions(fd int) error {
	prog := unix.SockFprog{Len: uint16(len(dropAll)), Filter: &dropAll[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("vxlan: socket filter: %w", err)
	}
	setBuf(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF)
	return nil
}

// setBuf sets a socket buffer to sockBuf: past the system's limit if the
// process may (force), else up to it.
func setBuf(fd, force, opt int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, sockBuf) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, sockBuf)
	}
}

// groSize returns the segment size in the control messages of a read
// (UDP_GRO), 0 if none.
func groSize(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && l >= unix.SizeofCmsghdr+4 {
			return int(binary.NativeEndian.Uint32(oob[unix.SizeofCmsghdr:]))
		}
		l = (l + 7) &^ 7
		if l > len(oob) {
			return 0
		}
		oob = oob[l:]
	}
	return 0
}

// putSegmentCmsg writes a UDP_SEGMENT control message for segments of
// size bytes into b and returns its length.
func putSegmentCmsg(b []byte, size int) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.SizeofCmsghdr:], uint16(size))
	return unix.CmsgSpace(2)
}

// mmsg calls recvmmsg or sendmmsg (trap) on fd for msgs, without
// blocking.
func mmsg(trap, fd uintptr, msgs []unix.Mmsghdr) (int, syscall.Errno) {
	r, _, errno := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	return int(r), errno
}

// sendmmsg sends msgs on the blocking socket fd.
func sendmmsg(fd int, msgs []unix.Mmsghdr) (int, syscall.Errno) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	return int(r), errno
}
