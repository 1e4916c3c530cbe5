package ipam

import (
	"errors"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// optAddr parses s, or returns the zero Addr for "".
func optAddr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return addr(s)
}

// newSubnet is NewSubnet for inputs a test knows are valid.
func newSubnet(t testing.TB, prefix, gateway string) *Subnet {
	t.Helper()
	s, err := NewSubnet(pfx(prefix), optAddr(gateway))
	if err != nil {
		t.Fatalf("NewSubnet(%s, %q) error: %v", prefix, gateway, err)
	}
	return s
}

func TestNewSubnet(t *testing.T) {
	tests := []struct {
		name     string
		prefix   netip.Prefix
		gateway  string
		wantGW   string
		wantFree uint64
	}{
		{"v4 /24 default gateway", pfx("10.20.0.0/24"), "", "10.20.0.1", 253},
		{"v4 /24 explicit gateway", pfx("10.20.0.0/24"), "10.20.0.254", "10.20.0.254", 253},
		{"v4 /16", pfx("10.20.0.0/16"), "", "10.20.0.1", 65533},
		{"v4 /30", pfx("10.20.0.0/30"), "", "10.20.0.1", 1},
		{"v4 /31 point-to-point", pfx("10.20.0.0/31"), "", "10.20.0.0", 1},
		{"v4 /31 upper gateway", pfx("10.20.0.0/31"), "10.20.0.1", "10.20.0.1", 1},
		{"v6 /64", pfx("fd00:1::/64"), "", "fd00:1::1", math.MaxUint64 - 1},
		{"v6 /120", pfx("fd00:1::/120"), "", "fd00:1::1", 254},
		{"v6 /120 gateway on last address", pfx("fd00:1::/120"), "fd00:1::ff", "fd00:1::ff", 254},
		{"v6 /126", pfx("fd00:1::/126"), "", "fd00:1::1", 2},
		{"v6 /127 point-to-point", pfx("fd00:1::/127"), "", "fd00:1::", 1},
		{"v6 /48 uncountable", pfx("fd00:1::/48"), "", "fd00:1::1", math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSubnet(tt.prefix, optAddr(tt.gateway))
			if err != nil {
				t.Fatalf("NewSubnet(%s, %q) error: %v", tt.prefix, tt.gateway, err)
			}
			if got := s.Prefix(); got != tt.prefix {
				t.Fatalf("Prefix() = %v, want %v", got, tt.prefix)
			}
			if got, want := s.Gateway(), addr(tt.wantGW); got != want {
				t.Fatalf("Gateway() = %v, want %v", got, want)
			}
			if got := s.Free(); got != tt.wantFree {
				t.Fatalf("Free() = %d, want %d", got, tt.wantFree)
			}
			if got := s.Allocated(); len(got) != 0 {
				t.Fatalf("Allocated() = %v, want none", got)
			}
		})
	}
}

func TestNewSubnetErrors(t *testing.T) {
	tests := []struct {
		name    string
		prefix  netip.Prefix
		gateway string
		wantErr error
		wantMsg string
	}{
		{"zero prefix", netip.Prefix{}, "", ErrInvalidSubnet, "no prefix given"},
		{"host bits set", pfx("10.20.0.5/24"), "", ErrInvalidSubnet,
			"ipam: invalid subnet: 10.20.0.5/24 is not a network address; did you mean 10.20.0.0/24?"},
		{"v6 host bits set", pfx("fd00::1/64"), "", ErrInvalidSubnet, "did you mean fd00::/64?"},
		{"v4 /32", pfx("10.20.0.1/32"), "", ErrInvalidSubnet, "too few for a gateway and a host; use /31"},
		{"v6 /128", pfx("fd00::1/128"), "", ErrInvalidSubnet, "use /127"},
		{"IPv4-mapped", pfx("::ffff:10.20.0.0/120"), "", ErrInvalidSubnet, "give it in IPv4 form: 10.20.0.0/24"},
		{"IPv4-mapped /96", pfx("::ffff:0.0.0.0/96"), "", ErrInvalidSubnet, "give it in IPv4 form: 0.0.0.0/0"},
		{"gateway outside", pfx("10.20.0.0/24"), "10.30.0.1", ErrInvalidGateway,
			"ipam: invalid gateway: 10.30.0.1 is not in 10.20.0.0/24; choose a gateway inside the subnet"},
		{"gateway other family", pfx("10.20.0.0/24"), "fd00::1", ErrInvalidGateway, "fd00::1 is not in 10.20.0.0/24"},
		{"gateway network address", pfx("10.20.0.0/24"), "10.20.0.0", ErrInvalidGateway,
			"10.20.0.0 is the network address of 10.20.0.0/24; choose a host address such as 10.20.0.1"},
		{"gateway broadcast address", pfx("10.20.0.0/24"), "10.20.0.255", ErrInvalidGateway, "10.20.0.255 is the broadcast address"},
		{"gateway v6 network address", pfx("fd00::/64"), "fd00::", ErrInvalidGateway, "fd00:: is the network address"},
		{"gateway with zone", pfx("fd00::/64"), "fd00::1%eth0", ErrInvalidGateway, "has an IPv6 zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSubnet(tt.prefix, optAddr(tt.gateway))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewSubnet(%s, %q) = %v, %v, want error %v", tt.prefix, tt.gateway, s, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("NewSubnet(%s, %q) error = %q, want it to contain %q", tt.prefix, tt.gateway, err, tt.wantMsg)
			}
		})
	}
}

