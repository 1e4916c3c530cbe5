package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeDockerd serves h on a Unix socket and returns a client of it.
func fakeDockerd(t *testing.T, h http.Handler) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c, err := New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestSocketPath(t *testing.T) {
	for _, tc := range []struct {
		host, want string
		ok         bool
	}{
		{"unix:///var/run/docker.sock", "/var/run/docker.sock", true},
		{"unix:///tmp/x/d.sock", "/tmp/x/d.sock", true},
		{"tcp://127.0.0.1:2375", "", false},
		{"/var/run/docker.sock", "", false},
		{"unix://", "", false},
		{"unix://host/sock", "", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			got, err := SocketPath(tc.host)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("SocketPath(%q) = %q, %v; want %q, ok %v", tc.host, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestNetworkAndContainers(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "abc123" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"message":"network %s not found"}`, r.PathValue("id"))
			return
		}
		fmt.Fprint(w, `{"Name":"front","Id":"abc123","Driver":"dl-x","Extra":{"a":1},
			"Containers":{"c1":{"Name":"web","EndpointID":"e1","MacAddress":"02:42:0a:00:00:02","IPv4Address":"10.0.0.2/24"}}}`)
	})
	mux.HandleFunc("GET /networks", func(w http.ResponseWriter, r *http.Request) {
		var f map[string][]string
		if err := json.Unmarshal([]byte(r.URL.Query().Get("filters")), &f); err != nil || len(f["driver"]) != 1 || f["driver"][0] != "dl-x" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"message":"bad filters %q"}`, r.URL.Query().Get("filters"))
			return
		}
		fmt.Fprint(w, `[{"Name":"front","Id":"abc123","Driver":"dl-x","Containers":{}}]`)
	})
	mux.HandleFunc("GET /containers/json", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("all") != "1" {
			t.Errorf("containers/json without all=1: %s", r.URL)
		}
		fmt.Fprint(w, `[{"Id":"c1","Names":["/web","/api/webalias"],"State":"running"},{"Id":"c2","Names":[],"State":"exited"}]`)
	})
	c := fakeDockerd(t, mux)
	ctx := context.Background()

	n, err := c.Network(ctx, "abc123")
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "front" || n.Driver != "dl-x" || n.Containers["c1"].Name != "web" || n.Containers["c1"].EndpointID != "e1" {
		t.Errorf("Network = %+v", n)
	}
	if _, err := c.Network(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Network(nope) = %v, want ErrNotFound", err)
	}
	nets, err := c.Networks(ctx, "dl-x")
	if err != nil || len(nets) != 1 || nets[0].ID != "abc123" {
		t.Errorf("Networks = %+v, %v", nets, err)
	}
	if _, err := c.Networks(ctx, "other"); err == nil || !errors.Is(err, ErrUnreachable) {
		t.Errorf("Networks(other) = %v, want dockerd's refusal", err)
	}
	cs, err := c.Containers(ctx)
	if err != nil || len(cs) != 2 || cs[0].Name() != "web" || cs[1].Name() != "" {
		t.Errorf("Containers = %+v, %v", cs, err)
	}
}

func TestUnreachable(t *testing.T) {
	c, err := New("unix://" + filepath.Join(t.TempDir(), "none.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Ping of no dockerd = %v, want ErrUnreachable", err)
	}
	if _, err := c.Network(context.Background(), "x"); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Network of no dockerd = %v, want ErrUnreachable", err)
	}
}

func TestEvents(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		fmt.Fprintln(w, `{"Type":"network","Action":"connect","Actor":{"ID":"n1","Attributes":{"container":"c1","name":"front","type":"dl-x"}}}`)
		fmt.Fprintln(w)
		fmt.Fprintln(w, `{"Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"name":"web"}}}`)
	})
	c := fakeDockerd(t, mux)
	var got []Event
	readied := false
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Events(ctx, func() { readied = true }, func(ev Event) { got = append(got, ev) })
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("Events after dockerd closed the stream = %v, want ErrUnreachable", err)
	}
	if !readied || len(got) != 2 || got[0].Actor.Attributes["container"] != "c1" || got[1].Action != "die" {
		t.Errorf("Events: ready %v, %+v", readied, got)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"Type":"network","Action":"connect","Actor":{"ID":"n1","Attributes":{"container":"c1"}}}`))
	f.Add([]byte(`{"Type":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodeEvent(data)
		if err != nil {
			return
		}
		// What decodes is what is used: it must survive a round trip.
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", ev, err)
		}
		if _, err := DecodeEvent(again); err != nil {
			t.Fatalf("DecodeEvent(%s) of a decoded event: %v", again, err)
		}
	})
}

func FuzzNetwork(f *testing.F) {
	f.Add([]byte(`{"Name":"front","Id":"abc","Containers":{"c1":{"Name":"web","EndpointID":"e1"}}}`))
	f.Add([]byte(`{"Containers":null}`))
	f.Add([]byte(`[{"Id":"c1","Names":["/web"]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var n Network
		if decode(data, &n) == nil {
			for id, ep := range n.Containers {
				_, _ = id, ep.Name
			}
		}
		var cs []Container
		if decode(data, &cs) == nil {
			for _, c := range cs {
				if name := c.Name(); strings.Contains(name, "/") {
					t.Fatalf("Container%v.Name() = %q, want no slash", c.Names, name)
				}
			}
		}
	})
}
