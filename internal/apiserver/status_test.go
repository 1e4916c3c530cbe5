package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// fakeStarted is the start time the fake daemon reports.
var fakeStarted = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func (f *fakeBackend) Status() api.Status {
	return api.Status{Version: "test", PID: 1, StartedAt: fakeStarted, Goroutines: 7, OpenFDs: 9, RSSBytes: 1 << 20,
		Networks: len(f.networks), Ports: len(f.ports), RestoredPorts: 2, RestoreMs: 12.5, FirstForwardMs: -1}
}

func TestStatus(t *testing.T) {
	b := &fakeBackend{ports: []api.Port{{Name: "a"}, {Name: "b"}}}
	c := serve(t, b)
	s, err := c.Status(context.Background())
	if err != nil {
		t.Fatalf("Status() = %v", err)
	}
	if want := b.Status(); s != want {
		t.Fatalf("Status() = %+v, want %+v", s, want)
	}

	// The wire names, which scripts read.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, "unix", c.Socket())
	}}}
	resp, err := hc.Get("http://tapswitchd/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET /v1/status: %v\n%s", err, body)
	}
	for _, k := range []string{"version", "pid", "started_at", "goroutines", "open_fds", "rss_bytes", "networks", "ports", "restored_ports", "dropped_ports", "restore_ms", "first_forward_ms"} {
		if _, ok := m[k]; !ok {
			t.Errorf("GET /v1/status: no %q in %s", k, body)
		}
	}
	if m["first_forward_ms"] != -1.0 {
		t.Errorf("GET /v1/status: first_forward_ms = %v, want -1", m["first_forward_ms"])
	}
}
