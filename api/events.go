package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Event is one thing that happened in the daemon, as GET /v1/events
// streams it: one JSON object a line.
type Event struct {
	// Seq numbers the daemon's events from 1, in the order they
	// happened; it starts again with every daemon process. Notices about
	// the stream itself (EventLost) have 0.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Type EventType `json:"type"`
	// Port, Network and Netns name what the event is about, where it is
	// about one.
	Port    string `json:"port,omitempty"`
	Network string `json:"network,omitempty"`
	Netns   string `json:"netns,omitempty"`
	// Reason says why, in a word or a sentence: a drop reason
	// ("mac_limit"), the cause of a port's failure.
	Reason string `json:"reason,omitempty"`
	// Counts are the event's figures by name (see each EventType).
	Counts map[string]int64 `json:"counts,omitempty"`
	// Attrs are the event's other details by name (see each EventType).
	Attrs map[string]string `json:"attrs,omitempty"`
}

// EventType names a kind of event: its family ("port", "network",
// "published", "request", "daemon", "events") and what happened, joined by a dot.
type EventType string

// The event types. New ones may be added; a client must pass over one it
// does not know.
const (
	// EventPortAttach: a namespace was attached. Attrs: kind, ifname,
	// mac, ips.
	EventPortAttach EventType = "port.attach"
	// EventPortConnect: an attached port's namespace got a port on
	// another network. Attrs as EventPortAttach, and from (the port it
	// joined).
	EventPortConnect EventType = "port.connect"
	// EventPortDetach: a port was detached; Reason "network_removed"
	// when its network was removed with force.
	EventPortDetach EventType = "port.detach"
	// EventPortUpdate: a port's policy changed. Attrs: what changed
	// (port_security, mac_limit, storm_broadcast, ...).
	EventPortUpdate EventType = "port.update"
	// EventPortFailed: a port's TAP or namespace went from under it
	// (deleted from outside while the daemon ran, or gone when it
	// restored its state), and the port is no more; Reason says how.
	// Attrs: kind ("gateway": the network lost its gateway, which
	// stays broken until the network is made again), phase ("run" or
	// "restore").
	EventPortFailed EventType = "port.failed"
	// EventPortMACLimit: a port sent from new source MACs beyond its
	// MAC limit, and those frames were dropped. Counts: drops (since the
	// last such event of the port), limit. At most one per port per
	// EventDropInterval.
	EventPortMACLimit EventType = "port.mac_limit"
	// EventPortFDBFull: as EventPortMACLimit, for new source MACs while
	// the network's table was full. Counts: drops.
	EventPortFDBFull EventType = "port.fdb_full"
	// EventPortStorm: frames over the port's storm control rates were
	// dropped. Counts: drops.
	EventPortStorm EventType = "port.storm"
	// EventPortSecurity: frames port security refused (spoofed source
	// MAC, ARP, IP or neighbour advertisement, router advertisement)
	// were dropped; Reason is the drop reason. Counts: drops.
	EventPortSecurity EventType = "port.security"
	// EventPortRename: a port was renamed; Port is its new name. Attrs:
	// was (the old name), dns_name.
	EventPortRename EventType = "port.rename"
	// EventNetworkCreate: a network was created. Attrs: subnet,
	// gateway (of a dual-stack network, both, comma-separated, the
	// IPv4 one first), internal.
	EventNetworkCreate EventType = "network.create"
	// EventNetworkRemove: a network was removed. Counts: ports (those
	// detached with it).
	EventNetworkRemove EventType = "network.remove"
	// EventNetworkRename: a network was renamed; Network is its new
	// name, and its DNS domain. Attrs: was (the old name).
	EventNetworkRename EventType = "network.rename"
	// EventPublishedRefused: clients of a published port were turned
	// away by a limit; Reason is the refusal's ("port_limit",
	// "source_limit", "descriptors"). Attrs: publish. Counts: refused
	// (since the last such event). At most one per published port and
	// reason per EventDropInterval.
	EventPublishedRefused EventType = "published.refused"
	// EventRequestDropped: changes asked of the API were not carried
	// out because their clients went away while they waited their turn
	// (a client's time-out shorter than the queue of changes). Counts:
	// requests (since the last such event). At most one per
	// EventDropInterval.
	EventRequestDropped EventType = "request.dropped"
	// EventDaemonStart: the daemon started and restored its state.
	// Counts: networks, restored (ports taken back), dropped (ports
	// given up, each also a port.failed), ms (from the process's start
	// until it served). Attrs: version.
	EventDaemonStart EventType = "daemon.start"
	// EventDaemonStop: the daemon is stopping. Attrs: remove ("true"
	// when it removes its ports).
	EventDaemonStop EventType = "daemon.stop"
	// EventDaemonHandover: the daemon is handing over to a successor
	// (tapswitchd --upgrade). Counts: successor_pid. Should the
	// hand-over fail, the daemon starts again from its descriptors, with
	// a daemon.start.
	EventDaemonHandover EventType = "daemon.handover"
	// EventLost is a notice in a stream, not an event of the daemon:
	// events were left out. Reason "slow": the reader fell behind and
	// Counts' events were dropped from its stream, here; "history": the
	// replay asked for (since) reaches before the oldest event the
	// daemon keeps, Attrs' oldest.
	EventLost EventType = "events.lost"
)

