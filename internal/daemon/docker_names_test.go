package daemon

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/tapswitch/tapswitch/api"
)

func TestRenameNetworkAndPort(t *testing.T) {
	h := newFakeHost()
	dir := t.TempDir()
	d := startDaemon(t, dir, h)
	frontNet(t, d)
	if _, err := attach(d, "ab12cd34ef56", "t0"); err != nil {
		t.Fatal(err)
	}
	if _, err := attach(d, "other", "t1"); err != nil {
		t.Fatal(err)
	}
	sub, err := d.SubscribeEvents(api.EventsQuery{Types: []string{"network.rename", "port.rename"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	bridge := d.nets["front"].bridge

	d.mu.Lock()
	n := d.nets["front"]
	if err := d.renameNetworkLocked(n, "default"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("rename front to default = %v, want a conflict", err)
	}
	if err := d.renameNetworkLocked(n, "bad name"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("rename front to %q = %v, want invalid", "bad name", err)
	}
	if err := d.renameNetworkLocked(n, "backnet"); err != nil {
		t.Fatalf("rename front to backnet = %v", err)
	}
	p := d.ports["ab12cd34ef56"]
	if err := d.renamePortLocked(p, "other", ""); !errors.Is(err, api.ErrConflict) {
		t.Errorf("rename port to other = %v, want a conflict", err)
	}
	if err := d.renamePortLocked(p, "Other", ""); !errors.Is(err, api.ErrConflict) {
		t.Errorf("rename port to Other = %v, want a conflict (DNS does not tell case apart)", err)
	}
	if err := d.renamePortLocked(p, "web", ""); err != nil {
		t.Fatalf("rename port to web = %v", err)
	}
	d.mu.Unlock()

	nets := d.Networks()
	var got api.Network
	for _, n := range nets {
		if n.Name == "backnet" {
			got = n
		}
		if n.Name == "front" {
			t.Errorf("Networks() still lists front: %+v", nets)
		}
	}
	if got.Bridge != bridge || got.Ports != 2 {
		t.Errorf("backnet = %+v, want bridge %s (kept) and 2 ports", got, bridge)
	}
	if _, ok := h.fw["backnet"]; !ok || len(h.fw) != 2 {
		t.Errorf("firewall networks = %v, want backnet and default, front gone", h.fw)
	}
	if addrs, _ := d.nets["backnet"].records.Lookup("web.backnet.", dns.TypeA); len(addrs) != 1 {
		t.Errorf("DNS web.backnet. = %v, want the port's address", addrs)
	}
	if addrs, _ := d.nets["backnet"].records.Lookup("other.backnet.", dns.TypeA); len(addrs) != 1 {
		t.Errorf("DNS other.backnet. = %v, want the port's address", addrs)
	}
	if addrs, _ := d.nets["backnet"].records.Lookup("ab12cd34ef56.backnet.", dns.TypeA); len(addrs) != 0 {
		t.Errorf("DNS still answers the old name: %v", addrs)
	}
	ports := d.Ports(false)
	if len(ports) != 2 || ports[0].Name != "web" || ports[0].Network != "backnet" {
		t.Errorf("Ports() = %+v, want web on backnet first", ports)
	}
	evs := eventsOf(t, sub, 2)
	if evs[0].Type != api.EventNetworkRename || evs[0].Network != "backnet" || evs[0].Attrs["was"] != "front" ||
		evs[1].Type != api.EventPortRename || evs[1].Port != "web" || evs[1].Attrs["was"] != "ab12cd34ef56" {
		t.Errorf("events = %v, want network.rename backnet (was front), port.rename web (was ab12cd34ef56)", summary(evs))
	}

	// A restart finds both under their new names, the gateway under its
	// old one.
	d.Close()
	d = startDaemon(t, dir, h)
	defer d.CloseAndRemove()
	n2, ok := d.nets["backnet"]
	if !ok || n2.bridge != bridge {
		t.Fatalf("after a restart: networks %v, want backnet with bridge %s", d.Networks(), bridge)
	}
	if _, err := d.sw.Port("web"); err != nil {
		t.Errorf("after a restart: port web: %v", err)
	}
	if err := d.Detach(context.Background(), "web"); err != nil {
		t.Errorf("Detach(web) = %v", err)
	}
	if a := n2.subnet.Allocated(); len(a) != 1 {
		t.Errorf("backnet's IPAM holds %v after web went, want only other's address", a)
	}
	if err := d.Detach(context.Background(), "other"); err != nil {
		t.Errorf("Detach(other) = %v", err)
	}
	if err := d.RemoveNetwork(context.Background(), "backnet", false); err != nil {
		t.Errorf("RemoveNetwork(backnet) = %v", err)
	}
	if _, ok := h.fw["backnet"]; ok || h.taps.Exists("", bridge) {
		t.Errorf("after removing backnet: firewall %v, gateway left %v", h.fw, h.taps.Exists("", bridge))
	}
}

// TestRenameNetworkPeers: the names across networks follow a rename: a
// namespace on front and a renamed network still resolves the names of
// both, through the new records.
func TestRenameNetworkPeers(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	frontNet(t, d)
	ctx := context.Background()
	if _, err := d.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "ab12cd34ef56", Subnet: "10.132.30.0/24"}); err != nil {
		t.Fatal(err)
	}
	a, err := attach(d, "a", "t0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Connect(ctx, "ab12cd34ef56", api.ConnectRequest{Port: "a", Name: "a2"})
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	if err := d.renameNetworkLocked(d.nets["ab12cd34ef56"], "rear"); err != nil {
		d.mu.Unlock()
		t.Fatal(err)
	}
	front, rear := d.nets["front"].records, d.nets["rear"].records
	d.mu.Unlock()
	addrOf := func(p api.Port) netip.Addr { return netip.MustParsePrefix(p.IPs[0]).Addr() }
	if got := d.peers.lookup("front", addrOf(a)); len(got) != 1 || got[0] != rear {
		t.Errorf("front's peers of a = %v, want rear's records", got)
	}
	if got := d.peers.lookup("rear", addrOf(b)); len(got) != 1 || got[0] != front {
		t.Errorf("rear's peers of a2 = %v, want front's records", got)
	}
	if got := d.peers.lookup("ab12cd34ef56", addrOf(b)); len(got) != 0 {
		t.Errorf("the old name still has peers: %v", got)
	}
	if addrs, _ := rear.Lookup("a2.rear.", dns.TypeA); len(addrs) != 1 {
		t.Errorf("rear answers a2.rear. with %v, want a2's address", addrs)
	}
}
