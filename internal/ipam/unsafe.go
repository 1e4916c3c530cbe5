package ipam

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Unsafe ranges are address space a network must not live in, and an
// address given to a port or gateway must not come from: a network's
// gateway is an address of the host, its subnet a route of the host, and
// its DNS server listens on the gateway. A network on 127.0.0.0/8 puts
// the host's loopback addresses on a TAP and binds DNS to 127.0.0.1:53;
// on a multicast or link-local range the kernel refuses the address or
// the DNS server cannot bind, after the network was half made.
//
// The list is the special-purpose ranges of IANA's registries (RFC 6890)
// that are not unicast space a router forwards: this host, loopback,
// link-local, multicast and reserved. The private ranges (10.0.0.0/8,
// 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7), the
// documentation ranges and global unicast are left to the user, as the
// Linux bridge and Docker leave them.
var unsafeRanges = []struct {
	prefix netip.Prefix
	// what the range is, for messages.
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" (RFC 791: a source address before a host knows its own, never a destination)`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback (the host's own addresses: a network there takes them over, and its DNS server binds 127.0.0.1:53)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "IPv4 link-local (RFC 3927: addresses a host picks for itself on one link, never routed)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "IPv4 multicast (group addresses, never a host's)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved IPv4 space (RFC 1112), with the broadcast address 255.255.255.255"},
	{netip.MustParsePrefix("::/96"), "the IPv6 unspecified (::), loopback (::1) and deprecated IPv4-compatible addresses (RFC 4291)"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped IPv6 addresses (RFC 4291: an IPv4 address in IPv6 form, carried as IPv4)"},
	{netip.MustParsePrefix("fe80::/10"), "IPv6 link-local (every interface makes its own; never routed)"},
	{netip.MustParsePrefix("ff00::/8"), "IPv6 multicast (group addresses, never a host's)"},
}

// useInstead says where a network may live, for messages.
func useInstead(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "use a private range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (or leave the subnet out for a free /24 of 10.89.0.0/16)"
	}
	return "use a unique local range of fd00::/8 (RFC 4193), such as fd12:3456:789a::/64, or global unicast space of your own"
}

// CheckSubnetRange returns an ErrUnsafeRange error if p shares any
// address with a range a network must not live in: overlap, not only
// containment, so that 0.0.0.0/0 and 127.0.0.0/7 are refused as surely
// as 127.0.0.0/8. The error names the range and says what to use.
func CheckSubnetRange(p netip.Prefix) error {
	if !p.IsValid() {
		return nil
	}
	for _, r := range unsafeRanges {
		if p.Overlaps(r.prefix) {
			if r.prefix.Contains(p.Addr()) && p.Bits() >= r.prefix.Bits() {
				return fmt.Errorf("%w: subnet %s is in %s, %s; %s", ErrUnsafeRange, p, rangeName(r.prefix), r.what, useInstead(p))
			}
			return fmt.Errorf("%w: subnet %s overlaps %s, %s; %s", ErrUnsafeRange, p, rangeName(r.prefix), r.what, useInstead(p))
		}
	}
	return nil
}

// CheckAddrRange returns an ErrUnsafeRange error if a lies in a range no
// port or gateway address may come from (those of CheckSubnetRange).
// what names the address for the message, as "address" or "gateway".
func CheckAddrRange(what string, a netip.Addr) error {
	if !a.IsValid() {
		return nil
	}
	a = a.WithZone("")
	for _, r := range unsafeRanges {
		if r.prefix.Contains(a) {
			return fmt.Errorf("%w: %s %s is in %s, %s; %s", ErrUnsafeRange, what, a, rangeName(r.prefix), r.what, useInsteadAddr(a))
		}
	}
	return nil
}

func useInsteadAddr(a netip.Addr) string {
	if a.Is4() {
		return "give a unicast address of a private range such as 10.0.0.0/8, or leave it out for one from the network's subnet"
	}
	return "give a unique local (fd00::/8) or global unicast address, or leave it out for one from the network's subnet"
}

// rangeName writes an unsafe range as the RFCs do: netip writes
// ::ffff:0:0/96 as ::ffff:0.0.0.0/96.
func rangeName(p netip.Prefix) string {
	if p.Addr().Is4In6() {
		return "::ffff:0:0/" + strconv.Itoa(p.Bits())
	}
	return p.String()
}
