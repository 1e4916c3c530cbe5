package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/cluster"
)

func addrs(s ...string) []netip.Addr {
	out := []netip.Addr{}
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestFloodVTEPs(t *testing.T) {
	self := netip.MustParseAddr("10.0.0.1")
	hosts := []cluster.Host{
		{Name: "h1", VTEP: self},
		{Name: "h2", VTEP: netip.MustParseAddr("10.0.0.2")},
		{Name: "h3", VTEP: netip.MustParseAddr("10.0.0.3")},
		{Name: "h4", VTEP: netip.MustParseAddr("10.0.0.4")},
		// Claims this host's VTEP: never a destination.
		{Name: "odd", VTEP: self},
	}
	ep := func(network, name, host string) cluster.Endpoint {
		// The endpoint's own VTEP is not what counts: its host's is.
		return cluster.Endpoint{Network: network, Name: name, Host: host, VTEP: netip.MustParseAddr("192.0.2.1")}
	}
	for _, tc := range []struct {
		name      string
		hosts     []cluster.Host
		endpoints []cluster.Endpoint
		peers     []netip.Addr
		network   string
		want      []netip.Addr
	}{
		{name: "no ports anywhere", hosts: hosts, network: "n", want: addrs()},
		{name: "no ports anywhere, static peers", hosts: hosts, peers: addrs("10.9.0.2", "10.9.0.1"), network: "n", want: addrs("10.9.0.1", "10.9.0.2")},
		{name: "ports on h2 only", hosts: hosts, network: "n",
			endpoints: []cluster.Endpoint{ep("n", "a", "h2"), ep("n", "b", "h2"), ep("m", "c", "h3")},
			want:      addrs("10.0.0.2")},
		{name: "the other network", hosts: hosts, network: "m",
			endpoints: []cluster.Endpoint{ep("n", "a", "h2"), ep("m", "c", "h3")},
			want:      addrs("10.0.0.3")},
		{name: "this host's ports count not", hosts: hosts, network: "n",
			endpoints: []cluster.Endpoint{ep("n", "a", "h1"), ep("n", "b", "h4"), ep("n", "c", "odd")},
			want:      addrs("10.0.0.4")},
		{name: "a host gone from the view counts not", hosts: hosts[:2], network: "n",
			endpoints: []cluster.Endpoint{ep("n", "a", "h2"), ep("n", "b", "h3")},
			want:      addrs("10.0.0.2")},
		{name: "a static peer that is a host too, once", hosts: hosts, network: "n", peers: addrs("10.0.0.3", "10.9.0.1"),
			endpoints: []cluster.Endpoint{ep("n", "a", "h4"), ep("n", "b", "h3"), ep("n", "c", "h2")},
			want:      addrs("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.9.0.1")},
		{name: "no view", network: "n", peers: addrs("10.9.0.1"), want: addrs("10.9.0.1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peers := slices.Clone(tc.peers)
			v := cluster.View{Hosts: tc.hosts, Endpoints: tc.endpoints}
			got := floodVTEPs(v, "h1", self, peers, tc.network)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("floodVTEPs(%s) = %v, want %v", tc.network, got, tc.want)
			}
			if !slices.Equal(peers, tc.peers) {
				t.Fatalf("floodVTEPs changed the static peers to %v", peers)
			}
		})
	}
}

