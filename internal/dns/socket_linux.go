package dns

import (
	"encoding/binary"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockopts returns the Control function of a net.ListenConfig that binds
// the socket to the interface ifname (if not empty), sets SO_REUSEADDR
// (if reuse) and, for UDP, has the kernel report each datagram's
// interface (IP_PKTINFO, IPV6_RECVPKTINFO). It is set before bind, so the
// socket never sees a datagram of another interface.
func sockopts(ifname string, reuse bool) func(network, address string, c syscall.RawConn) error {
	return func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			if ifname != "" {
				if serr = unix.SetsockoptString(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname); serr != nil {
					serr = &bindError{ifname: ifname, err: serr}
					return
				}
			}
			if reuse {
				if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
					return
				}
			}
			if network == "udp4" || network == "udp6" || network == "udp" {
				// IP_PKTINFO also covers IPv4 datagrams on a dual-stack
				// IPv6 socket.
				if serr = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); serr != nil {
					return
				}
				if network != "udp4" {
					if d, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil && d == unix.AF_INET6 {
						serr = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
					}
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// oobSize holds one IPv4 and one IPv6 packet-info control message.
var oobSize = unix.CmsgSpace(unix.SizeofInet4Pktinfo) + unix.CmsgSpace(unix.SizeofInet6Pktinfo)

// pktinfoIfindex returns the interface a datagram arrived on, from the
// control messages the kernel attached to it, or false if they name none.
// It walks the messages in place, so that a datagram costs no allocation
// before it is admitted.
func pktinfoIfindex(oob []byte) (int, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		var h unix.Cmsghdr
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr), oob)
		l := int(h.Len)
		if uint64(h.Len) > uint64(len(oob)) || l < unix.SizeofCmsghdr {
			return 0, false
		}
		data := oob[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ipi_ifindex; ... }
			return int(int32(binary.NativeEndian.Uint32(data[0:4]))), true
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { struct in6_addr ipi6_addr; unsigned ipi6_ifindex; }
			return int(binary.NativeEndian.Uint32(data[16:20])), true
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next <= 0 || next >= len(oob) {
			return 0, false
		}
		oob = oob[next:]
	}
	return 0, false
}