// EventTypes lists the event types, for validation and help.
var EventTypes = []EventType{
	EventPortAttach, EventPortConnect, EventPortDetach, EventPortUpdate, EventPortFailed,
	EventPortMACLimit, EventPortFDBFull, EventPortStorm, EventPortSecurity, EventPortRename,
	EventNetworkCreate, EventNetworkRemove, EventNetworkRename, EventPublishedRefused, EventRequestDropped,
	EventDaemonStart, EventDaemonStop, EventDaemonHandover,
}

// EventDropInterval is the least time between two events of one port
// (or published port) and kind about drops: the first drop is told
// within a second, a flood that goes on once per interval with its count.
const EventDropInterval = 10 * time.Second

// Family is the part of t before the dot: "port" of "port.attach".
func (t EventType) Family() string {
	f, _, _ := strings.Cut(string(t), ".")
	return f
}

// EventsQuery selects events: those of the types or families in Types
// (any, if empty), of the ports in Ports and the networks in Networks
// (any, if empty), from Since (only new ones, if zero) until Until (for
// ever, if zero). A stream with Until in the past replays and ends.
type EventsQuery struct {
	Since, Until time.Time
	// Types are event types ("port.attach") or families ("port").
	Types    []string
	Ports    []string
	Networks []string
}

// Values is q as GET /v1/events takes it.
func (q EventsQuery) Values() url.Values {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	for _, t := range q.Types {
		v.Add("type", t)
	}
	for _, p := range q.Ports {
		v.Add("port", p)
	}
	for _, n := range q.Networks {
		v.Add("network", n)
	}
	return v
}

// EventStream is an open GET /v1/events.
type EventStream struct {
	body io.ReadCloser
	dec  *json.Decoder
}

// Next returns the next event, blocking until there is one. At the end
// of the stream (Until passed, the daemon stopped or handed over) it
// returns io.EOF.
func (s *EventStream) Next() (Event, error) {
	var ev Event
	if err := s.dec.Decode(&ev); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return ev, fmt.Errorf("event stream from tapswitchd cut: %w", err)
		}
		return ev, err
	}
	return ev, nil
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// Events opens the daemon's event stream. The stream lasts until q.Until,
// ctx ends, the daemon stops, or Close; it is not bound by the client's
// time-out for other requests.
func (c *Client) Events(ctx context.Context, q EventsQuery) (*EventStream, error) {
	path := "/v1/events"
	if v := q.Values().Encode(); v != "" {
		path += "?" + v
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://tapswitchd"+path, nil)
	if err != nil {
		return nil, err
	}
	// The client's time-out bounds whole requests; a stream has none.
	hc := &http.Client{Transport: c.hc.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.connError(err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("tapswitchd answered %s", resp.Status)
		}
		return nil, &DaemonError{Status: resp.StatusCode, Message: e.Message, Reason: e.Reason}
	}
	return &EventStream{body: resp.Body, dec: json.NewDecoder(bufio.NewReader(resp.Body))}, nil
}

// ReasonTooManyStreams (ErrConflict): the daemon serves as many event
// streams as it allows at once; close one (a tapswitch events or top
// left running) and try again.
const ReasonTooManyStreams Reason = "too_many_streams"
