package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNewPool(t *testing.T) {
	tests := []struct {
		name    string
		bases   []netip.Prefix
		size    int
		wantErr error
		wantMsg string
	}{
		{"one base", []netip.Prefix{pfx("10.89.0.0/16")}, 24, nil, ""},
		{"base is one block", []netip.Prefix{pfx("10.89.0.0/24")}, 24, nil, ""},
		{"v6 /64 blocks", []netip.Prefix{pfx("fd00:89::/48")}, 64, nil, ""},
		{"no bases", nil, 24, ErrInvalidPool, "no base prefixes given"},
		{"zero base", []netip.Prefix{{}}, 24, ErrInvalidPool, "not a valid prefix"},
		{"base not a network address", []netip.Prefix{pfx("10.89.1.0/16")}, 24, ErrInvalidPool, "did you mean 10.89.0.0/16?"},
		{"size shorter than base", []netip.Prefix{pfx("10.89.0.0/16")}, 15, ErrInvalidPool, "cannot carve /15 subnets from 10.89.0.0/16; use a size from /16 to /31"},
		{"v4 /32 blocks", []netip.Prefix{pfx("10.89.0.0/16")}, 32, ErrInvalidPool, "cannot carve /32"},
		{"v6 /128 blocks", []netip.Prefix{pfx("fd00:89::/48")}, 128, ErrInvalidPool, "use a size from /48 to /127"},
		{"size too long for the v4 base of a mixed pool", []netip.Prefix{pfx("fd00:89::/48"), pfx("10.89.0.0/16")}, 64, ErrInvalidPool, "from 10.89.0.0/16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPool(tt.bases, tt.size)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewPool(%v, %d) = %v, %v, want error %v", tt.bases, tt.size, p, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("NewPool(%v, %d) error = %q, want it to contain %q", tt.bases, tt.size, err, tt.wantMsg)
			}
		})
	}
}

func TestNewPoolCopiesBases(t *testing.T) {
	bases := []netip.Prefix{pfx("10.89.0.0/16")}
	p, err := NewPool(bases, 24)
	if err != nil {
		t.Fatalf("NewPool() error: %v", err)
	}
	bases[0] = pfx("10.90.0.0/16")
	if got, err := p.Next(nil); err != nil || got != pfx("10.89.0.0/24") {
		t.Fatalf("Next(nil) = %v, %v, want 10.89.0.0/24", got, err)
	}
}

func TestDefaultPool(t *testing.T) {
	d := DefaultPool()
	p, err := NewPool(d.bases, d.size)
	if err != nil {
		t.Fatalf("NewPool(DefaultPool's bases, size) error: %v", err)
	}
	if got, err := p.Next(nil); err != nil || got != pfx("10.89.0.0/24") {
		t.Fatalf("DefaultPool().Next(nil) = %v, %v, want 10.89.0.0/24", got, err)
	}
	// Every block must be usable as a subnet and clear of docker0.
	var used []netip.Prefix
	for range 256 {
		b, err := d.Next(used)
		if err != nil {
			t.Fatalf("Next() after %d blocks error: %v", len(used), err)
		}
		if _, err := NewSubnet(b, netip.Addr{}); err != nil {
			t.Fatalf("NewSubnet(%v) error: %v", b, err)
		}
		if Overlaps(b, pfx("172.17.0.0/16")) {
			t.Fatalf("Next() = %v, which overlaps docker0", b)
		}
		used = append(used, b)
	}
	if b, err := d.Next(used); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("Next() after 256 blocks = %v, %v, want %v", b, err, ErrPoolExhausted)
	}
}

