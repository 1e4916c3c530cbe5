package daemon

import (
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

func TestMountHolds(t *testing.T) {
	info := []byte(`22 1 0:21 / /proc rw,nosuid - proc proc rw
610 27 0:4 net:[4026532999] /run/netns/web rw - nsfs nsfs rw
611 27 0:4 net:[4026533000] /var/lib/tapswitch/pins/db rw - nsfs nsfs rw
612 27 0:4 net:[4026533001] /var/lib/my\040dir/pins/x rw - nsfs nsfs rw
`)
	for _, tc := range []struct {
		name string
		want string
		pins []string
		held bool
	}{
		{"named", "net:[4026532999]", nil, true},
		{"only our pin", "net:[4026533000]", []string{"/var/lib/tapswitch/pins/db"}, false},
		{"a pin not ours", "net:[4026533000]", []string{"/var/lib/tapswitch/pins/other"}, true},
		{"escaped pin", "net:[4026533001]", []string{"/var/lib/my dir/pins/x"}, false},
		{"no mount", "net:[1]", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mountHolds(info, tc.want, tc.pins); got != tc.held {
				t.Errorf("mountHolds(%s, %v) = %v, want %v", tc.want, tc.pins, got, tc.held)
			}
		})
	}
}

// TestFreeVanished: a port whose namespace's name leads nowhere is
// detached, its address and pin freed, with a port.failed event, once
// nothing else holds the namespace; while something does, it stays.
func TestFreeVanished(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	frontNet(t, d)
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatal(err)
	}
	if _, err := attach(d, "db", "t1"); err != nil {
		t.Fatal(err)
	}
	s, err := d.SubscribeEvents(api.EventsQuery{Types: []string{"port.failed"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	held := true
	var asked []nsID
	d.mu.Lock()
	d.vanish.held = func(ns nsID, pins []string) (bool, error) {
		asked = append(asked, ns)
		if len(pins) < 2 {
			t.Errorf("held(%v, %v): want the pins of both ports", ns, pins)
		}
		return held, nil
	}
	d.mu.Unlock()
	if n := d.freeVanished(); n != 0 || len(asked) != 0 {
		t.Fatalf("freeVanished() with every namespace reachable = %d, asked %v; want 0, none asked", n, asked)
	}
	// web's process is gone: no process has the largest pid.
	d.mu.Lock()
	d.ports["web"].state.Request.Netns = "pid:2147483646"
	d.mu.Unlock()
	if n := d.freeVanished(); n != 0 || len(asked) != 1 {
		t.Fatalf("freeVanished() while the namespace is held = %d, asked %d times; want 0, once", n, len(asked))
	}
	if _, err := d.sw.Port("web"); err != nil {
		t.Fatalf("web was detached while its namespace is held: %v", err)
	}
	held = false
	if n := d.freeVanished(); n != 1 {
		t.Fatalf("freeVanished() = %d, want 1", n)
	}
	nothingLeft(t, d, h, "web", "t0")
	ev := eventsOf(t, s, 1)[0]
	if ev.Port != "web" || ev.Attrs["cause"] != "namespace_vanished" || ev.Attrs["phase"] != "run" || ev.Reason == "" {
		t.Errorf("port.failed = %+v, want web, cause namespace_vanished, phase run, a reason", ev)
	}
	if _, err := d.sw.Port("db"); err != nil {
		t.Errorf("db went too: %v", err)
	}
}
