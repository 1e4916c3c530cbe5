package cluster

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		rel  string
		want parsedKey
	}{
		{"hosts/h1", parsedKey{kind: kindHost, name: "h1"}},
		{"networks/front", parsedKey{kind: kindNetwork, name: "front"}},
		{"endpoints/front/web", parsedKey{kind: kindEndpoint, network: "front", name: "web"}},
		{"addrs/front/10.40.0.2", parsedKey{kind: kindAddr, network: "front", name: "10.40.0.2", addr: netip.MustParseAddr("10.40.0.2")}},
		{"addrs/front/fd00::2", parsedKey{kind: kindAddr, network: "front", name: "fd00::2", addr: netip.MustParseAddr("fd00::2")}},
		{"vni/4096", parsedKey{kind: kindOther}},
		{"netrev", parsedKey{kind: kindOther}},
		{"hosts/", parsedKey{kind: kindOther}},
		{"hosts/a/b", parsedKey{kind: kindOther}},
		{"endpoints/front", parsedKey{kind: kindOther}},
		{"endpoints/front/", parsedKey{kind: kindOther}},
		{"endpoints/front/a/b", parsedKey{kind: kindOther}},
		{"addrs/front/10.40.0.02", parsedKey{kind: kindOther}},
		{"addrs/front/web", parsedKey{kind: kindOther}},
		{"networks/a\x01", parsedKey{kind: kindOther}},
		{"unknown/x", parsedKey{kind: kindOther}},
	} {
		t.Run(tc.rel, func(t *testing.T) {
			if got := parseKey(tc.rel); got != tc.want {
				t.Fatalf("parseKey(%q) = %+v, want %+v", tc.rel, got, tc.want)
			}
		})
	}
}

func TestKeysRoundTrip(t *testing.T) {
	k := keys("/p/")
	for _, tc := range []struct {
		key  string
		want parsedKey
	}{
		{k.host("h1"), parsedKey{kind: kindHost, name: "h1"}},
		{k.network("n"), parsedKey{kind: kindNetwork, name: "n"}},
		{k.endpoint("n", "e"), parsedKey{kind: kindEndpoint, network: "n", name: "e"}},
		{k.addr("n", netip.MustParseAddr("10.0.0.5")), parsedKey{kind: kindAddr, network: "n", name: "10.0.0.5", addr: netip.MustParseAddr("10.0.0.5")}},
	} {
		if got := parseKey(tc.key[len("/p/"):]); got != tc.want {
			t.Errorf("parseKey(%q) = %+v, want %+v", tc.key, got, tc.want)
		}
	}
}

func TestDecodeNetwork(t *testing.T) {
	good := Network{Name: "front", VNI: 4242, Internal: true, Subnets: []Subnet{
		{Prefix: netip.MustParsePrefix("10.40.0.0/24"), Gateway: netip.MustParseAddr("10.40.0.1")},
		{Prefix: netip.MustParsePrefix("fd00:40::/64"), Gateway: netip.MustParseAddr("fd00:40::1")},
	}}
	got, err := decodeNetwork("front", encodeNetwork(good))
	if err != nil || got.VNI != good.VNI || !got.Internal || !slices.Equal(got.Subnets, good.Subnets) {
		t.Fatalf("decodeNetwork(encodeNetwork(%+v)) = %+v, %v", good, got, err)
	}
	for _, tc := range []struct{ name, value string }{
		{"not JSON", `{`},
		{"trailing data", `{"vni":1,"subnets":[]} {}`},
		{"VNI 0", `{"vni":0,"subnets":[]}`},
		{"VNI too large", `{"vni":16777216,"subnets":[]}`},
		{"VNI negative", `{"vni":-1,"subnets":[]}`},
		{"bad prefix", `{"vni":1,"subnets":[{"prefix":"10.40.0.0/33","gateway":"10.40.0.1"}]}`},
		{"host bits", `{"vni":1,"subnets":[{"prefix":"10.40.0.1/24","gateway":"10.40.0.1"}]}`},
		{"gateway outside", `{"vni":1,"subnets":[{"prefix":"10.40.0.0/24","gateway":"10.41.0.1"}]}`},
		{"overlapping subnets", `{"vni":1,"subnets":[{"prefix":"10.40.0.0/24","gateway":"10.40.0.1"},{"prefix":"10.40.0.0/16","gateway":"10.40.0.1"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n, err := decodeNetwork("front", []byte(tc.value)); err == nil {
				t.Fatalf("decodeNetwork(%s) = %+v, want an error", tc.value, n)
			}
		})
	}
}

func TestDecodeEndpoint(t *testing.T) {
	good := Endpoint{Network: "front", Name: "web", Host: "h1", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		IPs: []netip.Addr{netip.MustParseAddr("10.40.0.2"), netip.MustParseAddr("fd00:40::2")}, VTEP: netip.MustParseAddr("192.0.2.1")}
	got, err := decodeEndpoint("front", "web", encodeEndpoint(good))
	if err != nil || got.Host != good.Host || !bytes.Equal(got.MAC, good.MAC) || !slices.Equal(got.IPs, good.IPs) || got.VTEP != good.VTEP {
		t.Fatalf("decodeEndpoint(encodeEndpoint(%+v)) = %+v, %v", good, got, err)
	}
	for _, tc := range []struct{ name, value string }{
		{"no host", `{"mac":"02:00:00:00:00:01","vtep":"192.0.2.1"}`},
		{"EUI-64 MAC", `{"host":"h1","mac":"02:00:00:00:00:00:00:01","vtep":"192.0.2.1"}`},
		{"bad MAC", `{"host":"h1","mac":"x","vtep":"192.0.2.1"}`},
		{"bad VTEP", `{"host":"h1","mac":"02:00:00:00:00:01","vtep":"h2"}`},
		{"bad IP", `{"host":"h1","mac":"02:00:00:00:00:01","vtep":"192.0.2.1","ips":["10.40.0.300"]}`},
		{"zoned IP", `{"host":"h1","mac":"02:00:00:00:00:01","vtep":"192.0.2.1","ips":["fe80::1%eth0"]}`},
		{"host with slash", `{"host":"a/b","mac":"02:00:00:00:00:01","vtep":"192.0.2.1"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if e, err := decodeEndpoint("front", "web", []byte(tc.value)); err == nil {
				t.Fatalf("decodeEndpoint(%s) = %+v, want an error", tc.value, e)
			}
		})
	}
}

