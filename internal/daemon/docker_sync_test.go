package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/docker"
	"github.com/tapswitch/tapswitch/internal/dockerapi"
)

func TestStaleDocker(t *testing.T) {
	before := dockerBefore{nets: map[string]bool{"n1": true, "n2": true, "n3": true}, endpoints: map[string]bool{"e1": true, "e2": true, "e3": true, "e4": true}}
	have := dockerIDs{nets: []string{"n1", "n2", "n3", "n4"}, endpoints: map[string]string{
		"e1": "n1", // dockerd lists it
		"e2": "n1", // dockerd's inspection of n1 lacks it
		"e3": "n2", // n2 is gone from dockerd
		"e4": "n3", // n3 was not inspected (an error): kept
		"e5": "n1", // made after the stream opened: kept
	}}
	known := map[string]bool{"n1": true, "n3": true, "n4": true}
	seen := []dockerapi.Network{{ID: "n1", Containers: map[string]dockerapi.Endpoint{"c1": {Name: "web", EndpointID: "e1"}}}}
	plan := staleDocker(before, have, known, seen)
	if fmt.Sprint(plan.endpoints) != "[e2 e3]" || fmt.Sprint(plan.nets) != "[n2]" {
		t.Errorf("staleDocker = %+v, want endpoints [e2 e3], networks [n2]", plan)
	}
}

// fakeDockerd answers what dockerapi asks, from nets, on a Unix socket;
// its event stream stays open until the test ends.
type fakeDockerd struct {
	mu   sync.Mutex
	nets []dockerapi.Network
	host string
}

