//go:build !linux

package publish

import (
	"errors"
	"net"
	"time"
)

// idleFor is not implemented off Linux: connections are not closed for
// idleness there.
func idleFor(*net.TCPConn) (time.Duration, error) {
	return 0, errors.New("publish: idle time of a TCP connection is not implemented on this GOOS")
}
