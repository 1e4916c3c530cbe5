package apiserver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

func TestValidateStorm(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pol     api.PortPolicy
		errText string
	}{
		{"defaults", api.PortPolicy{}, ""},
		{"set", api.PortPolicy{StormBroadcast: 1, StormMulticast: api.MaxStormRate, StormUnknown: api.NoStormLimit}, ""},
		{"broadcast below -1", api.PortPolicy{StormBroadcast: -2}, "broadcast storm control rate -2"},
		{"multicast too high", api.PortPolicy{StormMulticast: api.MaxStormRate + 1}, "multicast storm control rate"},
		{"unknown unicast too high", api.PortPolicy{StormUnknown: 1 << 40}, "unknown-unicast storm control rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := []error{
				ValidateAttach(api.AttachRequest{Netns: "a", PortPolicy: tc.pol}),
				ValidateConnect("front", api.ConnectRequest{Port: "web", PortPolicy: tc.pol}),
				ValidatePortUpdate(api.PortUpdateRequest{StormBroadcast: &tc.pol.StormBroadcast, StormMulticast: &tc.pol.StormMulticast, StormUnknown: &tc.pol.StormUnknown}),
			}
			for i, err := range errs {
				if tc.errText == "" && err != nil {
					t.Fatalf("check %d: %v, want nil", i, err)
				}
				if tc.errText != "" && (err == nil || !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.errText) || !strings.Contains(err.Error(), "-1 for no limit")) {
					t.Fatalf("check %d: %v, want an invalid request naming %q and what to use", i, err, tc.errText)
				}
			}
		})
	}
}

// TestUpdatePortStormOnly sends a port update that changes only a storm
// control rate: it is something to change, not an empty request.
func TestUpdatePortStormOnly(t *testing.T) {
	c := serve(t, &fakeBackend{ports: []api.Port{{ID: 1, Name: "web"}}})
	rate, bad := 100, -5
	if _, err := c.UpdatePort(context.Background(), "web", api.PortUpdateRequest{StormUnknown: &rate}); err != nil {
		t.Fatalf("UpdatePort(storm_unknown 100) = %v", err)
	}
	_, err := c.UpdatePort(context.Background(), "web", api.PortUpdateRequest{StormBroadcast: &bad})
	var de *api.DaemonError
	if !errors.As(err, &de) || de.Status != http.StatusBadRequest {
		t.Fatalf("UpdatePort(storm_broadcast -5) = %v, want 400", err)
	}
}
