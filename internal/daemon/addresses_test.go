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

func testNetwork(t *testing.T, prefix string) *network {
	t.Helper()
	sub, err := ipam.NewSubnet(netip.MustParsePrefix(prefix), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	return &network{name: "front", subnet: sub}
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
