package daemon

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/capture"
)

func TestOpenCaptureRefusals(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, "", h)
	defer d.CloseAndRemove()
	frontNet(t, d)
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		req    api.CaptureRequest
		class  error
		reason api.Reason
	}{
		{"no such port", api.CaptureRequest{Port: "nope"}, api.ErrNotFound, api.ReasonPortNotFound},
		{"no such network", api.CaptureRequest{Network: "nope"}, api.ErrNotFound, api.ReasonNetworkNotFound},
		{"bad filter", api.CaptureRequest{Port: "web", Filter: "tcp prot 80"}, api.ErrInvalid, api.ReasonBadFilter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.OpenCapture(tt.req)
			if !errors.Is(err, tt.class) || api.ReasonOf(err) != tt.reason {
				t.Fatalf("OpenCapture(%+v) = %v (reason %q); want %v, %q", tt.req, err, api.ReasonOf(err), tt.class, tt.reason)
			}
		})
	}
	// As many captures as allowed, then a refusal; one ended frees a slot.
	var runs []interface{ Close() }
	for range maxCaptures {
		r, err := d.OpenCapture(api.CaptureRequest{Network: "front", Filter: "icmp"})
		if err != nil {
			t.Fatalf("OpenCapture() = %v", err)
		}
		runs = append(runs, r)
	}
	if _, err := d.OpenCapture(api.CaptureRequest{Port: "web"}); !errors.Is(err, api.ErrConflict) || api.ReasonOf(err) != api.ReasonTooManyCaptures {
		t.Fatalf("capture %d: OpenCapture() = %v, want too_many_captures", maxCaptures+1, err)
	}
	runs[0].Close()
	r, err := d.OpenCapture(api.CaptureRequest{Port: "web"})
	if err != nil {
		t.Fatalf("OpenCapture() after one closed = %v", err)
	}
	// The daemon stopping ends a running capture.
	done := make(chan api.CaptureStats)
	go func() {
		st, _ := r.Run(context.Background(), io.Discard, nil)
		done <- st
	}()
	d.EndCaptures()
	if st := <-done; st.End != api.CaptureEndStopped {
		t.Fatalf("capture ended with %q when the daemon stopped, want %q", st.End, api.CaptureEndStopped)
	}
	if _, err := d.OpenCapture(api.CaptureRequest{Port: "web"}); !api.Abandoned(err) {
		t.Fatalf("OpenCapture() while stopping = %v, want a refusal", err)
	}
	for _, r := range runs[1:] {
		r.Close()
	}
}

// The ends a session reports are the API's, passed on as they are.
func TestCaptureEndsAreTheAPIs(t *testing.T) {
	for got, want := range map[capture.End]string{
		capture.EndCount: api.CaptureEndCount, capture.EndClient: api.CaptureEndClient,
		capture.EndGone: api.CaptureEndGone, capture.EndStopped: api.CaptureEndStopped, capture.EndError: api.CaptureEndError,
	} {
		if string(got) != want {
			t.Errorf("capture end %q, API end %q: want them equal", got, want)
		}
	}
}
