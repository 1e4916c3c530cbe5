package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckSubnetRange(t *testing.T) {
	tests := []struct {
		prefix string
		// want is the range named in the refusal; "" for a subnet a
		// network may have.
		want string
	}{
		{"10.0.0.0/8", ""},
		{"10.150.0.0/24", ""},
		{"172.16.0.0/12", ""},
		{"192.168.1.0/24", ""},
		{"100.64.0.0/10", ""},
		{"192.0.2.0/24", ""},
		{"1.0.0.0/8", ""},
		{"126.255.255.0/24", ""},
		{"128.0.0.0/16", ""},
		{"169.253.0.0/16", ""},
		{"169.255.0.0/16", ""},
		{"223.255.255.0/24", ""},
		{"fd00::/8", ""},
		{"fd12:3456:789a::/64", ""},
		{"2001:db8::/32", ""},
		{"64:ff9b::/96", ""},
		{"::1:0:0/96", ""},
		{"fe00::/9", ""},
		{"fec0::/10", ""},

		{"0.0.0.0/8", "0.0.0.0/8"},
		{"0.150.0.0/24", "0.0.0.0/8"},
		{"127.0.0.0/8", "127.0.0.0/8"},
		{"127.150.0.0/24", "127.0.0.0/8"},
		{"127.0.0.0/31", "127.0.0.0/8"},
		{"169.254.0.0/16", "169.254.0.0/16"},
		{"169.254.150.0/24", "169.254.0.0/16"},
		{"224.0.0.0/4", "224.0.0.0/4"},
		{"239.255.255.0/24", "224.0.0.0/4"},
		{"240.0.0.0/4", "240.0.0.0/4"},
		{"255.255.255.0/24", "240.0.0.0/4"},
		{"255.255.255.254/31", "240.0.0.0/4"},
		// Overlap, not only containment.
		{"0.0.0.0/0", "0.0.0.0/8"},
		{"0.0.0.0/1", "0.0.0.0/8"},
		{"126.0.0.0/7", "127.0.0.0/8"},
		{"169.0.0.0/8", "169.254.0.0/16"},
		{"192.0.0.0/2", "224.0.0.0/4"},
		{"128.0.0.0/1", "169.254.0.0/16"},
		{"::/0", "::/96"},
		{"::/64", "::/96"},
		{"::100/120", "::/96"},
		{"::/127", "::/96"},
		{"::ffff:0:0/96", "::ffff:0:0/96"},
		{"fe80::/64", "fe80::/10"},
		{"fe80:150::/64", "fe80::/10"},
		{"febf:ffff::/32", "fe80::/10"},
		{"fe00::/7", "fe80::/10"},
		{"ff02::/16", "ff00::/8"},
		{"ff15:150::/64", "ff00::/8"},
		{"8000::/1", "fe80::/10"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			err := CheckSubnetRange(netip.MustParsePrefix(tt.prefix))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckSubnetRange(%s) = %v, want nil", tt.prefix, err)
				}
				return
			}
			if !errors.Is(err, ErrUnsafeRange) || !strings.Contains(err.Error(), tt.want+",") || !strings.Contains(err.Error(), "use ") {
				t.Fatalf("CheckSubnetRange(%s) = %v, want ErrUnsafeRange naming %s and what to use", tt.prefix, err, tt.want)
			}
			// NewSubnet refuses it the same way, whatever its gateway.
			if _, err := NewSubnet(netip.MustParsePrefix(tt.prefix), netip.Addr{}); !errors.Is(err, ErrUnsafeRange) && !errors.Is(err, ErrInvalidSubnet) {
				t.Fatalf("NewSubnet(%s) = %v, want it refused", tt.prefix, err)
			}
		})
	}
}

func TestCheckAddrRange(t *testing.T) {
	tests := []struct {
		addr string
		want string // the range; "" for an address a port may have
	}{
		{"10.0.0.1", ""},
		{"192.0.2.7", ""},
		{"fd00::1", ""},
		{"2001:db8::1", ""},
		{"0.0.0.0", "0.0.0.0/8"},
		{"0.1.2.3", "0.0.0.0/8"},
		{"127.0.0.1", "127.0.0.0/8"},
		{"169.254.1.1", "169.254.0.0/16"},
		{"224.0.0.1", "224.0.0.0/4"},
		{"240.0.0.1", "240.0.0.0/4"},
		{"255.255.255.255", "240.0.0.0/4"},
		{"::", "::/96"},
		{"::1", "::/96"},
		{"::10.0.0.1", "::/96"},
		{"::ffff:10.0.0.1", "::ffff:0:0/96"},
		{"fe80::1", "fe80::/10"},
		{"fe80::1%eth0", "fe80::/10"},
		{"ff02::1", "ff00::/8"},
	}
	for _, tt := range tests {
		err := CheckAddrRange("address", netip.MustParseAddr(tt.addr))
		if tt.want == "" {
			if err != nil {
				t.Errorf("CheckAddrRange(%s) = %v, want nil", tt.addr, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnsafeRange) || !strings.Contains(err.Error(), "in "+tt.want+",") {
			t.Errorf("CheckAddrRange(%s) = %v, want ErrUnsafeRange naming %s", tt.addr, err, tt.want)
		}
	}
}

// TestRestoreUnsafeSubnet: a network saved before unsafe ranges were
// refused comes back (the daemon warns), rather than stopping the start.
func TestRestoreUnsafeSubnet(t *testing.T) {
	s, err := RestoreSubnet(SubnetState{Prefix: "127.150.0.0/24", Gateway: "127.150.0.1", Allocated: []string{"127.150.0.2"}})
	if err != nil {
		t.Fatalf("RestoreSubnet(127.150.0.0/24) = %v, want it back", err)
	}
	if s.Prefix() != netip.MustParsePrefix("127.150.0.0/24") {
		t.Fatalf("Prefix() = %s", s.Prefix())
	}
}
