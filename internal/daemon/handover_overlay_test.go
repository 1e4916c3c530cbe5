package daemon

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/cluster"
	"github.com/tapswitch/tapswitch/internal/fdset"
)

// sessionFile is a memory file holding b, as exportOverlayLocked makes
// it.
func sessionFile(t *testing.T, b []byte) int {
	t.Helper()
	fd, err := unix.MemfdCreate("test-session", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fd, b); err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestInheritedSession(t *testing.T) {
	self := netip.MustParseAddr("10.0.0.1")
	view := cluster.View{Hosts: []cluster.Host{{Name: "h1", VTEP: self}, {Name: "h2", VTEP: netip.MustParseAddr("10.0.0.2")}}}
	since := time.Date(2026, 12, 7, 6, 11, 14, 123456789, time.UTC)
	owed := []owedRemoval{{Network: "front", Endpoint: "web"}, {Network: "front", Addr: netip.MustParseAddr("10.52.0.5")}}
	good, _ := json.Marshal(overlaySession{Host: "h1", Advertise: self, Lease: 0x1234, View: view, ConnectedSince: since, Owed: owed})
	otherHost, _ := json.Marshal(overlaySession{Host: "h9", Advertise: self, Lease: 0x1234})
	otherVTEP, _ := json.Marshal(overlaySession{Host: "h1", Advertise: netip.MustParseAddr("10.0.0.9"), Lease: 0x1234})
	tests := []struct {
		name      string
		content   []byte
		none      bool
		wantLease int64
	}{
		{name: "this host's", content: good, wantLease: 0x1234},
		{name: "another host's", content: otherHost},
		{name: "another advertise", content: otherVTEP},
		{name: "not JSON", content: []byte("lease=1234")},
		{name: "none handed over", none: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := &fdset.Set{}
			defer set.Close()
			keep := -1
			defer func() {
				if keep >= 0 {
					unix.Close(keep)
				}
			}()
			if !tt.none {
				fd := sessionFile(t, tt.content)
				// The predecessor's copy, read after the successor's:
				// the same file, its offset moved by the first read.
				var err error
				if keep, err = unix.Dup(fd); err != nil {
					t.Fatal(err)
				}
				set.Add(sessionFDName, fd)
			}
			d := &Daemon{cfg: Config{Inherited: set}, log: slog.New(slog.DiscardHandler)}
			d.ov.host, d.ov.cfg.Advertise = "h1", self
			s := d.inheritedSession()
			if tt.wantLease == 0 {
				if s != nil {
					t.Fatalf("inheritedSession() = %+v, want none", s)
				}
				return
			}
			if s == nil || s.Lease != tt.wantLease || len(s.View.Hosts) != 2 {
				t.Fatalf("inheritedSession() = %+v, want lease %x and the view's 2 hosts", s, tt.wantLease)
			}
			if !s.ConnectedSince.Equal(since) || !slices.Equal(s.Owed, owed) {
				t.Errorf("inheritedSession() connected since %v, owed %+v; want %v and %+v", s.ConnectedSince, s.Owed, since, owed)
			}
			if set.Len() != 0 {
				t.Errorf("the set still holds %v after the session was taken", set.Names())
			}
			// A predecessor that resumes reads its own copy whole.
			set.Add(sessionFDName, keep)
			keep = -1
			if again := d.inheritedSession(); again == nil || again.Lease != tt.wantLease {
				t.Fatalf("inheritedSession() of the predecessor's copy = %+v, want lease %x", again, tt.wantLease)
			}
		})
	}
}
