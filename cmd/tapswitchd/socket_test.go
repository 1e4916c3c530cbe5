package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/privtest"
)

func TestSocketAccess(t *testing.T) {
	tests := []struct {
		name, group string
		want        apiserver.Access
		errText     string
	}{
		{name: "root only", group: "", want: apiserver.RootOnly},
		{name: "by name", group: "root", want: apiserver.Access{GID: 0, Group: "root"}},
		{name: "by GID", group: "0", want: apiserver.Access{GID: 0, Group: "root"}},
		{name: "GID not in the database", group: "3999999", want: apiserver.Access{GID: 3999999}},
		{name: "unknown name", group: "no-such-group-for-tests", errText: "no such group"},
		{name: "negative GID", group: "-1", errText: "no such group"},
		{name: "GID -1 as unsigned", group: "4294967295", errText: "no such group"},
		{name: "GID too large", group: "4294967296", errText: "no such group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := socketAccess(tt.group)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) || !strings.Contains(err.Error(), "--group") {
					t.Fatalf("socketAccess(%q) = %+v, %v; want an error naming --group containing %q", tt.group, got, err, tt.errText)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("socketAccess(%q) = %+v, %v; want %+v", tt.group, got, err, tt.want)
			}
		})
	}
}

// TestListen checks the socket's owner and mode, and the directory made
// for it, with and without a group.
func TestListen(t *testing.T) {
	privtest.Require(t, "give a socket to a group")
	// A umask that would close a directory made with its default mode.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	tests := []struct {
		name   string
		access apiserver.Access
		mode   os.FileMode
		gid    uint32
	}{
		{"root only", apiserver.RootOnly, 0o600, 0},
		{"group", apiserver.Access{GID: 3999999}, 0o660, 3999999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run", "tapswitch")
			path := filepath.Join(dir, "tapswitch.sock")
			ln, err := listen(path, tt.access)
			if err != nil {
				t.Fatalf("listen(%s) = %v", path, err)
			}
			defer ln.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != tt.mode || st.Uid != 0 || st.Gid != tt.gid {
				t.Fatalf("socket %s: mode %v, owner %d:%d; want a socket, mode %v, owner 0:%d", path, fi.Mode(), st.Uid, st.Gid, tt.mode, tt.gid)
			}
			di, err := os.Stat(dir)
			if err != nil || di.Mode().Perm() != 0o755 {
				t.Fatalf("socket directory %s: %v, %v; want mode 0755", dir, di.Mode(), err)
			}
			if _, err := listen(path, tt.access); err == nil || !strings.Contains(err.Error(), "already serving") {
				t.Fatalf("second listen(%s) = %v, want 'already serving'", path, err)
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dial %s: %v", path, err)
			}
			c.Close()
		})
	}
}

func TestLimitConns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	inner, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln := limitConns(inner, 2, 1, slog.New(slog.DiscardHandler))
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	// The connection's peer is still readable through the wrapper.
	if p, err := apiserver.PeerOf(first); err != nil || p.PID != os.Getpid() {
		t.Errorf("PeerOf(accepted) = %+v, %v; want this process", p, err)
	}
	select {
	case c := <-accepted:
		t.Fatalf("third connection %v accepted with 2 open and a limit of 2", c.LocalAddr())
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	first.Close() // a second Close gives nothing back twice
	third := <-accepted
	if third == nil {
		t.Fatal("listener closed before the third connection was accepted")
	}
	select {
	case c := <-accepted:
		t.Fatalf("a fourth accept (%v) with 2 open and a limit of 2", c)
	case <-time.After(100 * time.Millisecond):
	}
	second.Close()
	third.Close()
	// Close ends an Accept that waits for a place.
	ln.Close()
	for c := range accepted {
		t.Fatalf("accepted %v after Close", c)
	}
}

func TestAPIServerBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := apiServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), slog.New(slog.DiscardHandler))
	go srv.Serve(limitConns(ln, apiMaxConns, apiMaxConnsPerUser, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	tests := []struct {
		name   string
		header int
		body   int
		want   int
	}{
		{"small", 100, 100, http.StatusNoContent},
		{"body at the cap", 0, apiMaxBody, http.StatusNoContent},
		{"body over the cap", 0, apiMaxBody + 1, http.StatusRequestEntityTooLarge},
		{"headers over the cap", 2 * apiMaxHeaderBytes, 0, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", "http://tapswitchd/v1/ports", strings.NewReader(strings.Repeat("x", tt.body)))
			req.Header.Set("X-Pad", strings.Repeat("h", tt.header))
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("POST with %d bytes of headers and %d of body: %v", tt.header, tt.body, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("POST with %d bytes of headers and %d of body: status %d, want %d", tt.header, tt.body, resp.StatusCode, tt.want)
			}
		})
	}
}

// TestQuiesceAPI: a hand-over stops the API without leaving a request
// unanswered. Paused, the listener accepts nothing more (a client's
// connection waits in the backlog, for a successor), while a connection
// accepted before, whose request comes only after the pause, is still
// answered through Shutdown; without the wait for it, Go's server would
// close it unanswered.
func TestQuiesceAPI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	inner, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	inner.(*net.UnixListener).SetUnlinkOnClose(false)
	// The copy a hand-over passes on keeps the socket open.
	kept, err := inner.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	log := slog.New(slog.DiscardHandler)
	s := &server{ln: inner, conns: newAPIConns()}
	s.srv = apiServer(s.conns.handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})), log)
	s.srv.ConnState = s.conns.track
	s.srv.ConnContext = s.conns.connContext
	s.lim = limitConns(inner, 8, 8, log)
	go s.srv.Serve(s.lim)

	// Accepted, silent until the API is paused.
	early, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	waitFor(t, "the early connection tracked", func() bool { return !s.conns.quiet() })

	quiesced := make(chan struct{})
	go func() {
		s.quiesceAPI(log)
		close(quiesced)
	}()
	waitFor(t, "the listener parked", func() bool {
		select {
		case <-s.lim.parked:
			return true
		default:
			return false
		}
	})
	late, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial while paused: %v (want the connection left in the backlog)", err)
	}
	defer late.Close()
	select {
	case <-quiesced:
		t.Fatal("quiesceAPI returned while a connection it accepted had sent nothing")
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := io.WriteString(early, "GET /v1/status HTTP/1.1\r\nHost: tapswitchd\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-quiesced:
	case <-time.After(5 * time.Second):
		t.Fatal("quiesceAPI did not return once the request reached the handler")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	early.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(early)
	if !strings.Contains(string(b), "200 OK") || !strings.HasSuffix(string(b), "ok") {
		t.Fatalf("the early connection's answer %q, want 200 and ok", b)
	}
	// The late connection was never accepted: it waits in the backlog
	// (the socket is still open), unanswered, for whoever accepts next.
	late.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := late.Read(make([]byte, 1)); n != 0 || !os.IsTimeout(err) {
		t.Fatalf("late connection read %d, %v: want it waiting in the backlog", n, err)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
