package apiserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/events"
)

// eventsBackend is a fakeBackend with a real event bus.
type eventsBackend struct {
	*fakeBackend
	bus *events.Bus
}

func (b eventsBackend) SubscribeEvents(q api.EventsQuery) (*events.Subscription, error) {
	return b.bus.Subscribe(q)
}

// serveStrict serves b as tapswitchd does, with short read and write
// time-outs, which a stream must outlive.
func serveStrict(t *testing.T, b Backend, timeout time.Duration) *api.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(b, nil), ReadTimeout: timeout, WriteTimeout: timeout}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return api.NewClient(sock)
}

func TestEventsStream(t *testing.T) {
	bus := events.New()
	c := serveStrict(t, eventsBackend{&fakeBackend{}, bus}, 100*time.Millisecond)
	bus.Publish(api.Event{Type: api.EventPortAttach, Port: "before"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.Events(ctx, api.EventsQuery{Since: time.Now().Add(-time.Hour), Types: []string{"port"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ev, err := s.Next(); err != nil || ev.Port != "before" {
		t.Fatalf("Next() = %+v, %v; want the replayed port.attach before", ev, err)
	}
	// Past the server's read and write time-outs, the stream goes on.
	time.Sleep(300 * time.Millisecond)
	bus.Publish(api.Event{Type: api.EventNetworkCreate, Network: "filtered-out"})
	bus.Publish(api.Event{Type: api.EventPortDetach, Port: "after"})
	if ev, err := s.Next(); err != nil || ev.Type != api.EventPortDetach || ev.Port != "after" || ev.Seq != 3 {
		t.Fatalf("Next() = %+v, %v; want port.detach after (seq 3), the network event filtered out", ev, err)
	}
	bus.EndAll()
	if ev, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next() after EndAll = %+v, %v; want io.EOF", ev, err)
	}
}

func TestEventsRefused(t *testing.T) {
	bus := events.New()
	c := serve(t, eventsBackend{&fakeBackend{}, bus})
	for _, path := range []string{
		"/v1/events?type=port.atach",
		"/v1/events?colour=red",
		"/v1/events?since=yesterday",
		"/v1/events?since=2026-12-06T15:00:00Z&until=2026-12-06T14:00:00Z",
		"/v1/events?until=2001-01-01T00:00:00Z",
		"/v1/events?port=" + url.QueryEscape("bad name"),
	} {
		if code, e := request(t, c, http.MethodGet, path, ""); code != http.StatusBadRequest || e.Message == "" {
			t.Errorf("GET %s = %d %q, want 400 with a message", path, code, e.Message)
		}
	}
	if code, _ := request(t, serve(t, &fakeBackend{}), http.MethodGet, "/v1/events", ""); code != http.StatusNotFound {
		t.Errorf("GET /v1/events of a backend without events = %d, want 404", code)
	}
}

func TestEventsTooMany(t *testing.T) {
	bus := events.New()
	for range events.MaxSubscribers {
		s, err := bus.Subscribe(api.EventsQuery{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	}
	c := serve(t, eventsBackend{&fakeBackend{}, bus})
	_, err := c.Events(context.Background(), api.EventsQuery{})
	if !errors.Is(err, api.ErrConflict) || api.ReasonOf(err) != api.ReasonTooManyStreams {
		t.Fatalf("Events() past the limit = %v, want 409 %s", err, api.ReasonTooManyStreams)
	}
}

func TestParseEventTime(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"2026-12-06T15:04:05Z", time.Date(2026, 12, 6, 15, 4, 5, 0, time.UTC)},
		{"2026-12-06T15:04:05.5+01:00", time.Date(2026, 12, 6, 14, 4, 5, 5e8, time.UTC)},
		{"1796569445", time.Unix(1796569445, 0)},
		{"1796569445.25", time.Unix(1796569445, 25e7)},
	} {
		got, err := ParseEventTime(tt.in)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseEventTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "now", "-5", "1.", ".5", "12345678901234567890", "1e9"} {
		if _, err := ParseEventTime(bad); err == nil {
			t.Errorf("ParseEventTime(%q) accepted", bad)
		}
	}
}

func FuzzParseEventsQuery(f *testing.F) {
	for _, s := range []string{"", "since=1796569445.5&type=port", "type=port.attach&type=network&port=web&network=front",
		"until=2026-12-06T15:04:05Z&since=2026-12-06T15:00:00Z", "since=%ff", "type=&port=", "x=1"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseEventsQuery(v, now)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("ParseEventsQuery(%q) = %v, want an ErrInvalid", raw, err)
			}
			return
		}
		if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
			t.Fatalf("ParseEventsQuery(%q) accepted until %v before since %v", raw, q.Until, q.Since)
		}
		if _, err := events.NewFilter(q); err != nil {
			t.Fatalf("ParseEventsQuery(%q) accepted a query the bus refuses: %v", raw, err)
		}
	})
}
