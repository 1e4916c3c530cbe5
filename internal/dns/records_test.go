package dns

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

func TestRecordsLookup(t *testing.T) {
	r := frontRecords(t)
	a := netip.MustParseAddr
	tests := []struct {
		qname string
		qtype uint16
		want  []netip.Addr
		found bool
	}{
		{"web", mdns.TypeA, []netip.Addr{a("10.20.0.2")}, true},
		{"web.", mdns.TypeAAAA, []netip.Addr{a("fd00:20::2")}, true},
		{"WEB.FRONT", mdns.TypeA, []netip.Addr{a("10.20.0.2")}, true},
		{"www.front.", mdns.TypeANY, []netip.Addr{a("10.20.0.2"), a("fd00:20::2")}, true},
		{"v4only", mdns.TypeAAAA, nil, true},
		{"web", mdns.TypeTXT, nil, true},
		{"front", mdns.TypeA, nil, true},
		{"nope", mdns.TypeA, nil, false},
		{"web.back", mdns.TypeA, nil, false},
		{"web.front.example", mdns.TypeA, nil, false},
		{"x.web.front", mdns.TypeA, nil, false},
		{`web\.front`, mdns.TypeA, nil, false},
		{"", mdns.TypeA, nil, false},
		{".", mdns.TypeA, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.qname+"/"+mdns.TypeToString[tt.qtype], func(t *testing.T) {
			got, found := r.Lookup(tt.qname, tt.qtype)
			if !slices.Equal(got, tt.want) || found != tt.found {
				t.Fatalf("Lookup(%q, %s) = %v, %v, want %v, %v", tt.qname, mdns.TypeToString[tt.qtype], got, found, tt.want, tt.found)
			}
		})
	}
}

func TestRecordsSetRemove(t *testing.T) {
	a := netip.MustParseAddr
	r, err := NewRecords("Front.")
	if err != nil {
		t.Fatalf("NewRecords(Front.) = %v", err)
	}
	if got := r.Domain(); got != "front" {
		t.Fatalf("Domain() = %q, want front", got)
	}

	// Names are case-insensitive, mapped addresses are IPv4, duplicates go.
	if err := r.Set("Web", []string{"WWW", "web", "www"}, []netip.Addr{a("::ffff:10.20.0.2"), a("10.20.0.2")}); err != nil {
		t.Fatalf("Set(Web) = %v", err)
	}
	if got, _ := r.Lookup("www", mdns.TypeA); !slices.Equal(got, []netip.Addr{a("10.20.0.2")}) {
		t.Fatalf("Lookup(www, A) = %v, want [10.20.0.2]", got)
	}
	if got := r.Reverse(a("::ffff:10.20.0.2")); !slices.Equal(got, []string{"web"}) {
		t.Fatalf("Reverse(::ffff:10.20.0.2) = %v, want [web]", got)
	}

	// A second port with the same alias shares it, round-robin style.
	if err := r.Set("web2", []string{"www"}, []netip.Addr{a("10.20.0.4")}); err != nil {
		t.Fatalf("Set(web2) = %v", err)
	}
	if got, _ := r.Lookup("www", mdns.TypeA); !slices.Equal(got, []netip.Addr{a("10.20.0.2"), a("10.20.0.4")}) {
		t.Fatalf("Lookup(www, A) = %v, want [10.20.0.2 10.20.0.4]", got)
	}

	// Set replaces: the old address and alias are gone.
	if err := r.Set("web", nil, []netip.Addr{a("10.20.0.5")}); err != nil {
		t.Fatalf("Set(web) = %v", err)
	}
	if got := r.Reverse(a("10.20.0.2")); len(got) != 0 {
		t.Fatalf("Reverse(10.20.0.2) after replace = %v, want none", got)
	}
	if got, _ := r.Lookup("www", mdns.TypeA); !slices.Equal(got, []netip.Addr{a("10.20.0.4")}) {
		t.Fatalf("Lookup(www, A) after replace = %v, want [10.20.0.4]", got)
	}

	r.Remove("WEB2")
	r.Remove("never-set")
	if _, found := r.Lookup("www", mdns.TypeA); found {
		t.Fatalf("Lookup(www, A) after Remove(web2) found it")
	}
	if got, found := r.Lookup("web", mdns.TypeA); !found || !slices.Equal(got, []netip.Addr{a("10.20.0.5")}) {
		t.Fatalf("Lookup(web, A) = %v, %v, want [10.20.0.5], true", got, found)
	}

	// The zero value works, with single labels only.
	var z Records
	if _, found := z.Lookup("web", mdns.TypeA); found {
		t.Fatalf("zero Records: Lookup(web, A) found it")
	}
	if err := z.Set("web", nil, []netip.Addr{a("10.0.0.1")}); err != nil {
		t.Fatalf("zero Records: Set(web) = %v", err)
	}
	if got, found := z.Lookup("web.", mdns.TypeA); !found || len(got) != 1 {
		t.Fatalf("zero Records: Lookup(web., A) = %v, %v, want one address", got, found)
	}
}

