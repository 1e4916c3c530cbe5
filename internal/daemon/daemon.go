package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/api"
	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/internal/ipam"
	"github.com/tapswitch/tapswitch/internal/nat"
	"github.com/tapswitch/tapswitch/internal/version"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// Config configures a Daemon.
type Config struct {
	// StateDir holds the daemon's state file. It also names the
	// daemon's gateway interfaces and nftables table (see GatewayName
	// and TableName); empty keeps no state.
	StateDir string
	// FDB configures every network's forwarding table.
	FDB fdb.Config
	// Queues is the number of queues of every TAP, each with its own
	// receive loop; 0 means DefaultQueues().
	Queues int
	// DNSUpstreams are the resolvers the networks' DNS servers forward
	// other names to; nil means the nameservers of /etc/resolv.conf.
	DNSUpstreams []netip.AddrPort
	Logger       *slog.Logger
}

// DefaultQueues is one queue per CPU, up to four: the kernel keeps a flow
// on one queue, so more queues spread several flows over CPUs, and beyond
// the CPU count they only add threads.
func DefaultQueues() int { return min(runtime.NumCPU(), 4) }

// hostResolvConf is where the host's resolvers are read from.
const hostResolvConf = "/etc/resolv.conf"

// Daemon implements api.Backend on a vswitch.Switch.
type Daemon struct {
	cfg Config
	log *slog.Logger
	sw  *vswitch.Switch
	// nat holds the daemon's nftables table: outbound access and
	// isolation between networks.
	nat *nat.Manager
	// pool is where networks created without a subnet get one.
	pool *ipam.Pool
	// upstreams are what the DNS servers forward to.
	upstreams []netip.AddrPort
	state     *stateFile

	// mu serialises changes (networks, attach, detach), so that checking
	// a name or address and taking it happen as one step.
	mu sync.Mutex
	// nets holds every network by name.
	nets map[string]*network
	// ports holds the container ports by name; gateways are in nets.
	ports map[string]*port
}

var _ api.Backend = (*Daemon)(nil)

// New starts a daemon: its switch, its firewall table, the networks of
// the state file (or the default network, the first time) with their
// gateways and DNS servers.
func New(cfg Config) (_ *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Queues == 0 {
		cfg.Queues = DefaultQueues()
	}
	if cfg.StateDir != "" {
		abs, err := filepath.Abs(cfg.StateDir)
		if err != nil {
			return nil, fmt.Errorf("state directory %s: %w", cfg.StateDir, err)
		}
		cfg.StateDir = abs
	}
	d := &Daemon{
		cfg:   cfg,
		log:   cfg.Logger,
		pool:  ipam.DefaultPool(),
		nets:  make(map[string]*network),
		ports: make(map[string]*port),
	}
	if d.state, err = openState(cfg.StateDir); err != nil {
		return nil, err
	}
	doc, err := d.state.load()
	if err != nil {
		return nil, err
	}
	d.upstreams = cfg.DNSUpstreams
	if d.upstreams == nil {
		if d.upstreams, err = dns.UpstreamsFromResolvConf(hostResolvConf); err != nil {
			d.log.Warn("no upstream resolvers: names outside the networks will not resolve", "err", err)
		}
	}
	table := TableName(cfg.StateDir)
	if d.nat, err = nat.New(d.log, nat.WithTable(table), nat.WithIsolation(GatewayPrefix)); err != nil {
		return nil, fmt.Errorf("firewall table inet %s: %w", table, err)
	}
	d.sw = vswitch.New(vswitch.Config{
		FDB:        cfg.FDB,
		Logger:     cfg.Logger,
		PortFailed: d.portFailed,
	})
	defer func() {
		if err != nil {
			d.shutdown(false)
		}
	}()

	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.restoreLocked(doc); err != nil {
		return nil, err
	}
	if _, ok := d.nets[api.DefaultNetwork]; !ok {
		if _, err := d.createNetworkLocked(api.NetworkCreateRequest{Name: api.DefaultNetwork}); err != nil {
			return nil, fmt.Errorf("create network %q: %w", api.DefaultNetwork, err)
		}
	}
	d.saveLocked()
	return d, nil
}