func newFakeDockerd(t *testing.T, nets ...dockerapi.Network) *fakeDockerd {
	t.Helper()
	f := &fakeDockerd{nets: nets}
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /networks", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(f.nets)
	})
	mux.HandleFunc("GET /networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, n := range f.nets {
			if n.ID == r.PathValue("id") {
				json.NewEncoder(w).Encode(n)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"message":"network %s not found"}`, r.PathValue("id"))
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-done:
		case <-r.Context().Done():
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { close(done); srv.Close() })
	f.host = "unix://" + sock
	return f
}

// waitFor polls cond under the daemon's lock until it holds, failing
// the test after a while.
func waitFor(t *testing.T, d *Daemon, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		ok := cond()
		d.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// joinEndpoint makes endpoint eid on the Docker network nid and joins
// it.
func joinEndpoint(t *testing.T, b docker.Backend, nid, eid, addr string) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.CreateEndpoint(ctx, docker.Endpoint{NetworkID: nid, EndpointID: eid, Address: netip.MustParsePrefix(addr)}); err != nil {
		t.Fatalf("CreateEndpoint(%s) = %v", eid[:12], err)
	}
	if _, err := b.Join(ctx, docker.Join{NetworkID: nid, EndpointID: eid, SandboxKey: "/var/run/docker/netns/" + eid[:12]}); err != nil {
		t.Fatalf("Join(%s) = %v", eid[:12], err)
	}
}

// TestDockerSync: the sync renames Docker's network and port after
// dockerd's names, frees the endpoint dockerd no longer has (its port
// and address), keeps all that across a restart, and a dockerd that
// knows none of the networks frees nothing.
func TestDockerSync(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost()
	dir := t.TempDir()
	d := startDaemon(t, dir, h)
	defer func() { d.CloseAndRemove() }()
	b := d.Docker()
	dockerNetwork(t, b, dnID, "10.132.7.0/24")
	joinEndpoint(t, b, dnID, epID, "10.132.7.2/24")
	joinEndpoint(t, b, dnID, epID2, "10.132.7.3/24")
	bridge := d.nets[docker.ShortID(dnID)].bridge

	// Another dockerd: nothing of ours.
	other := newFakeDockerd(t, dockerapi.Network{ID: dnID2, Name: "elsewhere"})
	if err := d.StartDockerSync(other.host); err != nil {
		t.Fatal(err)
	}
	waitFor(t, d, "warning about another dockerd", func() bool { return d.dsync.told["dockerd "+other.host] })
	d.StopDockerSync()
	if len(d.docker.endpoints) != 2 || len(d.Ports(false)) != 2 {
		t.Fatalf("another dockerd's word freed endpoints: %d left, ports %+v", len(d.docker.endpoints), d.Ports(false))
	}

	// Ours: the network is "front", with web on it; epID2 is no more.
	f := newFakeDockerd(t, dockerapi.Network{ID: dnID, Name: "front", Containers: map[string]dockerapi.Endpoint{
		"c1": {Name: "web", EndpointID: epID},
	}})
	if err := d.StartDockerSync(f.host); err != nil {
		t.Fatal(err)
	}
	waitFor(t, d, "rename and re-sync", func() bool {
		_, web := d.ports["web"]
		_, ep2 := d.docker.endpoints[epID2]
		return d.nets["front"] != nil && web && !ep2
	})
	d.StopDockerSync()
	n := d.nets["front"]
	if n.bridge != bridge {
		t.Errorf("front's gateway is %s, want %s as before the rename", n.bridge, bridge)
	}
	if got := n.subnet.Allocated(); len(got) != 1 || got[0].String() != "10.132.7.2" {
		t.Errorf("front's IPAM holds %v, want web's 10.132.7.2 only", got)
	}
	if h.taps.Exists("", dockerIfname(epID2)) {
		t.Errorf("the TAP of the freed endpoint is left")
	}
	if dn := d.docker.nets[dnID]; dn.Network != "front" || d.docker.endpoints[epID].Network != "front" || d.docker.endpoints[epID].Port.Name != "web" {
		t.Errorf("the driver's records: network %+v, endpoint %+v", dn, d.docker.endpoints[epID])
	}
	// Docker's replays of what was freed succeed.
	if err := b.Leave(ctx, dnID, epID2); err != nil {
		t.Errorf("Leave of a freed endpoint = %v", err)
	}
	if err := b.DeleteEndpoint(ctx, dnID, epID2); err != nil {
		t.Errorf("DeleteEndpoint of a freed endpoint = %v", err)
	}

	// A restart finds front and web.
	d.Close()
	d = startDaemon(t, dir, h)
	b = d.Docker()
	if p, ok := d.ports["web"]; !ok || p.net.name != "front" || p.kind != api.KindDocker {
		t.Fatalf("after a restart: ports %+v, want web on front", d.Ports(false))
	}
	if d.nets["front"].bridge != bridge {
		t.Errorf("after a restart front's gateway is %s, want %s", d.nets["front"].bridge, bridge)
	}
	// Docker's calls by id reach the renamed network and port.
	if err := b.Leave(ctx, dnID, epID); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteEndpoint(ctx, dnID, epID); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteNetwork(ctx, dnID); err != nil {
		t.Fatal(err)
	}
	if len(d.Ports(false)) != 0 || d.nets["front"] != nil || h.taps.Exists("", bridge) {
		t.Errorf("after Docker removed it all: ports %+v, front %v, gateway left %v", d.Ports(false), d.nets["front"], h.taps.Exists("", bridge))
	}
}

// TestDockerPortVanished: a Docker port whose TAP goes with its
// container's namespace frees its endpoint and address at once.
func TestDockerPortVanished(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	b := d.Docker()
	dockerNetwork(t, b, dnID, "10.132.8.0/24")
	joinEndpoint(t, b, dnID, epID, "10.132.8.2/24")
	s, err := d.SubscribeEvents(api.EventsQuery{Types: []string{"port"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h.taps.Remove("", dockerIfname(epID))
	ev := eventsOf(t, s, 1)[0]
	if ev.Type != api.EventPortFailed || ev.Port != docker.ShortID(epID) {
		t.Errorf("event = %+v, want port.failed of the Docker port", ev)
	}
	waitFor(t, d, "the endpoint freed", func() bool { return len(d.docker.endpoints) == 0 })
	if got := d.nets[docker.ShortID(dnID)].subnet.Allocated(); len(got) != 0 {
		t.Errorf("IPAM holds %v after the namespace vanished", got)
	}
	if err := b.DeleteEndpoint(context.Background(), dnID, epID); err != nil {
		t.Errorf("Docker's DeleteEndpoint afterwards = %v", err)
	}
}

// TestDockerSyncUnreachable: with no dockerd, the provisional names stay,
// the log says so once however often the sync tries, and nothing is
// freed.
func TestDockerSyncUnreachable(t *testing.T) {
	defer func(w, m time.Duration) { dockerSyncFirstWait, dockerSyncMaxWait = w, m }(dockerSyncFirstWait, dockerSyncMaxWait)
	dockerSyncFirstWait, dockerSyncMaxWait = time.Millisecond, 5*time.Millisecond
	h := newFakeHost()
	var logs lockedBuffer
	d, err := newDaemon(Config{StateDir: t.TempDir(), TAPs: h.taps, Queues: 1, DNSUpstreams: []netip.AddrPort{},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer d.CloseAndRemove()
	b := d.Docker()
	dockerNetwork(t, b, dnID, "10.132.9.0/24")
	joinEndpoint(t, b, dnID, epID, "10.132.9.2/24")
	if err := d.StartDockerSync("unix://" + filepath.Join(t.TempDir(), "none.sock")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // tens of attempts; no assertion waits on it
	d.StopDockerSync()
	if n := strings.Count(logs.String(), "dockerd does not answer"); n != 1 {
		t.Errorf("the log says dockerd does not answer %d times, want once:\n%s", n, logs.String())
	}
	if _, ok := d.ports[docker.ShortID(epID)]; !ok || len(d.docker.endpoints) != 1 {
		t.Errorf("ports %+v, endpoints %d: want the provisional port and its endpoint kept", d.Ports(false), len(d.docker.endpoints))
	}
	if err := d.StartDockerSync("tcp://127.0.0.1:2375"); err == nil {
		t.Errorf("StartDockerSync(tcp://...) = nil, want an error: only unix:// is served")
	}
}

// lockedBuffer is a bytes.Buffer the daemon's goroutines may log to.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
