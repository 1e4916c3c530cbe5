package daemon

import (
	"log/slog"
	"net/netip"
	"testing"
)

// startDaemonTAP is startDaemon with the TAPs made as tc says.
func startDaemonTAP(t *testing.T, dir string, h *fakeHost, tc TAPConfig) *Daemon {
	t.Helper()
	d, err := newDaemon(Config{StateDir: dir, TAPs: h.taps, Queues: 1, DNSUpstreams: []netip.AddrPort{},
		Logger: slog.New(slog.DiscardHandler), TAP: tc}, h)
	if err != nil {
		t.Fatalf("newDaemon() = %v", err)
	}
	return d
}

// TestTAPConfig checks that the daemon's TAPConfig reaches the TAPs it
// makes, ports' and gateways' alike, and that NAPI is that of the daemon
// that opened a TAP again, as a real TAP's queues take it when they
// attach.
func TestTAPConfig(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHost()
	d := startDaemonTAP(t, dir, h, TAPConfig{NAPI: true, TxQueueLen: 5000})
	frontNet(t, d)
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatalf("Attach(web) = %v", err)
	}
	gw := d.nets["front"].bridge
	// The port's TAP is made through its namespace, the gateway's in the
	// daemon's own.
	for name, netns := range map[string]string{"t0": selfPath, gw: ""} {
		cfg, ok := h.taps.Config(netns, name)
		if !ok || !cfg.NAPI || cfg.TxQueueLen != 5000 {
			t.Fatalf("TAP %s: exists %v, NAPI %v, txqueuelen %d; want made with NAPI and 5000", name, ok, cfg.NAPI, cfg.TxQueueLen)
		}
	}
	d.Close()

	d = startDaemonTAP(t, dir, h, TAPConfig{})
	defer d.CloseAndRemove()
	if h.taps.Device(selfPath, "t0") == nil {
		t.Fatal("web's TAP was not opened again")
	}
	if cfg, _ := h.taps.Config(selfPath, "t0"); cfg.NAPI {
		t.Fatal("TAP t0 opened again by a daemon without NAPI: NAPI still set")
	}
}
