package dns

import (
	"net/netip"
	"strings"
)

// reverseAddr parses a full reverse-lookup name, d.c.b.a.in-addr.arpa or the
// 32 nibbles of an ip6.arpa name, into the address it names. Partial names
// (a whole subnet) are not addresses and report false.
func reverseAddr(name string) (netip.Addr, bool) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if rest, ok := strings.CutSuffix(n, ".in-addr.arpa"); ok {
		return reverse4(rest)
	}
	if rest, ok := strings.CutSuffix(n, ".ip6.arpa"); ok {
		return reverse6(rest)
	}
	return netip.Addr{}, false
}

func reverse4(s string) (netip.Addr, bool) {
	var b [4]byte
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	for i, p := range parts {
		// Decimal without leading zeros, as the address would be written;
		// anything else names no address.
		if len(p) == 0 || len(p) > 3 || len(p) > 1 && p[0] == '0' {
			return netip.Addr{}, false
		}
		v := 0
		for j := 0; j < len(p); j++ {
			if p[j] < '0' || p[j] > '9' {
				return netip.Addr{}, false
			}
			v = v*10 + int(p[j]-'0')
		}
		if v > 255 {
			return netip.Addr{}, false
		}
		b[3-i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

func reverse6(s string) (netip.Addr, bool) {
	// 32 nibbles separated by 31 dots, least significant nibble first.
	if len(s) != 63 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for i := 0; i < 32; i++ {
		if i > 0 && s[2*i-1] != '.' {
			return netip.Addr{}, false
		}
		v, ok := hexNibble(s[2*i])
		if !ok {
			return netip.Addr{}, false
		}
		// Nibble i counts from the low end of the address.
		idx := 15 - i/2
		if i%2 == 0 {
			b[idx] |= v
		} else {
			b[idx] |= v << 4
		}
	}
	return netip.AddrFrom16(b), true
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