// allocateAll calls Allocate until it fails and returns what it handed out
// and the error it stopped with.
func allocateAll(s *Subnet, limit int) ([]netip.Addr, error) {
	var got []netip.Addr
	for range limit {
		a, err := s.Allocate()
		if err != nil {
			return got, err
		}
		got = append(got, a)
	}
	return got, nil
}

func TestAllocateOrder(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		gateway string
		want    []string
	}{
		{"v4 /30", "10.0.0.0/30", "", []string{"10.0.0.2"}},
		{"v4 /31", "10.0.0.0/31", "", []string{"10.0.0.1"}},
		{"v4 /31 upper gateway", "10.0.0.0/31", "10.0.0.1", []string{"10.0.0.0"}},
		{"v4 /29 gateway in the middle", "10.0.0.0/29", "10.0.0.3", []string{"10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"}},
		{"v6 /125 has no broadcast", "fd00::/125", "", []string{"fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6", "fd00::7"}},
		{"v6 /127", "fd00::/127", "", []string{"fd00::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSubnet(t, tt.prefix, tt.gateway)
			got, err := allocateAll(s, 1000)
			if !errors.Is(err, ErrFull) {
				t.Fatalf("Allocate() after %v = %v, want %v", got, err, ErrFull)
			}
			var want []netip.Addr
			for _, w := range tt.want {
				want = append(want, addr(w))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Allocate() sequence = %v, want %v", got, want)
			}
			if f := s.Free(); f != 0 {
				t.Fatalf("Free() = %d, want 0", f)
			}
		})
	}
}

func TestAllocateFullMessage(t *testing.T) {
	s := newSubnet(t, "10.0.0.0/30", "")
	if _, err := s.Allocate(); err != nil {
		t.Fatalf("Allocate() error: %v", err)
	}
	_, err := s.Allocate()
	want := "ipam: subnet full: no free address left in 10.0.0.0/30; detach a port or use a larger subnet"
	if err == nil || err.Error() != want {
		t.Fatalf("Allocate() = %v, want %q", err, want)
	}
}

// TestAllocateLarge fills or samples subnets too big to list by hand.
func TestAllocateLarge(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string
		n        int // allocations to make
		first    string
		last     string // address of allocation n
		wantFull bool   // whether allocation n+1 fails
		wantFree uint64 // after n allocations
	}{
		{"v4 /24", "10.20.0.0/24", 253, "10.20.0.2", "10.20.0.254", true, 0},
		{"v4 /16", "10.20.0.0/16", 65533, "10.20.0.2", "10.20.255.254", true, 0},
		{"v6 /120", "fd00::/120", 254, "fd00::2", "fd00::ff", true, 0},
		{"v6 /64", "fd00::/64", 70000, "fd00::2", "fd00::1:1171", false, math.MaxUint64 - 1 - 70000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSubnet(t, tt.prefix, "")
			got, err := allocateAll(s, tt.n)
			if err != nil {
				t.Fatalf("Allocate() after %d addresses error: %v", len(got), err)
			}
			if got[0] != addr(tt.first) || got[len(got)-1] != addr(tt.last) {
				t.Fatalf("Allocate() gave %v first and %v last, want %s and %s", got[0], got[len(got)-1], tt.first, tt.last)
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1].Next() {
					t.Fatalf("Allocate() gave %v after %v, want %v", got[i], got[i-1], got[i-1].Next())
				}
			}
			if _, err := s.Allocate(); errors.Is(err, ErrFull) != tt.wantFull {
				t.Fatalf("Allocate() after %d addresses error = %v, want full %v", tt.n, err, tt.wantFull)
			}
			if tt.wantFull {
				if f := s.Free(); f != tt.wantFree {
					t.Fatalf("Free() = %d, want %d", f, tt.wantFree)
				}
				if a := s.Allocated(); !slices.Equal(a, got) {
					t.Fatalf("Allocated() has %d addresses, want the %d allocated in order", len(a), len(got))
				}
			} else if f := s.Free(); f != tt.wantFree-1 {
				t.Fatalf("Free() = %d, want %d", f, tt.wantFree-1)
			}
		})
	}
}

