package daemon

import (
	"strconv"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/events"
	"github.com/tapswitch/tapswitch/internal/version"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// SubscribeEvents implements apiserver.EventSource.
func (d *Daemon) SubscribeEvents(q api.EventsQuery) (*events.Subscription, error) {
	return d.events.Subscribe(q)
}

// Events is the daemon's event bus.
func (d *Daemon) Events() *events.Bus { return d.events }

// portEvent is an event of type t about p.
func portEvent(t api.EventType, p *port) api.Event {
	ev := api.Event{Type: t, Port: p.name(), Network: p.net.name, Netns: p.state.Request.Netns,
		Attrs: map[string]string{"kind": p.kind}}
	if p.sw == nil {
		return ev
	}
	info := p.sw.Info()
	ev.Attrs["ifname"] = info.Ifname
	if info.MAC != nil {
		ev.Attrs["mac"] = info.MAC.String()
	}
	if len(info.IPs) > 0 {
		ips := make([]string, len(info.IPs))
		for i, ip := range info.IPs {
			ips[i] = ip.String()
		}
		ev.Attrs["ips"] = strings.Join(ips, ",")
	}
	return ev
}

// updateAttrs are the changes of a port update, as event attributes.
func updateAttrs(req api.PortUpdateRequest) map[string]string {
	out := make(map[string]string)
	if req.PortSecurity != nil {
		out["port_security"] = strconv.FormatBool(*req.PortSecurity)
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"mac_limit", req.MACLimit}, {"storm_broadcast", req.StormBroadcast}, {"storm_multicast", req.StormMulticast}, {"storm_unknown", req.StormUnknown}} {
		if f.v != nil {
			out[f.name] = strconv.Itoa(*f.v)
		}
	}
	return out
}

// startEvent is the daemon.start event of a daemon New has just made.
func (d *Daemon) startEvent() api.Event {
	ev := api.Event{Type: api.EventDaemonStart,
		Counts: map[string]int64{"networks": int64(len(d.nets)), "restored": int64(d.restored), "dropped": int64(d.dropped),
			"ms": d.ready.Milliseconds()},
		Attrs: map[string]string{"version": version.String()}}
	if d.inherited.taps > 0 {
		ev.Counts["taps_handed_over"] = int64(d.inherited.taps)
	}
	return ev
}

// Stopping tells the event streams that the daemon stops (remove: and
// removes its ports) and ends them, so that the API's graceful stop
// does not wait for them. tapswitchd calls it before it stops the API.
func (d *Daemon) Stopping(remove bool) {
	d.events.Publish(api.Event{Type: api.EventDaemonStop, Attrs: map[string]string{"remove": strconv.FormatBool(remove)}})
	d.events.EndAll()
}

// HandingOver tells the event streams that the daemon hands over to the
// process successorPID and ends them, as Stopping. Events are not handed
// over: the successor's stream begins with its own daemon.start.
func (d *Daemon) HandingOver(successorPID int) {
	d.events.Publish(api.Event{Type: api.EventDaemonHandover, Counts: map[string]int64{"successor_pid": int64(successorPID)}})
	d.events.EndAll()
}

// eventWatchInterval is how often the drop counters are read for
// events: the first drop of a kind is told within this, the data path
// paying nothing for it (the counters are kept anyway).
const eventWatchInterval = time.Second

// dropEvents maps the drop reasons told as events to their event type.
var dropEvents = map[string]api.EventType{
	"mac_limit": api.EventPortMACLimit,
	"fdb_full":  api.EventPortFDBFull,
	"storm":     api.EventPortStorm,
	"src_mac":   api.EventPortSecurity,
	"arp_spoof": api.EventPortSecurity,
	"ip_spoof":  api.EventPortSecurity,
	"nd_spoof":  api.EventPortSecurity,
	"ra_guard":  api.EventPortSecurity,
}

// told is what the watcher last told of one counter: its value and when.
type told struct {
	n  uint64
	at time.Time
}

// dropWatch is the watcher's memory, by port and reason, and by
// published port and reason.
type dropWatch struct {
	ports     map[*vswitch.Port]map[string]*told
	published map[string]*told
}

// startEventWatch starts the goroutine that turns counters into events.
func (d *Daemon) startEventWatch() {
	d.stopEvents, d.eventsDone = make(chan struct{}), make(chan struct{})
	go d.watchCounters()
}

