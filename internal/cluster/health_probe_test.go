package cluster

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/etcdhealth"
	"github.com/tapswitch/tapswitch/internal/etcdtest"
)

// TestMemberHealthProbe: the member watch's question, /health, is
// answered without credentials by an etcd with authentication on, and
// over TLS with this host's client certificate, so that it judges
// members by their health, not by what the store may read.
func TestMemberHealthProbe(t *testing.T) {
	t.Run("auth", func(t *testing.T) {
		srv := etcdtest.Start(t, etcdtest.Options{Auth: true})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := etcdhealth.Check(ctx, &http.Client{Timeout: memberCheck}, srv.URL()); err != nil {
			t.Fatalf("/health of an etcd with authentication on, asked without credentials: %v", err)
		}
	})
	t.Run("tls", func(t *testing.T) {
		srv := etcdtest.Start(t, etcdtest.Options{TLS: true})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c := &http.Client{Timeout: memberCheck, Transport: &http.Transport{TLSClientConfig: srv.Certs().TLS(t)}}
		if err := etcdhealth.Check(ctx, c, srv.URL()); err != nil {
			t.Fatalf("/health over TLS with the client certificate: %v", err)
		}
	})
}
