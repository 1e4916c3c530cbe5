package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

// fakeBackend records requests and answers from a fixed set of ports and
// networks.
type fakeBackend struct {
	ports    []api.Port
	attached []api.AttachRequest
	networks []api.Network
	// removed records RemoveNetwork calls as "name" or "name force".
	removed   []string
	connected []api.ConnectRequest
	err       error
}

func (f *fakeBackend) Peers() []api.Peer    { return []api.Peer{} }
func (f *fakeBackend) Version() api.Version { return api.Version{Version: "test", Pid: 1} }
func (f *fakeBackend) Attach(_ context.Context, r api.AttachRequest) (api.Port, error) {
	if f.err != nil {
		return api.Port{}, f.err
	}
	f.attached = append(f.attached, r)
	p := api.Port{ID: uint32(len(f.ports) + 1), Name: r.Name, Netns: r.Netns}
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
	return fmt.Errorf("detach: %w: port %q", api.ErrNotFound, name)
}
func (f *fakeBackend) UpdatePort(_ context.Context, name string, r api.PortUpdateRequest) (api.Port, error) {
	for i := range f.ports {
		if f.ports[i].Name == name {
			if r.PortSecurity != nil {
				f.ports[i].PortSecurity = *r.PortSecurity
			}
			if r.MACLimit != nil {
				f.ports[i].MACLimit = *r.MACLimit
			}
			return f.ports[i], nil
		}
	}
	return api.Port{}, fmt.Errorf("update port: %w: port %q", api.ErrNotFound, name)
}
func (f *fakeBackend) Ports(all bool) []api.Port {
	var out []api.Port
	for _, p := range f.ports {
		if all || p.Kind != api.KindGateway {
			out = append(out, p)
		}
	}
	return out
}
func (f *fakeBackend) FDB(network string) ([]api.FDBEntry, error) {
	if network != "" && network != api.DefaultNetwork {
		return nil, fmt.Errorf("%w: network %q", api.ErrNotFound, network)
	}
	return []api.FDBEntry{{Network: api.DefaultNetwork, MAC: "02:00:00:00:00:01", Port: "a"}}, nil
}
func (f *fakeBackend) Networks() []api.Network {
	return append([]api.Network{{Name: api.DefaultNetwork}}, f.networks...)
}
func (f *fakeBackend) CreateNetwork(_ context.Context, r api.NetworkCreateRequest) (api.Network, error) {
	if f.err != nil {
		return api.Network{}, f.err
	}
	for _, n := range f.Networks() {
		if n.Name == r.Name {
			return api.Network{}, fmt.Errorf("%w: network %q already exists", api.ErrConflict, r.Name)
		}
	}
	n := api.Network{Name: r.Name, Subnet: r.Subnet, Gateway: r.Gateway, Internal: r.Internal}
	f.networks = append(f.networks, n)
	return n, nil
}
func (f *fakeBackend) InspectNetwork(name string) (api.NetworkDetail, error) {
	for _, n := range f.Networks() {
		if n.Name == name {
			d := api.NetworkDetail{Network: n, Ports: []api.Port{}}
			for _, p := range f.ports {
				if p.Network == name {
					d.Ports = append(d.Ports, p)
				}
			}
			return d, nil
		}
	}
	return api.NetworkDetail{}, fmt.Errorf("%w: network %q", api.ErrNotFound, name)
}
func (f *fakeBackend) RemoveNetwork(_ context.Context, name string, force bool) error {
	if f.err != nil {
		return f.err
	}
	if force {
		name += " force"
	}
	f.removed = append(f.removed, name)
	return nil
}
func (f *fakeBackend) Connect(_ context.Context, network string, r api.ConnectRequest) (api.Port, error) {
	if f.err != nil {
		return api.Port{}, f.err
	}
	f.connected = append(f.connected, r)
	p := api.Port{ID: uint32(len(f.ports) + 1), Name: r.Name, Network: network, DNSName: r.Port}
	f.ports = append(f.ports, p)
	return p, nil
}

// serve starts the handler on a Unix socket in a temp dir, as the daemon
// does, and returns a client of it.
func serve(t *testing.T, b Backend) *api.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(b, nil)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return api.NewClient(sock)
}

// request sends a request with a raw body ("" for none) to the server c
// talks to, and returns the status and, for a failure, the Error body.
func request(t *testing.T, c *api.Client, method, path, body string) (int, api.Error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, "unix", c.Socket())
	}}}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://tapswitchd"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	var e api.Error
	if resp.StatusCode >= 300 {
		// The wire names, as a program other than the client reads them.
		var raw struct {
			Message string `json:"message"`
			Reason  string `json:"reason"`
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatalf("%s %s: status %d, body %q is no Error: %v", method, path, resp.StatusCode, data, err)
		}
		e = api.Error{Message: raw.Message, Reason: api.Reason(raw.Reason)}
	}
	return resp.StatusCode, e
}

