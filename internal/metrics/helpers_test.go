package metrics

import (
	"errors"
	"net/netip"
	"syscall"
)

func netipPort(a netip.AddrPort, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr(), port)
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
