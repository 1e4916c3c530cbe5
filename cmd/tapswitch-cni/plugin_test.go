package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
)

// fakeBackend is a daemon of networks and ports in memory, enough for
// the plugin: attach with names, addresses and container ids; detach;
// lists and inspect.
type fakeBackend struct {
	mu     sync.Mutex
	nets   []api.Network
	ports  []api.Port
	nextID uint32
}

var errUnused = errors.New("not used by the plugin")

func newFakeBackend(nets ...string) *fakeBackend {
	b := &fakeBackend{}
	for i, n := range nets {
		b.nextID++
		bridge := fmt.Sprintf("tsw-%08x", i)
		b.nets = append(b.nets, api.Network{Name: n, Subnet: fmt.Sprintf("10.9.%d.0/24", i), Gateway: fmt.Sprintf("10.9.%d.1", i), Bridge: bridge})
		b.ports = append(b.ports, api.Port{ID: b.nextID, Name: bridge, Kind: api.KindGateway, Network: n, Ifname: bridge,
			MAC: fmt.Sprintf("02:00:00:00:00:%02x", b.nextID), IPs: []string{fmt.Sprintf("10.9.%d.1/24", i)}, MTU: 1500})
	}
	return b
}

func (b *fakeBackend) network(name string) (api.Network, int, bool) {
	for i, n := range b.nets {
		if n.Name == name {
			return n, i, true
		}
	}
	return api.Network{}, 0, false
}

func (b *fakeBackend) Peers() []api.Peer    { return []api.Peer{} }
func (b *fakeBackend) Version() api.Version { return api.Version{Version: "test"} }
func (b *fakeBackend) Status() api.Status   { return api.Status{Version: "test"} }

func (b *fakeBackend) Attach(_ context.Context, req api.AttachRequest) (api.Port, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, idx, ok := b.network(req.Network)
	if !ok {
		return api.Port{}, api.Errorf(api.ErrNotFound, api.ReasonNetworkNotFound, "network %q not found", req.Network)
	}
	if req.Name == "" {
		req.Name = filepath.Base(req.Netns)
	}
	for _, p := range b.ports {
		if p.Name == req.Name {
			return api.Port{}, api.Errorf(api.ErrConflict, api.ReasonPortNameInUse, "port name %q already exists", req.Name)
		}
	}
	b.nextID++
	ips := req.IPs
	if len(ips) == 0 {
		ips = []string{fmt.Sprintf("10.9.%d.%d/24", idx, 10+b.nextID)}
	}
	p := api.Port{ID: b.nextID, Name: req.Name, Kind: api.KindContainer, Network: n.Name, Netns: req.Netns, Ifname: req.Ifname,
		MAC: fmt.Sprintf("02:00:00:00:01:%02x", b.nextID), IPs: ips, MTU: 1500, DNSName: req.DNSName, ContainerID: req.ContainerID}
	b.ports = append(b.ports, p)
	return p, nil
}

func (b *fakeBackend) Detach(_ context.Context, port string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, p := range b.ports {
		if p.Name == port && p.Kind == api.KindContainer {
			b.ports = slices.Delete(b.ports, i, i+1)
			return nil
		}
	}
	return api.Errorf(api.ErrNotFound, api.ReasonPortNotFound, "port %q not found", port)
}

func (b *fakeBackend) UpdatePort(context.Context, string, api.PortUpdateRequest) (api.Port, error) {
	return api.Port{}, errUnused
}

func (b *fakeBackend) Ports(all bool) []api.Port {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []api.Port
	for _, p := range b.ports {
		if all || p.Kind != api.KindGateway {
			out = append(out, p)
		}
	}
	return out
}

func (b *fakeBackend) FDB(string) ([]api.FDBEntry, error) { return nil, errUnused }
func (b *fakeBackend) Networks() []api.Network {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.nets)
}
func (b *fakeBackend) CreateNetwork(context.Context, api.NetworkCreateRequest) (api.Network, error) {
	return api.Network{}, errUnused
}