func TestClientServer(t *testing.T) {
	b := &fakeBackend{}
	c := serve(t, b)
	ctx := context.Background()

	v, err := c.Version(ctx)
	if err != nil || v.Version != "test" {
		t.Fatalf("Version() = %+v, %v; want version test", v, err)
	}
	p, err := c.Attach(ctx, api.AttachRequest{Netns: "a", Name: "web", IPs: []string{"10.0.0.1/24"}})
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
	var de *api.DaemonError
	if !errors.As(err, &de) || de.Status != http.StatusNotFound || !strings.Contains(de.Message, `"web"`) {
		t.Fatalf("second Detach(web) = %v, want a 404 naming the port", err)
	}
	if _, err := c.FDB(ctx, "nope"); !errors.As(err, &de) || de.Status != http.StatusNotFound {
		t.Fatalf("FDB(nope) = %v, want 404", err)
	}
}

func TestNetworks(t *testing.T) {
	b := &fakeBackend{ports: []api.Port{
		{ID: 1, Name: "tsw-00000001", Kind: api.KindGateway, Network: "front"},
		{ID: 2, Name: "web", Kind: api.KindContainer, Network: "front"},
	}}
	c := serve(t, b)
	ctx := context.Background()

	n, err := c.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "front", Subnet: "10.20.0.0/24", Internal: true})
	if err != nil || n.Name != "front" || n.Subnet != "10.20.0.0/24" || !n.Internal {
		t.Fatalf("CreateNetwork(front) = %+v, %v; want front, 10.20.0.0/24, internal", n, err)
	}
	var de *api.DaemonError
	if _, err := c.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "front"}); !errors.As(err, &de) || de.Status != http.StatusConflict {
		t.Fatalf("second CreateNetwork(front) = %v, want 409", err)
	}
	nets, err := c.Networks(ctx)
	if err != nil || len(nets) != 2 {
		t.Fatalf("Networks() = %+v, %v; want default and front", nets, err)
	}
	d, err := c.InspectNetwork(ctx, "front")
	if err != nil || d.Name != "front" || len(d.Ports) != 2 || d.Ports[0].Kind != api.KindGateway {
		t.Fatalf("InspectNetwork(front) = %+v, %v; want front with its gateway and web", d, err)
	}
	if _, err := c.InspectNetwork(ctx, "nope"); !errors.As(err, &de) || de.Status != http.StatusNotFound {
		t.Fatalf("InspectNetwork(nope) = %v, want 404", err)
	}

	ports, err := c.Ports(ctx)
	if err != nil || len(ports) != 1 || ports[0].Name != "web" {
		t.Fatalf("Ports() = %+v, %v; want web only, no gateway", ports, err)
	}
	if ports, err = c.AllPorts(ctx); err != nil || len(ports) != 2 {
		t.Fatalf("AllPorts() = %+v, %v; want the gateway and web", ports, err)
	}

	p, err := c.Connect(ctx, "back", api.ConnectRequest{Port: "web", Name: "web-back", IPs: []string{"10.89.1.9/24"}})
	if err != nil || p.Name != "web-back" || p.Network != "back" {
		t.Fatalf("Connect(back, web) = %+v, %v; want port web-back on back", p, err)
	}
	if got := b.connected; len(got) != 1 || got[0].Port != "web" || len(got[0].IPs) != 1 {
		t.Fatalf("backend got connect requests %+v, want one for port web with one address", got)
	}

	if err := c.RemoveNetwork(ctx, "front", false); err != nil {
		t.Fatalf("RemoveNetwork(front) = %v", err)
	}
	if err := c.RemoveNetwork(ctx, "back", true); err != nil {
		t.Fatalf("RemoveNetwork(back, force) = %v", err)
	}
	if got, want := strings.Join(b.removed, ","), "front,back force"; got != want {
		t.Fatalf("backend got removals %q, want %q", got, want)
	}
}

