package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/api"
	"github.com/tapswitch/tapswitch/internal/namespace"
	"github.com/tapswitch/tapswitch/internal/version"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// Config configures a Daemon.
type Config struct {
	// StateDir holds the daemon's state file.
	StateDir string
	// FDB configures every network's forwarding table.
	FDB fdb.Config
	// Queues is the number of queues of every TAP, each with its own
	// receive loop; 0 means DefaultQueues().
	Queues int
	Logger *slog.Logger
}

// DefaultQueues is one queue per CPU, up to four: the kernel keeps a flow
// on one queue, so more queues spread several flows over CPUs, and beyond
// the CPU count they only add threads.
func DefaultQueues() int { return min(runtime.NumCPU(), 4) }

// Daemon implements api.Backend on a vswitch.Switch.
type Daemon struct {
	cfg Config
	log *slog.Logger
	sw  *vswitch.Switch

	// mu serialises changes (attach, detach), so that checking a name or
	// address and taking it happen as one step.
	mu sync.Mutex
	// ports holds what was asked at attach, by port name, for the state file.
	ports map[string]portState
	state *stateFile
}

var _ api.Backend = (*Daemon)(nil)

// New starts a daemon's switch with the default network.
func New(cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Queues == 0 {
		cfg.Queues = DefaultQueues()
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, ports: make(map[string]portState)}
	st, err := openState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	d.state = st
	d.sw = vswitch.New(vswitch.Config{
		FDB:    cfg.FDB,
		Logger: cfg.Logger,
		PortFailed: func(p *vswitch.Port, err error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			delete(d.ports, p.Name())
			d.saveLocked()
		},
	})
	if _, err := d.sw.CreateNetwork(api.DefaultNetwork); err != nil {
		d.sw.Close()
		return nil, err
	}
	d.saveLocked()
	return d, nil
}

// Close detaches every port, which removes every TAP the daemon made.
func (d *Daemon) Close() {
	d.sw.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.ports)
	d.saveLocked()
}