// restoreLocked brings back the networks of the state file. Ports found
// there were attached when a daemon stopped without detaching them: their
// TAPs went with it, so their addresses are released (the allocation
// cursor, restored too, keeps them from being handed out again soon) and
// their resolv.conf files removed.
func (d *Daemon) restoreLocked(doc stateDoc) error {
	stale := make(map[string][]portState)
	var resolv []string
	for _, p := range doc.Ports {
		d.log.Warn("port was still attached when tapswitchd last stopped; its TAP is gone, attach it again", "port", p.Name, "netns", p.Request.Netns, "network", p.Network)
		stale[p.Network] = append(stale[p.Network], p)
		if p.ResolvConf != "" && !slices.Contains(resolv, p.ResolvConf) {
			resolv = append(resolv, p.ResolvConf)
		}
	}
	for _, path := range resolv {
		d.removeResolvConf(path)
	}
	for _, ns := range doc.Networks {
		if err := checkNetworkName(ns.Name); err != nil {
			return fmt.Errorf("state file: %w; correct or remove this network in %s", err, d.state.path)
		}
		sub, err := ipam.RestoreSubnet(ns.Subnet)
		if err != nil {
			return fmt.Errorf("state file %s: network %q: %w", d.state.path, ns.Name, err)
		}
		for _, p := range stale[ns.Name] {
			for _, s := range p.Owned {
				if a, err := netip.ParseAddr(s); err == nil {
					sub.Release(a)
				}
			}
		}
		n := &network{name: ns.Name, internal: ns.Internal, subnet: sub, bridge: GatewayName(d.cfg.StateDir, ns.Name)}
		if routes, err := hostRoutes(nil); err == nil {
			if err := ipam.CheckOverlap(sub.Prefix(), routes); err != nil {
				d.log.Warn("restored network overlaps a host route; its containers may be unreachable", "network", n.name, "err", err)
			}
		}
		if err := d.startNetworkLocked(n); err != nil {
			return fmt.Errorf("restore network %q: %w", ns.Name, err)
		}
	}
	return nil
}

// Close detaches every port, which removes every TAP the daemon made,
// stops published ports and DNS servers, removes the resolv.conf files
// it wrote and deletes its nftables table. Networks stay in the state
// file for the next start.
func (d *Daemon) Close() { d.shutdown(true) }

func (d *Daemon) shutdown(save bool) {
	d.mu.Lock()
	// Proxies and DNS servers first, so nothing new starts on the way down.
	for _, p := range d.ports {
		p.stopProxies()
	}
	for _, n := range d.nets {
		if n.dns != nil {
			n.dns.Close()
		}
	}
	d.mu.Unlock()
	if d.sw != nil {
		d.sw.Close()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.ports {
		d.forgetLocked(p)
	}
	if d.nat != nil {
		if err := d.nat.Close(); err != nil {
			d.log.Error("delete firewall table", "err", err)
		}
	}
	if save {
		d.saveLocked()
	}
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

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", api.ErrInvalid, fmt.Sprintf(format, a...))
}

func conflict(format string, a ...any) error {
	return fmt.Errorf("%w: %s", api.ErrConflict, fmt.Sprintf(format, a...))
}

func noNetwork(name string) error {
	return fmt.Errorf("%w: network %q does not exist; list them with 'tapswitch network ls' or create it with 'tapswitch network create %s'", api.ErrNotFound, name, name)
}

func classify(err error) error {
	switch {
	case errors.Is(err, vswitch.ErrNoPort), errors.Is(err, vswitch.ErrNoNetwork):
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, vswitch.ErrPortExists), errors.Is(err, vswitch.ErrNetworkExists), errors.Is(err, vswitch.ErrNetworkInUse):
		return fmt.Errorf("%w: %v", api.ErrConflict, err)
	}
	return err
}

// ipamError gives an IPAM error its API class.
func ipamError(err error) error {
	switch {
	case errors.Is(err, ipam.ErrInvalidSubnet), errors.Is(err, ipam.ErrInvalidGateway),
		errors.Is(err, ipam.ErrOutOfRange), errors.Is(err, ipam.ErrReserved):
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	case errors.Is(err, ipam.ErrInUse), errors.Is(err, ipam.ErrFull),
		errors.Is(err, ipam.ErrOverlap), errors.Is(err, ipam.ErrPoolExhausted):
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	}
	return err
}

// portFailed forgets a port whose device failed for good (its interface
// was deleted from outside); the switch has already detached it.
func (d *Daemon) portFailed(sp *vswitch.Port, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.ports[sp.Name()]; ok && p.sw == sp {
		d.forgetLocked(p)
		d.saveLocked()
		return
	}
	for _, n := range d.nets {
		if n.gw == sp {
			d.log.Error("gateway interface lost: the network's containers have no gateway, DNS or outbound access until it is removed and created again, or tapswitchd restarts", "network", n.name, "bridge", n.bridge, "err", err)
		}
	}
}

// Ports implements api.Backend.
func (d *Daemon) Ports(all bool) []api.Port {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []api.Port
	for _, sp := range d.sw.Ports() {
		if p, ok := d.ports[sp.Name()]; ok && p.sw == sp {
			out = append(out, p.view())
		} else if all {
			out = append(out, gatewayView(sp))
		}
	}
	if out == nil {
		out = []api.Port{}
	}
	return out
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
	return fdbEntries(nets), nil
}

// Networks implements api.Backend.
func (d *Daemon) Networks() []api.Network {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]api.Network, 0, len(d.nets))
	for _, n := range d.nets {
		out = append(out, d.networkViewLocked(n))
	}
	slices.SortFunc(out, func(a, b api.Network) int { return cmp.Compare(a.Name, b.Name) })
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
