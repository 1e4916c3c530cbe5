package apiserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/ipam"
	"github.com/tapswitch/tapswitch/internal/publish"
	"github.com/tapswitch/tapswitch/namespace"
)

// The server checks every request with these before the Backend sees it,
// so that whoever may use the socket gets a 400 saying what was wrong and
// what is allowed, and the daemon only ever acts on well-formed input.
// They check the form of a request; what depends on the daemon's state
// (a name in use, an address outside a network's subnet, whether the
// namespace exists) is the Backend's to check.

// Limits on what a request may ask for.
const (
	// MinMTU and MaxMTU bound a TAP's MTU: the IPv4 minimum (RFC 791)
	// and the largest the kernel's tun driver takes, which are its
	// min_mtu and max_mtu.
	MinMTU = 68
	MaxMTU = 65535
	// minIPv6MTU is the smallest MTU of a link carrying IPv6 (RFC 8200);
	// below it the kernel turns IPv6 off on the interface.
	minIPv6MTU = 1280
	// maxIfname is IFNAMSIZ less the terminating NUL.
	maxIfname = 15
	// maxAddrs and maxPublish bound the lists of one request, so that a
	// single request cannot make the daemon set up thousands of
	// addresses or port proxies.
	maxAddrs   = 64
	maxPublish = 256
	// maxQuoted bounds how much of a long value a message repeats.
	maxQuoted = 64
)

// nameRE is what a new port or network may be called: a DNS label (RFC
// 1123: a port's name is the name the network's DNS answers for, and a
// network's name is its domain), with '_' allowed as resolvers pass it
// through.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$`)

// NameRule is nameRE in words, for messages.
const NameRule = "use 1 to 63 letters, digits, '-' and '_', starting with a letter or digit and not ending in '-'"

// portRefRE is what may name an existing port: a name or an id. It is
// looser than nameRE because ports named before names had to be DNS
// labels ('.' and a trailing '-' were allowed) must stay reachable.
var portRefRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %w", api.ErrInvalid, fmt.Errorf(format, a...))
}

// quote is %q of s, cut short when s is long.
func quote(s string) string {
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q...", s[:maxQuoted])
	}
	return fmt.Sprintf("%q", s)
}

// CheckName reports why name cannot name a new port or network; what
// says which of the two it is for.
func CheckName(what, name string) error {
	if !nameRE.MatchString(name) {
		return invalid("%s name %s: %s (it is a DNS name)", what, quote(name), NameRule)
	}
	// RFC 6761: localhost names the host's own loopback, in every
	// resolver; the network's DNS must not answer it with a container.
	if strings.EqualFold(name, "localhost") {
		return invalid("%s name %s: reserved for the loopback address (RFC 6761); choose another", what, quote(name))
	}
	return nil
}

// containerIDRE is what a container id may hold: what CNI allows
// (letters, digits, '_', '.', '-', starting with a letter or digit).
var containerIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// CheckContainerID reports why id cannot be a port's container id; the
// empty id (none) is fine.
func CheckContainerID(id string) error {
	if id != "" && (len(id) > api.MaxContainerID || !containerIDRE.MatchString(id)) {
		return invalid("container id %s: use 1 to %d letters, digits, '_', '.' and '-', starting with a letter or digit", quote(id), api.MaxContainerID)
	}
	return nil
}

// CheckNetworkRef reports why name cannot name a network.
func CheckNetworkRef(name string) error {
	return CheckName("network", name)
}

// CheckPortRef reports why ref cannot name a port, by name or id.
func CheckPortRef(ref string) error {
	if !portRefRE.MatchString(ref) {
		return invalid("port %s: not a port name or id; a name has 1 to 63 letters, digits, '-', '_' and '.', starting with a letter or digit", quote(ref))
	}
	return nil
}

