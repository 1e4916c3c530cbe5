// Package events holds the daemon's event bus: what happened (a port
// attached, a network removed, a MAC limit hit), kept in a bounded ring
// for replay and fanned out to the readers of GET /v1/events.
//
// Publishing never waits for a reader. Each subscription has a bounded
// buffer; a reader that falls behind loses the events that do not fit,
// and its stream says how many, where they were (an api.EventLost
// notice). The control plane publishes; the data plane never does: what
// it counts (drops by reason) is turned into events by a ticker of the
// daemon reading the counters, off the forwarding path.
package events

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// Bounds of the bus.
const (
	// RingSize is how many past events the bus keeps for replay
	// (since). An attach or a detach is one event, so 1,024 cover a few
	// hundred container starts and stops, and a restart of a daemon
	// with hundreds of ports; at about 200 bytes an event, 200 KiB.
	RingSize = 1024
	// SubscriberBuffer is how many events wait for a reader that has
	// not taken them: a burst such as a network removed with its ports
	// (one event a port) or a storm of attaches fits; beyond it, a
	// reader that does not keep up loses events rather than hold the
	// daemon or its memory.
	SubscriberBuffer = 256
	// MaxSubscribers bounds the open streams: each holds an API
	// connection for as long as it lasts, and the API serves 64 at once;
	// half of them are left for everything else.
	MaxSubscribers = 32
)

// ErrTooMany is returned by Subscribe when MaxSubscribers streams are open.
var ErrTooMany = api.Errorf(api.ErrConflict, api.ReasonTooManyStreams,
	"events: %d event streams are open, the most the daemon serves at once; stop one (tapswitch events or top) and try again", MaxSubscribers)

// Bus is the daemon's event bus. Its zero value is not usable; use New.
type Bus struct {
	// now is time.Now, or a fake clock in tests.
	now func() time.Time

	// mu guards everything below; Publish holds it for a copy and a
	// non-blocking send per subscriber.
	mu  sync.Mutex
	seq uint64
	// ring holds the last RingSize events, oldest at head once full.
	ring []api.Event
	head int
	// evicted counts events pushed out of the ring.
	evicted uint64
	subs    map[*Subscription]struct{}
}

// New returns an empty bus.
func New() *Bus { return newBus(time.Now) }

func newBus(now func() time.Time) *Bus {
	return &Bus{now: now, ring: make([]api.Event, 0, RingSize), subs: make(map[*Subscription]struct{})}
}

// Publish numbers ev, stamps it with the time (unless it has one), keeps
// it in the ring and hands it to every subscription it matches, without
// waiting for any; a nil Bus drops it. ev's maps must not be changed afterwards.
func (b *Bus) Publish(ev api.Event) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev.Seq = b.seq
	if ev.Time.IsZero() {
		ev.Time = b.now()
	}
	if len(b.ring) < RingSize {
		b.ring = append(b.ring, ev)
	} else {
		b.ring[b.head] = ev
		b.head = (b.head + 1) % RingSize
		b.evicted++
	}
	for s := range b.subs {
		if s.f.Match(&ev) {
			s.send(ev)
		}
	}
}

// pastLocked returns the kept events in order, oldest first.
func (b *Bus) pastLocked() []api.Event {
	out := make([]api.Event, 0, len(b.ring))
	out = append(out, b.ring[b.head:]...)
	return append(out, b.ring[:b.head]...)
}

// Len reports how many events the ring holds and how many it has let go.
func (b *Bus) Len() (kept int, evicted uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ring), b.evicted
}

// Subscribe opens a stream of the events q selects: the kept ones from
// q.Since first (if set), then new ones as they are published, until
// q.Until (if set), Close, or EndAll. A query with unknown types is
// refused (ErrInvalid), as is one past MaxSubscribers (ErrTooMany).
func (b *Bus) Subscribe(q api.EventsQuery) (*Subscription, error) {
	f, err := NewFilter(q)
	if err != nil {
		return nil, err
	}
	s := &Subscription{b: b, f: f, until: q.Until, ch: make(chan item, SubscriberBuffer), ended: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) >= MaxSubscribers {
		return nil, ErrTooMany
	}
	if !q.Since.IsZero() {
		past := b.pastLocked()
		if b.evicted > 0 && len(past) > 0 && q.Since.Before(past[0].Time) {
			s.replay = append(s.replay, api.Event{Time: b.now(), Type: api.EventLost, Reason: "history",
				Attrs:  map[string]string{"oldest": past[0].Time.Format(time.RFC3339Nano)},
				Counts: map[string]int64{"evicted": int64(b.evicted)}})
		}
		for _, ev := range past {
			if !ev.Time.Before(q.Since) && (q.Until.IsZero() || !ev.Time.After(q.Until)) && s.f.Match(&ev) {
				s.replay = append(s.replay, ev)
			}
		}
	}
	b.subs[s] = struct{}{}
	return s, nil
}

// EndAll ends every open subscription: each reader gets what is buffered
// for it, then io.EOF. The bus stays usable: new subscriptions may come.
// The daemon calls it when it stops or hands over, so that the API's
// graceful stop does not wait for streams that never end.
func (b *Bus) EndAll() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		close(s.ended)
		delete(b.subs, s)
	}
}

// Subscribers is the number of open subscriptions.
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// item is one event for a subscriber, with how many it lost just before.
type item struct {
	ev         api.Event
	lostBefore uint64
}

