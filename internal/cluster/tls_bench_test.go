package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/internal/etcdtest"
)

// BenchmarkAddrTLS allocates and releases an address, a transaction
// each, on an etcd of plain http, one of TLS with a client certificate,
// and one of TLS with a client certificate and a user: what TLS and
// authentication cost a store operation (compare within one run).
func BenchmarkAddrTLS(b *testing.B) {
	for _, tc := range []struct {
		name      string
		tls, auth bool
	}{{"http", false, false}, {"tls", true, false}, {"tls+user", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := etcdtest.Start(b, etcdtest.Options{TLS: tc.tls, Auth: tc.auth})
			cfg := Config{Endpoints: []string{srv.URL()}, Host: "h1", Advertise: netip.MustParseAddr("10.0.0.1"), Prefix: "/tsc/bench/", TTL: testTTL, Logger: slog.New(slog.DiscardHandler)}
			if tc.tls {
				cfg.TLS = srv.Certs().TLS(b)
			}
			if tc.auth {
				srv.AddUser("h1", "pw1", "/tsc/")
				cfg.Username, cfg.Password = "h1", "pw1"
			}
			s, err := Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			sub := subnet("10.40.0.0/16")
			var n Network
			for {
				if n, err = s.CreateNetwork(ctx, Network{Name: "bench", Subnets: []Subnet{sub}}); err == nil {
					break
				}
				if b.Elapsed() > waitLimit {
					b.Fatalf("CreateNetwork: %v", err)
				}
			}
			sub = n.Subnets[0]
			for i := 0; b.Loop(); i++ {
				a, err := s.AllocateAddr(ctx, "bench", sub, fmt.Sprint("o", i))
				if err != nil {
					b.Fatalf("AllocateAddr: %v", err)
				}
				if err := s.ReleaseAddr(ctx, "bench", a); err != nil {
					b.Fatalf("ReleaseAddr: %v", err)
				}
			}
		})
	}
}