func TestBadQueryAndPaths(t *testing.T) {
	c := serve(t, &fakeBackend{})
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"ports all not a bool", http.MethodGet, "/v1/ports?all=maybe", "", http.StatusBadRequest},
		{"force not a bool", http.MethodDelete, "/v1/networks/front?force=yes%20please", "", http.StatusBadRequest},
		{"create without name", http.MethodPost, "/v1/networks", `{"subnet":"10.20.0.0/24"}`, http.StatusBadRequest},
		{"create unknown field", http.MethodPost, "/v1/networks", `{"name":"a","cidr":"10.20.0.0/24"}`, http.StatusBadRequest},
		{"connect without port", http.MethodPost, "/v1/networks/back/connect", `{"name":"x"}`, http.StatusBadRequest},
		{"unknown endpoint", http.MethodGet, "/v1/networks/front/ports", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e := request(t, c, tt.method, tt.path, tt.body)
			if status != tt.want || e.Message == "" {
				t.Fatalf("%s %s = %d %+v, want status %d with a message", tt.method, tt.path, status, e, tt.want)
			}
		})
	}
}

// TestErrorBody checks that a Backend's error reaches the client with the
// status of its class, its message and its reason.
func TestErrorBody(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		class  error
		reason api.Reason
	}{
		{"invalid", fmt.Errorf("x: %w", api.ErrInvalid), http.StatusBadRequest, api.ErrInvalid, ""},
		{"not found", fmt.Errorf("x: %w", api.ErrNotFound), http.StatusNotFound, api.ErrNotFound, ""},
		{"conflict", fmt.Errorf("x: %w", api.ErrConflict), http.StatusConflict, api.ErrConflict, ""},
		{"forbidden", fmt.Errorf("x: %w", api.ErrForbidden), http.StatusForbidden, api.ErrForbidden, ""},
		{"other", errors.New("boom"), http.StatusInternalServerError, nil, ""},
		{"reason", fmt.Errorf(`attach netns "b": %w`, api.Errorf(api.ErrConflict, api.ReasonPortNameInUse, `port name %q already exists`, "web")),
			http.StatusConflict, api.ErrConflict, api.ReasonPortNameInUse},
		{"reason wrapping a cause", api.Errorf(api.ErrNotFound, api.ReasonNetworkNotFound, "network %q: %w", "nope", errors.New("no such network")),
			http.StatusNotFound, api.ErrNotFound, api.ReasonNetworkNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serve(t, &fakeBackend{err: tt.err})
			_, err := c.Attach(context.Background(), api.AttachRequest{Netns: "a"})
			var de *api.DaemonError
			if !errors.As(err, &de) || de.Status != tt.status || de.Message != tt.err.Error() || de.Reason != tt.reason {
				t.Fatalf("Attach() = %#v, want status %d, message %q, reason %q", err, tt.status, tt.err, tt.reason)
			}
			if tt.class != nil && !errors.Is(err, tt.class) {
				t.Errorf("errors.Is(%v, %v) = false, want true", err, tt.class)
			}
			if got := api.ReasonOf(err); got != tt.reason {
				t.Errorf("ReasonOf(%v) = %q, want %q", err, got, tt.reason)
			}
		})
	}
}

// TestErrorBodyOnTheWire checks the body as a program other than the
// client reads it (see request).
func TestErrorBodyOnTheWire(t *testing.T) {
	c := serve(t, &fakeBackend{err: api.Errorf(api.ErrConflict, api.ReasonNetworkExists, "network %q already exists", "front")})
	status, e := request(t, c, http.MethodPost, "/v1/networks", `{"name":"front"}`)
	if status != http.StatusConflict || e.Message != `conflict: network "front" already exists` || e.Reason != "network_exists" {
		t.Fatalf("POST /v1/networks = %d %+v, want 409 with the message and reason network_exists", status, e)
	}
	// A failure without a reason has none in its body.
	status, e = request(t, c, http.MethodGet, "/v1/ports?all=maybe", "")
	if status != http.StatusBadRequest || e.Reason != "" {
		t.Fatalf("GET /v1/ports?all=maybe = %d %+v, want 400 without a reason", status, e)
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
			if err != nil && !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("DecodeAttachRequest(%q) = %v, want an api.ErrInvalid", tt.body, err)
			}
		})
	}
}

func TestDecodeNetworkCreateRequest(t *testing.T) {
	tests := []struct {
		name, body string
		ok         bool
	}{
		{"minimal", `{"name":"front"}`, true},
		{"full", `{"name":"front","subnet":"10.20.0.0/24","gateway":"10.20.0.254","internal":true}`, true},
		{"no name", `{"subnet":"10.20.0.0/24"}`, false},
		{"unknown field", `{"name":"front","cidr":"10.20.0.0/24"}`, false},
		{"trailing data", `{"name":"a"} {"name":"b"}`, false},
		{"wrong type", `{"name":"a","internal":"yes"}`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeNetworkCreateRequest(strings.NewReader(tt.body))
			if (err == nil) != tt.ok {
				t.Fatalf("DecodeNetworkCreateRequest(%q) = %v, want ok=%v", tt.body, err, tt.ok)
			}
			if err != nil && !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("DecodeNetworkCreateRequest(%q) = %v, want an api.ErrInvalid", tt.body, err)
			}
		})
	}
}

