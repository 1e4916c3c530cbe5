//go:build !linux

package publish

import "net"

// enablePktinfo is not implemented off Linux: replies from a wildcard
// UDP socket leave from the address the route picks.
func enablePktinfo(*net.UDPConn) (bool, error) { return false, nil }

// replyOOB is never called when enablePktinfo reports false.
func replyOOB([]byte) []byte { return nil }
