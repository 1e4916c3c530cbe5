package apiserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// turnBackend is a Backend whose Attach waits its turn as the daemon's
// changes do: it blocks until the test gives it the turn or its context
// ends, then asks ClientGone before acting.
type turnBackend struct {
	fakeBackend
	// entered receives once Attach has begun to wait; turn gives it its
	// turn.
	entered chan struct{}
	turn    chan struct{}

	mu sync.Mutex
	// done counts the attaches carried out, dropped those not.
	done, dropped int
	dropErr       error
}

func newTurnBackend() *turnBackend {
	return &turnBackend{entered: make(chan struct{}, 16), turn: make(chan struct{})}
}

func (b *turnBackend) Attach(ctx context.Context, r api.AttachRequest) (api.Port, error) {
	b.entered <- struct{}{}
	select {
	case <-b.turn:
	case <-ctx.Done():
	}
	err := ClientGone(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.dropped++
		b.dropErr = err
		return api.Port{}, err
	}
	b.done++
	return api.Port{Name: r.Name}, nil
}

func (b *turnBackend) counts() (done, dropped int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done, b.dropped, b.dropErr
}

// serveConns serves b on a Unix socket with ConnContext, as tapswitchd
// does, and returns the socket's path.
func serveConns(t *testing.T, b Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(b, discard()), ConnContext: ConnContext}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// waitFor polls cond until it holds; the test's own timeout bounds it.
func waitFor(cond func() bool) {
	for !cond() {
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClientGoneWhileWaiting: a client that gives up while its attach
// waits for its turn is not served when the turn comes.
func TestClientGoneWhileWaiting(t *testing.T) {
	b := newTurnBackend()
	c := api.NewClient(serveConns(t, b))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Attach(ctx, api.AttachRequest{Netns: "web", Name: "web"})
		errc <- err
	}()
	<-b.entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Attach() after the client gave up = %v, want context.Canceled", err)
	}
	// The server sees the hang-up and ends the request's context; the
	// attach must not be carried out when its turn comes.
	waitFor(func() bool { _, dropped, _ := b.counts(); return dropped > 0 })
	if done, dropped, err := b.counts(); done != 0 || dropped != 1 || !api.Abandoned(err) {
		t.Fatalf("attaches carried out %d, dropped %d (%v); want 0 and 1, dropped as abandoned", done, dropped, err)
	}
}

// TestClientGoneBeforeNoticed: a client that sent its request and closed
// the connection is noticed when the request's turn comes, even if
// net/http has not yet noticed it, by a look at the connection.
func TestClientGoneBeforeNoticed(t *testing.T) {
	b := newTurnBackend()
	sock := serveConns(t, b)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"netns":"web","name":"web"}`
	req := "POST /v1/ports HTTP/1.1\r\nHost: tapswitchd\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	<-b.entered
	conn.Close()
	// The turn comes at once, with the context perhaps not ended yet:
	// ClientGone finds the closed connection either way.
	close(b.turn)
	waitFor(func() bool { done, dropped, _ := b.counts(); return done+dropped > 0 })
	if done, dropped, err := b.counts(); done != 0 || dropped != 1 || !api.Abandoned(err) {
		t.Fatalf("attaches carried out %d, dropped %d (%v); want 0 and 1", done, dropped, err)
	}
}

// TestClientStillThere: a client that waits for its answer is served,
// and one that pipelines a second request is not taken for gone.
func TestClientStillThere(t *testing.T) {
	b := newTurnBackend()
	close(b.turn)
	c := api.NewClient(serveConns(t, b))
	if _, err := c.Attach(context.Background(), api.AttachRequest{Netns: "web", Name: "web"}); err != nil {
		t.Fatalf("Attach() = %v", err)
	}
	if done, dropped, _ := b.counts(); done != 1 || dropped != 0 {
		t.Fatalf("attaches carried out %d, dropped %d; want 1 and 0", done, dropped)
	}
}

// TestClientGoneContext: ClientGone without a connection recorded goes
// by the context alone.
func TestClientGoneContext(t *testing.T) {
	if err := ClientGone(context.Background()); err != nil {
		t.Fatalf("ClientGone(background) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ClientGone(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("ClientGone(canceled) = %v, want context.Canceled", err)
	}
	a, b := net.Pipe()
	defer b.Close()
	if err := ClientGone(withConn(context.Background(), a)); err != nil {
		t.Fatalf("ClientGone(pipe, not a socket) = %v, want nil", err)
	}
	a.Close()
}

// TestAbandonedStatus: a request not carried out is answered 503 and
// logged, not counted a server failure.
func TestAbandonedStatus(t *testing.T) {
	f := &fakeBackend{err: errors.New("attach: not carried out: " + ErrClientGone.Error())}
	f.err = errors.Join(f.err, ErrClientGone)
	w := serveRaw(NewHandler(f, discard()), http.MethodPost, "/v1/ports", `{"netns":"web"}`)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "not carried out") {
		t.Fatalf("abandoned attach = %d %s, want 503 saying it was not carried out", w.Code, w.Body.String())
	}
}

// recordHandler keeps the records logged through it.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// TestDropLog: a burst of dropped requests is one line at info, each at
// debug.
func TestDropLog(t *testing.T) {
	var d dropLog
	h := &recordHandler{}
	log := slog.New(h)
	const n = 1000
	for range n {
		d.log(log, ErrClientGone)
	}
	var debug, info int
	for _, r := range h.records {
		switch r.Level {
		case slog.LevelDebug:
			debug++
		case slog.LevelInfo:
			info++
		}
	}
	if debug != n || info < 1 || info > 2 {
		t.Fatalf("%d drops logged %d debug and %d info lines, want %d and one (two if a second passed)", n, debug, info, n)
	}
}
