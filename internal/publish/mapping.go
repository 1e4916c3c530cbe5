package publish

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalidSpec reports a --publish value or a Mapping that cannot be
// published. Its text is the syntax, so that every message ends by saying
// what to write instead.
var ErrInvalidSpec = errors.New("want [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]")

// Mapping is one published port. It is comparable, and its JSON form is
// what the daemon keeps in its state.
type Mapping struct {
	// Proto is "tcp" or "udp".
	Proto string `json:"proto"`
	// HostIP is the host address to listen on. The zero Addr means every
	// address, IPv4 and IPv6; 0.0.0.0 means every IPv4 address and ::
	// every IPv6 address.
	HostIP netip.Addr `json:"host_ip,omitzero"`
	// HostPort is the port on the host.
	HostPort uint16 `json:"host_port"`
	// TargetPort is the port in the container.
	TargetPort uint16 `json:"target_port"`
}

// ParseSpec parses a --publish value: [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO],
// with an IPv6 HOSTIP in brackets and PROTO tcp (the default) or udp.
// Errors wrap ErrInvalidSpec.
func ParseSpec(s string) (Mapping, error) {
	fail := func(problem string) (Mapping, error) {
		if problem == "" {
			return Mapping{}, fmt.Errorf("publish %q: %w", s, ErrInvalidSpec)
		}
		return Mapping{}, fmt.Errorf("publish %q: %s; %w", s, problem, ErrInvalidSpec)
	}

	m := Mapping{Proto: "tcp"}
	rest := s
	// A '/' can only start the protocol: ports and addresses have none,
	// and zones may not either (isIfname).
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		m.Proto, rest = rest[i+1:], rest[:i]
		if m.Proto != "tcp" && m.Proto != "udp" {
			return fail(fmt.Sprintf("protocol %q is not supported", m.Proto))
		}
	}

	bracketed := strings.HasPrefix(rest, "[")
	if bracketed {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return fail("missing ] after the IPv6 host address")
		}
		host := rest[1:end]
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return fail(fmt.Sprintf("host address %q is not an IPv6 address (write IPv4 ones without brackets)", host))
		}
		if zone := ip.Zone(); zone != "" && !isIfname(zone) {
			return fail(fmt.Sprintf("zone %q of host address %q is not an interface name", zone, host))
		}
		m.HostIP = ip
		var ok bool
		if rest, ok = strings.CutPrefix(rest[end+1:], ":"); !ok {
			return fail("")
		}
	}

	parts := strings.Split(rest, ":")
	switch {
	case len(parts) == 2:
	case len(parts) == 3 && !bracketed:
		host := parts[0]
		if host == "" {
			return fail("empty host address (leave it out to publish on every address)")
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is4() {
			return fail(fmt.Sprintf("host address %q is not an IPv4 address", host))
		}
		m.HostIP = ip
		parts = parts[1:]
	case len(parts) > 3 && !bracketed && looksIPv6(parts[:len(parts)-2]):
		return fail("put an IPv6 host address in brackets, as in [::1]:8080:80")
	default:
		return fail("")
	}
	if m.HostIP.IsMulticast() {
		return fail(fmt.Sprintf("host address %v is multicast (give one of the host's own addresses)", m.HostIP))
	}

	var problem string
	if m.HostPort, problem = parsePort("host port", parts[0]); problem != "" {
		return fail(problem)
	}
	if m.TargetPort, problem = parsePort("container port", parts[1]); problem != "" {
		return fail(problem)
	}
	return m, nil
}

// looksIPv6 reports whether the colon-separated parts before the two ports
// are an IPv6 address written without brackets.
func looksIPv6(parts []string) bool {
	ip, err := netip.ParseAddr(strings.Join(parts, ":"))
	return err == nil && ip.Is6()
}

// isIfname reports whether s can name a Linux network interface: 1 to 15
// printable ASCII bytes, none of them '/', ':' or a space. Anything else
// could not be bound to, and may not survive a trip through JSON.
func isIfname(s string) bool {
	if len(s) == 0 || len(s) > 15 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c > '~' || c == '/' || c == ':' {
			return false
		}
	}
	return true
}

// parsePort returns the port s names, or a problem saying why it names none.
func parsePort(what, s string) (uint16, string) {
	n, err := strconv.ParseUint(s, 10, 16)
	switch {
	case err != nil && strings.IndexByte(s, '-') > 0: // "8080-8081", not "-1"
		return 0, fmt.Sprintf("%s %q: port ranges are not supported (publish each port)", what, s)
	case err != nil || n == 0:
		return 0, fmt.Sprintf("%s %q is not a number from 1 to 65535", what, s)
	}
	return uint16(n), ""
}

// String renders m in ParseSpec's syntax, always naming the protocol so
// that the form is canonical: ParseSpec(m.String()) == m.
func (m Mapping) String() string {
	return m.host() + ":" + strconv.Itoa(int(m.TargetPort)) + "/" + m.Proto
}

// host renders the host side, "[HOSTIP:]HOSTPORT", for String and for
// messages about the host port.
func (m Mapping) host() string {
	port := strconv.Itoa(int(m.HostPort))
	switch {
	case !m.HostIP.IsValid():
		return port
	case m.HostIP.Is4():
		return m.HostIP.String() + ":" + port
	default:
		return "[" + m.HostIP.String() + "]:" + port
	}
}

// check reports why a Mapping that did not come from ParseSpec (the
// daemon's state, a caller's literal) cannot be started. A zero HostPort
// is allowed: the kernel picks one.
func (m Mapping) check() error {
	var problem string
	switch {
	case m.Proto != "tcp" && m.Proto != "udp":
		problem = fmt.Sprintf("protocol %q is not supported", m.Proto)
	case m.TargetPort == 0:
		problem = "container port 0 is not a number from 1 to 65535"
	case m.HostIP.IsMulticast():
		problem = fmt.Sprintf("host address %v is multicast (give one of the host's own addresses)", m.HostIP)
	default:
		return nil
	}
	return fmt.Errorf("publish %v: %s; %w", m, problem, ErrInvalidSpec)
}
