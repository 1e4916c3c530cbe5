package cluster

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/internal/etcdtest"
)

// TestRemoveUnusedNetwork: a network with another host's endpoint is not
// removed, one with only this host's is, and the refusal names the
// endpoint and its host.
func TestRemoveUnusedNetwork(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := openStore(t, srv, "tsc-a", "10.0.0.1")
	b := openStore(t, srv, "tsc-b", "10.0.0.2")
	ctx := context.Background()
	mustCreate(t, a, Network{Name: "front", Subnets: []Subnet{subnet("10.48.0.0/24")}})

	db := Endpoint{Network: "front", Name: "db", MAC: mac(8), IPs: []netip.Addr{netip.MustParseAddr("10.48.0.3")}}
	if err := b.PutEndpoint(ctx, db); err != nil {
		t.Fatalf("PutEndpoint(db) on b: %v", err)
	}
	web := Endpoint{Network: "front", Name: "web", MAC: mac(7), IPs: []netip.Addr{netip.MustParseAddr("10.48.0.2")}}
	if err := a.PutEndpoint(ctx, web); err != nil {
		t.Fatalf("PutEndpoint(web) on a: %v", err)
	}
	// At once: a's view need not have db yet; the store has.
	err := a.RemoveUnusedNetwork(ctx, "front")
	if !errors.Is(err, ErrHasEndpoints) || !strings.Contains(err.Error(), "db on tsc-b") || strings.Contains(err.Error(), "web") {
		t.Fatalf("RemoveUnusedNetwork(front) with db on tsc-b = %v, want ErrHasEndpoints naming db on tsc-b only", err)
	}
	if err := b.DeleteEndpoint(ctx, "front", "db"); err != nil {
		t.Fatalf("DeleteEndpoint(db) on b: %v", err)
	}
	// a's own endpoint does not hold the network.
	if err := a.RemoveUnusedNetwork(ctx, "front"); err != nil {
		t.Fatalf("RemoveUnusedNetwork(front) with only a's web = %v, want nil", err)
	}
	if err := a.RemoveUnusedNetwork(ctx, "front"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveUnusedNetwork(front) again = %v, want ErrNotFound", err)
	}
}