func TestAllocateWrapReuse(t *testing.T) {
	// Hosts .1-.6, gateway .1.
	s := newSubnet(t, "10.0.0.0/29", "")
	steps := []struct {
		release string // released before allocating, if set
		want    string
	}{
		{"", "10.0.0.2"},
		{"", "10.0.0.3"},
		{"", "10.0.0.4"},
		{"10.0.0.2", "10.0.0.5"}, // .2 waits until the range wraps
		{"", "10.0.0.6"},
		{"", "10.0.0.2"}, // wrapped
		{"10.0.0.5", "10.0.0.5"},
		{"10.0.0.3", "10.0.0.3"}, // wrapped again, past .6 and the gateway
	}
	for i, st := range steps {
		if st.release != "" {
			s.Release(addr(st.release))
		}
		got, err := s.Allocate()
		if err != nil || got != addr(st.want) {
			t.Fatalf("step %d: Allocate() = %v, %v, want %s", i, got, err, st.want)
		}
	}
	if _, err := s.Allocate(); !errors.Is(err, ErrFull) {
		t.Fatalf("Allocate() = %v, want %v", err, ErrFull)
	}
}

func TestReserveDoesNotMoveCursor(t *testing.T) {
	s := newSubnet(t, "10.0.0.0/29", "")
	for _, a := range []string{"10.0.0.4", "10.0.0.6"} {
		if err := s.Reserve(addr(a)); err != nil {
			t.Fatalf("Reserve(%s) error: %v", a, err)
		}
	}
	got, err := allocateAll(s, 10)
	want := []netip.Addr{addr("10.0.0.2"), addr("10.0.0.3"), addr("10.0.0.5")}
	if !errors.Is(err, ErrFull) || !slices.Equal(got, want) {
		t.Fatalf("Allocate() sequence = %v, %v, want %v then %v", got, err, want, ErrFull)
	}
}

func TestReserve(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		addr    netip.Addr
		wantErr error
		wantMsg string
	}{
		{"host", "10.20.0.0/24", addr("10.20.0.7"), nil, ""},
		{"last host", "10.20.0.0/24", addr("10.20.0.254"), nil, ""},
		{"v6 last address", "fd00::/120", addr("fd00::ff"), nil, ""},
		{"v4 /31 other address", "10.20.0.0/31", addr("10.20.0.1"), nil, ""},
		{"outside", "10.20.0.0/24", addr("10.30.0.5"), ErrOutOfRange,
			"ipam: address outside subnet: 10.30.0.5 is not in 10.20.0.0/24; choose an address inside the subnet"},
		{"other family", "10.20.0.0/24", addr("fd00::5"), ErrOutOfRange, "fd00::5 is not in 10.20.0.0/24"},
		{"IPv4-mapped", "10.20.0.0/24", addr("::ffff:10.20.0.5"), ErrOutOfRange, "not in 10.20.0.0/24"},
		{"zero address", "10.20.0.0/24", netip.Addr{}, ErrOutOfRange, "no address given"},
		{"zone", "fd00::/64", addr("fd00::5%eth0"), ErrOutOfRange, "has an IPv6 zone"},
		{"network address", "10.20.0.0/24", addr("10.20.0.0"), ErrReserved,
			"ipam: reserved address: 10.20.0.0 is the network address of 10.20.0.0/24; choose another address"},
		{"broadcast address", "10.20.0.0/24", addr("10.20.0.255"), ErrReserved, "10.20.0.255 is the broadcast address of 10.20.0.0/24"},
		{"gateway", "10.20.0.0/24", addr("10.20.0.1"), ErrReserved, "10.20.0.1 is the gateway of 10.20.0.0/24"},
		{"v6 network address", "fd00::/64", addr("fd00::"), ErrReserved, "fd00:: is the network address"},
		{"v4 /31 gateway", "10.20.0.0/31", addr("10.20.0.0"), ErrReserved, "is the gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSubnet(t, tt.prefix, "")
			err := s.Reserve(tt.addr)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Reserve(%v) = %v, want %v", tt.addr, err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Reserve(%v) error = %q, want it to contain %q", tt.addr, err, tt.wantMsg)
				}
				if got := s.Allocated(); len(got) != 0 {
					t.Fatalf("Allocated() after refused Reserve = %v, want none", got)
				}
				return
			}
			if got := s.Allocated(); !slices.Equal(got, []netip.Addr{tt.addr}) {
				t.Fatalf("Allocated() = %v, want [%v]", got, tt.addr)
			}
		})
	}
}

