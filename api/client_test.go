package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// serveRaw answers every request to a client with h, on a Unix socket as
// the daemon does.
func serveRaw(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return NewClient(sock)
}

func TestDaemonError(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		message string
		reason  Reason
		class   error
	}{
		{"reason", http.StatusConflict, `{"message":"conflict: port name \"web\" already exists","reason":"port_name_in_use"}`,
			`conflict: port name "web" already exists`, ReasonPortNameInUse, ErrConflict},
		{"no reason", http.StatusBadRequest, `{"message":"invalid request: MTU 10"}`, "invalid request: MTU 10", "", ErrInvalid},
		{"unknown reason", http.StatusNotFound, `{"message":"not found: x","reason":"from_a_newer_daemon"}`, "not found: x", "from_a_newer_daemon", ErrNotFound},
		{"forbidden", http.StatusForbidden, `{"message":"permission denied: root only","reason":"root_only"}`, "permission denied: root only", ReasonRootOnly, ErrForbidden},
		{"not an Error body", http.StatusBadGateway, `<html>`, "tapswitchd answered 502 Bad Gateway", "", nil},
		{"empty body", http.StatusInternalServerError, ``, "tapswitchd answered 500 Internal Server Error", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serveRaw(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			})
			_, err := c.Ports(context.Background())
			var de *DaemonError
			if !errors.As(err, &de) {
				t.Fatalf("Ports() = %v, want a *DaemonError", err)
			}
			if de.Status != tt.status || de.Message != tt.message || de.Reason != tt.reason {
				t.Fatalf("Ports() = %+v, want status %d, message %q, reason %q", de, tt.status, tt.message, tt.reason)
			}
			if got := ReasonOf(err); got != tt.reason {
				t.Errorf("ReasonOf(%v) = %q, want %q", err, got, tt.reason)
			}
			for _, class := range []error{ErrInvalid, ErrForbidden, ErrNotFound, ErrConflict} {
				if got, want := errors.Is(err, class), class == tt.class; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, class, got, want)
				}
			}
		})
	}
}

func TestReasonError(t *testing.T) {
	cause := errors.New("ipam: subnets overlap")
	err := fmt.Errorf(`create network "x": %w`, Errorf(ErrConflict, ReasonSubnetOverlap, "subnet 10.0.0.0/8: %w", cause))
	if got, want := err.Error(), `create network "x": conflict: subnet 10.0.0.0/8: ipam: subnets overlap`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrConflict) || !errors.Is(err, cause) || errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(%v): want the class ErrConflict and the cause, nothing else", err)
	}
	if got := ReasonOf(err); got != ReasonSubnetOverlap {
		t.Errorf("ReasonOf(%v) = %q, want %q", err, got, ReasonSubnetOverlap)
	}
	if got := StatusOf(err); got != http.StatusConflict {
		t.Errorf("StatusOf(%v) = %d, want %d", err, got, http.StatusConflict)
	}
	if got := ReasonOf(cause); got != "" {
		t.Errorf("ReasonOf(%v) = %q, want none", cause, got)
	}
	if got := StatusOf(cause); got != http.StatusInternalServerError {
		t.Errorf("StatusOf(%v) = %d, want %d", cause, got, http.StatusInternalServerError)
	}
}

// TestConnError checks that a daemon out of reach is named with the
// socket and the cause, which errors.Is can tell apart.
func TestConnError(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.sock")
	// A socket file nobody listens on any more.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	tests := []struct {
		sock string
		want error
		text string
	}{
		{missing, fs.ErrNotExist, "cannot connect to tapswitchd at " + missing + ": connect: no such file or directory"},
		{stale, syscall.ECONNREFUSED, "cannot connect to tapswitchd at " + stale + ": connect: connection refused"},
	}
	for _, tt := range tests {
		_, err := NewClient(tt.sock).Ports(context.Background())
		if !errors.Is(err, tt.want) || err.Error() != tt.text {
			t.Errorf("Ports() at %s = %v, want %q wrapping %v", tt.sock, err, tt.text, tt.want)
		}
		var de *DaemonError
		if errors.As(err, &de) || strings.Contains(err.Error(), "http://") {
			t.Errorf("Ports() at %s = %v, want a connection error without the request's URL", tt.sock, err)
		}
	}
}
