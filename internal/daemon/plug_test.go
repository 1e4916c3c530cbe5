package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/internal/nat"
	"github.com/tapswitch/tapswitch/tap"
	"github.com/tapswitch/tapswitch/tap/taptest"
)

// These tests run the daemon on in-memory TAPs (taptest) and a fake host,
// so attach, connect, restore and their rollbacks need no root. Every
// port is in the test's own namespace, reached as pid:PID, which a daemon
// with a state directory pins (a symbolic link here).

// fakeHost is a host that keeps everything in memory.
type fakeHost struct {
	taps *taptest.Maker

	mu sync.Mutex
	// routes are the default routes added, "ifname via gw".
	routes []string
	// routeErr, if set, is what addDefaultRoute returns.
	routeErr error
	// dnsErr, if set, is what startDNS returns.
	dnsErr error
	// dns are the DNS servers running, by address.
	dns map[netip.AddrPort]bool
	// fw are the networks in the firewall.
	fw map[string]nat.Network
}

func newFakeHost() *fakeHost {
	return &fakeHost{taps: &taptest.Maker{}, dns: map[netip.AddrPort]bool{}, fw: map[string]nat.Network{}}
}

func (h *fakeHost) addDefaultRoute(netnsPath, ifname string, gw netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.routeErr != nil {
		return h.routeErr
	}
	h.routes = append(h.routes, ifname+" via "+gw.String())
	return nil
}

func (h *fakeHost) nextIfname(netnsPath string) (string, error) {
	for i := 0; ; i++ {
		if name := fmt.Sprintf("eth%d", i); !h.taps.Exists(netnsPath, name) {
			return name, nil
		}
	}
}

func (h *fakeHost) pin(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	os.Remove(dst)
	return os.Symlink(src, dst)
}

func (h *fakeHost) unpin(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (h *fakeHost) firewall(*slog.Logger, string, string) (firewall, error) {
	return fakeFirewall{h}, nil
}

type fakeFirewall struct{ h *fakeHost }

func (f fakeFirewall) AddNetwork(n nat.Network) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.h.fw[n.Name] = n
	return nil
}

func (f fakeFirewall) RemoveNetwork(name string) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	delete(f.h.fw, name)
	return nil
}

func (f fakeFirewall) Close() error { return nil }

func (h *fakeHost) startDNS(cfg dns.Config) (nameServer, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dnsErr != nil {
		return nil, h.dnsErr
	}
	h.dns[cfg.Addr] = true
	return &fakeDNS{h: h, addr: cfg.Addr}, nil
}

type fakeDNS struct {
	h    *fakeHost
	addr netip.AddrPort
}

func (s *fakeDNS) Addr() netip.AddrPort { return s.addr }
func (s *fakeDNS) Close() error {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	delete(s.h.dns, s.addr)
	return nil
}

// self is this process's namespace as a user names it, and selfPath the
// file of it.
var (
	self     = fmt.Sprintf("pid:%d", os.Getpid())
	selfPath = fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
)

// startDaemon starts a daemon on h with state in dir ("" for none).
func startDaemon(t *testing.T, dir string, h *fakeHost) *Daemon {
	t.Helper()
	d, err := newDaemon(Config{StateDir: dir, TAPs: h.taps, Queues: 1, DNSUpstreams: []netip.AddrPort{},
		Logger: slog.New(slog.DiscardHandler)}, h)
	if err != nil {
		t.Fatalf("newDaemon() = %v", err)
	}
	return d
}

// frontNet creates network "front" with a subnet of its own.
func frontNet(t *testing.T, d *Daemon) {
	t.Helper()
	if _, err := d.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "front", Subnet: "10.250.7.0/24"}); err != nil {
		t.Fatalf("CreateNetwork(front) = %v", err)
	}
}

// attach attaches a port named name with interface ifname to front.
func attach(d *Daemon, name, ifname string, extra ...func(*api.AttachRequest)) (api.Port, error) {
	req := api.AttachRequest{Netns: self, Network: "front", Name: name, Ifname: ifname}
	for _, f := range extra {
		f(&req)
	}
	return d.Attach(context.Background(), req)
}