func (b *fakeBackend) InspectNetwork(name string) (api.NetworkDetail, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, _, ok := b.network(name)
	if !ok {
		return api.NetworkDetail{}, api.Errorf(api.ErrNotFound, api.ReasonNetworkNotFound, "network %q not found", name)
	}
	d := api.NetworkDetail{Network: n}
	for _, p := range b.ports {
		if p.Network == name {
			d.Ports = append(d.Ports, p)
		}
	}
	return d, nil
}

func (b *fakeBackend) RemoveNetwork(context.Context, string, bool) error { return errUnused }
func (b *fakeBackend) Connect(context.Context, string, api.ConnectRequest) (api.Port, error) {
	return api.Port{}, errUnused
}

// serve runs the API server on b on a socket of its own and returns the
// socket's path.
func serve(t *testing.T, b apiserver.Backend) string {
	t.Helper()
	// Not t.TempDir: its long path could pass the 108 bytes of sun_path.
	dir, err := os.MkdirTemp("", "tswcni")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: apiserver.NewHandler(b, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// tester drives the plugin's commands against one socket.
type tester struct {
	t    *testing.T
	sock string
	// link is what inspectLink reports, by netns path.
	link map[string]linkState
}

func newTester(t *testing.T, b *fakeBackend) *tester {
	return &tester{t: t, sock: serve(t, b), link: map[string]linkState{}}
}

func (tt *tester) plugin(out io.Writer) *plugin {
	return &plugin{out: out, log: io.Discard, inspectLink: func(netns, ifname string) (linkState, error) {
		st, ok := tt.link[netns+"/"+ifname]
		if !ok {
			return linkState{}, fmt.Errorf("interface %s in %s: Link not found", ifname, netns)
		}
		return st, nil
	}}
}

// conf is a plugin config of cniVersion ver on network "front", with
// extra keys.
func (tt *tester) conf(ver string, extra map[string]any) []byte {
	tt.t.Helper()
	m := map[string]any{"cniVersion": ver, "name": "front", "type": "tapswitch-cni", "socket": tt.sock}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		tt.t.Fatal(err)
	}
	return b
}

func args(cid, netns, ifname, pod string, conf []byte) *skel.CmdArgs {
	a := &skel.CmdArgs{ContainerID: cid, Netns: netns, IfName: ifname, StdinData: conf}
	if pod != "" {
		a.Args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + pod
	}
	return a
}

// add runs ADD and returns its output.
func (tt *tester) add(a *skel.CmdArgs) []byte {
	tt.t.Helper()
	var out bytes.Buffer
	if err := tt.plugin(&out).add(a); err != nil {
		tt.t.Fatalf("ADD %s %s: %v", a.ContainerID, a.IfName, err)
	}
	return out.Bytes()
}

func code(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestPortNames(t *testing.T) {
	long := strings.Repeat("p", 60)
	for _, tc := range []struct {
		name, pod, ifname, cid string
		want                   []string
	}{
		{"pod", "web", "eth0", "0123456789abcdef", []string{"web", "web-eth0", "cni-0123456789ab-eth0"}},
		{"no pod", "", "eth0", "0123456789abcdef", []string{"cni-0123456789ab-eth0"}},
		{"pod not a label", "web.1", "eth0", "abc", []string{"cni-abc-eth0"}},
		{"long pod", long, "eth0", "abc", []string{long, "cni-abc-eth0"}},
		{"odd ifname", "web", "eth.1", "a.b", []string{"web", "cni-a-b-eth-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := portNames(tc.pod, tc.ifname, tc.cid); !slices.Equal(got, tc.want) {
				t.Errorf("portNames(%q, %q, %q) = %q, want %q", tc.pod, tc.ifname, tc.cid, got, tc.want)
			}
		})
	}
}

// TestAddNames: the pod's name, then POD-IFNAME, then the container id's.
func TestAddNames(t *testing.T) {
	b := newFakeBackend("front")
	tt := newTester(t, b)
	conf := tt.conf("1.1.0", nil)
	tt.add(args("c1aaaaaaaaaaaaaa", "/run/netns/x1", "eth0", "web", conf))
	tt.add(args("c2aaaaaaaaaaaaaa", "/run/netns/x2", "eth0", "web", conf))
	tt.add(args("c3aaaaaaaaaaaaaa", "/run/netns/x3", "eth0", "web", conf))
	tt.add(args("c4aaaaaaaaaaaaaa", "/run/netns/x4", "eth0", "", conf))
	want := map[string][2]string{ // container id: port name, DNS name
		"c1aaaaaaaaaaaaaa": {"web", "web"},
		"c2aaaaaaaaaaaaaa": {"web-eth0", "web"},
		"c3aaaaaaaaaaaaaa": {"cni-c3aaaaaaaaaa-eth0", "web"},
		"c4aaaaaaaaaaaaaa": {"cni-c4aaaaaaaaaa-eth0", ""},
	}
	for _, p := range b.Ports(false) {
		w := want[p.ContainerID]
		if p.Name != w[0] || p.DNSName != w[1] || p.Network != "front" || p.Ifname != "eth0" {
			t.Errorf("port of container %s: name %q, DNS name %q, network %q, ifname %q; want %q, %q, front, eth0",
				p.ContainerID, p.Name, p.DNSName, p.Network, p.Ifname, w[0], w[1])
		}
	}
}

// TestAddIdempotent: an ADD repeated for the container and interface
// returns the first result and makes no port.
func TestAddIdempotent(t *testing.T) {
	b := newFakeBackend("front")
	tt := newTester(t, b)
	a := args("c1", "/run/netns/x", "eth0", "web", tt.conf("1.1.0", nil))
	first := tt.add(a)
	if again := tt.add(a); !bytes.Equal(first, again) {
		t.Errorf("repeated ADD:\n%s\nwant\n%s", again, first)
	}
	if n := len(b.Ports(false)); n != 1 {
		t.Errorf("%d ports, want 1", n)
	}
	// Another interface of the container is another port, without the
	// default route (the daemon routes the namespace's first port).
	var res types100.Result
	if err := json.Unmarshal(tt.add(args("c1", "/run/netns/x", "eth1", "web", tt.conf("1.1.0", nil))), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Routes) != 0 || res.Interfaces[1].Name != "eth1" {
		t.Errorf("second interface's result %+v, want eth1 without routes", res)
	}
}

// TestResultVersions: the result is of the config's cniVersion.
func TestResultVersions(t *testing.T) {
	for _, ver := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(ver, func(t *testing.T) {
			tt := newTester(t, newFakeBackend("front"))
			out := tt.add(args("c1", "/run/netns/x", "eth0", "", tt.conf(ver, nil)))
			var res struct {
				CNIVersion string `json:"cniVersion"`
				Interfaces []struct {
					Name, Mac, Sandbox string
				}
				IPs []struct {
					Version   string `json:"version"`
					Address   string
					Gateway   string
					Interface *int
				}
				Routes []struct{ Dst, GW string }
				DNS    struct {
					Nameservers []string
					Domain      string
					Search      []string
				}
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatal(err)
			}
			wantV := ""
			if ver == "0.4.0" {
				wantV = "4"
			}
			if res.CNIVersion != ver || len(res.Interfaces) != 2 || res.Interfaces[0].Name != "tsw-00000000" || res.Interfaces[0].Mac == "" ||
				res.Interfaces[1].Sandbox != "/run/netns/x" || len(res.IPs) != 1 || res.IPs[0].Version != wantV ||
				res.IPs[0].Gateway != "10.9.0.1" || res.IPs[0].Interface == nil || *res.IPs[0].Interface != 1 ||
				len(res.Routes) != 1 || res.Routes[0].Dst != "0.0.0.0/0" || res.Routes[0].GW != "10.9.0.1" ||
				!slices.Equal(res.DNS.Nameservers, []string{"10.9.0.1"}) || res.DNS.Domain != "front" {
				t.Errorf("ADD result of %s:\n%s", ver, out)
			}
		})
	}
}