func TestPoolNext(t *testing.T) {
	v4 := []netip.Prefix{pfx("10.89.0.0/16")}
	tests := []struct {
		name  string
		bases []netip.Prefix
		size  int
		inUse []string
		want  string
	}{
		{"nothing in use", v4, 24, nil, "10.89.0.0/24"},
		{"networks in use", v4, 24, []string{"10.89.0.0/24", "10.89.1.0/24", "10.89.3.0/24"}, "10.89.2.0/24"},
		{"in-use order does not matter", v4, 24, []string{"10.89.1.0/24", "10.89.0.0/24"}, "10.89.2.0/24"},
		{"host route wider than a block", v4, 24, []string{"10.89.0.0/20"}, "10.89.16.0/24"},
		{"host route narrower than a block", v4, 24, []string{"10.89.0.128/25"}, "10.89.1.0/24"},
		{"host route to one address", v4, 24, []string{"10.89.0.7/32"}, "10.89.1.0/24"},
		{"route covering the base", v4, 24, []string{"10.0.0.0/8", "192.168.0.0/16"}, ""},
		{"route not masked", v4, 24, []string{"10.89.0.77/23"}, "10.89.2.0/24"},
		{"default route ignored", v4, 24, []string{"0.0.0.0/0", "::/0"}, "10.89.0.0/24"},
		{"other family ignored", v4, 24, []string{"fd00::/8", "::ffff:10.89.0.0/120"}, "10.89.0.0/24"},
		{"invalid prefixes ignored", v4, 24, []string{""}, "10.89.0.0/24"},
		{"unrelated routes", v4, 24, []string{"192.168.1.0/24", "172.17.0.0/16"}, "10.89.0.0/24"},
		{"next base", []netip.Prefix{pfx("10.89.0.0/23"), pfx("10.90.0.0/16")}, 24,
			[]string{"10.89.0.0/24", "10.89.1.0/24"}, "10.90.0.0/24"},
		{"base at the top of the address space", []netip.Prefix{pfx("255.255.255.0/24")}, 25,
			[]string{"255.255.255.0/25"}, "255.255.255.128/25"},
		{"top base exhausted", []netip.Prefix{pfx("255.255.255.0/24")}, 25,
			[]string{"255.255.255.0/25", "255.255.255.128/25"}, ""},
		{"v6", []netip.Prefix{pfx("fd00:89::/48")}, 64, []string{"fd00:89::/64", "fd00:89:0:1::/64"}, "fd00:89:0:2::/64"},
		{"v6 wide route", []netip.Prefix{pfx("fd00:89::/48")}, 64, []string{"fd00:89::/56"}, "fd00:89:0:100::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPool(tt.bases, tt.size)
			if err != nil {
				t.Fatalf("NewPool(%v, %d) error: %v", tt.bases, tt.size, err)
			}
			var inUse []netip.Prefix
			for _, s := range tt.inUse {
				q := netip.Prefix{}
				if s != "" {
					q = pfx(s)
				}
				inUse = append(inUse, q)
			}
			got, err := p.Next(inUse)
			if tt.want == "" {
				if !errors.Is(err, ErrPoolExhausted) {
					t.Fatalf("Next(%v) = %v, %v, want %v", inUse, got, err, ErrPoolExhausted)
				}
				return
			}
			if err != nil || got != pfx(tt.want) {
				t.Fatalf("Next(%v) = %v, %v, want %s", inUse, got, err, tt.want)
			}
		})
	}
}

func TestPoolExhaustedMessage(t *testing.T) {
	p, err := NewPool([]netip.Prefix{pfx("10.89.0.0/23"), pfx("10.90.0.0/24")}, 24)
	if err != nil {
		t.Fatalf("NewPool() error: %v", err)
	}
	_, err = p.Next([]netip.Prefix{pfx("10.0.0.0/8")})
	want := "ipam: address pool exhausted: every /24 in 10.89.0.0/23, 10.90.0.0/24 overlaps a network or route in use"
	if err == nil || err.Error() != want {
		t.Fatalf("Next() = %v, want %q", err, want)
	}
}

// TestDefaultPool6: IPv6 subnets from the pool are the /64s of
// fd89:7473:7700::/48 in order, past those in use, and never overlap an
// IPv4 one.
func TestDefaultPool6(t *testing.T) {
	p := DefaultPool6()
	if !p.Is6() || DefaultPool().Is6() {
		t.Fatalf("DefaultPool6().Is6() = %v, DefaultPool().Is6() = %v", p.Is6(), DefaultPool().Is6())
	}
	tests := []struct {
		inUse []string
		want  string
	}{
		{nil, "fd89:7473:7700::/64"},
		{[]string{"10.89.0.0/24", "fd89:7473:7700::/64"}, "fd89:7473:7700:1::/64"},
		{[]string{"fd89:7473:7700::/63"}, "fd89:7473:7700:2::/64"},
		{[]string{"fd89:7473:7700:0:1::/80"}, "fd89:7473:7700:1::/64"},
	}
	for _, tt := range tests {
		var inUse []netip.Prefix
		for _, s := range tt.inUse {
			inUse = append(inUse, netip.MustParsePrefix(s))
		}
		got, err := p.Next(inUse)
		if err != nil || got.String() != tt.want {
			t.Errorf("DefaultPool6().Next(%v) = %v, %v; want %s", tt.inUse, got, err, tt.want)
		}
		if _, err := NewSubnet(got, netip.Addr{}); err != nil {
			t.Errorf("NewSubnet(%v) = %v", got, err)
		}
	}
}