// nothingLeft fails t if anything of port name with interface ifname is
// left: a switch port, a TAP, a pin, an address, a DNS name, a record in
// the state file.
func nothingLeft(t *testing.T, d *Daemon, h *fakeHost, name, ifname string) {
	t.Helper()
	if _, err := d.sw.Port(name); err == nil {
		t.Errorf("the switch still has port %q", name)
	}
	if h.taps.Exists(selfPath, ifname) {
		t.Errorf("TAP %s is still there", ifname)
	}
	if d.cfg.StateDir != "" {
		if _, err := os.Lstat(d.pinPath(name)); err == nil {
			t.Errorf("pin %s is still there", d.pinPath(name))
		}
		data, _ := os.ReadFile(d.state.path)
		if strings.Contains(string(data), `"name": "`+name+`"`) {
			t.Errorf("the state file still records port %q", name)
		}
	}
	n := d.nets["front"]
	if a := n.subnet.Allocated(); len(a) != len(d.portsOfLocked(n)) {
		t.Errorf("front's IPAM holds %v for %d ports", a, len(d.portsOfLocked(n)))
	}
	if addrs, _ := n.records.Lookup(name+".front.", 1); len(addrs) > 0 {
		t.Errorf("DNS still answers %s with %v", name, addrs)
	}
}

func TestAttachDetach(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	frontNet(t, d)
	p, err := attach(d, "web", "t0")
	if err != nil {
		t.Fatalf("Attach(web) = %v", err)
	}
	if p.Kind != api.KindContainer || !slices.Equal(p.IPs, []string{"10.250.7.2/24"}) || p.DNSName != "web" {
		t.Fatalf("Attach(web) = kind %q, IPs %v, DNS name %q; want container, 10.250.7.2/24, web", p.Kind, p.IPs, p.DNSName)
	}
	cfg, ok := h.taps.Config(selfPath, "t0")
	if !ok || !cfg.Persist || cfg.Netns != d.pinPath("web") || !slices.Equal(cfg.Addrs, []netip.Prefix{netip.MustParsePrefix("10.250.7.2/24")}) {
		t.Fatalf("TAP t0: %+v (exists %v); want persistent, made through the pin, with 10.250.7.2/24", cfg, ok)
	}
	if !slices.Equal(h.routes, []string{"t0 via 10.250.7.1"}) {
		t.Fatalf("routes = %v, want t0 via the gateway", h.routes)
	}
	if addrs, _ := d.nets["front"].records.Lookup("web.front.", 1); len(addrs) != 1 {
		t.Fatalf("DNS answers web.front with %v, want its address", addrs)
	}
	// A second port in the same namespace gets no second default route.
	if _, err := attach(d, "api", "t1"); err != nil {
		t.Fatalf("Attach(api) = %v", err)
	}
	if len(h.routes) != 1 {
		t.Fatalf("routes = %v, want only the first port's", h.routes)
	}
	for _, name := range []string{"web", "api"} {
		if err := d.Detach(context.Background(), name); err != nil {
			t.Fatalf("Detach(%s) = %v", name, err)
		}
	}
	nothingLeft(t, d, h, "web", "t0")
	nothingLeft(t, d, h, "api", "t1")
}

