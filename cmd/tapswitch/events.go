package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
)

func newEvents(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the daemon's events as they happen",
		Long: `Show what happens in tapswitchd as it happens, one line an event: ports
attached, connected, detached, changed or failed (their TAP or namespace
went), MAC limits hit, storm control and port security dropping frames,
published ports refusing clients, requests dropped because their client
went away, networks created and removed, the daemon's start (with what
it restored), stop and hand-over.

With --since, the events the daemon keeps from then (its last 1,024, since
it started) come first. The stream ends at --until, on Ctrl-C, or when the
daemon stops. A reader that falls behind loses events and is told how
many (events.lost). With -o json, each event is a JSON object on a line
of its own (see the API's GET /v1/events).

Event types: ` + eventTypeList() + `.`,
		Example: `  tapswitch events
  tapswitch events --since 10m --filter type=port
  tapswitch events --filter type=port.mac_limit --filter network=front -o json
  tapswitch events --since 2026-12-06T15:00:00Z --until 2026-12-06T16:00:00Z`,
		Args: cobra.NoArgs,
	}
	var since, until string
	var filters []string
	cmd.Flags().StringVar(&since, "since", "", "show the kept events from `TIME` first: a duration before now (10m), an RFC 3339 time or Unix seconds")
	cmd.Flags().StringVar(&until, "until", "", "end the stream at `TIME`, given as --since (a duration is before now: a past --until replays and ends)")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "show only events that match `KEY=VALUE`: type=TYPE (port.attach) or a family (port), port=NAME, network=NAME; repeated keys are alternatives")
	out := addOutput(cmd, "table", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		now := time.Now()
		q, err := eventsQuery(since, until, filters, now)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		s, err := g.client().Events(ctx, q)
		if err != nil {
			return g.advise(cmd, err, "")
		}
		defer s.Close()
		go func() {
			<-ctx.Done()
			s.Close()
		}()
		w := cmd.OutOrStdout()
		enc := json.NewEncoder(w)
		var last api.EventType
		for {
			ev, err := s.Next()
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, io.EOF):
				if last == api.EventDaemonStop || last == api.EventDaemonHandover {
					fmt.Fprintf(cmd.ErrOrStderr(), "tapswitch: the daemon ended the stream (%s)\n", last)
				} else if q.Until.IsZero() || time.Now().Before(q.Until) {
					fmt.Fprintln(cmd.ErrOrStderr(), "tapswitch: the daemon ended the stream")
				}
				return nil
			case err != nil:
				return err
			}
			last = ev.Type
			if out.format == "json" {
				err = enc.Encode(ev)
			} else {
				_, err = fmt.Fprintln(w, formatEvent(ev))
			}
			if err != nil {
				return err
			}
		}
	}
	return cmd
}

func eventTypeList() string {
	s := make([]string, len(api.EventTypes))
	for i, t := range api.EventTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// eventsQuery makes the query of the events command's flags.
func eventsQuery(since, until string, filters []string, now time.Time) (api.EventsQuery, error) {
	var q api.EventsQuery
	var err error
	if since != "" {
		if q.Since, err = parseWhen(since, now); err != nil {
			return q, fmt.Errorf("--since %w", err)
		}
	}
	if until != "" {
		if q.Until, err = parseWhen(until, now); err != nil {
			return q, fmt.Errorf("--until %w", err)
		}
		if since == "" && q.Until.Before(now) {
			// A past end asks for a replay, as docker events does.
			q.Since = time.Unix(0, 0)
		}
	}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return q, fmt.Errorf("--filter %q: want KEY=VALUE with KEY type, port or network", f)
		}
		switch k {
		case "type", "event":
			q.Types = append(q.Types, v)
		case "port":
			q.Ports = append(q.Ports, v)
		case "network":
			q.Networks = append(q.Networks, v)
		default:
			return q, fmt.Errorf("--filter %q: unknown key %q: use type, port or network", f, k)
		}
	}
	return q, nil
}

// parseWhen reads a time as a duration before now (10m, 1h30m), an RFC
// 3339 time, or Unix seconds.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a duration is how long before now; give it without a sign", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f < 1<<40 {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("%q: want a duration before now (10m), an RFC 3339 time (2026-12-06T15:04:05Z) or Unix seconds", s)
}

// formatEvent is one event as a line, as docker events prints them: the
// time, the type, what it is about, and its details.
func formatEvent(ev api.Event) string {
	var b strings.Builder
	b.WriteString(ev.Time.Local().Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(string(ev.Type))
	switch {
	case ev.Port != "":
		b.WriteString(" " + ev.Port)
	case ev.Network != "":
		b.WriteString(" " + ev.Network)
	}
	var kv []string
	if ev.Port != "" && ev.Network != "" {
		kv = append(kv, "network="+ev.Network)
	}
	if ev.Netns != "" {
		kv = append(kv, "netns="+ev.Netns)
	}
	var rest []string
	for k, v := range ev.Counts {
		rest = append(rest, k+"="+strconv.FormatInt(v, 10))
	}
	for k, v := range ev.Attrs {
		rest = append(rest, k+"="+v)
	}
	slices.Sort(rest)
	kv = append(kv, rest...)
	if ev.Reason != "" {
		r := ev.Reason
		if strings.ContainsAny(r, " ,()\"=") {
			r = strconv.Quote(r)
		}
		kv = append(kv, "reason="+r)
	}
	if len(kv) > 0 {
		b.WriteString(" (" + strings.Join(kv, ", ") + ")")
	}
	return b.String()
}
