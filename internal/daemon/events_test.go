package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/events"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// eventsOf reads the events of s until want of them have come, or a
// second has passed without one.
func eventsOf(t *testing.T, s *events.Subscription, want int) []api.Event {
	t.Helper()
	var out []api.Event
	for len(out) < want {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ev, err := s.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d events: Next() = %v", len(out), err)
		}
		out = append(out, ev)
	}
	return out
}

func summary(evs []api.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = string(ev.Type) + " " + ev.Port + "@" + ev.Network
		if ev.Reason != "" {
			out[i] += " " + ev.Reason
		}
	}
	return out
}

func TestEventsOfChanges(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	s, err := d.SubscribeEvents(api.EventsQuery{Since: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	frontNet(t, d)
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatal(err)
	}
	limit := 8
	if _, err := d.UpdatePort(ctx, "web", api.PortUpdateRequest{MACLimit: &limit}); err != nil {
		t.Fatal(err)
	}
	if _, err := attach(d, "api", "t1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Detach(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveNetwork(ctx, "front", true); err != nil {
		t.Fatal(err)
	}
	evs := eventsOf(t, s, 9)
	want := []string{
		"network.create @default",
		"daemon.start @",
		"network.create @front",
		"port.attach web@front",
		"port.update web@front",
		"port.attach api@front",
		"port.detach web@front",
		"port.detach api@front network_removed",
		"network.remove @front",
	}
	if got := summary(evs); !slices.Equal(got, want) {
		t.Fatalf("events:\n%q\nwant\n%q", got, want)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || ev.Time.IsZero() {
			t.Errorf("event %d: seq %d, time %v; want seq %d and a time", i, ev.Seq, ev.Time, i+1)
		}
	}
	if a := evs[3].Attrs; a["ifname"] != "t0" || a["ips"] != "10.250.7.2/24" || a["kind"] != api.KindContainer || evs[3].Netns != self {
		t.Errorf("port.attach: netns %q, attrs %v; want the namespace, ifname, address and kind", evs[3].Netns, a)
	}
	if evs[4].Attrs["mac_limit"] != "8" {
		t.Errorf("port.update: attrs %v, want mac_limit 8", evs[4].Attrs)
	}
	if c := evs[1].Counts; c["restored"] != 0 || c["networks"] != 1 {
		t.Errorf("daemon.start: counts %v, want 1 network, 0 restored", c)
	}
}

func TestEventsPortFailed(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	frontNet(t, d)
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatal(err)
	}
	s, err := d.SubscribeEvents(api.EventsQuery{Types: []string{"port.failed"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h.taps.Remove(selfPath, "t0")
	ev := eventsOf(t, s, 1)[0]
	if ev.Port != "web" || ev.Network != "front" || ev.Reason == "" || ev.Attrs["phase"] != "run" {
		t.Fatalf("port.failed = %+v, want web on front, with a reason, phase run", ev)
	}
}

func TestEventsStoppingEndsStreams(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, "", h)
	defer d.CloseAndRemove()
	s, err := d.SubscribeEvents(api.EventsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	d.Stopping(false)
	if ev := eventsOf(t, s, 1)[0]; ev.Type != api.EventDaemonStop {
		t.Fatalf("last event = %+v, want daemon.stop", ev)
	}
	if _, err := s.Next(context.Background()); err == nil {
		t.Fatal("the stream goes on after Stopping")
	}
}

func TestToldRise(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)
	var c told
	steps := []struct {
		n     uint64
		after time.Duration
		want  string
	}{
		{0, 0, "-"},
		{5, time.Second, "5"},                                // the first at once
		{900, 2 * time.Second, "-"},                          // within the interval: held
		{1000, 3 * time.Second, "-"},                         // still
		{1000, time.Second + api.EventDropInterval, "995"},   // the count since the last told
		{1000, 2*time.Second + api.EventDropInterval, "-"},   // no rise
		{1001, 3*time.Second + 2*api.EventDropInterval, "1"}, // a rise after the interval
	}
	for i, st := range steps {
		got := "-"
		if d, ok := c.rise(st.n, t0.Add(st.after)); ok {
			got = fmt.Sprint(d)
		}
		if got != st.want {
			t.Errorf("step %d: rise(%d) = %s, want %s", i, st.n, got, st.want)
		}
	}
}

func TestEventsRequestDropped(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, "", h)
	defer d.CloseAndRemove()
	s, err := d.SubscribeEvents(api.EventsQuery{Types: []string{"request"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 3 {
		if _, err := d.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "front", Subnet: "10.250.7.0/24"}); err == nil {
			t.Fatal("CreateNetwork() of a client gone = nil, want not carried out")
		}
	}
	if ev := eventsOf(t, s, 1)[0]; ev.Type != api.EventRequestDropped || ev.Counts["requests"] != 3 {
		t.Fatalf("event = %+v, want request.dropped with 3 requests", ev)
	}
}

// BenchmarkWatchDrops is one tick of the watcher over 200 ports: what
// the events of drops cost the daemon a second.
func BenchmarkWatchDrops(b *testing.B) {
	h := newFakeHost()
	d, err := newDaemon(Config{TAPs: h.taps, Queues: 1, DNSUpstreams: []netip.AddrPort{}, Logger: slog.New(slog.DiscardHandler)}, h)
	if err != nil {
		b.Fatal(err)
	}
	defer d.CloseAndRemove()
	if _, err := d.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "front", Subnet: "10.250.0.0/16"}); err != nil {
		b.Fatal(err)
	}
	for i := range 200 {
		if _, err := attach(d, fmt.Sprintf("p%d", i), fmt.Sprintf("t%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	w := dropWatch{ports: make(map[*vswitch.Port]map[string]*told), published: make(map[string]*told)}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		d.watchDrops(&w, now)
		d.watchPublished(&w, now)
	}
}