// Every way an attach can fail leaves nothing of the port, and the same
// attach without the cause then works.
func TestAttachRollback(t *testing.T) {
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	tests := []struct {
		name    string
		before  func(h *fakeHost)
		req     func(*api.AttachRequest)
		wantErr error
		reason  api.Reason
	}{
		{name: "interface name taken", before: func(h *fakeHost) {
			if _, err := h.taps.Create(tap.Config{Netns: selfPath, Name: "t0"}); err != nil {
				t.Fatal(err)
			}
		}, wantErr: api.ErrConflict, reason: api.ReasonIfnameInUse},
		{name: "TAP cannot be made", before: func(h *fakeHost) {
			h.taps.FailCreate = func(cfg tap.Config) error {
				if cfg.Name == "t0" {
					return errors.New("no TAP for you")
				}
				return nil
			}
		}},
		{name: "default route fails", before: func(h *fakeHost) { h.routeErr = errors.New("no route for you") }},
		{name: "published port in use", req: func(r *api.AttachRequest) {
			r.Publish = []string{fmt.Sprintf("127.0.0.1:%d:80", busyPort)}
		}, wantErr: api.ErrConflict},
		{name: "address taken", req: func(r *api.AttachRequest) { r.IPs = []string{"10.250.7.9/24", "10.250.7.10/24"} },
			before: func(h *fakeHost) {}, wantErr: api.ErrConflict, reason: api.ReasonAddressInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost()
			d := startDaemon(t, t.TempDir(), h)
			defer d.CloseAndRemove()
			frontNet(t, d)
			if tt.reason == api.ReasonAddressInUse {
				if _, err := attach(d, "other", "t9", func(r *api.AttachRequest) { r.IPs = []string{"10.250.7.10/24"} }); err != nil {
					t.Fatal(err)
				}
			}
			if tt.before != nil {
				tt.before(h)
			}
			req := func(*api.AttachRequest) {}
			if tt.req != nil {
				req = tt.req
			}
			_, err := attach(d, "web", "t0", req)
			if err == nil {
				t.Fatal("Attach() = nil error, want a failure")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Attach() = %v, want %v", err, tt.wantErr)
			}
			if tt.reason != "" && api.ReasonOf(err) != tt.reason {
				t.Fatalf("Attach() reason = %q, want %q", api.ReasonOf(err), tt.reason)
			}
			if tt.name == "interface name taken" {
				// The TAP there is not the failed attach's: it stays.
				h.taps.Remove(selfPath, "t0")
			}
			nothingLeft(t, d, h, "web", "t0")
			h.taps.FailCreate, h.routeErr = nil, nil
			if _, err := attach(d, "web", "t0"); err != nil {
				t.Fatalf("Attach() without the cause = %v", err)
			}
		})
	}
}

func TestConnect(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, "", h)
	defer d.CloseAndRemove()
	frontNet(t, d)
	if _, err := d.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "back", Subnet: "10.250.8.0/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatal(err)
	}
	// A TAP that cannot be made leaves nothing on back.
	h.taps.FailCreate = func(tap.Config) error { return errors.New("no TAP for you") }
	if _, err := d.Connect(context.Background(), "back", api.ConnectRequest{Port: "web"}); err == nil {
		t.Fatal("Connect() = nil error with no TAP to be had")
	}
	if a := d.nets["back"].subnet.Allocated(); len(a) != 0 {
		t.Fatalf("back's IPAM holds %v after a failed connect", a)
	}
	h.taps.FailCreate = nil
	p, err := d.Connect(context.Background(), "back", api.ConnectRequest{Port: "web"})
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	if p.Network != "back" || p.Ifname != "eth0" || p.DNSName != "web" || len(p.IPs) != 1 || !strings.HasPrefix(p.IPs[0], "10.250.8.") {
		t.Fatalf("Connect() = %+v; want on back, eth0, DNS name web, an address of back", p)
	}
	if a := d.nets["back"].subnet.Allocated(); len(a) != 1 {
		t.Fatalf("back's IPAM holds %v, want the connected port's address only", a)
	}
	if _, err := d.Connect(context.Background(), "back", api.ConnectRequest{Port: "web"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("second Connect() = %v, want a conflict", err)
	}
}

func TestGatewayIsAPortOfItsOwnKind(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, "", h)
	defer d.CloseAndRemove()
	frontNet(t, d)
	gw := d.nets["front"].bridge
	var kinds []string
	for _, p := range d.Ports(true) {
		if p.Name == gw {
			kinds = append(kinds, p.Kind)
		}
	}
	if !slices.Equal(kinds, []string{api.KindGateway}) {
		t.Fatalf("Ports(all) lists %s as %v, want one gateway", gw, kinds)
	}
	if len(d.Ports(false)) != 0 {
		t.Fatalf("Ports() = %v, want no container ports", d.Ports(false))
	}
	if err := d.Detach(context.Background(), gw); api.ReasonOf(err) != api.ReasonGatewayPort {
		t.Fatalf("Detach(gateway) = %v, want reason %s", err, api.ReasonGatewayPort)
	}
	if _, err := d.Connect(context.Background(), "default", api.ConnectRequest{Port: gw}); api.ReasonOf(err) != api.ReasonGatewayPort {
		t.Fatalf("Connect(gateway) = %v, want reason %s", err, api.ReasonGatewayPort)
	}
	if !h.taps.Exists("", gw) || !h.dns[netip.MustParseAddrPort("10.250.7.1:53")] {
		t.Fatal("front has no gateway TAP or DNS server")
	}
	if err := d.RemoveNetwork(context.Background(), "front", false); err != nil {
		t.Fatal(err)
	}
	if h.taps.Exists("", gw) || h.dns[netip.MustParseAddrPort("10.250.7.1:53")] || h.fw["front"].Name != "" {
		t.Fatal("network rm left its gateway, DNS server or firewall rules")
	}
	if _, ok := d.ports[gw]; ok {
		t.Fatal("the daemon still lists front's gateway")
	}
}

