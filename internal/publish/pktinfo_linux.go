package publish

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// enablePktinfo has the kernel report the destination address of each
// datagram c receives. A socket bound to a wildcard address otherwise
// replies from whichever address the route to the client picks, and a
// client that sent to another address of the host (127.0.0.2, a second
// interface) drops a reply from the wrong one.
func enablePktinfo(c *net.UDPConn) (bool, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		s := int(fd)
		var domain int
		if domain, serr = syscall.GetsockoptInt(s, syscall.SOL_SOCKET, syscall.SO_DOMAIN); serr != nil {
			return
		}
		// IP_PKTINFO also covers IPv4 datagrams arriving on a
		// dual-stack IPv6 socket.
		if serr = syscall.SetsockoptInt(s, syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1); serr != nil {
			return
		}
		if domain == syscall.AF_INET6 {
			serr = syscall.SetsockoptInt(s, syscall.IPPROTO_IPV6, syscall.IPV6_RECVPKTINFO, 1)
		}
	})
	if err == nil {
		err = serr
	}
	return err == nil, err
}

// replyOOB turns the control messages of a received datagram into one
// that sends a reply from the address the datagram was sent to. It
// returns nil when they name no usable address.
func replyOOB(oob []byte) []byte {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var reply []byte
	for _, m := range msgs {
		switch {
		case m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_PKTINFO &&
			len(m.Data) >= syscall.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }.
			// spec_dst is the address the kernel itself would answer
			// from: the destination for unicast, an address of the
			// host for broadcast. An IPv4 datagram on a dual-stack
			// socket comes with an IPV6_PKTINFO too; this one wins for
			// the broadcast case.
			var info [syscall.SizeofInet4Pktinfo]byte
			copy(info[4:8], m.Data[4:8])
			return cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO, info[:])
		case m.Header.Level == syscall.IPPROTO_IPV6 && m.Header.Type == syscall.IPV6_PKTINFO &&
			len(m.Data) >= syscall.SizeofInet6Pktinfo:
			// struct in6_pktinfo { in6_addr addr; unsigned ifindex; }.
			dst := netip.AddrFrom16([16]byte(m.Data[:16]))
			if dst.IsMulticast() {
				continue
			}
			var info [syscall.SizeofInet6Pktinfo]byte
			copy(info[:16], m.Data[:16])
			// A link-local source is only meaningful on the link the
			// datagram came in on; any other goes where the route says.
			if dst.IsLinkLocalUnicast() {
				copy(info[16:20], m.Data[16:20])
			}
			reply = cmsg(syscall.IPPROTO_IPV6, syscall.IPV6_PKTINFO, info[:])
		}
	}
	return reply
}

// cmsg builds one control message.
func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, syscall.CmsgSpace(len(data)))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = int32(level)
	h.Type = int32(typ)
	h.SetLen(syscall.CmsgLen(len(data)))
	copy(b[syscall.CmsgLen(0):], data)
	return b
}
