//go:build !linux

package apiserver

import "net"

// peerClosed is not implemented on this GOOS: a client that hung up is
// noticed by net/http alone.
func peerClosed(net.Conn) bool { return false }
