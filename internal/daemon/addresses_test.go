package daemon

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/ipam"
)

// testNetwork is a network "front" on the subnets given, the IPv4 one
// first.
func testNetwork(t *testing.T, prefix ...string) *network {
	t.Helper()
	var subs []*ipam.Subnet
	for _, p := range prefix {
		sub, err := ipam.NewSubnet(netip.MustParsePrefix(p), netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	return &network{name: "front", subnets: subs, subnet: subs[0]}
}

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestAddresses(t *testing.T) {
	tests := []struct {
		name      string
		taken     []string // reserved before the call
		asked     []netip.Prefix
		wantIPs   []netip.Prefix
		wantOwned []string
		wantErr   error
		errText   string
		reason    api.Reason
	}{
		{name: "none asked: allocated", wantIPs: prefixes("10.20.0.2/24"), wantOwned: []string{"10.20.0.2"}},
		{name: "none asked, first taken", taken: []string{"10.20.0.2"}, wantIPs: prefixes("10.20.0.3/24"), wantOwned: []string{"10.20.0.3"}},
		{name: "static in subnet", asked: prefixes("10.20.0.9/24"), wantIPs: prefixes("10.20.0.9/24"), wantOwned: []string{"10.20.0.9"}},
		{name: "flat wire outside subnet", asked: prefixes("10.0.0.1/24"), wantIPs: prefixes("10.0.0.1/24")},
		{name: "mixed", asked: prefixes("10.0.0.1/24", "10.20.0.9/24", "fd00::1/64"), wantIPs: prefixes("10.0.0.1/24", "10.20.0.9/24", "fd00::1/64"), wantOwned: []string{"10.20.0.9"}},
		{name: "taken", taken: []string{"10.20.0.9"}, asked: prefixes("10.20.0.9/24"), wantErr: api.ErrConflict, errText: "already in use", reason: api.ReasonAddressInUse},
		{name: "gateway", asked: prefixes("10.20.0.1/24"), wantErr: api.ErrInvalid, errText: "gateway"},
		{name: "broadcast", asked: prefixes("10.20.0.255/24"), wantErr: api.ErrInvalid, errText: "broadcast"},
		{name: "wrong length", asked: prefixes("10.20.0.9/16"), wantErr: api.ErrInvalid, errText: "give it as 10.20.0.9/24"},
		{name: "second taken releases the first", taken: []string{"10.20.0.10"}, asked: prefixes("10.20.0.9/24", "10.20.0.10/24"), wantErr: api.ErrConflict, errText: "10.20.0.10", reason: api.ReasonAddressInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := testNetwork(t, "10.20.0.0/24")
			for _, a := range tt.taken {
				if err := n.subnet.Reserve(netip.MustParseAddr(a)); err != nil {
					t.Fatal(err)
				}
			}
			before := n.subnet.Allocated()
			ips, owned, err := addresses(n, tt.asked)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) || api.ReasonOf(err) != tt.reason {
					t.Fatalf("addresses(%v) = %v (reason %q), want %v containing %q with reason %q", tt.asked, err, api.ReasonOf(err), tt.wantErr, tt.errText, tt.reason)
				}
				if after := n.subnet.Allocated(); !slices.Equal(after, before) {
					t.Fatalf("addresses(%v) failed but left %v allocated, want %v", tt.asked, after, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("addresses(%v) = %v", tt.asked, err)
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Fatalf("addresses(%v) ips = %v, want %v", tt.asked, ips, tt.wantIPs)
			}
			var got []string
			for _, a := range owned {
				got = append(got, a.String())
				if !slices.Contains(n.subnet.Allocated(), a) {
					t.Fatalf("addresses(%v) owns %s but the subnet has not allocated it", tt.asked, a)
				}
			}
			if !slices.Equal(got, tt.wantOwned) {
				t.Fatalf("addresses(%v) owned = %v, want %v", tt.asked, got, tt.wantOwned)
			}
		})
	}
}

func TestAddressesFull(t *testing.T) {
	// A /30 holds the gateway and one port.
	n := testNetwork(t, "10.20.9.0/30")
	if _, _, err := addresses(n, nil); err != nil {
		t.Fatalf("first addresses() = %v", err)
	}
	_, _, err := addresses(n, nil)
	if !errors.Is(err, api.ErrConflict) || !errors.Is(err, ipam.ErrFull) || !strings.Contains(err.Error(), `network "front"`) {
		t.Fatalf("addresses() on a full subnet = %v, want a conflict naming the network and the subnet full", err)
	}
}

// TestAddressesDualStack: a port on a dual-stack network gets an address
// of each family, the IPv4 one first; one asked for in one subnet leaves
// the other family to the network; a plain wire gets none.
func TestAddressesDualStack(t *testing.T) {
	tests := []struct {
		name      string
		asked     []netip.Prefix
		wantIPs   []netip.Prefix
		wantOwned []string
		wantErr   error
		errText   string
	}{
		{name: "none asked: one of each", wantIPs: prefixes("10.141.0.2/24", "fd41::2/64"), wantOwned: []string{"10.141.0.2", "fd41::2"}},
		{name: "IPv4 asked: IPv6 allocated", asked: prefixes("10.141.0.9/24"), wantIPs: prefixes("10.141.0.9/24", "fd41::2/64"), wantOwned: []string{"10.141.0.9", "fd41::2"}},
		{name: "IPv6 asked: IPv4 allocated", asked: prefixes("fd41::9/64"), wantIPs: prefixes("fd41::9/64", "10.141.0.2/24"), wantOwned: []string{"fd41::9", "10.141.0.2"}},
		{name: "both asked", asked: prefixes("fd41::9/64", "10.141.0.9/24"), wantIPs: prefixes("fd41::9/64", "10.141.0.9/24"), wantOwned: []string{"fd41::9", "10.141.0.9"}},
		{name: "plain wire", asked: prefixes("10.0.0.1/24"), wantIPs: prefixes("10.0.0.1/24")},
		{name: "IPv6 wrong length", asked: prefixes("fd41::9/48"), wantErr: api.ErrInvalid, errText: "give it as fd41::9/64"},
		{name: "IPv6 gateway", asked: prefixes("10.141.0.9/24", "fd41::1/64"), wantErr: api.ErrInvalid, errText: "gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := testNetwork(t, "10.141.0.0/24", "fd41::/64")
			ips, owned, err := addresses(n, tt.asked)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("addresses(%v) = %v, want %v containing %q", tt.asked, err, tt.wantErr, tt.errText)
				}
				for _, s := range n.subnets {
					if a := s.Allocated(); len(a) != 0 {
						t.Fatalf("addresses(%v) failed but left %v allocated in %s", tt.asked, a, s.Prefix())
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("addresses(%v) = %v", tt.asked, err)
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Fatalf("addresses(%v) ips = %v, want %v", tt.asked, ips, tt.wantIPs)
			}
			var got []string
			for _, a := range owned {
				got = append(got, a.String())
				if s := n.subnetFor(a); s == nil || !slices.Contains(s.Allocated(), a) {
					t.Fatalf("addresses(%v) owns %s but no subnet has allocated it", tt.asked, a)
				}
			}
			if !slices.Equal(got, tt.wantOwned) {
				t.Fatalf("addresses(%v) owned = %v, want %v", tt.asked, got, tt.wantOwned)
			}
			for _, a := range owned {
				n.release(a)
			}
			for _, s := range n.subnets {
				if a := s.Allocated(); len(a) != 0 {
					t.Fatalf("release left %v allocated in %s", a, s.Prefix())
				}
			}
		})
	}
}
