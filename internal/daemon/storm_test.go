package daemon

import (
	"context"
	"testing"

	"github.com/tapswitch/tapswitch/api"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// TestStormPolicy attaches a port with storm control rates, changes one
// with UpdatePort, and restarts: the switch port and the API's view hold
// the rates throughout, since the state file records them.
func TestStormPolicy(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHost()
	d := startDaemon(t, dir, h)
	frontNet(t, d)
	if _, err := attach(d, "web", "t0", func(r *api.AttachRequest) {
		r.StormBroadcast, r.StormUnknown = 50, api.NoStormLimit
	}); err != nil {
		t.Fatal(err)
	}
	want := vswitch.StormLimits{Broadcast: 50, Multicast: vswitch.DefaultStormRate, UnknownUnicast: -1}
	check := func(when string) {
		t.Helper()
		sp, err := d.sw.Port("web")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if got := sp.StormLimits(); got != want {
			t.Fatalf("%s: switch port's storm limits %+v, want %+v", when, got, want)
		}
		v := d.ports["web"].view()
		if v.StormBroadcast != want.Broadcast || v.StormMulticast != want.Multicast || v.StormUnknown != want.UnknownUnicast {
			t.Fatalf("%s: view storm %d/%d/%d, want %+v", when, v.StormBroadcast, v.StormMulticast, v.StormUnknown, want)
		}
	}
	check("after attach")

	mc, none := 7, 0
	if _, err := d.UpdatePort(context.Background(), "web", api.PortUpdateRequest{StormMulticast: &mc, StormUnknown: &none}); err != nil {
		t.Fatal(err)
	}
	want.Multicast, want.UnknownUnicast = 7, vswitch.DefaultStormRate
	check("after UpdatePort")

	d.Close()
	d = startDaemon(t, dir, h)
	defer d.CloseAndRemove()
	check("after a restart")
	if api.DefaultStormRate != vswitch.DefaultStormRate || api.MaxStormRate != vswitch.MaxStormRate {
		t.Fatalf("api's storm rates (default %d, max %d) differ from the switch's (%d, %d)",
			api.DefaultStormRate, api.MaxStormRate, vswitch.DefaultStormRate, vswitch.MaxStormRate)
	}
}
