package daemon

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/internal/metrics"
)

// timings records what the daemon tells its Timings.
type timings struct {
	mu                 sync.Mutex
	attached, detached []time.Duration
}

func (t *timings) Attached(d time.Duration) {
	t.mu.Lock()
	t.attached = append(t.attached, d)
	t.mu.Unlock()
}
func (t *timings) Detached(d time.Duration) {
	t.mu.Lock()
	t.detached = append(t.detached, d)
	t.mu.Unlock()
}

func (t *timings) counts() (int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.attached), len(t.detached)
}

func snapshotPort(s metrics.Snapshot, name string) (metrics.Port, bool) {
	i := slices.IndexFunc(s.Ports, func(p metrics.Port) bool { return p.Name == name })
	if i < 0 {
		return metrics.Port{}, false
	}
	return s.Ports[i], true
}

// The snapshot has every port with its kind and network, every network's
// table, and counters that move; a detached port is gone from the next
// one. Successful attaches and detaches are timed, failed ones not.
func TestMetricsSnapshot(t *testing.T) {
	h := newFakeHost()
	tm := &timings{}
	d, err := newDaemon(Config{StateDir: t.TempDir(), TAPs: h.taps, Queues: 1, Timings: tm,
		Logger: slog.New(slog.DiscardHandler)}, h)
	if err != nil {
		t.Fatalf("newDaemon() = %v", err)
	}
	defer d.CloseAndRemove()
	frontNet(t, d)
	for _, name := range []string{"web", "api"} {
		if _, err := attach(d, name, "m"+name); err != nil {
			t.Fatalf("Attach(%s) = %v", name, err)
		}
	}
	if _, err := attach(d, "web", "mweb2"); err == nil {
		t.Fatal("a second port named web was attached")
	}
	if a, dt := tm.counts(); a != 2 || dt != 0 {
		t.Fatalf("timed %d attaches and %d detaches, want 2 and 0 (failures are not timed)", a, dt)
	}

	s, err := d.MetricsSnapshot(context.Background())
	if err != nil {
		t.Fatalf("MetricsSnapshot() = %v", err)
	}
	var kinds []string
	for _, p := range s.Ports {
		kinds = append(kinds, p.Network+"/"+p.Name+"/"+p.Kind)
	}
	slices.Sort(kinds)
	for _, k := range []string{"front/web/container", "front/api/container"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("snapshot ports %v lack %s", kinds, k)
		}
	}
	gateways := 0
	for _, p := range s.Ports {
		if p.Kind == api.KindGateway {
			gateways++
		}
	}
	if gateways != 2 || len(s.Ports) != 4 {
		t.Errorf("snapshot ports %v: want 2 containers and the 2 networks' gateways", kinds)
	}
	var nets []string
	for _, n := range s.Networks {
		nets = append(nets, n.Name)
		if n.FDBLimit <= 0 {
			t.Errorf("network %s: FDB limit %d", n.Name, n.FDBLimit)
		}
	}
	slices.Sort(nets)
	if !slices.Equal(nets, []string{"default", "front"}) {
		t.Errorf("snapshot networks %v, want default and front", nets)
	}
	if s.Restore.Duration <= 0 || s.FDBudget.Limit <= 0 {
		t.Errorf("restore %+v, descriptor budget %+v: want a duration and a limit", s.Restore, s.FDBudget)
	}

	// From web, a frame with a source MAC not its own (dropped by port
	// security) and an IPv4 packet to api (forwarded).
	dev, apiDev := h.taps.Device(d.pinPath("web"), "mweb"), h.taps.Device(d.pinPath("api"), "mapi")
	if dev == nil || apiDev == nil {
		t.Fatal("no TAP mweb or mapi")
	}
	spoofed := make([]byte, device.VnetHdrLen+60)
	copy(spoofed[device.VnetHdrLen:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00})
	ip4 := make([]byte, device.VnetHdrLen+60)
	e := ip4[device.VnetHdrLen:]
	copy(e[0:6], apiDev.MAC())
	copy(e[6:12], dev.MAC())
	copy(e[12:], []byte{0x08, 0x00, 0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 250, 7, 2, 10, 250, 7, 3})
	for _, f := range [][]byte{spoofed, ip4} {
		if err := dev.Send(0, f); err != nil {
			t.Fatal(err)
		}
	}
	var web, apiPort metrics.Port
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s, _ = d.MetricsSnapshot(context.Background())
		web, _ = snapshotPort(s, "web")
		if apiPort, _ = snapshotPort(s, "api"); apiPort.Stats.TxFrames > 0 && web.Stats.Drops["src_mac"] > 0 {
			break
		}
	}
	if web.Stats.RxFrames != 1 || web.Stats.RxBytes != 60 || web.Stats.Drops["src_mac"] != 1 || apiPort.Stats.TxFrames != 1 || apiPort.Stats.TxBytes != 60 {
		t.Fatalf("web: rx %d frames %d bytes, drops %v; api: tx %d frames %d bytes; want rx 1 of 60 bytes, src_mac 1, tx 1 of 60 bytes",
			web.Stats.RxFrames, web.Stats.RxBytes, web.Stats.Drops, apiPort.Stats.TxFrames, apiPort.Stats.TxBytes)
	}
	if front := s.Networks[slices.IndexFunc(s.Networks, func(n metrics.Network) bool { return n.Name == "front" })]; front.FDBEntries != 1 || front.FDB.Learned != 1 {
		t.Errorf("front's table: %d entries, %d learned; want web's MAC", front.FDBEntries, front.FDB.Learned)
	}

	if err := d.Detach(context.Background(), "web"); err != nil {
		t.Fatalf("Detach(web) = %v", err)
	}
	if a, dt := tm.counts(); a != 2 || dt != 1 {
		t.Fatalf("timed %d attaches and %d detaches, want 2 and 1", a, dt)
	}
	s, _ = d.MetricsSnapshot(context.Background())
	if _, ok := snapshotPort(s, "web"); ok {
		t.Fatal("a detached port is still in the snapshot")
	}

	// While a change holds the lock, a snapshot waits no longer than
	// its context.
	d.mu.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err = d.MetricsSnapshot(ctx)
	cancel()
	d.mu.Unlock()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("MetricsSnapshot() with the lock held = %v, want the context's deadline", err)
	}
}
