package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func TestOverlaps(t *testing.T) {
	tests := []struct {
		name string
		a, b netip.Prefix
		want bool
	}{
		{"equal", pfx("10.20.0.0/24"), pfx("10.20.0.0/24"), true},
		{"a inside b", pfx("10.20.0.0/24"), pfx("10.20.0.0/16"), true},
		{"b inside a", pfx("10.20.0.0/16"), pfx("10.20.5.0/24"), true},
		{"adjacent", pfx("10.20.0.0/24"), pfx("10.20.1.0/24"), false},
		{"disjoint", pfx("10.20.0.0/24"), pfx("192.168.0.0/24"), false},
		{"host route inside", pfx("10.20.0.0/24"), pfx("10.20.0.9/32"), true},
		{"families differ", pfx("10.20.0.0/24"), pfx("::/0"), false},
		{"IPv4-mapped", pfx("10.20.0.0/24"), pfx("::ffff:10.20.0.0/120"), false},
		{"v6", pfx("fd00::/48"), pfx("fd00:0:0:7::/64"), true},
		{"zero", pfx("10.20.0.0/24"), netip.Prefix{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Overlaps(tt.a, tt.b); got != tt.want {
				t.Fatalf("Overlaps(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if got := Overlaps(tt.b, tt.a); got != tt.want {
				t.Fatalf("Overlaps(%v, %v) = %v, want %v", tt.b, tt.a, got, tt.want)
			}
		})
	}
}

func TestCheckOverlap(t *testing.T) {
	existing := map[string]netip.Prefix{
		`network "front"`:       pfx("10.20.0.0/16"),
		`network "back"`:        pfx("10.89.0.0/24"),
		`route dev eth0`:        pfx("192.168.1.0/24"),
		`route dev wlan0`:       pfx("192.168.0.0/16"),
		`default route`:         pfx("0.0.0.0/0"),
		`network "v6"`:          pfx("fd00:1::/64"),
		`route dev eth0 (IPv6)`: pfx("::/0"),
	}
	tests := []struct {
		name    string
		p       netip.Prefix
		wantMsg string // "" for no overlap
	}{
		{"free", pfx("10.30.0.0/24"), ""},
		{"free v6", pfx("fd00:2::/64"), ""},
		{"inside a network", pfx("10.20.0.0/24"),
			`ipam: subnets overlap: subnet 10.20.0.0/24 overlaps network "front" (10.20.0.0/16)`},
		{"covering a network", pfx("10.0.0.0/8"),
			`ipam: subnets overlap: subnet 10.0.0.0/8 overlaps network "back" (10.89.0.0/24)`},
		{"host route, first key named", pfx("192.168.1.0/24"),
			`ipam: subnets overlap: subnet 192.168.1.0/24 overlaps route dev eth0 (192.168.1.0/24)`},
		{"v6 network", pfx("fd00:1::/48"),
			`ipam: subnets overlap: subnet fd00:1::/48 overlaps network "v6" (fd00:1::/64)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckOverlap(tt.p, existing)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckOverlap(%v) = %v, want nil", tt.p, err)
				}
				return
			}
			if !errors.Is(err, ErrOverlap) || err.Error() != tt.wantMsg {
				t.Fatalf("CheckOverlap(%v) = %v, want %q", tt.p, err, tt.wantMsg)
			}
		})
	}
	if err := CheckOverlap(pfx("10.20.0.0/24"), nil); err != nil {
		t.Fatalf("CheckOverlap(10.20.0.0/24, nil) = %v, want nil", err)
	}
}