// A network whose DNS server cannot start leaves no gateway behind.
func TestNetworkRollback(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, "", h)
	defer d.CloseAndRemove()
	h.dnsErr = errors.New("port 53 taken")
	if _, err := d.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "front", Subnet: "10.250.7.0/24"}); err == nil {
		t.Fatal("CreateNetwork() = nil error with no DNS server")
	}
	gw := GatewayName("", "front")
	if h.taps.Exists("", gw) || d.ports[gw] != nil || d.nets["front"] != nil {
		t.Fatal("a failed network create left its gateway")
	}
	h.dnsErr = nil
	frontNet(t, d)
}

// A restarted daemon takes back every port as it was; a port whose TAP
// went meanwhile is dropped and what it held is freed.
func TestRestore(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHost()
	d := startDaemon(t, dir, h)
	frontNet(t, d)
	web, err := attach(d, "web", "t0", func(r *api.AttachRequest) { r.MAC = "02:00:00:00:07:01" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attach(d, "api", "t1"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if !h.taps.Exists(selfPath, "t0") || h.taps.Device(selfPath, "t0") != nil {
		t.Fatal("after Close, t0 is gone or still held: a stopping daemon must let its TAPs go and leave them")
	}
	// api's TAP goes while no daemon runs.
	h.taps.Remove(selfPath, "t1")

	d = startDaemon(t, dir, h)
	defer d.CloseAndRemove()
	st := d.Status()
	if st.RestoredPorts != 1 || st.DroppedPorts != 1 || st.Ports != 1 {
		t.Fatalf("Status() = restored %d, dropped %d, ports %d; want 1, 1, 1", st.RestoredPorts, st.DroppedPorts, st.Ports)
	}
	got, err := d.sw.Port("web")
	if err != nil {
		t.Fatalf("web not restored: %v", err)
	}
	if got.Info().MAC.String() != web.MAC || d.ports["web"].view().IPs[0] != web.IPs[0] {
		t.Fatalf("web restored as %v %v, want %s %v", got.Info().MAC, d.ports["web"].view().IPs, web.MAC, web.IPs)
	}
	if h.taps.Device(selfPath, "t0") == nil {
		t.Fatal("web's TAP was not opened again")
	}
	if len(h.routes) != 1 {
		t.Fatalf("routes = %v: a restored port's namespace keeps its route, none is added", h.routes)
	}
	nothingLeft(t, d, h, "api", "t1")
	if _, err := attach(d, "db", "t2"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(d.state.path)
	var doc stateDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, ps := range doc.Ports {
		if ps.Kind != api.KindContainer {
			t.Fatalf("state file records port %s of kind %q, want %q", ps.Name, ps.Kind, api.KindContainer)
		}
	}
}

// State files from before kinds were recorded hold container ports, and
// are taken back as such; a kind this daemon does not know is dropped.
func TestRestoreKinds(t *testing.T) {
	for _, tt := range []struct {
		kind    string
		restore bool
	}{{"", true}, {api.KindContainer, true}, {"tunnel", false}} {
		t.Run("kind="+tt.kind, func(t *testing.T) {
			dir := t.TempDir()
			h := newFakeHost()
			d := startDaemon(t, dir, h)
			frontNet(t, d)
			if _, err := attach(d, "web", "t0"); err != nil {
				t.Fatal(err)
			}
			d.Close()
			data, err := os.ReadFile(filepath.Join(dir, "state.json"))
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			json.Unmarshal(data, &doc)
			ps := doc["ports"].([]any)[0].(map[string]any)
			if tt.kind == "" {
				delete(ps, "kind")
			} else {
				ps["kind"] = tt.kind
			}
			data, _ = json.Marshal(doc)
			if err := os.WriteFile(filepath.Join(dir, "state.json"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			d = startDaemon(t, dir, h)
			defer d.CloseAndRemove()
			if _, err := d.sw.Port("web"); (err == nil) != tt.restore {
				t.Fatalf("port web restored: %v, want %v", err == nil, tt.restore)
			}
		})
	}
}

// A port whose interface is deleted from outside is detached and
// forgotten, and its address freed.
func TestPortFailed(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.CloseAndRemove()
	frontNet(t, d)
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatal(err)
	}
	h.taps.Remove(selfPath, "t0")
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.mu.Lock()
		_, ok := d.ports["web"]
		d.mu.Unlock()
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("port web still attached 5s after its TAP went")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	nothingLeft(t, d, h, "web", "t0")
}

// A container engine's id and a DNS name of the engine's choosing stay
// with the port, across a restart too.
func TestAttachContainerID(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHost()
	d := startDaemon(t, dir, h)
	frontNet(t, d)
	p, err := attach(d, "cni-0f3e9c-eth0", "t0", func(r *api.AttachRequest) { r.ContainerID, r.DNSName = "0f3e9c", "db" })
	if err != nil {
		t.Fatal(err)
	}
	if p.ContainerID != "0f3e9c" || p.DNSName != "db" {
		t.Fatalf("Attach() = container id %q, DNS name %q; want 0f3e9c, db", p.ContainerID, p.DNSName)
	}
	if addrs, _ := d.nets["front"].records.Lookup("db.front.", 1); len(addrs) != 1 {
		t.Fatalf("DNS answers db.front with %v, want the port's address", addrs)
	}
	d.Close()
	d = startDaemon(t, dir, h)
	defer d.CloseAndRemove()
	if got := d.ports["cni-0f3e9c-eth0"].view(); got.ContainerID != "0f3e9c" || got.DNSName != "db" {
		t.Fatalf("after a restart: container id %q, DNS name %q; want 0f3e9c, db", got.ContainerID, got.DNSName)
	}
}

// TestAttachIPv6NetworkSmallMTU attaches, with an MTU below IPv6's
// 1280, to a network whose handed-out address is IPv6: a 400 that says
// why, before anything is made, not the kernel's refusal of the address.
func TestAttachIPv6NetworkSmallMTU(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.Close()
	if _, err := d.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "front", Subnet: "fd00:250:7::/64"}); err != nil {
		t.Fatalf("CreateNetwork(front) = %v", err)
	}
	_, err := attach(d, "web", "eth0", func(r *api.AttachRequest) { r.MTU = 1000 })
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "1280") {
		t.Fatalf("Attach(mtu 1000) on an IPv6 network = %v; want invalid, naming 1280", err)
	}
	nothingLeft(t, d, h, "web", "eth0")
	if _, err := attach(d, "web", "eth0", func(r *api.AttachRequest) { r.MTU = 1280 }); err != nil {
		t.Fatalf("Attach(mtu 1280) = %v", err)
	}
}

// TestAttachNameCase: a port name that differs from another only in
// case is refused, as DNS would answer one for both.
func TestAttachNameCase(t *testing.T) {
	h := newFakeHost()
	d := startDaemon(t, t.TempDir(), h)
	defer d.Close()
	frontNet(t, d)
	if _, err := attach(d, "web", "eth0"); err != nil {
		t.Fatalf("Attach(web) = %v", err)
	}
	_, err := attach(d, "WEB", "eth1")
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "case") {
		t.Fatalf("Attach(WEB) = %v; want a conflict about case", err)
	}
	if _, err := d.sw.Port("WEB"); err == nil || h.taps.Exists(selfPath, "eth1") {
		t.Errorf("the refused attach left its port or TAP")
	}
}