// Subscription is one reader's stream of events.
type Subscription struct {
	b     *Bus
	f     Filter
	until time.Time
	// ch holds what was published for the reader, up to
	// SubscriberBuffer items.
	ch chan item
	// pending counts events that did not fit in ch since the last that
	// did, under b.mu.
	pending uint64
	// ended is closed by EndAll or Close.
	ended chan struct{}
	// The reader's own, touched by Next only: replay holds the past
	// events still to give, held an event that waits behind the notice
	// of what was lost before it, lost what was lost at the end.
	replay []api.Event
	held   *api.Event
	done   bool
	// closeOnce guards Close.
	closeOnce sync.Once
}

// send hands ev to s or counts it lost; b.mu is held.
func (s *Subscription) send(ev api.Event) {
	select {
	case s.ch <- item{ev: ev, lostBefore: s.pending}:
		s.pending = 0
	default:
		s.pending++
	}
}

// lostNotice says that n events were dropped from a slow reader's stream.
func (s *Subscription) lostNotice(n uint64) api.Event {
	return api.Event{Time: s.b.now(), Type: api.EventLost, Reason: "slow", Counts: map[string]int64{"events": int64(n)}}
}

// Next returns the next event of the stream, waiting for one until ctx
// ends (ctx's error) or the stream does (io.EOF: Until passed, Close or
// EndAll). Only one goroutine may call it.
func (s *Subscription) Next(ctx context.Context) (api.Event, error) {
	if s.held != nil {
		ev := *s.held
		s.held = nil
		return ev, nil
	}
	if len(s.replay) > 0 {
		ev := s.replay[0]
		s.replay = s.replay[1:]
		return ev, nil
	}
	if s.done {
		return api.Event{}, io.EOF
	}
	var timeout <-chan time.Time
	if !s.until.IsZero() {
		d := s.until.Sub(s.b.now())
		if d <= 0 {
			return s.finish()
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case it := <-s.ch:
		return s.deliver(it)
	default:
	}
	select {
	case it := <-s.ch:
		return s.deliver(it)
	case <-s.ended:
		// What was buffered before the end is still the reader's.
		select {
		case it := <-s.ch:
			return s.deliver(it)
		default:
		}
		return s.finish()
	case <-timeout:
		return s.finish()
	case <-ctx.Done():
		return api.Event{}, ctx.Err()
	}
}

func (s *Subscription) deliver(it item) (api.Event, error) {
	if !s.until.IsZero() && it.ev.Time.After(s.until) {
		return s.finish()
	}
	if it.lostBefore > 0 {
		ev := it.ev
		s.held = &ev
		return s.lostNotice(it.lostBefore), nil
	}
	return it.ev, nil
}

// finish ends the stream: the reader is told of events lost at its very
// end, then gets io.EOF.
func (s *Subscription) finish() (api.Event, error) {
	s.done = true
	s.Close()
	s.b.mu.Lock()
	n := s.pending
	s.pending = 0
	s.b.mu.Unlock()
	if n > 0 {
		return s.lostNotice(n), nil
	}
	return api.Event{}, io.EOF
}

// Close ends the subscription; the bus sends it nothing more.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		s.b.mu.Lock()
		defer s.b.mu.Unlock()
		if _, ok := s.b.subs[s]; ok {
			close(s.ended)
			delete(s.b.subs, s)
		}
	})
}

// Filter selects events by type or family, port and network. Values of
// one field are alternatives; fields must all match. The zero Filter
// matches every event.
type Filter struct {
	types, families map[api.EventType]bool
	ports, networks map[string]bool
}

// NewFilter makes the filter of q, refusing a type that is neither an
// event type nor a family of one.
func NewFilter(q api.EventsQuery) (Filter, error) {
	var f Filter
	for _, t := range q.Types {
		et := api.EventType(t)
		switch {
		case knownType(et):
			f.types = add(f.types, et)
		case knownFamily(t):
			f.families = add(f.families, et)
		default:
			return Filter{}, fmt.Errorf("%w: event type %s: not one of %s, nor a family of them (port, network, published, request, daemon)", api.ErrInvalid, strconv.Quote(t), typeList())
		}
	}
	for _, p := range q.Ports {
		f.ports = add(f.ports, p)
	}
	for _, n := range q.Networks {
		f.networks = add(f.networks, n)
	}
	return f, nil
}

func add[K comparable](m map[K]bool, k K) map[K]bool {
	if m == nil {
		m = make(map[K]bool)
	}
	m[k] = true
	return m
}

// Match reports whether f selects ev. A notice about the stream itself
// (api.EventLost) always matches.
func (f Filter) Match(ev *api.Event) bool {
	if ev.Type == api.EventLost {
		return true
	}
	if (f.types != nil || f.families != nil) && !f.types[ev.Type] && !f.families[api.EventType(ev.Type.Family())] {
		return false
	}
	if f.ports != nil && !f.ports[ev.Port] {
		return false
	}
	if f.networks != nil && !f.networks[ev.Network] {
		return false
	}
	return true
}

func knownType(t api.EventType) bool {
	for _, k := range api.EventTypes {
		if k == t {
			return true
		}
	}
	return false
}

func knownFamily(f string) bool {
	for _, k := range api.EventTypes {
		if k.Family() == f {
			return true
		}
	}
	return false
}

func typeList() string {
	out := ""
	for i, t := range api.EventTypes {
		if i > 0 {
			out += ", "
		}
		out += string(t)
	}
	return out
}
