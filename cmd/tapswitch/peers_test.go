package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

func TestWritePeers(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	peers := []api.Peer{
		{Name: "h1", VTEP: "10.234.0.1", Self: true, MACs: []api.PeerMAC{}},
		{Name: "h2", VTEP: "10.234.0.2", LastHeard: now.Add(-3 * time.Second), RxPackets: 10, TxPackets: 12,
			MACs: []api.PeerMAC{{MAC: "02:00:00:00:00:22", Network: "front", Static: true}, {MAC: "02:00:00:00:00:23", Network: "front"}}},
		{VTEP: "10.234.0.3", Static: true, MACs: []api.PeerMAC{}},
	}
	var b bytes.Buffer
	if err := writePeers(&b, peers, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("writePeers printed %d lines, want a header and 3:\n%s", len(lines), b.String())
	}
	for i, want := range [][]string{
		{"NAME", "VTEP", "ROLE", "LAST HEARD", "MACS"},
		{"h1", "10.234.0.1", "self"},
		{"h2", "10.234.0.2", "member", "3s ago", "10", "12", "02:00:00:00:00:22@front", "02:00:00:00:00:23@front(learned)"},
		{"-", "10.234.0.3", "static", "never"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
}
