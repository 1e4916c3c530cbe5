//go:build !linux

package dns

import (
	"errors"
	"syscall"
)

// sockopts is not implemented off Linux: a server bound to an interface
// cannot be had, and one without opens plain sockets.
func sockopts(ifname string, _ bool) func(network, address string, c syscall.RawConn) error {
	return func(string, string, syscall.RawConn) error {
		if ifname != "" {
			return &bindError{ifname: ifname, err: errors.ErrUnsupported}
		}
		return nil
	}
}

// oobSize is the room for control messages, which only Linux reports.
var oobSize = 0

// pktinfoIfindex is never told an interface off Linux.
func pktinfoIfindex([]byte) (int, bool) { return 0, false }