// stopEventWatch stops it, if it runs.
func (d *Daemon) stopEventWatch() {
	if d.stopEvents == nil {
		return
	}
	close(d.stopEvents)
	<-d.eventsDone
	d.stopEvents = nil
}

// watchCounters reads, once per eventWatchInterval, the drop counters of
// every port, the refusals of every published port and the count of
// dropped requests, and tells a rise
// as an event: at once the first time, then at most once per
// api.EventDropInterval per port (or published port) and reason, with
// the count since the last time told.
func (d *Daemon) watchCounters() {
	defer close(d.eventsDone)
	t := time.NewTicker(eventWatchInterval)
	defer t.Stop()
	w := dropWatch{ports: make(map[*vswitch.Port]map[string]*told), published: make(map[string]*told)}
	var requests told
	for {
		select {
		case <-d.stopEvents:
			return
		case now := <-t.C:
			d.watchDrops(&w, now)
			d.watchPublished(&w, now)
			if n, ok := requests.rise(d.requestsDropped.Load(), now); ok {
				d.events.Publish(api.Event{Type: api.EventRequestDropped, Counts: map[string]int64{"requests": int64(n)}})
			}
		}
	}
}

// rise reports whether a counter now at n should be told, and how much it
// rose since it was last; it records the telling.
func (t *told) rise(n uint64, now time.Time) (uint64, bool) {
	if n <= t.n || (!t.at.IsZero() && now.Sub(t.at) < api.EventDropInterval) {
		return 0, false
	}
	d := n - t.n
	t.n, t.at = n, now
	return d, true
}

func (d *Daemon) watchDrops(w *dropWatch, now time.Time) {
	ports := d.sw.Ports()
	seen := make(map[*vswitch.Port]bool, len(ports))
	for _, sp := range ports {
		seen[sp] = true
		drops := sp.Counters().Drops
		if len(drops) == 0 {
			continue
		}
		m := w.ports[sp]
		for reason, n := range drops {
			typ, ok := dropEvents[reason]
			if !ok {
				continue
			}
			if m == nil {
				m = make(map[string]*told)
				w.ports[sp] = m
			}
			t := m[reason]
			if t == nil {
				t = &told{}
				m[reason] = t
			}
			rose, ok := t.rise(n, now)
			if !ok {
				continue
			}
			ev := api.Event{Type: typ, Port: sp.Name(), Network: sp.Network().Name(), Netns: sp.Info().Netns,
				Reason: reason, Counts: map[string]int64{"drops": int64(rose)}}
			if typ == api.EventPortMACLimit {
				ev.Counts["limit"] = int64(sp.MACLimit())
			}
			d.events.Publish(ev)
		}
	}
	for sp := range w.ports {
		if !seen[sp] {
			delete(w.ports, sp)
		}
	}
}

func (d *Daemon) watchPublished(w *dropWatch, now time.Time) {
	type refusal struct {
		port, network, netns, publish, reason string
		n                                     uint64
	}
	var rs []refusal
	d.mu.Lock()
	for _, p := range d.ports {
		for _, px := range p.proxies {
			v := publishedView(px)
			for reason, n := range v.Refused {
				rs = append(rs, refusal{p.name(), p.net.name, p.state.Request.Netns, v.Publish, reason, n})
			}
		}
	}
	d.mu.Unlock()
	seen := make(map[string]bool, len(rs))
	for _, r := range rs {
		key := r.port + " " + r.publish + " " + r.reason
		seen[key] = true
		t := w.published[key]
		if t == nil {
			t = &told{}
			w.published[key] = t
		}
		rose, ok := t.rise(r.n, now)
		if !ok {
			continue
		}
		d.events.Publish(api.Event{Type: api.EventPublishedRefused, Port: r.port, Network: r.network, Netns: r.netns,
			Reason: r.reason, Attrs: map[string]string{"publish": r.publish}, Counts: map[string]int64{"refused": int64(rose)}})
	}
	for k := range w.published {
		if !seen[k] {
			delete(w.published, k)
		}
	}
}

// failedEvent is the port.failed event of p, whose device failed with
// err during phase ("run" or "restore").
func failedEvent(p *port, err error, phase string) api.Event {
	ev := api.Event{Type: api.EventPortFailed, Port: p.name(), Network: p.net.name, Netns: p.state.Request.Netns,
		Attrs: map[string]string{"kind": p.kind, "phase": phase}}
	if err != nil {
		ev.Reason = err.Error()
		if c := failCause(err); c != "" {
			ev.Attrs["cause"] = c
		}
	}
	return ev
}
