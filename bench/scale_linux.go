package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/namespace"
)

// loopbackUp sets lo up in the namespace at path.
func loopbackUp(path string) error {
	return namespace.Do(path, func() error {
		// The handle's socket is made here, so it speaks to this
		// namespace's links, not the host's.
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		return h.LinkSetUp(lo)
	})
}

// packetSender writes whole Ethernet frames to one interface inside a
// namespace, as a station behind it would send them.
type packetSender struct {
	fd int
	sa unix.SockaddrLinklayer
}

// htons returns v in network byte order, as AF_PACKET wants protocols.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

// openPacketSender opens an AF_PACKET socket on ifname in the namespace
// at path. The socket keeps that namespace after namespace.Do returns.
// Protocol 0 binds it to no EtherType: it only sends, so nothing queues
// up on its receive side.
func openPacketSender(path, ifname string) (*packetSender, error) {
	ps := &packetSender{fd: -1}
	err := namespace.Do(path, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		ps.fd = fd
		ps.sa = unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(fillEtherType)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open packet socket on %s in %s: %w", ifname, path, err)
	}
	return ps, nil
}

// sendRetries bounds how long send waits out a full device queue: a
// second of ENOBUFS means the switch stopped reading, not that it is slow.
const sendRetries = 1000

func (ps *packetSender) send(frame []byte) error {
	for range sendRetries {
		err := unix.Sendto(ps.fd, frame, 0, &ps.sa)
		if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			time.Sleep(time.Millisecond)
			continue
		}
		return err
	}
	return fmt.Errorf("sendto: %w for %v", unix.ENOBUFS, sendRetries*time.Millisecond)
}

func (ps *packetSender) close() error { return unix.Close(ps.fd) }