// CheckIfname reports why name cannot name an interface: the kernel
// takes at most 15 bytes, and neither '/', ':' nor white space. '%' is
// refused too: the kernel reads a name with "%d" in it as a pattern and
// names the device eth0, eth1, ... instead, so the daemon would not know
// its own TAP; and "all" and "default" are the names of the kernel's
// per-protocol settings (/proc/sys/net/ipv4/conf/all), which it refuses
// for a device.
func CheckIfname(name string) error {
	if name == "" || len(name) > maxIfname || name == "." || name == ".." ||
		strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == ':' || r == '%' }) {
		return invalid("interface name %s: use 1 to %d characters (bytes), without '/', ':', '%%', spaces or control characters", quote(name), maxIfname)
	}
	if name == "all" || name == "default" {
		return invalid("interface name %q: the kernel keeps \"all\" and \"default\" for its per-protocol settings (/proc/sys/net/ipv4/conf/%s); choose another", name, name)
	}
	return nil
}

// ParseMAC parses a port's hardware address: six bytes, unicast, not
// zero.
func ParseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, invalid("MAC %s: want six bytes like 02:00:00:00:00:01", quote(s))
	}
	if mac[0]&1 != 0 {
		return nil, invalid("MAC %s: a multicast address; a port needs a unicast one (lowest bit of the first byte clear), such as 02:00:00:00:00:01", mac)
	}
	if string(mac) == "\x00\x00\x00\x00\x00\x00" {
		return nil, invalid("MAC %s: the zero address; give another, or none for a random one", mac)
	}
	return mac, nil
}

