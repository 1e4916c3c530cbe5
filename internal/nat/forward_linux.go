package nat

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"

	"github.com/tapswitch/tapswitch/namespace"
)

// forwardingSysctl returns the switch that lets the kernel route packets
// of p's address family between interfaces.
func forwardingSysctl(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "/proc/sys/net/ipv4/ip_forward"
	}
	// conf/all is what turns IPv6 forwarding on for every interface.
	return "/proc/sys/net/ipv6/conf/all/forwarding"
}

// enableForwarding turns on forwarding for p's family in the Manager's
// namespace. /proc/sys/net shows the namespace of the thread that opens
// it, so for another namespace the write happens inside it.
func (s *system) enableForwarding(p netip.Prefix) error {
	path := forwardingSysctl(p)
	if s.nsfd < 0 {
		return setSysctl(path)
	}
	ns := fmt.Sprintf("/proc/self/fd/%d", s.nsfd)
	return namespace.Do(ns, func() error { return setSysctl(path) })
}

// setSysctl writes 1 to path unless it already holds 1, so that a host
// where forwarding is on but /proc/sys is read-only (a container whose
// runtime set it) works too.
func setSysctl(path string) error {
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("enable forwarding: %w", err)
	}
	if string(bytes.TrimSpace(cur)) == "1" {
		return nil
	}
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable forwarding: %w", err)
	}
	return nil
}
