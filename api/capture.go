package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// CaptureRequest asks for the frames of one port, or of a whole network,
// as pcapng: GET /v1/capture?port=PORT or ?network=NET, with filter,
// count and snaplen optional.
type CaptureRequest struct {
	// Port is a port's name or id; Network a network's name. Exactly
	// one is given.
	Port    string
	Network string
	// Filter is an expression in tcpdump's filter language
	// (pcap-filter(7)); empty takes every frame.
	Filter string
	// Count, if not 0, ends the capture after that many packets.
	Count uint64
	// SnapLen, if not 0, keeps that many bytes of each packet.
	SnapLen int
}

// Query is the request as GET /v1/capture's query.
func (r CaptureRequest) Query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("port", r.Port)
	set("network", r.Network)
	set("filter", r.Filter)
	if r.Count > 0 {
		q.Set("count", strconv.FormatUint(r.Count, 10))
	}
	if r.SnapLen > 0 {
		q.Set("snaplen", strconv.Itoa(r.SnapLen))
	}
	return q
}

// CaptureContentType is the media type of a capture's body.
const CaptureContentType = "application/x-pcapng"

// The trailers that end a capture's body with its counts: packets
// written, frames offered to the capture, frames lost because the reader
// fell behind, and why it ended (CaptureEnd...), with what went for
// CaptureEndGone.
const (
	TrailerCapturePackets = "Tapswitch-Capture-Packets"
	TrailerCaptureFrames  = "Tapswitch-Capture-Frames"
	TrailerCaptureLost    = "Tapswitch-Capture-Lost"
	TrailerCaptureEnd     = "Tapswitch-Capture-End"
	TrailerCaptureGone    = "Tapswitch-Capture-Gone"
)

// Why a capture ended, in TrailerCaptureEnd.
const (
	CaptureEndCount   = "count"
	CaptureEndClient  = "client"
	CaptureEndGone    = "source_gone"
	CaptureEndStopped = "daemon_stops"
	CaptureEndError   = "error"
)

// Reasons of a refused capture.
const (
	// ReasonBadFilter (ErrInvalid): the filter does not compile; the
	// message has the compiler's reason.
	ReasonBadFilter Reason = "bad_filter"
	// ReasonTooManyCaptures (ErrConflict): as many captures run as the
	// daemon allows at once.
	ReasonTooManyCaptures Reason = "too_many_captures"
)

// CaptureStats are the counts a capture's trailers give.
type CaptureStats struct {
	Packets, Frames, Lost uint64
	// End is why the capture ended; empty when the body ended without
	// trailers (the daemon went away).
	End string
	// Gone says what went, for CaptureEndGone.
	Gone string
}

// CaptureStream is a running capture: Body is the pcapng stream.
type CaptureStream struct {
	Body io.Reader

	resp *http.Response
	conn func() net.Conn
	once sync.Once
}

// Capture starts a capture. Read the pcapng from the stream's Body to
// its end, then take Stats; Stop ends the capture early (the daemon
// finishes the stream, trailers and all), Close drops it at once.
func (c *Client) Capture(ctx context.Context, req CaptureRequest) (*CaptureStream, error) {
	var (
		mu   sync.Mutex
		conn net.Conn
	)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			cn, err := d.DialContext(ctx, "unix", c.socket)
			if err == nil {
				mu.Lock()
				conn = cn
				mu.Unlock()
			}
			return cn, err
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	// No timeout: a capture runs as long as its reader wants.
	hc := &http.Client{Transport: tr}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://tapswitchd/v1/capture?"+req.Query().Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, c.connError(err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return &CaptureStream{Body: resp.Body, resp: resp, conn: func() net.Conn {
		mu.Lock()
		defer mu.Unlock()
		return conn
	}}, nil
}

// Stop asks the daemon to end the capture: the request's side of the
// connection is shut, which the daemon takes as the client being done,
// and it ends the body with the trailers. Keep reading Body to its end.
func (s *CaptureStream) Stop() error {
	var err error
	s.once.Do(func() {
		cw, ok := s.conn().(interface{ CloseWrite() error })
		if !ok {
			err = errors.New("capture: connection cannot be half-closed")
			return
		}
		err = cw.CloseWrite()
	})
	return err
}

// Close drops the capture and its connection.
func (s *CaptureStream) Close() error { return s.resp.Body.Close() }

// Stats are the counts of the trailers, once Body has been read to its
// end; ok is false when there were none.
func (s *CaptureStream) Stats() (CaptureStats, bool) {
	t := s.resp.Trailer
	if t.Get(TrailerCaptureEnd) == "" {
		return CaptureStats{}, false
	}
	n := func(k string) uint64 {
		v, _ := strconv.ParseUint(t.Get(k), 10, 64)
		return v
	}
	return CaptureStats{
		Packets: n(TrailerCapturePackets),
		Frames:  n(TrailerCaptureFrames),
		Lost:    n(TrailerCaptureLost),
		End:     t.Get(TrailerCaptureEnd),
		Gone:    t.Get(TrailerCaptureGone),
	}, true
}

// decodeError reads a failed answer's Error body.
func decodeError(resp *http.Response) error {
	var e Error
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(data, &e) != nil || e.Message == "" {
		e.Message = fmt.Sprintf("tapswitchd answered %s", resp.Status)
	}
	return &DaemonError{Status: resp.StatusCode, Message: e.Message, Reason: e.Reason}
}