// ParseAddrs parses the addresses of a port, in CIDR form. Each must be
// a unicast host address (not the network or broadcast address of its
// prefix), IPv4 or IPv6, and appear once.
func ParseAddrs(in []string) ([]netip.Prefix, error) {
	if len(in) > maxAddrs {
		return nil, invalid("%d addresses: at most %d per port", len(in), maxAddrs)
	}
	out := make([]netip.Prefix, 0, len(in))
	for _, s := range in {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, invalid("address %s: want ADDR/LEN such as 10.0.0.1/24 or fd00::1/64", quote(s))
		}
		if err := checkHostAddr(p); err != nil {
			return nil, err
		}
		for _, q := range out {
			if q.Addr() == p.Addr() {
				return nil, invalid("address %s given twice", p.Addr())
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// CheckAddrRanges reports why an address of ips, given to a port, lies
// in a range no port may take an address from (ipam.CheckAddrRange):
// loopback, link-local, multicast, reserved. It is apart from ParseAddrs
// so that a port saved before these ranges were refused is taken back.
func CheckAddrRanges(ips []netip.Prefix) error {
	for _, p := range ips {
		if err := ipam.CheckAddrRange("address", p.Addr()); err != nil {
			return api.Errorf(api.ErrInvalid, api.ReasonUnsafeRange, "%w", err)
		}
	}
	return nil
}

// checkHostAddr reports why p's address cannot be a port's.
func checkHostAddr(p netip.Prefix) error {
	a := p.Addr()
	if a.Is4In6() {
		return invalid("address %s: an IPv4-mapped IPv6 address; give it in IPv4 form: %s/%d", p, a.Unmap(), max(p.Bits()-96, 0))
	}
	if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		if err := ipam.CheckAddrRange("address", a); err != nil {
			return api.Errorf(api.ErrInvalid, api.ReasonUnsafeRange, "%w", err)
		}
		return invalid("address %s: not a unicast host address", p)
	}
	// Prefixes of one or two addresses (/31, /32, /127, /128) are all
	// hosts (RFC 3021); larger ones keep the first address, and in IPv4
	// the last, for the network.
	hostBits := a.BitLen() - p.Bits()
	if hostBits < 2 {
		return nil
	}
	network := p.Masked().Addr()
	if a == network {
		return invalid("address %s: the network address of %s, not a host's; give a host address such as %s/%d", p, p.Masked(), network.Next(), p.Bits())
	}
	if a.Is4() && a == lastAddr(p) {
		return invalid("address %s: the broadcast address of %s, not a host's; give a host address such as %s/%d", p, p.Masked(), network.Next(), p.Bits())
	}
	return nil
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// CheckMTU reports why mtu cannot be a port's MTU; 0 means the default,
// 1500. ips are the port's addresses: IPv6 needs at least 1280.
func CheckMTU(mtu int, ips []netip.Prefix) error {
	if mtu == 0 {
		return nil
	}
	if mtu < MinMTU || mtu > MaxMTU {
		return invalid("MTU %d: must be between %d and %d (or 0 for 1500)", mtu, MinMTU, MaxMTU)
	}
	if mtu < minIPv6MTU {
		for _, p := range ips {
			if p.Addr().Is6() {
				return invalid("MTU %d: address %s is IPv6, which needs an MTU of at least %d", mtu, p, minIPv6MTU)
			}
		}
	}
	return nil
}

// ParsePublish parses the published ports of a port; see
// publish.ParseSpec.
func ParsePublish(in []string) ([]publish.Mapping, error) {
	if len(in) > maxPublish {
		return nil, invalid("%d published ports: at most %d per port", len(in), maxPublish)
	}
	out := make([]publish.Mapping, 0, len(in))
	for _, s := range in {
		m, err := publish.ParseSpec(s)
		if err != nil {
			return nil, invalid("%w", err)
		}
		for _, o := range out {
			if o.Proto == m.Proto && o.HostPort == m.HostPort && (o.HostIP == m.HostIP || !o.HostIP.IsValid() || !m.HostIP.IsValid()) {
				return nil, invalid("publish %s: host port %d/%s is published twice", quote(s), m.HostPort, m.Proto)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// CheckNetns reports why spec cannot name a network namespace, from its
// form alone; whether the file exists and is a network namespace is
// checked when it is resolved (namespace.Resolve).
func CheckNetns(spec string) error {
	if _, err := namespace.ParseSpec(spec); err != nil {
		return invalid("%w", err)
	}
	return nil
}

// ValidateAttach checks every field of an attach request.
func ValidateAttach(r api.AttachRequest) error {
	if err := validateAttach(r); err != nil {
		return fmt.Errorf("attach netns %s: %w", quote(r.Netns), err)
	}
	return nil
}

func validateAttach(r api.AttachRequest) error {
	if err := CheckNetns(r.Netns); err != nil {
		return err
	}
	if r.Network != "" {
		if err := CheckNetworkRef(r.Network); err != nil {
			return err
		}
	}
	if r.Name != "" {
		if err := CheckName("port", r.Name); err != nil {
			return err
		}
	}
	if r.Ifname != "" {
		if err := CheckIfname(r.Ifname); err != nil {
			return err
		}
	}
	if r.DNSName != "" {
		if err := CheckName("DNS", r.DNSName); err != nil {
			return err
		}
	}
	if err := CheckContainerID(r.ContainerID); err != nil {
		return err
	}
	ips, err := ParseAddrs(r.IPs)
	if err != nil {
		return err
	}
	if err := CheckAddrRanges(ips); err != nil {
		return err
	}
	if r.MAC != "" {
		if _, err := ParseMAC(r.MAC); err != nil {
			return err
		}
	}
	if err := CheckMTU(r.MTU, ips); err != nil {
		return err
	}
	if _, err = ParsePublish(r.Publish); err != nil {
		return err
	}
	if err := CheckMACLimit(r.MACLimit, true); err != nil {
		return err
	}
	return CheckStormPolicy(r.PortPolicy)
}

// CheckMACLimit checks a port's MAC limit: 1 to MaxMACLimit, or 0 (the
// default) where zeroOK.
func CheckMACLimit(n int, zeroOK bool) error {
	if (n == 0 && zeroOK) || (n >= 1 && n <= api.MaxMACLimit) {
		return nil
	}
	return invalid("MAC limit %d: use 1 to %d (default %d)", n, api.MaxMACLimit, api.DefaultMACLimit)
}

// CheckStormRate checks one storm control rate of a port, named what:
// 1 to MaxStormRate frames a second, 0 for the default or -1 for none.
func CheckStormRate(what string, n int) error {
	if n >= api.NoStormLimit && n <= api.MaxStormRate {
		return nil
	}
	return invalid("%s storm control rate %d: use 1 to %d frames a second, 0 for the default (%d) or -1 for no limit", what, n, api.MaxStormRate, api.DefaultStormRate)
}

// CheckStormPolicy checks the storm control rates of a port policy.
func CheckStormPolicy(p api.PortPolicy) error {
	for _, r := range []struct {
		what string
		n    int
	}{{"broadcast", p.StormBroadcast}, {"multicast", p.StormMulticast}, {"unknown-unicast", p.StormUnknown}} {
		if err := CheckStormRate(r.what, r.n); err != nil {
			return err
		}
	}
	return nil
}

// ValidatePortUpdate checks a port update request.
func ValidatePortUpdate(r api.PortUpdateRequest) error {
	if r.MACLimit != nil {
		if err := CheckMACLimit(*r.MACLimit, false); err != nil {
			return err
		}
	}
	var storm api.PortPolicy
	for _, f := range []struct {
		to   *int
		from *int
	}{{&storm.StormBroadcast, r.StormBroadcast}, {&storm.StormMulticast, r.StormMulticast}, {&storm.StormUnknown, r.StormUnknown}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	return CheckStormPolicy(storm)
}

// ValidateConnect checks every field of a request to connect a port to
// network.
func ValidateConnect(network string, r api.ConnectRequest) error {
	err := CheckNetworkRef(network)
	if err == nil {
		err = CheckPortRef(r.Port)
	}
	if err == nil && r.Name != "" {
		err = CheckName("port", r.Name)
	}
	var ips []netip.Prefix
	if err == nil {
		ips, err = ParseAddrs(r.IPs)
	}
	if err == nil {
		err = CheckAddrRanges(ips)
	}
	if err == nil {
		err = CheckMACLimit(r.MACLimit, true)
	}
	if err == nil {
		err = CheckStormPolicy(r.PortPolicy)
	}
	if err != nil {
		return fmt.Errorf("connect port %s to network %s: %w", quote(r.Port), quote(network), err)
	}
	return nil
}

// ValidateNetworkCreate checks every field of a network create request. The subnet
// and gateway are checked as the network's address management will take
// them: the subnet a network address with room for a gateway and a host,
// the gateway a host address inside it.
func ValidateNetworkCreate(r api.NetworkCreateRequest) error {
	if err := CheckName("network", r.Name); err != nil {
		return fmt.Errorf("create network: %w", err)
	}
	if err := validateNetworkAddrs(r); err != nil {
		return fmt.Errorf("create network %q: %w", r.Name, err)
	}
	if err := CheckScope(r.Scope, r.VNI); err != nil {
		return fmt.Errorf("create network %q: %w", r.Name, err)
	}
	return nil
}

// CheckScope reports why scope and vni cannot be a new network's: the
// scope is local (or empty) or cluster, and only a cluster network has a
// VNI, 1 to api.MaxVNI (0: a free one).
func CheckScope(scope string, vni uint32) error {
	switch scope {
	case "", api.ScopeLocal:
		if vni != 0 {
			return invalid("VNI %d: only a network of scope %q has a VNI; add --scope %s", vni, api.ScopeCluster, api.ScopeCluster)
		}
	case api.ScopeCluster:
		if vni > api.MaxVNI {
			return invalid("VNI %d: use 1 to %d (24 bits), or none for a free one", vni, api.MaxVNI)
		}
	default:
		return invalid("scope %s: use %q (one host, the default) or %q (spanning hosts)", quote(scope), api.ScopeLocal, api.ScopeCluster)
	}
	return nil
}

func validateNetworkAddrs(r api.NetworkCreateRequest) error {
	_, err := NetworkSubnets(r)
	return err
}

// SubnetError gives an error of ipam.NewSubnet its API class and reason:
// each is the request's fault.
func SubnetError(err error) error {
	switch {
	case errors.Is(err, ipam.ErrUnsafeRange):
		return api.Errorf(api.ErrInvalid, api.ReasonUnsafeRange, "%w", err)
	case errors.Is(err, ipam.ErrInvalidSubnet), errors.Is(err, ipam.ErrInvalidGateway):
		return invalid("%w", err)
	}
	return err
}
