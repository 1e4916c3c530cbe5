//go:build !linux

package apiserver

import (
	"fmt"
	"net"
	"runtime"
)

// PeerOf returns the credentials of the process at the other end of c;
// it is implemented on Linux only, where tapswitchd runs.
func PeerOf(c net.Conn) (Peer, error) {
	return Peer{}, fmt.Errorf("peer credentials: not implemented on %s", runtime.GOOS)
}