func TestRecordsSetInvalid(t *testing.T) {
	ok := []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	tests := []struct {
		name    string
		port    string
		aliases []string
		addrs   []netip.Addr
		want    error
	}{
		{"empty name", "", nil, ok, ErrInvalidName},
		{"dot in name", "a.b", nil, ok, ErrInvalidName},
		{"leading hyphen", "-web", nil, ok, ErrInvalidName},
		{"trailing hyphen", "web-", nil, ok, ErrInvalidName},
		{"space", "we b", nil, ok, ErrInvalidName},
		{"too long", strings.Repeat("a", 64), nil, ok, ErrInvalidName},
		{"bad alias", "web", []string{"ok", "not ok"}, ok, ErrInvalidName},
		{"zero address", "web", nil, []netip.Addr{{}}, ErrInvalidAddr},
		{"unspecified address", "web", nil, []netip.Addr{netip.IPv4Unspecified()}, ErrInvalidAddr},
		{"valid with underscore and digits", "my_app-2", []string{"0db"}, ok, nil},
		{"63 bytes", strings.Repeat("a", 63), nil, ok, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Records
			if err := r.Set(tt.port, tt.aliases, tt.addrs); !errors.Is(err, tt.want) {
				t.Fatalf("Set(%q, %q, %v) = %v, want %v", tt.port, tt.aliases, tt.addrs, err, tt.want)
			}
		})
	}
}

func TestNewRecordsDomain(t *testing.T) {
	tests := []struct {
		domain string
		want   error
	}{
		{"front", nil},
		{"my-net.internal.", nil},
		{"", nil},
		{"bad domain", ErrInvalidName},
		{"a..b", ErrInvalidName},
		{strings.Repeat("a.", 100) + "a", ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			if _, err := NewRecords(tt.domain); !errors.Is(err, tt.want) {
				t.Fatalf("NewRecords(%q) = %v, want %v", tt.domain, err, tt.want)
			}
		})
	}
}

func TestReverseAddr(t *testing.T) {
	tests := []struct {
		name string
		want string // "" for no address
	}{
		{"2.0.20.10.in-addr.arpa.", "10.20.0.2"},
		{"2.0.20.10.IN-ADDR.ARPA", "10.20.0.2"},
		{"255.255.255.255.in-addr.arpa.", "255.255.255.255"},
		{"2.0.20.in-addr.arpa.", ""},
		{"256.0.20.10.in-addr.arpa.", ""},
		{"02.0.20.10.in-addr.arpa.", ""},
		{"x.0.20.10.in-addr.arpa.", ""},
		{"1.2.0.20.10.in-addr.arpa.", ""},
		{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.0.d.f.ip6.arpa.", "fd00:20::2"},
		{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.0.D.F.ip6.arpa.", "fd00:20::2"},
		{"0.2.0.0.0.0.d.f.ip6.arpa.", ""},
		{"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.0.d.f.ip6.arpa.", ""},
		{"20.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.0.d.f.ip6.arpa.", ""},
		{"web.front.", ""},
		{"in-addr.arpa.", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := reverseAddr(tt.name)
			if tt.want == "" {
				if ok {
					t.Fatalf("reverseAddr(%q) = %v, want no address", tt.name, got)
				}
				return
			}
			if want := netip.MustParseAddr(tt.want); !ok || got != want {
				t.Fatalf("reverseAddr(%q) = %v, %v, want %v", tt.name, got, ok, want)
			}
		})
	}
}
