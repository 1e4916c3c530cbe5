package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBackend records attach requests and answers from a fixed set of ports.
type fakeBackend struct {
	ports    []Port
	attached []AttachRequest
	err      error
}

func (f *fakeBackend) Version() Version { return Version{Version: "test", Pid: 1} }
func (f *fakeBackend) Attach(_ context.Context, r AttachRequest) (Port, error) {
	if f.err != nil {
		return Port{}, f.err
	}
	f.attached = append(f.attached, r)
	p := Port{ID: uint32(len(f.ports) + 1), Name: r.Name, Netns: r.Netns}
	f.ports = append(f.ports, p)
	return p, nil
}
func (f *fakeBackend) Detach(_ context.Context, name string) error {
	for i, p := range f.ports {
		if p.Name == name {
			f.ports = append(f.ports[:i], f.ports[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("detach: %w: port %q", ErrNotFound, name)
}
func (f *fakeBackend) Ports() []Port { return f.ports }
func (f *fakeBackend) FDB(network string) ([]FDBEntry, error) {
	if network != "" && network != DefaultNetwork {
		return nil, fmt.Errorf("%w: network %q", ErrNotFound, network)
	}
	return []FDBEntry{{Network: DefaultNetwork, MAC: "02:00:00:00:00:01", Port: "a"}}, nil
}
func (f *fakeBackend) Networks() []Network { return []Network{{Name: DefaultNetwork}} }

// serve starts the handler on a Unix socket in a temp dir, as the daemon
// does, and returns a client of it.
func serve(t *testing.T, b Backend) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(b, nil)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return NewClient(sock)
}

func TestClientServer(t *testing.T) {
	b := &fakeBackend{}
	c := serve(t, b)
	ctx := context.Background()

	v, err := c.Version(ctx)
	if err != nil || v.Version != "test" {
		t.Fatalf("Version() = %+v, %v; want version test", v, err)
	}
	p, err := c.Attach(ctx, AttachRequest{Netns: "a", Name: "web", IPs: []string{"10.0.0.1/24"}})
	if err != nil || p.Name != "web" {
		t.Fatalf("Attach() = %+v, %v; want port web", p, err)
	}
	if got := b.attached[0].IPs; len(got) != 1 || got[0] != "10.0.0.1/24" {
		t.Fatalf("backend got IPs %v, want [10.0.0.1/24]", got)
	}
	ports, err := c.Ports(ctx)
	if err != nil || len(ports) != 1 {
		t.Fatalf("Ports() = %v, %v; want one port", ports, err)
	}
	e, err := c.FDB(ctx, "")
	if err != nil || len(e) != 1 {
		t.Fatalf("FDB() = %v, %v; want one entry", e, err)
	}
	if err := c.Detach(ctx, "web"); err != nil {
		t.Fatalf("Detach(web) = %v", err)
	}
	err = c.Detach(ctx, "web")
	var de *ErrDaemon
	if !errors.As(err, &de) || de.Status != http.StatusNotFound || !strings.Contains(de.Message, `"web"`) {
		t.Fatalf("second Detach(web) = %v, want a 404 naming the port", err)
	}
	if _, err := c.FDB(ctx, "nope"); !errors.As(err, &de) || de.Status != http.StatusNotFound {
		t.Fatalf("FDB(nope) = %v, want 404", err)
	}
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"invalid", fmt.Errorf("x: %w", ErrInvalid), http.StatusBadRequest},
		{"not found", fmt.Errorf("x: %w", ErrNotFound), http.StatusNotFound},
		{"conflict", fmt.Errorf("x: %w", ErrConflict), http.StatusConflict},
		{"other", errors.New("boom"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serve(t, &fakeBackend{err: tt.err})
			_, err := c.Attach(context.Background(), AttachRequest{Netns: "a"})
			var de *ErrDaemon
			if !errors.As(err, &de) || de.Status != tt.want || de.Message != tt.err.Error() {
				t.Fatalf("Attach() = %v, want status %d with message %q", err, tt.want, tt.err)
			}
		})
	}
}

func TestDecodeAttachRequest(t *testing.T) {
	tests := []struct {
		name, body string
		ok         bool
	}{
		{"minimal", `{"netns":"a"}`, true},
		{"full", `{"netns":"a","network":"n","name":"x","ifname":"eth1","ips":["10.0.0.1/24"],"mac":"02:00:00:00:00:01","mtu":9000}`, true},
		{"no netns", `{"name":"x"}`, false},
		{"unknown field", `{"netns":"a","ip":"10.0.0.1/24"}`, false},
		{"trailing data", `{"netns":"a"} {"netns":"b"}`, false},
		{"not json", `netns=a`, false},
		{"wrong type", `{"netns":"a","mtu":"big"}`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeAttachRequest(strings.NewReader(tt.body))
			if (err == nil) != tt.ok {
				t.Fatalf("DecodeAttachRequest(%q) = %v, want ok=%v", tt.body, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeAttachRequest(%q) = %v, want an ErrInvalid", tt.body, err)
			}
		})
	}
}

func TestConnectErrorSaysWhatToDo(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	_, err := c.Ports(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot connect to tapswitchd") || !strings.Contains(err.Error(), "is it running") {
		t.Fatalf("Ports() with no daemon = %v, want a 'cannot connect ... is it running' error", err)
	}
}

func FuzzDecodeAttachRequest(f *testing.F) {
	f.Add(`{"netns":"a","ips":["10.0.0.1/24"]}`)
	f.Add(`{"netns":"pid:1","mtu":-1}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := DecodeAttachRequest(strings.NewReader(body))
		if err == nil && req.Netns == "" {
			t.Fatalf("DecodeAttachRequest(%q) accepted a request without netns", body)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("DecodeAttachRequest(%q) = %v, not an ErrInvalid", body, err)
		}
	})
}