// TestAddPrevResult: after another plugin, its interfaces come first and
// the indexes of this plugin's addresses move along.
func TestAddPrevResult(t *testing.T) {
	tt := newTester(t, newFakeBackend("front"))
	prev := map[string]any{
		"cniVersion": "1.1.0",
		"interfaces": []any{map[string]any{"name": "lo0", "sandbox": "/run/netns/x"}},
		"ips":        []any{map[string]any{"address": "192.0.2.9/32", "interface": 0}},
		"dns":        map[string]any{"nameservers": []string{"192.0.2.53"}},
	}
	var res types100.Result
	if err := json.Unmarshal(tt.add(args("c1", "/run/netns/x", "eth0", "", tt.conf("1.1.0", map[string]any{"prevResult": prev}))), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 3 || res.Interfaces[0].Name != "lo0" || len(res.IPs) != 2 || *res.IPs[1].Interface != 2 ||
		!slices.Equal(res.DNS.Nameservers, []string{"192.0.2.53", "10.9.0.1"}) {
		t.Errorf("result after prevResult: %+v", res)
	}
}

func TestAddErrors(t *testing.T) {
	tt := newTester(t, newFakeBackend("front"))
	var out bytes.Buffer
	err := tt.plugin(&out).add(args("c1", "/run/netns/x", "eth0", "", tt.conf("1.1.0", map[string]any{"network": "nosuch"})))
	if code(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "tapswitch network create nosuch") {
		t.Errorf("ADD to a missing network: %v, want code 7 saying how to create it", err)
	}
	err = tt.plugin(&out).add(args("c1", "/run/netns/x", "eth0", "", tt.conf("1.1.0", map[string]any{"network": "no.dots"})))
	if code(err) != types.ErrInvalidNetworkConfig {
		t.Errorf("ADD with an invalid network name: %v, want code 7", err)
	}
	tt.sock = filepath.Join(t.TempDir(), "none")
	err = tt.plugin(&out).add(args("c1", "/run/netns/x", "eth0", "", tt.conf("1.1.0", nil)))
	if code(err) != types.ErrTryAgainLater || !strings.Contains(err.Error(), "tapswitchd &") {
		t.Errorf("ADD without a daemon: %v, want code 11 saying how to start it", err)
	}
	err = tt.plugin(&out).del(args("c1", "/run/netns/x", "eth0", "", tt.conf("1.1.0", nil)))
	if code(err) != types.ErrTryAgainLater {
		t.Errorf("DEL without a daemon: %v, want code 11", err)
	}
}

// TestDel: DEL detaches the port of the container and interface, and
// succeeds when it is already gone.
func TestDel(t *testing.T) {
	b := newFakeBackend("front", "back")
	tt := newTester(t, b)
	front, back := tt.conf("1.1.0", nil), tt.conf("1.1.0", map[string]any{"network": "back"})
	tt.add(args("c1", "/run/netns/x", "eth0", "", front))
	tt.add(args("c1", "/run/netns/x", "eth1", "", back))
	p := tt.plugin(io.Discard)
	for range 2 {
		if err := p.del(args("c1", "/run/netns/x", "eth0", "", front)); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	}
	ports := b.Ports(false)
	if len(ports) != 1 || ports[0].Network != "back" {
		t.Errorf("ports after DEL of eth0 on front: %+v, want eth1 on back", ports)
	}
}

// TestGC: GC detaches the ports of the network whose container and
// interface are not valid attachments; not ports attached by hand, not
// ports of other networks, nothing without the list.
func TestGC(t *testing.T) {
	b := newFakeBackend("front", "back")
	tt := newTester(t, b)
	front := tt.conf("1.1.0", nil)
	tt.add(args("keep", "/run/netns/k", "eth0", "", front))
	tt.add(args("stale", "/run/netns/s", "eth0", "", front))
	tt.add(args("other", "/run/netns/o", "eth0", "", tt.conf("1.1.0", map[string]any{"network": "back"})))
	if _, err := b.Attach(context.Background(), api.AttachRequest{Netns: "hand", Network: "front", Ifname: "eth0"}); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		var n []string
		for _, p := range b.Ports(false) {
			n = append(n, p.Name)
		}
		slices.Sort(n)
		return n
	}
	all := names()
	p := tt.plugin(io.Discard)
	if err := p.gc(&skel.CmdArgs{StdinData: front}); err != nil {
		t.Fatalf("GC without valid attachments: %v", err)
	}
	if got := names(); !slices.Equal(got, all) {
		t.Errorf("GC without cni.dev/valid-attachments: ports %q, want all of %q", got, all)
	}
	valid := []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}}
	if err := p.gc(&skel.CmdArgs{StdinData: tt.conf("1.1.0", map[string]any{"cni.dev/valid-attachments": valid})}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	want := []string{"cni-keep-eth0", "cni-other-eth0", "hand"}
	if got := names(); !slices.Equal(got, want) {
		t.Errorf("ports after GC: %q, want %q", got, want)
	}
	// An empty list is no valid attachment.
	if err := p.gc(&skel.CmdArgs{StdinData: tt.conf("1.1.0", map[string]any{"cni.dev/valid-attachments": []any{}})}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	want = []string{"cni-other-eth0", "hand"}
	if got := names(); !slices.Equal(got, want) {
		t.Errorf("ports after GC of an empty list: %q, want %q", got, want)
	}
}

func TestStatus(t *testing.T) {
	tt := newTester(t, newFakeBackend("front"))
	p := tt.plugin(io.Discard)
	if err := p.status(&skel.CmdArgs{StdinData: tt.conf("1.1.0", nil)}); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	if err := p.status(&skel.CmdArgs{StdinData: tt.conf("1.1.0", map[string]any{"network": "nosuch"})}); code(err) != types.ErrPluginNotAvailable {
		t.Errorf("STATUS of a missing network: %v, want code 50", err)
	}
	tt.sock = filepath.Join(t.TempDir(), "none")
	err := p.status(&skel.CmdArgs{StdinData: tt.conf("1.1.0", nil)})
	if code(err) != types.ErrLimitedConnectivity || !strings.Contains(err.Error(), "start it (tapswitchd &)") {
		t.Errorf("STATUS without a daemon: %v, want code 51 saying how to start it", err)
	}
}

// TestCheck: CHECK compares the port and the interface with prevResult.
func TestCheck(t *testing.T) {
	b := newFakeBackend("front")
	tt := newTester(t, b)
	a := args("c1", "/run/netns/x", "eth0", "", tt.conf("1.1.0", nil))
	out := tt.add(a)
	var prev map[string]any
	if err := json.Unmarshal(out, &prev); err != nil {
		t.Fatal(err)
	}
	port := b.Ports(false)[0]
	addr := netip.MustParsePrefix(port.IPs[0])
	check := args("c1", "/run/netns/x", "eth0", "", tt.conf("1.1.0", map[string]any{"prevResult": prev}))
	p := tt.plugin(io.Discard)

	for _, tc := range []struct {
		name string
		link *linkState
		want string // in the error; "" for success
	}{
		{"ok", &linkState{MAC: port.MAC, Addrs: []netip.Prefix{addr}}, ""},
		{"no interface", nil, "Link not found"},
		{"address gone", &linkState{MAC: port.MAC}, "not " + addr.String()},
		{"other MAC", &linkState{MAC: "02:99:99:99:99:99", Addrs: []netip.Prefix{addr}}, "has MAC 02:99:99:99:99:99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			delete(tt.link, "/run/netns/x/eth0")
			if tc.link != nil {
				tt.link["/run/netns/x/eth0"] = *tc.link
			}
			err := p.check(check)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CHECK = %v, want %q", err, tc.want)
			}
		})
	}
	if err := p.check(a); code(err) != types.ErrInvalidNetworkConfig {
		t.Errorf("CHECK without prevResult: %v, want code 7", err)
	}
	if err := b.Detach(context.Background(), port.Name); err != nil {
		t.Fatal(err)
	}
	if err := p.check(check); err == nil || !strings.Contains(err.Error(), "no port for container c1") {
		t.Errorf("CHECK of a detached port: %v", err)
	}
}
