package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/events"
)

// EventSource is what serves GET /v1/events. A Backend that implements
// it (the daemon does) has its events streamed; for another, the
// endpoint answers 404.
type EventSource interface {
	SubscribeEvents(q api.EventsQuery) (*events.Subscription, error)
}

// The events stream is chunked JSON lines (application/x-ndjson): one
// api.Event a line, flushed as it happens, as Docker's GET /events. A
// line is what `tapswitch events -o json` prints, and what curl and jq
// read as they come. Server-sent events would add a framing ("data: ")
// for a browser's EventSource and its reconnection by Last-Event-ID,
// which a Unix socket's clients have no use for.

// Bounds of a stream.
const (
	// streamWriteTimeout bounds the write of one event: a reader that
	// stops reading altogether (its socket buffer full for that long) is
	// cut off, so its connection and goroutine do not stay for ever. One
	// that reads slowly only loses events (events.SubscriberBuffer).
	streamWriteTimeout = 10 * time.Second
	// maxQueryValues bounds the values of one filter parameter.
	maxQueryValues = 64
)

// eventsParams are the parameters GET /v1/events takes.
var eventsParams = []string{"since", "until", "type", "port", "network"}

func registerEvents(mux *http.ServeMux, b Backend, log *slog.Logger) {
	src, ok := b.(EventSource)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		serveEvents(w, r, src, log)
	})
}

func serveEvents(w http.ResponseWriter, r *http.Request, src EventSource, log *slog.Logger) {
	q, err := ParseEventsQuery(r.URL.Query(), time.Now())
	if err != nil {
		writeError(w, log, fmt.Errorf("events: %w", err))
		return
	}
	sub, err := src.SubscribeEvents(q)
	if err != nil {
		writeError(w, log, err)
		return
	}
	defer sub.Close()
	rc := http.NewResponseController(w)
	// The server's read and write time-outs bound whole requests; a
	// stream lasts. Without the read deadline lifted, net/http would take
	// its expiry for the client's hang-up and end the stream.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	enc := json.NewEncoder(w)
	for {
		ev, err := sub.Next(r.Context())
		if err != nil {
			// io.EOF (until, daemon stopping) or the client's hang-up.
			return
		}
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if err := enc.Encode(ev); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// ParseEventsQuery reads the parameters of GET /v1/events: since and
// until as RFC 3339 times or Unix seconds (with a fraction, as Docker's),
// and any number of type, port and network. Unknown parameters are
// refused, so that a typo is an error rather than no filter. now is the
// present, for an until that lies before since.
func ParseEventsQuery(v url.Values, now time.Time) (api.EventsQuery, error) {
	var q api.EventsQuery
	for k, vals := range v {
		if !slices.Contains(eventsParams, k) {
			return q, fmt.Errorf("%w: unknown query parameter %s: use %s", api.ErrInvalid, strconv.Quote(k), strings.Join(eventsParams, ", "))
		}
		if len(vals) > maxQueryValues {
			return q, fmt.Errorf("%w: query parameter %s given %d times, at most %d", api.ErrInvalid, k, len(vals), maxQueryValues)
		}
	}
	var err error
	if q.Since, err = timeParam(v, "since"); err != nil {
		return q, err
	}
	if q.Until, err = timeParam(v, "until"); err != nil {
		return q, err
	}
	if !q.Until.IsZero() && !q.Since.IsZero() && q.Until.Before(q.Since) {
		return q, fmt.Errorf("%w: until %s is before since %s", api.ErrInvalid, q.Until.Format(time.RFC3339Nano), q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() && q.Since.IsZero() && q.Until.Before(now) {
		return q, fmt.Errorf("%w: until %s has passed and no since was given: nothing to show; give since to replay past events", api.ErrInvalid, q.Until.Format(time.RFC3339Nano))
	}
	q.Types = v["type"]
	for _, t := range q.Types {
		if t == "" || len(t) > 64 {
			return q, fmt.Errorf("%w: event type %s: want a type such as port.attach or a family such as port", api.ErrInvalid, strconv.Quote(t))
		}
	}
	q.Ports = v["port"]
	for _, p := range q.Ports {
		if err := CheckPortRef(p); err != nil {
			return q, err
		}
	}
	q.Networks = v["network"]
	for _, n := range q.Networks {
		if err := CheckNetworkRef(n); err != nil {
			return q, err
		}
	}
	// Unknown types are the bus's to refuse (events.NewFilter), which
	// knows them.
	if _, err := events.NewFilter(q); err != nil {
		return q, err
	}
	return q, nil
}

// timeParam reads a time given as RFC 3339 or Unix seconds.
func timeParam(v url.Values, name string) (time.Time, error) {
	vals := v[name]
	switch len(vals) {
	case 0:
		return time.Time{}, nil
	case 1:
	default:
		return time.Time{}, fmt.Errorf("%w: query parameter %s given %d times, want once", api.ErrInvalid, name, len(vals))
	}
	t, err := ParseEventTime(vals[0])
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: query parameter %s: %w", api.ErrInvalid, name, err)
	}
	return t, nil
}

// ParseEventTime reads a time as RFC 3339 (2026-12-06T15:04:05.999Z) or
// Unix seconds with an optional fraction (1796569445.5).
func ParseEventTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	secs, frac, hasFrac := strings.Cut(s, ".")
	if secs != "" && len(s) <= 32 && digitsOnly(secs) && (!hasFrac || (frac != "" && len(frac) <= 9 && digitsOnly(frac))) {
		sec, err := strconv.ParseInt(secs, 10, 64)
		if err == nil && sec <= 1<<40 {
			var ns int64
			if hasFrac {
				n, _ := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
				ns = n
			}
			return time.Unix(sec, ns), nil
		}
	}
	return time.Time{}, errors.New(strconv.Quote(s) + ": want an RFC 3339 time such as 2026-12-06T15:04:05Z, or Unix seconds")
}

func digitsOnly(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