func TestDecodeConnectRequest(t *testing.T) {
	tests := []struct {
		name, body string
		ok         bool
	}{
		{"minimal", `{"port":"api"}`, true},
		{"full", `{"port":"api","name":"api-db","ips":["10.89.1.9/24"]}`, true},
		{"no port", `{"name":"x"}`, false},
		{"unknown field", `{"port":"api","network":"back"}`, false},
		{"trailing data", `{"port":"a"}x`, false},
		{"wrong type", `{"port":"a","ips":"10.0.0.1/24"}`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeConnectRequest(strings.NewReader(tt.body))
			if (err == nil) != tt.ok {
				t.Fatalf("DecodeConnectRequest(%q) = %v, want ok=%v", tt.body, err, tt.ok)
			}
			if err != nil && !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("DecodeConnectRequest(%q) = %v, want an api.ErrInvalid", tt.body, err)
			}
		})
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
		if err != nil && !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("DecodeAttachRequest(%q) = %v, not an api.ErrInvalid", body, err)
		}
	})
}

func FuzzDecodeNetworkCreateRequest(f *testing.F) {
	f.Add(`{"name":"front","subnet":"10.20.0.0/24","gateway":"10.20.0.1","internal":true}`)
	f.Add(`{"name":""}`)
	f.Add(`{"name":"a"}{}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := DecodeNetworkCreateRequest(strings.NewReader(body))
		if err == nil && req.Name == "" {
			t.Fatalf("DecodeNetworkCreateRequest(%q) accepted a request without name", body)
		}
		if err != nil && !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("DecodeNetworkCreateRequest(%q) = %v, not an api.ErrInvalid", body, err)
		}
	})
}

func FuzzDecodeConnectRequest(f *testing.F) {
	f.Add(`{"port":"api","name":"api-back","ips":["10.89.1.9/24"]}`)
	f.Add(`{"port":""}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := DecodeConnectRequest(strings.NewReader(body))
		if err == nil && req.Port == "" {
			t.Fatalf("DecodeConnectRequest(%q) accepted a request without port", body)
		}
		if err != nil && !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("DecodeConnectRequest(%q) = %v, not an api.ErrInvalid", body, err)
		}
	})
}

// TestUpdatePort drives PATCH /v1/ports/{port} through the client.
func TestUpdatePort(t *testing.T) {
	b := &fakeBackend{ports: []api.Port{{ID: 1, Name: "web", PortSecurity: true, MACLimit: api.DefaultMACLimit}}}
	c := serve(t, b)
	off, limit := false, 16
	p, err := c.UpdatePort(context.Background(), "web", api.PortUpdateRequest{PortSecurity: &off, MACLimit: &limit})
	if err != nil {
		t.Fatal(err)
	}
	if p.PortSecurity || p.MACLimit != 16 {
		t.Errorf("after update: port_security %v, mac_limit %d; want false, 16", p.PortSecurity, p.MACLimit)
	}
	for _, tc := range []struct {
		name string
		port string
		req  api.PortUpdateRequest
		want int
	}{
		{"nothing to change", "web", api.PortUpdateRequest{}, http.StatusBadRequest},
		{"zero limit", "web", api.PortUpdateRequest{MACLimit: new(int)}, http.StatusBadRequest},
		{"limit too large", "web", api.PortUpdateRequest{MACLimit: &[]int{api.MaxMACLimit + 1}[0]}, http.StatusBadRequest},
		{"no such port", "db", api.PortUpdateRequest{PortSecurity: &off}, http.StatusNotFound},
	} {
		_, err := c.UpdatePort(context.Background(), tc.port, tc.req)
		var de *api.DaemonError
		if !errors.As(err, &de) || de.Status != tc.want {
			t.Errorf("%s: err %v, want HTTP %d", tc.name, err, tc.want)
		}
	}
}

func FuzzDecodePortUpdateRequest(f *testing.F) {
	f.Add([]byte(`{"port_security":false}`))
	f.Add([]byte(`{"mac_limit":64}`))
	f.Add([]byte(`{"mac_limit":-1,"port_security":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodePortUpdateRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		if req.PortSecurity == nil && req.MACLimit == nil {
			t.Fatalf("decoded an update that changes nothing from %q", data)
		}
		_ = ValidatePortUpdate(req)
	})
}
