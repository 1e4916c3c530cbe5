package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// captureBackend is a fakeBackend that captures: each run writes one
// "packet" line every tick until its context ends or count is reached.
type captureBackend struct {
	fakeBackend
	opened []api.CaptureRequest
	err    error
}

func (c *captureBackend) OpenCapture(req api.CaptureRequest) (CaptureRun, error) {
	if c.err != nil {
		return nil, c.err
	}
	c.opened = append(c.opened, req)
	return &fakeRun{count: req.Count}, nil
}

type fakeRun struct{ count uint64 }

func (r *fakeRun) Close() {}

func (r *fakeRun) Run(ctx context.Context, w io.Writer, flush func()) (api.CaptureStats, error) {
	var st api.CaptureStats
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			st.End = api.CaptureEndClient
			return st, nil
		case <-tick.C:
		}
		if _, err := fmt.Fprintf(w, "packet %d\n", st.Packets); err != nil {
			st.End = api.CaptureEndClient
			return st, err
		}
		flush()
		st.Packets++
		st.Frames++
		if r.count > 0 && st.Packets == r.count {
			st.End = api.CaptureEndCount
			return st, nil
		}
	}
}

// serveTight serves b with the daemon's ConnContext and short read and
// write deadlines, which a capture must outlive.
func serveTight(t *testing.T, b Backend) *api.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(b, nil), ConnContext: ConnContext,
		ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return api.NewClient(sock)
}

func TestCaptureStream(t *testing.T) {
	b := &captureBackend{}
	c := serveTight(t, b)
	s, err := c.Capture(context.Background(), api.CaptureRequest{Port: "web", Filter: "tcp port 80", SnapLen: 96})
	if err != nil {
		t.Fatalf("Capture() = %v", err)
	}
	defer s.Close()
	// Read past the server's deadlines (30 lines take 300 ms), then
	// stop: the stream still ends with its trailers.
	buf := make([]byte, 0, 1024)
	for strings.Count(string(buf), "\n") < 30 {
		tmp := make([]byte, 64)
		n, err := s.Body.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			t.Fatalf("body ended after %d lines: %v; the server's deadlines cut the capture", strings.Count(string(buf), "\n"), err)
		}
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	rest, err := io.ReadAll(s.Body)
	if err != nil {
		t.Fatalf("reading the end of the stream: %v", err)
	}
	lines := uint64(strings.Count(string(buf)+string(rest), "\n"))
	st, ok := s.Stats()
	if !ok || st.End != api.CaptureEndClient || st.Packets != lines {
		t.Fatalf("Stats() = %+v, %v; want end client and %d packets", st, ok, lines)
	}
	if want := (api.CaptureRequest{Port: "web", Filter: "tcp port 80", SnapLen: 96}); len(b.opened) != 1 || b.opened[0] != want {
		t.Fatalf("opened %+v, want %+v", b.opened, want)
	}
}

func TestCaptureCount(t *testing.T) {
	c := serveTight(t, &captureBackend{})
	s, err := c.Capture(context.Background(), api.CaptureRequest{Network: "front", Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body, err := io.ReadAll(s.Body)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := s.Stats(); !ok || st.End != api.CaptureEndCount || st.Packets != 5 || strings.Count(string(body), "\n") != 5 {
		t.Fatalf("Stats() = %+v, %v with %d lines; want 5 packets, the count reached", st, ok, strings.Count(string(body), "\n"))
	}
}

func TestCaptureRefused(t *testing.T) {
	bad := &captureBackend{err: api.Errorf(api.ErrInvalid, api.ReasonBadFilter, "capture filter %q: syntax error", "tcp prot 80")}
	tests := []struct {
		name   string
		b      Backend
		req    api.CaptureRequest
		status int
		reason api.Reason
	}{
		{"nothing named", &captureBackend{}, api.CaptureRequest{}, 400, ""},
		{"both", &captureBackend{}, api.CaptureRequest{Port: "a", Network: "b"}, 400, ""},
		{"bad filter", bad, api.CaptureRequest{Port: "a", Filter: "tcp prot 80"}, 400, api.ReasonBadFilter},
		{"no capture in this backend", &fakeBackend{}, api.CaptureRequest{Port: "a"}, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := serveTight(t, tt.b).Capture(context.Background(), tt.req)
			var de *api.DaemonError
			if !errors.As(err, &de) || de.Status != tt.status || de.Reason != tt.reason {
				t.Fatalf("Capture(%+v) = %v; want status %d, reason %q", tt.req, err, tt.status, tt.reason)
			}
		})
	}
}

func TestParseCaptureQuery(t *testing.T) {
	tests := []struct {
		q    string
		want *api.CaptureRequest
	}{
		{"port=web", &api.CaptureRequest{Port: "web"}},
		{"port=7&count=10&snaplen=96", &api.CaptureRequest{Port: "7", Count: 10, SnapLen: 96}},
		{"network=front&filter=tcp+port+80", &api.CaptureRequest{Network: "front", Filter: "tcp port 80"}},
		{"", nil},
		{"port=web&network=front", nil},
		{"port=web&port=db", nil},
		{"port=we%2Fb", nil},
		{"network=front&fliter=icmp", nil},
		{"port=web&filter=", nil},
		{"port=web&filter=%20", nil},
		{"port=web&count=0", nil},
		{"port=web&count=-1", nil},
		{"port=web&count=1e3", nil},
		{"port=web&snaplen=0", nil},
		{"port=web&snaplen=262145", nil},
		{"port=web&%zz", nil},
		{"port=web&filter=" + strings.Repeat("a", 5000), nil},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			got, err := ParseCaptureQuery(tt.q)
			if tt.want == nil {
				if err == nil || !errors.Is(err, api.ErrInvalid) {
					t.Fatalf("ParseCaptureQuery(%q) = %+v, %v; want ErrInvalid", tt.q, got, err)
				}
				return
			}
			if err != nil || got != *tt.want {
				t.Fatalf("ParseCaptureQuery(%q) = %+v, %v; want %+v", tt.q, got, err, *tt.want)
			}
		})
	}
}

// FuzzParseCaptureQuery: any query is refused with ErrInvalid or gives a
// request naming one port or one network, which its own Query encodes
// back to the same request.
func FuzzParseCaptureQuery(f *testing.F) {
	for _, q := range []string{"port=web", "network=front&filter=icmp&count=3&snaplen=64", "port=1&port=2", "filter=%00", "count=18446744073709551616&port=a"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		req, err := ParseCaptureQuery(q)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("ParseCaptureQuery(%q) = %v, not ErrInvalid", q, err)
			}
			return
		}
		if (req.Port == "") == (req.Network == "") {
			t.Fatalf("ParseCaptureQuery(%q) = %+v: not exactly one of port and network", q, req)
		}
		again, err := ParseCaptureQuery(req.Query().Encode())
		if err != nil || again != req {
			t.Fatalf("round trip of %+v = %+v, %v", req, again, err)
		}
	})
}