func TestReserveInUse(t *testing.T) {
	tests := []struct {
		name  string
		first func(*Subnet) (netip.Addr, error)
	}{
		{"reserved twice", func(s *Subnet) (netip.Addr, error) { a := addr("10.20.0.2"); return a, s.Reserve(a) }},
		{"allocated then reserved", (*Subnet).Allocate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSubnet(t, "10.20.0.0/24", "")
			a, err := tt.first(s)
			if err != nil {
				t.Fatalf("first taking of the address: %v", err)
			}
			err = s.Reserve(a)
			want := "ipam: address in use: 10.20.0.2 is already assigned in 10.20.0.0/24; choose another address or let one be assigned automatically"
			if !errors.Is(err, ErrInUse) || err.Error() != want {
				t.Fatalf("Reserve(%v) = %v, want %q", a, err, want)
			}
		})
	}
}

func TestRelease(t *testing.T) {
	tests := []struct {
		name     string
		release  netip.Addr
		wantFree uint64
	}{
		{"allocated address", addr("10.0.0.2"), 2},
		{"free address", addr("10.0.0.5"), 1},
		{"gateway", addr("10.0.0.1"), 1},
		{"outside", addr("10.9.0.2"), 1},
		{"zero", netip.Addr{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSubnet(t, "10.0.0.0/29", "")
			if err := s.Reserve(addr("10.0.0.3")); err != nil {
				t.Fatalf("Reserve() error: %v", err)
			}
			for _, a := range []string{"10.0.0.2", "10.0.0.4", "10.0.0.6"} {
				if err := s.Reserve(addr(a)); err != nil {
					t.Fatalf("Reserve(%s) error: %v", a, err)
				}
			}
			for range 2 { // a second Release changes nothing
				s.Release(tt.release)
				if got := s.Free(); got != tt.wantFree {
					t.Fatalf("Free() after Release(%v) = %d, want %d", tt.release, got, tt.wantFree)
				}
			}
			if s.Gateway() != addr("10.0.0.1") || s.Reserve(s.Gateway()) == nil {
				t.Fatalf("Release(%v) freed the gateway", tt.release)
			}
		})
	}
}

func TestReleasedStaticAddressCanBeReservedAgain(t *testing.T) {
	s := newSubnet(t, "fd00::/64", "")
	a := addr("fd00::abcd")
	for i := range 3 {
		if err := s.Reserve(a); err != nil {
			t.Fatalf("round %d: Reserve(%v) error: %v", i, a, err)
		}
		s.Release(a)
	}
	if got := s.Allocated(); len(got) != 0 {
		t.Fatalf("Allocated() = %v, want none", got)
	}
}

func TestAllocatedSorted(t *testing.T) {
	s := newSubnet(t, "fd00::/64", "")
	in := []string{"fd00::9", "fd00::1:0", "fd00::3", "fd00::ff", "fd00::10"}
	for _, a := range in {
		if err := s.Reserve(addr(a)); err != nil {
			t.Fatalf("Reserve(%s) error: %v", a, err)
		}
	}
	want := []netip.Addr{addr("fd00::3"), addr("fd00::9"), addr("fd00::10"), addr("fd00::ff"), addr("fd00::1:0")}
	if got := s.Allocated(); !slices.Equal(got, want) {
		t.Fatalf("Allocated() = %v, want %v", got, want)
	}
}

func TestContains(t *testing.T) {
	s := newSubnet(t, "10.20.0.0/24", "")
	tests := []struct {
		addr netip.Addr
		want bool
	}{
		{addr("10.20.0.0"), true},
		{addr("10.20.0.255"), true},
		{addr("10.20.1.0"), false},
		{addr("::ffff:10.20.0.5"), false},
		{netip.Addr{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.addr.String(), func(t *testing.T) {
			if got := s.Contains(tt.addr); got != tt.want {
				t.Fatalf("Contains(%v) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newSubnet(t, "10.20.0.0/16", "")
	const workers, each = 8, 500
	held := make([][]netip.Addr, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				a, err := s.Allocate()
				if err != nil {
					t.Errorf("Allocate() error: %v", err)
					return
				}
				if i%2 == 0 {
					s.Release(a)
					continue
				}
				held[w] = append(held[w], a)
				_ = s.Free()
				_ = s.Allocated()
			}
		})
	}
	wg.Wait()
	all := slices.Concat(held...)
	slices.SortFunc(all, netip.Addr.Compare)
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("Allocate() handed %v to two holders", all[i])
		}
	}
	if got := s.Allocated(); !slices.Equal(got, all) {
		t.Fatalf("Allocated() has %d addresses, want the %d held", len(got), len(all))
	}
}

func BenchmarkAllocate(b *testing.B) {
	b.ReportAllocs()
	s := newSubnet(b, "10.0.0.0/8", "")
	for b.Loop() {
		a, err := s.Allocate()
		if err != nil {
			b.Fatal(err)
		}
		// Keep the subnet from filling while the cursor still walks
		// sequentially.
		s.Release(a)
	}
}
