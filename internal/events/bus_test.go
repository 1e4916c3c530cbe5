package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// clock is a fake time that moves a millisecond per reading.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func newTestBus() (*Bus, *clock) {
	c := &clock{t: time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)}
	return newBus(c.now), c
}

func attach(port string) api.Event {
	return api.Event{Type: api.EventPortAttach, Port: port, Network: "default"}
}

// next reads one event, failing t if none is there at once.
func next(t *testing.T, s *Subscription) api.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next() = %v, want an event", err)
	}
	return ev
}

func TestRingKeepsTheLast(t *testing.T) {
	b, _ := newTestBus()
	for i := range RingSize + 10 {
		b.Publish(attach(fmt.Sprint("p", i)))
	}
	kept, evicted := b.Len()
	if kept != RingSize || evicted != 10 {
		t.Fatalf("Len() = %d, %d; want %d, 10", kept, evicted, RingSize)
	}
	s, err := b.Subscribe(api.EventsQuery{Since: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ev := next(t, s); ev.Type != api.EventLost || ev.Reason != "history" {
		t.Fatalf("first event of a replay reaching before the ring = %+v, want an events.lost notice (history)", ev)
	}
	for i := 10; i < RingSize+10; i++ {
		ev := next(t, s)
		if want := fmt.Sprint("p", i); ev.Port != want || ev.Seq != uint64(i+1) {
			t.Fatalf("replayed event = %s seq %d, want %s seq %d", ev.Port, ev.Seq, want, i+1)
		}
	}
}

func TestSinceReplaysFromThen(t *testing.T) {
	b, _ := newTestBus()
	b.Publish(attach("old"))
	b.Publish(attach("a"))
	kept := b.pastLocked()
	since := kept[1].Time
	b.Publish(api.Event{Type: api.EventPortDetach, Port: "a"})

	s, err := b.Subscribe(api.EventsQuery{Since: since})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b.Publish(attach("new"))
	var got []string
	for range 3 {
		ev := next(t, s)
		got = append(got, string(ev.Type)+" "+ev.Port)
	}
	want := []string{"port.attach a", "port.detach a", "port.attach new"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events since %v = %q, want %q", since, got, want)
	}
}

func TestNoSinceOnlyNew(t *testing.T) {
	b, _ := newTestBus()
	b.Publish(attach("old"))
	s, err := b.Subscribe(api.EventsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b.Publish(attach("new"))
	if ev := next(t, s); ev.Port != "new" {
		t.Fatalf("first event = %q, want the one published after subscribing", ev.Port)
	}
}

func TestSlowSubscriberLosesAndIsTold(t *testing.T) {
	b, _ := newTestBus()
	s, err := b.Subscribe(api.EventsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const extra = 100
	done := make(chan struct{})
	go func() {
		// Publishing never waits for the reader, who reads nothing yet.
		for i := range SubscriberBuffer + extra {
			b.Publish(attach(fmt.Sprint("p", i)))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	for i := range SubscriberBuffer {
		if ev := next(t, s); ev.Port != fmt.Sprint("p", i) {
			t.Fatalf("event %d = %q", i, ev.Port)
		}
	}
	// What comes next says what was lost, before the next event.
	b.Publish(attach("after"))
	ev := next(t, s)
	if ev.Type != api.EventLost || ev.Reason != "slow" || ev.Counts["events"] != extra {
		t.Fatalf("after the buffer: %+v, want events.lost slow with %d events", ev, extra)
	}
	if ev := next(t, s); ev.Port != "after" {
		t.Fatalf("after the notice: %q, want the next event", ev.Port)
	}
}

func TestLostAtTheEndIsTold(t *testing.T) {
	b, _ := newTestBus()
	s, err := b.Subscribe(api.EventsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range SubscriberBuffer + 5 {
		b.Publish(attach(fmt.Sprint("p", i)))
	}
	b.EndAll()
	for range SubscriberBuffer {
		next(t, s)
	}
	if ev := next(t, s); ev.Type != api.EventLost || ev.Counts["events"] != 5 {
		t.Fatalf("at the end: %+v, want events.lost with 5", ev)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("Next() after the end = %v, want io.EOF", err)
	}
}

func TestFilter(t *testing.T) {
	for _, tt := range []struct {
		name string
		q    api.EventsQuery
		ev   api.Event
		want bool
	}{
		{"none", api.EventsQuery{}, attach("a"), true},
		{"type", api.EventsQuery{Types: []string{"port.attach"}}, attach("a"), true},
		{"other type", api.EventsQuery{Types: []string{"port.detach"}}, attach("a"), false},
		{"family", api.EventsQuery{Types: []string{"port"}}, attach("a"), true},
		{"other family", api.EventsQuery{Types: []string{"network"}}, attach("a"), false},
		{"types or'ed", api.EventsQuery{Types: []string{"network", "port.attach"}}, attach("a"), true},
		{"port", api.EventsQuery{Ports: []string{"a"}}, attach("a"), true},
		{"other port", api.EventsQuery{Ports: []string{"b"}}, attach("a"), false},
		{"fields and'ed", api.EventsQuery{Types: []string{"port"}, Networks: []string{"front"}}, attach("a"), false},
		{"notice always", api.EventsQuery{Ports: []string{"b"}}, api.Event{Type: api.EventLost}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFilter(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Match(&tt.ev); got != tt.want {
				t.Errorf("Match(%+v) with %+v = %v, want %v", tt.ev, tt.q, got, tt.want)
			}
		})
	}
	if _, err := NewFilter(api.EventsQuery{Types: []string{"port.atach"}}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("NewFilter(port.atach) = %v, want ErrInvalid", err)
	}
}

func TestFilteredSubscriberLosesNothingOfOthers(t *testing.T) {
	b, _ := newTestBus()
	s, err := b.Subscribe(api.EventsQuery{Types: []string{"network"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 2 * SubscriberBuffer {
		b.Publish(attach("a"))
	}
	b.Publish(api.Event{Type: api.EventNetworkCreate, Network: "n"})
	if ev := next(t, s); ev.Type != api.EventNetworkCreate {
		t.Fatalf("first event = %+v, want network.create and no loss", ev)
	}
}

func TestUntilEnds(t *testing.T) {
	b, c := newTestBus()
	b.Publish(attach("a"))
	since := b.pastLocked()[0].Time
	until := c.now()
	b.Publish(attach("late"))
	s, err := b.Subscribe(api.EventsQuery{Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, s); ev.Port != "a" {
		t.Fatalf("replay = %q, want a", ev.Port)
	}
	// "late" is past until, in the replay's ring; the clock passed until.
	if ev, err := s.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("Next() past until = %+v, %v; want io.EOF", ev, err)
	}
	if b.Subscribers() != 0 {
		t.Errorf("Subscribers() = %d after the stream ended, want 0", b.Subscribers())
	}
}

func TestEndAllAndLimit(t *testing.T) {
	b, _ := newTestBus()
	var subs []*Subscription
	for range MaxSubscribers {
		s, err := b.Subscribe(api.EventsQuery{})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	if _, err := b.Subscribe(api.EventsQuery{}); !errors.Is(err, ErrTooMany) || api.ReasonOf(err) != api.ReasonTooManyStreams {
		t.Fatalf("Subscribe() past the limit = %v, want ErrTooMany", err)
	}
	b.Publish(attach("last"))
	b.EndAll()
	for _, s := range subs {
		if ev := next(t, s); ev.Port != "last" {
			t.Fatalf("buffered before the end = %q, want last", ev.Port)
		}
		if _, err := s.Next(context.Background()); !errors.Is(err, io.EOF) {
			t.Fatalf("Next() after EndAll = %v, want io.EOF", err)
		}
		s.Close()
	}
	if _, err := b.Subscribe(api.EventsQuery{}); err != nil {
		t.Fatalf("Subscribe() after EndAll = %v, want a new stream", err)
	}
}

func TestNextHonoursContext(t *testing.T) {
	b, _ := newTestBus()
	s, err := b.Subscribe(api.EventsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next(cancelled) = %v, want context.Canceled", err)
	}
}

func BenchmarkPublish(b *testing.B) {
	bus := New()
	subs := make([]*Subscription, 4)
	for i := range subs {
		subs[i], _ = bus.Subscribe(api.EventsQuery{})
	}
	ev := attach("a")
	b.ReportAllocs()
	for b.Loop() {
		bus.Publish(ev)
	}
}
