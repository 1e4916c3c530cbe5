package apiserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// Capturer is a Backend that captures frames: the daemon. The capture
// endpoint answers 404 for a Backend that is not one.
type Capturer interface {
	// OpenCapture checks req (the port or network exists, the filter
	// compiles, a capture slot is free) and starts observing.
	OpenCapture(req api.CaptureRequest) (CaptureRun, error)
}

// CaptureRun is an opened capture.
type CaptureRun interface {
	// Run writes the capture as pcapng to w until ctx ends, the count
	// is reached, or the port or network goes; flush pushes what was
	// written to the client.
	Run(ctx context.Context, w io.Writer, flush func()) (api.CaptureStats, error)
	// Close ends a capture that was not run; Run closes it otherwise.
	Close()
}

// Limits of the capture query.
const (
	// maxSnapLen is tcpdump's largest snap length.
	maxSnapLen = 262144
	// maxCaptureQuery bounds the raw query: a filter of 1 KiB escaped
	// three bytes a byte, and the rest.
	maxCaptureQuery = 4 << 10
)

// captureKeys are the query parameters GET /v1/capture takes.
var captureKeys = map[string]bool{"port": true, "network": true, "filter": true, "count": true, "snaplen": true}

// ParseCaptureQuery reads GET /v1/capture's query: port or network
// (exactly one), and filter, count and snaplen, each at most once. An
// unknown parameter is refused, so a typo is an error, not a default.
func ParseCaptureQuery(raw string) (api.CaptureRequest, error) {
	var req api.CaptureRequest
	if len(raw) > maxCaptureQuery {
		return req, invalid("capture: query of %d bytes, more than %d", len(raw), maxCaptureQuery)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return req, invalid("capture: query: %v", err)
	}
	for k, v := range q {
		if !captureKeys[k] {
			return req, invalid("capture: unknown query parameter %s; use port or network, and filter, count, snaplen", quote(k))
		}
		if len(v) > 1 {
			return req, invalid("capture: query parameter %s given %d times; give it once", k, len(v))
		}
	}
	req.Port, req.Network, req.Filter = q.Get("port"), q.Get("network"), q.Get("filter")
	switch {
	case req.Port == "" && req.Network == "":
		return req, invalid("capture: give port=PORT or network=NETWORK")
	case req.Port != "" && req.Network != "":
		return req, invalid("capture: give port or network, not both")
	case req.Port != "":
		if err := CheckPortRef(req.Port); err != nil {
			return req, fmt.Errorf("capture: %w", err)
		}
	default:
		if err := CheckNetworkRef(req.Network); err != nil {
			return req, fmt.Errorf("capture: %w", err)
		}
	}
	if _, ok := q["filter"]; ok && strings.TrimSpace(req.Filter) == "" {
		return req, invalid("capture: empty filter; leave filter out to take every frame")
	}
	if v := q.Get("count"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return req, invalid("capture: count=%s: want a number of packets, at least 1", quote(v))
		}
		req.Count = n
	}
	if v := q.Get("snaplen"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSnapLen {
			return req, invalid("capture: snaplen=%s: want a number of bytes from 1 to %d", quote(v), maxSnapLen)
		}
		req.SnapLen = n
	}
	return req, nil
}

// captureTrailers are declared before the body and set after it.
var captureTrailers = strings.Join([]string{api.TrailerCapturePackets, api.TrailerCaptureFrames,
	api.TrailerCaptureLost, api.TrailerCaptureEnd, api.TrailerCaptureGone}, ", ")

// serveCapture streams a capture: 200 and pcapng as the body, chunked,
// ended by trailers with the counts. A client ends it by closing the
// connection, or its sending side only (then it still gets the end of
// the stream and the trailers).
func serveCapture(b Backend, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := ParseCaptureQuery(r.URL.RawQuery)
		if err != nil {
			writeError(w, log, err)
			return
		}
		c, ok := b.(Capturer)
		if !ok {
			writeError(w, log, fmt.Errorf("%w: capture: this daemon does not capture", api.ErrNotFound))
			return
		}
		run, err := c.OpenCapture(req)
		if err != nil {
			writeError(w, log, err)
			return
		}
		// The server's deadlines bound requests that answer at once; a
		// capture runs until its client is done. A read deadline left
		// in place would end it as if the client had gone.
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{})
		_ = rc.SetReadDeadline(time.Time{})
		h := w.Header()
		h.Set("Content-Type", api.CaptureContentType)
		h.Set("Cache-Control", "no-store")
		h.Set("Trailer", captureTrailers)
		w.WriteHeader(http.StatusOK)
		st, err := run.Run(r.Context(), w, func() { _ = rc.Flush() })
		h.Set(api.TrailerCapturePackets, strconv.FormatUint(st.Packets, 10))
		h.Set(api.TrailerCaptureFrames, strconv.FormatUint(st.Frames, 10))
		h.Set(api.TrailerCaptureLost, strconv.FormatUint(st.Lost, 10))
		h.Set(api.TrailerCaptureEnd, st.End)
		if st.Gone != "" {
			h.Set(api.TrailerCaptureGone, st.Gone)
		}
		if err != nil && st.End != api.CaptureEndClient {
			log.Warn("capture failed", "port", req.Port, "network", req.Network, "err", err)
		}
	}
}
