package daemon

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

func TestTurnLock(t *testing.T) {
	var l turnLock
	l.Lock()
	// A waiter whose context ends leaves the queue without the lock.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.LockContext(ctx) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("LockContext(canceled) while held = %v, want context.Canceled", err)
	}
	l.Unlock()
	// Free, it is taken at once; an ended context does not take it.
	if err := l.LockContext(context.Background()); err != nil {
		t.Fatalf("LockContext() when free = %v", err)
	}
	l.Unlock()
	if err := l.LockContext(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("LockContext(canceled) when free = %v, want context.Canceled", err)
	}
	// Not held by the refused waiters: Lock succeeds.
	done := make(chan struct{})
	go func() { l.Lock(); close(done) }()
	<-done
	l.Unlock()
}

// TestAttachAbandoned: an attach waiting behind another change whose
// client gives up is not carried out when its turn comes, and leaves
// nothing; the API answers it 503, not 500.
func TestAttachAbandoned(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	frontNet(t, d)

	d.mu.Lock() // a slow change under way
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 3)
	go func() {
		_, err := d.Attach(ctx, api.AttachRequest{Netns: self, Network: "front", Name: "web", Ifname: "t0"})
		errc <- err
	}()
	go func() { errc <- d.Detach(ctx, "web") }()
	go func() {
		_, err := d.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "back", Subnet: "10.250.8.0/24"})
		errc <- err
	}()
	cancel()
	for range 3 {
		if err := <-errc; !api.Abandoned(err) || api.StatusOf(err) != http.StatusServiceUnavailable {
			t.Errorf("change whose client gave up = %v (status %d), want abandoned, 503", err, api.StatusOf(err))
		}
	}
	d.mu.Unlock()
	nothingLeft(t, d, h, "web", "t0")
	if _, ok := d.nets["back"]; ok {
		t.Error("network back was created for a client that had gone")
	}
	// The daemon serves the next request as usual.
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatalf("Attach() after = %v", err)
	}
}