func TestDecodeHost(t *testing.T) {
	since := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	h, err := decodeHost("h1", encodeHost(Host{Name: "h1", VTEP: netip.MustParseAddr("192.0.2.1"), Since: since}))
	if err != nil || h.VTEP != netip.MustParseAddr("192.0.2.1") || !h.Since.Equal(since) {
		t.Fatalf("decodeHost round trip = %+v, %v", h, err)
	}
	if h, err := decodeHost("h1", []byte(`{"vtep":"nope"}`)); err == nil {
		t.Fatalf("decodeHost of a bad VTEP = %+v, want an error", h)
	}
}

func TestFreeVNI(t *testing.T) {
	used := map[uint32]string{4096: "a", 4097: "b", 4099: "c"}
	if got := freeVNI(used); got != 4098 {
		t.Fatalf("freeVNI = %d, want 4098", got)
	}
	if got := freeVNI(nil); got != firstAutoVNI {
		t.Fatalf("freeVNI(none used) = %d, want %d", got, firstAutoVNI)
	}
}

// FuzzDecode feeds keys and values, as any etcd client could write them
// under the prefix, to the decoders: they must never panic, and what
// they accept must encode back to something they accept the same.
func FuzzDecode(f *testing.F) {
	f.Add("networks/front", []byte(`{"vni":4242,"subnets":[{"prefix":"10.40.0.0/24","gateway":"10.40.0.1"}]}`))
	f.Add("endpoints/front/web", []byte(`{"host":"h1","mac":"02:00:00:00:00:01","ips":["10.40.0.2"],"vtep":"192.0.2.1"}`))
	f.Add("hosts/h1", []byte(`{"vtep":"192.0.2.1","since":"2026-12-06T22:00:00Z"}`))
	f.Add("addrs/front/10.40.0.2", []byte(`{"owner":"web","host":"h1"}`))
	f.Add("hosts/h2", []byte(`{"vtep":"192.0.2.1","since":"0000-01-01T00:00:00+01:00"}`))
	f.Add("networks/x", []byte(`{"vni":1,"subnets":[{"prefix":"fd00::/64","gateway":"fd00::1"}],"internal":true}`))
	f.Fuzz(func(t *testing.T, rel string, value []byte) {
		pk := parseKey(rel)
		switch pk.kind {
		case kindHost:
			h, err := decodeHost(pk.name, value)
			if err != nil {
				return
			}
			h2, err := decodeHost(pk.name, encodeHost(h))
			if err != nil || h2.VTEP != h.VTEP || !h2.Since.Equal(h.Since) {
				t.Fatalf("host %+v re-decoded as %+v, %v", h, h2, err)
			}
		case kindNetwork:
			n, err := decodeNetwork(pk.name, value)
			if err != nil {
				return
			}
			n2, err := decodeNetwork(pk.name, encodeNetwork(n))
			if err != nil || n2.VNI != n.VNI || n2.Internal != n.Internal || !slices.Equal(n2.Subnets, n.Subnets) {
				t.Fatalf("network %+v re-decoded as %+v, %v", n, n2, err)
			}
		case kindEndpoint:
			e, err := decodeEndpoint(pk.network, pk.name, value)
			if err != nil {
				return
			}
			e2, err := decodeEndpoint(pk.network, pk.name, encodeEndpoint(e))
			if err != nil || e2.Host != e.Host || !bytes.Equal(e2.MAC, e.MAC) || !slices.Equal(e2.IPs, e.IPs) || e2.VTEP != e.VTEP {
				t.Fatalf("endpoint %+v re-decoded as %+v, %v", e, e2, err)
			}
		case kindAddr:
			if pk.addr.String() != pk.name {
				t.Fatalf("address key %q parsed as %v", rel, pk.addr)
			}
			r, err := decodeAddr(value)
			if err != nil {
				return
			}
			if r2, err := decodeAddr(encodeAddr(r)); err != nil || r2 != r {
				t.Fatalf("address record %+v re-decoded as %+v, %v", r, r2, err)
			}
		}
	})
}