// Version implements api.Backend.
func (d *Daemon) Version() api.Version {
	return api.Version{
		Version:   version.String(),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
		Pid:       os.Getpid(),
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Limits on what a user may ask for.
const (
	minMTU = 68    // the IPv4 minimum (RFC 791)
	maxMTU = 65535 // the largest a TAP takes
)

// attachSpec is a validated AttachRequest.
type attachSpec struct {
	netns, netnsPath string
	network, name    string
	ifname           string
	ips              []netip.Prefix
	mac              net.HardwareAddr
	mtu              int
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", api.ErrInvalid, fmt.Sprintf(format, a...))
}

func (d *Daemon) validate(req api.AttachRequest) (attachSpec, error) {
	s := attachSpec{netns: req.Netns, network: req.Network, name: req.Name, ifname: req.Ifname, mtu: req.MTU}
	if s.network == "" {
		s.network = api.DefaultNetwork
	}
	if s.ifname == "" {
		s.ifname = "eth0"
	}
	if len(s.ifname) > 15 || strings.ContainsAny(s.ifname, "/: \t\n") || s.ifname == "." || s.ifname == ".." {
		return s, invalid("interface name %q: use 1 to 15 characters, without '/', ':' or spaces", s.ifname)
	}
	if s.name == "" {
		s.name = defaultName(req.Netns)
	}
	if !nameRE.MatchString(s.name) {
		return s, invalid("port name %q: use letters, digits, '_', '.', '-' (up to 63, starting with a letter or digit)", s.name)
	}
	if s.mtu != 0 && (s.mtu < minMTU || s.mtu > maxMTU) {
		return s, invalid("MTU %d: must be between %d and %d", s.mtu, minMTU, maxMTU)
	}
	if req.MAC != "" {
		mac, err := net.ParseMAC(req.MAC)
		if err != nil || len(mac) != 6 {
			return s, invalid("MAC %q: want six bytes like 02:00:00:00:00:01", req.MAC)
		}
		if mac[0]&1 != 0 || fdb.Key(mac) == 0 {
			return s, invalid("MAC %s: must be a unicast, non-zero address", mac)
		}
		s.mac = mac
	}
	for _, ip := range req.IPs {
		p, err := netip.ParsePrefix(ip)
		if err != nil {
			return s, invalid("address %q: want ADDR/LEN such as 10.0.0.1/24 or fd00::1/64", ip)
		}
		a := p.Addr()
		if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			return s, invalid("address %s: not a unicast host address", p)
		}
		for _, q := range s.ips {
			if q.Addr() == a {
				return s, invalid("address %s given twice", a)
			}
		}
		s.ips = append(s.ips, p)
	}
	path, err := namespace.Resolve(req.Netns)
	if err != nil {
		if errors.Is(err, namespace.ErrNotFound) {
			return s, fmt.Errorf("%w: %v", api.ErrNotFound, err)
		}
		return s, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	s.netnsPath = path
	return s, nil
}

// defaultName names a port after its namespace: "web" for netns web,
// "pid-42" for pid:42 or /proc/42/ns/net, the file's name for other paths.
func defaultName(netns string) string {
	if pid, ok := strings.CutPrefix(netns, "pid:"); ok {
		return "pid-" + pid
	}
	if strings.HasPrefix(netns, "/proc/") {
		parts := strings.Split(strings.TrimPrefix(netns, "/proc/"), "/")
		if len(parts) > 0 {
			return "pid-" + parts[0]
		}
	}
	return filepath.Base(netns)
}

// Attach implements api.Backend.
func (d *Daemon) Attach(ctx context.Context, req api.AttachRequest) (api.Port, error) {
	s, err := d.validate(req)
	if err != nil {
		return api.Port{}, fmt.Errorf("attach netns %q: %w", req.Netns, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkFree(s); err != nil {
		return api.Port{}, fmt.Errorf("attach netns %q: %w", req.Netns, err)
	}
	start := time.Now()
	dev, err := tap.Create(tap.Config{Netns: s.netnsPath, Name: s.ifname, MAC: s.mac, MTU: s.mtu, Queues: d.cfg.Queues, Addrs: s.ips})
	if err != nil {
		if errors.Is(err, tap.ErrExists) {
			err = fmt.Errorf("%w: %v", api.ErrConflict, err)
		}
		return api.Port{}, fmt.Errorf("attach netns %q: %w", req.Netns, err)
	}
	mtu := s.mtu
	if mtu == 0 {
		mtu = 1500
	}
	info := vswitch.PortInfo{Netns: s.netns, NetnsPath: s.netnsPath, Ifname: s.ifname, MAC: dev.MAC(), IPs: s.ips, MTU: mtu}
	p, err := d.sw.AddPort(s.network, s.name, tapDevice{dev}, info)
	if err != nil {
		return api.Port{}, fmt.Errorf("attach netns %q: %w", req.Netns, classify(err))
	}
	d.log.Debug("attach done", "port", s.name, "took", time.Since(start))
	d.ports[s.name] = portState{Request: req, Name: s.name, Network: s.network, MAC: dev.MAC().String()}
	d.saveLocked()
	return portView(p), nil
}

// checkFree refuses a port name or address another port holds.
func (d *Daemon) checkFree(s attachSpec) error {
	n, err := d.sw.Network(s.network)
	if err != nil {
		return fmt.Errorf("%w: network %q does not exist", api.ErrNotFound, s.network)
	}
	if p, err := d.sw.Port(s.name); err == nil {
		return fmt.Errorf("%w: port name %q already exists (in netns %q); choose another with --name", api.ErrConflict, s.name, p.Info().Netns)
	}
	for _, p := range n.Ports() {
		for _, have := range p.Info().IPs {
			for _, want := range s.ips {
				if have.Addr() == want.Addr() {
					return fmt.Errorf("%w: address %s already in use by port %q on network %q", api.ErrConflict, want.Addr(), p.Name(), s.network)
				}
			}
		}
		if s.mac != nil && p.Info().MAC.String() == s.mac.String() {
			return fmt.Errorf("%w: MAC %s already in use by port %q on network %q", api.ErrConflict, s.mac, p.Name(), s.network)
		}
	}
	return nil
}

func classify(err error) error {
	switch {
	case errors.Is(err, vswitch.ErrNoPort), errors.Is(err, vswitch.ErrNoNetwork):
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, vswitch.ErrPortExists), errors.Is(err, vswitch.ErrNetworkExists):
		return fmt.Errorf("%w: %v", api.ErrConflict, err)
	}
	return err
}

// Detach implements api.Backend.
func (d *Daemon) Detach(ctx context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.sw.Port(name)
	if err != nil {
		return fmt.Errorf("detach: %w", classify(err))
	}
	if err := d.sw.RemovePort(p); err != nil {
		return fmt.Errorf("detach: %w", classify(err))
	}
	delete(d.ports, p.Name())
	d.saveLocked()
	return nil
}

// Ports implements api.Backend.
func (d *Daemon) Ports() []api.Port {
	ps := d.sw.Ports()
	out := make([]api.Port, 0, len(ps))
	for _, p := range ps {
		out = append(out, portView(p))
	}
	return out
}

func portView(p *vswitch.Port) api.Port {
	info := p.Info()
	ips := make([]string, 0, len(info.IPs))
	for _, ip := range info.IPs {
		ips = append(ips, ip.String())
	}
	c := p.Counters()
	return api.Port{
		ID:      p.ID(),
		Name:    p.Name(),
		Network: p.Network().Name(),
		Netns:   info.Netns,
		Ifname:  info.Ifname,
		MAC:     info.MAC.String(),
		IPs:     ips,
		MTU:     info.MTU,
		Stats: api.PortCounters{
			RxFrames: c.RxFrames, RxBytes: c.RxBytes,
			TxFrames: c.TxFrames, TxBytes: c.TxBytes,
			Drops: c.Drops,
		},
	}
}

// FDB implements api.Backend.
func (d *Daemon) FDB(network string) ([]api.FDBEntry, error) {
	nets := d.sw.Networks()
	if network != "" {
		n, err := d.sw.Network(network)
		if err != nil {
			return nil, classify(err)
		}
		nets = []*vswitch.Network{n}
	}
	now := time.Now()
	out := []api.FDBEntry{}
	for _, n := range nets {
		for _, e := range n.FDB().Entries() {
			age := now.Sub(e.LastSeen)
			if age < 0 {
				age = 0
			}
			out = append(out, api.FDBEntry{
				Network:    n.Name(),
				MAC:        fdb.FormatMAC(e.MAC),
				Port:       e.Port.Name(),
				AgeSeconds: int64(age / time.Second),
			})
		}
	}
	return out, nil
}

// Networks implements api.Backend.
func (d *Daemon) Networks() []api.Network {
	var out []api.Network
	for _, n := range d.sw.Networks() {
		out = append(out, api.Network{Name: n.Name(), Ports: len(n.Ports()), MACs: n.FDB().Len(), MACLimit: n.FDB().Limit()})
	}
	return out
}

// tapDevice presents a TAP to the switch.
type tapDevice struct{ tap.Device }

func (d tapDevice) Queues() []vswitch.Queue {
	tq := d.Device.Queues()
	q := make([]vswitch.Queue, len(tq))
	for i := range tq {
		q[i] = tq[i]
	}
	return q
}