// TestApplyViewFlood: each cluster network's tunnel floods to the static
// peers and the hosts with ports on it; a port attached or detached on
// another host and a host gone change the lists, the last two once the
// view is settled only; who may send to this host stays every host.
func TestApplyViewFlood(t *testing.T) {
	h := newFakeHost()
	static := netip.MustParseAddr("127.0.0.9")
	ov := OverlayConfig{Host: "h1", Cluster: []string{"http://127.0.0.1:9"}, TTL: 2 * time.Second, Peers: []netip.Addr{static}}
	d := startOverlayDaemon(t, t.TempDir(), h, ov)
	defer d.CloseAndRemove()
	d.stopStoreWatch()
	h1, h2, h3 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	network := func(name string, vni uint32, third byte) cluster.Network {
		return cluster.Network{Name: name, VNI: vni, Subnets: []cluster.Subnet{{
			Prefix:  netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, third, 0}), 24),
			Gateway: netip.AddrFrom4([4]byte{10, 244, third, 1})}}}
	}
	n := 0
	ep := func(network, host string, vtep netip.Addr) cluster.Endpoint {
		n++
		return cluster.Endpoint{Network: network, Name: fmt.Sprintf("p%d", n), Host: host, VTEP: vtep,
			MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, byte(n)}}
	}
	view := cluster.View{
		Hosts:     []cluster.Host{{Name: "h1", VTEP: h1}, {Name: "h2", VTEP: h2}, {Name: "h3", VTEP: h3}},
		Networks:  []cluster.Network{network("front", 42, 5), network("back", 43, 6), network("empty", 44, 7)},
		Endpoints: []cluster.Endpoint{ep("front", "h2", h2), ep("front", "h1", h1), ep("back", "h3", h3)},
	}
	up := cluster.Status{Connected: true, Since: time.Now().Add(-time.Hour)}
	reconnected := func() cluster.Status { return cluster.Status{Connected: true, Since: time.Now()} }
	apply := func(v cluster.View, st cluster.Status) {
		d.mu.Lock()
		d.applyViewAsLocked(v, st, time.Now())
		d.mu.Unlock()
	}
	check := func(when string, want map[string][]netip.Addr) {
		t.Helper()
		d.mu.Lock()
		defer d.mu.Unlock()
		for name, w := range want {
			if d.nets[name] == nil || d.nets[name].tunnel == nil {
				t.Fatalf("%s: network %s has no tunnel", when, name)
			}
			if got := d.ov.flood[name]; !slices.Equal(got, w) {
				t.Errorf("%s: %s floods to %v, want %v", when, name, got, w)
			}
		}
	}
	members := func(when string, want ...netip.Addr) {
		t.Helper()
		d.mu.Lock()
		defer d.mu.Unlock()
		if got := d.vtepsLocked(); !slices.Equal(got, want) {
			t.Errorf("%s: members %v, want %v", when, got, want)
		}
	}

	apply(view, up)
	check("first view", map[string][]netip.Addr{
		"front": {h2, static},
		"back":  {h3, static},
		"empty": {static},
	})
	// Who may send: the static peer and every other host, with ports
	// or not.
	members("first view", h2, h3, static)

	// A port of front attached on h3: h3 gets front's floods at once,
	// settled or not.
	view.Endpoints = append(view.Endpoints, ep("front", "h3", h3))
	apply(view, reconnected())
	check("a port of front on h3", map[string][]netip.Addr{
		"front": {h2, h3, static},
		"back":  {h3, static},
		"empty": {static},
	})

	// h2's port of front detached: kept while the view is not settled
	// (it may come back as the hosts put their endpoints again), gone
	// once it is.
	view.Endpoints = slices.DeleteFunc(view.Endpoints, func(e cluster.Endpoint) bool { return e.Host == "h2" })
	apply(view, reconnected())
	check("h2's port detached, not settled", map[string][]netip.Addr{"front": {h2, h3, static}})
	apply(view, up)
	check("h2's port detached, settled", map[string][]netip.Addr{"front": {h3, static}})
	members("h2 without ports", h2, h3, static)

	// h3 gone: its endpoints went with its lease.
	gone := cluster.View{Hosts: view.Hosts[:2], Networks: view.Networks,
		Endpoints: slices.DeleteFunc(slices.Clone(view.Endpoints), func(e cluster.Endpoint) bool { return e.Host == "h3" })}
	apply(gone, reconnected())
	check("h3 gone, not settled", map[string][]netip.Addr{
		"front": {h3, static},
		"back":  {h3, static},
	})
	apply(gone, up)
	check("h3 gone, settled", map[string][]netip.Addr{
		"front": {static},
		"back":  {static},
		"empty": {static},
	})
	members("h3 gone, settled", h2, static)

	// A network made later starts with the view's list.
	view = gone
	view.Networks = append(view.Networks, network("late", 45, 8))
	view.Endpoints = append(view.Endpoints, ep("late", "h2", h2))
	apply(view, up)
	check("late", map[string][]netip.Addr{"late": {h2, static}})

	// A network removed takes its list with it.
	apply(cluster.View{Hosts: view.Hosts, Networks: view.Networks[:1]}, up)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.nets["late"]; ok {
		t.Fatal("late still here after a settled view without it")
	}
	if _, ok := d.ov.flood["late"]; ok {
		t.Fatalf("late's flood list outlived it: %v", d.ov.flood)
	}
}
