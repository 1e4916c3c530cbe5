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
	"sync/atomic"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/internal/events"
	"github.com/tapswitch/tapswitch/internal/fdset"
	"github.com/tapswitch/tapswitch/internal/ipam"
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
	// Started is when the process started: the origin of the times
	// Status reports (RestoreMs, FirstForwardMs). tapswitchd passes the
	// time its main function began, which leaves out only the Go
	// runtime's own start-up; zero means when New is called.
	Started time.Time
	// TAPs makes the ports' and gateways' TAPs and takes them back at
	// start; nil means tap.Kernel. Tests pass an in-memory one
	// (taptest.Maker).
	TAPs tap.Maker
	// IPv6Pool is where networks asking for an IPv6 subnet from the
	// pool get a /64; zero means ipam.DefaultPool6's fd89:7473:7700::/48.
	IPv6Pool netip.Prefix
	// Inherited are descriptors a predecessor handed over or the
	// service manager kept: TAP queues and published ports' sockets,
	// by name (see handover.go). New takes those of the ports it
	// restores in place of opening them again, and closes the rest.
	Inherited *fdset.Set
	// FDStore, when set, keeps copies of every TAP's queues and
	// published port's socket across the daemon's crashes: the service
	// manager's descriptor store.
	FDStore FDStore
	// Timings, when set, is told how long each attach and detach took
	// (the metrics' latency histograms).
	Timings Timings
	// Dataplane tunes the workers' batching, coalescing and polling.
	Dataplane vswitch.Dataplane
	// TAP says how the ports' and gateways' TAPs are made and opened
	// again: see TAPConfig.
	TAP TAPConfig
	// Overlay configures networks that span hosts: see OverlayConfig.
	Overlay OverlayConfig
}

// TAPConfig says how the daemon makes its TAPs; the fields are copied to
// tap.Config. They apply to TAPs made or opened again from then on: a
// TAP whose queues were handed over (--upgrade) keeps its queues'
// mode, and one opened again keeps its transmit queue length.
type TAPConfig struct {
	// NAPI: see tap.Config.NAPI.
	NAPI bool
	// TxQueueLen: see tap.Config.TxQueueLen; 0 means tap.DefaultTxQueueLen.
	TxQueueLen int
}

// DefaultQueues is one queue per CPU, up to four: the kernel keeps a flow
// on one queue, so more queues spread several flows over CPUs, and beyond
// the CPU count they only add threads.
func DefaultQueues() int { return min(runtime.NumCPU(), 4) }

// hostResolvConf is where the host's resolvers are read from.
const hostResolvConf = "/etc/resolv.conf"

// Daemon implements apiserver.Backend on a vswitch.Switch.
type Daemon struct {
	cfg Config
	log *slog.Logger
	sw  *vswitch.Switch
	// nat holds the daemon's nftables table: outbound access and
	// isolation between networks.
	nat firewall
	// host changes the machine for the daemon (see host.go).
	host host
	// pool is where networks created without a subnet get one, pool6
	// where those asking for an IPv6 subnet from the pool get theirs.
	pool, pool6 *ipam.Pool
	// peers is what each network's DNS server answers of the other
	// networks its askers are on (see names.go).
	peers peerNames
	// upstreams are what the DNS servers forward to.
	upstreams []netip.AddrPort
	state     *stateFile

	// mu serialises changes (networks, attach, detach), so that checking
	// a name or address and taking it happen as one step. A change waits
	// for it with lockFor, which gives up if the client does.
	mu turnLock
	// nets holds every network by name.
	nets map[string]*network
	// ports holds the container ports by name; gateways are in nets.
	ports map[string]*port

	// restored and dropped count the ports of the state file brought
	// back at start and those given up; ready is when New was done,
	// from cfg.Started. Set once by New.
	restored, dropped int
	ready             time.Duration
	// firstForward is when the switch first forwarded a frame, from
	// cfg.Started, or -1 (see watchFirstForward).
	firstForward atomic.Int64
	stopWatch    chan struct{}
	watchDone    chan struct{}
	// inherited is what was handed over, and what the store holds.
	inherited inherited
	// events is the event bus; stopEvents and eventsDone stop and wait
	// for the goroutine that tells counters as events (events.go).
	events                 *events.Bus
	stopEvents, eventsDone chan struct{}
	// requestsDropped counts changes not carried out because their
	// client went away (lockFor), for the request.dropped event.
	requestsDropped atomic.Uint64
	// captures are the running captures (capture.go).
	captures captureSlots
	// vanish frees the ports of namespaces gone (vanish.go).
	vanish vanishWatch
	// docker is what the Docker network driver keeps (docker.go).
	docker dockerState
	// dsync keeps it in step with dockerd (docker_sync.go).
	dsync dockerSync
	// ov is the VXLAN endpoint and the cluster's store (overlay.go,
	// cluster.go).
	ov overlay
}

var _ apiserver.Backend = (*Daemon)(nil)

// New starts a daemon: its switch, its firewall table, the networks of
// the state file (or the default network, the first time) with their
// gateways and DNS servers.
func New(cfg Config) (*Daemon, error) { return newDaemon(cfg, linuxHost{}) }

// newDaemon is New with what the daemon changes on the machine besides
// its TAPs done by h.
func newDaemon(cfg Config, h host) (_ *Daemon, err error) {
	if cfg.TAPs == nil {
		cfg.TAPs = tap.Kernel
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Queues == 0 {
		cfg.Queues = DefaultQueues()
	}
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
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
		host:  h,
		log:   cfg.Logger,
		pool:  ipam.DefaultPool(),
		pool6: ipam.DefaultPool6(),
		nets:  make(map[string]*network),
		ports: make(map[string]*port),
		// First: the restore tells of the ports it drops.
		events: events.New(),
	}
	d.firstForward.Store(-1)
	if cfg.IPv6Pool.IsValid() {
		if d.pool6, err = ipam.NewPool([]netip.Prefix{cfg.IPv6Pool}, 64); err != nil {
			return nil, fmt.Errorf("IPv6 pool: %w", err)
		}
		if !d.pool6.Is6() {
			return nil, fmt.Errorf("IPv6 pool %s: not an IPv6 prefix; give one such as fd89:7473:7700::/48", cfg.IPv6Pool)
		}
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
	d.sw = vswitch.New(vswitch.Config{
		FDB:        cfg.FDB,
		Logger:     cfg.Logger,
		PortFailed: d.portFailed,
		Dataplane:  cfg.Dataplane,
	})
	d.stopWatch, d.watchDone = make(chan struct{}), make(chan struct{})
	go d.watchFirstForward()
	defer func() {
		if err != nil {
			// What was restored is released, not removed, for a start
			// that gets further.
			d.shutdown(!d.persistent())
		}
	}()

	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.openOverlayLocked(); err != nil {
		return nil, err
	}
	// The data path first: networks and ports forward as soon as they
	// are back. The firewall table a previous daemon left keeps serving
	// until the new one replaces it, in one transaction, just after.
	if err := d.restoreLocked(doc); err != nil {
		return nil, err
	}
	d.restoreDockerLocked(doc.Docker)
	d.inheritedDoneLocked()
	restored := time.Since(cfg.Started)
	table := TableName(cfg.StateDir)
	if d.nat, err = d.host.firewall(d.log, table, GatewayPrefix); err != nil {
		return nil, fmt.Errorf("firewall table inet %s: %w", table, err)
	}
	for _, n := range d.nets {
		if err := d.nat.AddNetwork(n.natNetwork()); err != nil {
			return nil, fmt.Errorf("restore network %q: firewall rules: %w", n.name, err)
		}
	}
	if _, ok := d.nets[api.DefaultNetwork]; !ok {
		if _, err := d.createNetworkLocked(api.NetworkCreateRequest{Name: api.DefaultNetwork}); err != nil {
			return nil, fmt.Errorf("create network %q: %w", api.DefaultNetwork, err)
		}
	}
	d.removeStaleLocked()
	d.saveLocked()
	d.republishLocked()
	d.ready = time.Since(cfg.Started)
	d.log.Info("state restored", "networks", len(d.nets), "ports", d.restored, "dropped", d.dropped,
		"ports_back_since_start", restored, "ready_since_start", d.ready)
	d.events.Publish(d.startEvent())
	d.startEventWatch()
	d.startVanishWatch()
	d.startStoreWatch()
	return d, nil
}

// persistent reports whether the daemon keeps state, and so makes its
// TAPs persistent for the next start to take back.
func (d *Daemon) persistent() bool { return d.cfg.StateDir != "" }

// alias marks the TAPs of this daemon's state directory (tap.Config.Alias).
func (d *Daemon) alias() string { return "tapswitch " + stateID(d.cfg.StateDir) }

// Close stops the daemon for another to resume: published ports and DNS
// servers stop, and the TAPs are released but stay, persistent, with
// their addresses, as do the gateways, the pins of namespaces, the
// resolv.conf files and the firewall table. The next daemon with the
// same state directory takes them all back. A daemon without a state
// directory removes everything, as CloseAndRemove.
func (d *Daemon) Close() { d.shutdown(!d.persistent()) }

// CloseAndRemove stops the daemon and undoes what it made: every port is
// detached (its TAP removed and its addresses released), the gateways,
// pins, resolv.conf files and firewall table go. The networks stay in the
// state file for the next start.
func (d *Daemon) CloseAndRemove() { d.shutdown(true) }

func (d *Daemon) shutdown(remove bool) {
	d.StopDockerSync()
	d.stopStoreWatch()
	d.stopVanishWatch()
	d.stopEventWatch()
	d.events.EndAll()
	d.EndCaptures()
	if d.stopWatch != nil {
		close(d.stopWatch)
		<-d.watchDone
		d.stopWatch = nil
	}
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
	// Stopping for the next daemon, the switch lets go of the TAPs
	// rather than removing them: they are persistent, and stay.
	switch {
	case d.sw == nil:
	case remove:
		d.sw.Close()
	default:
		d.sw.Release()
	}
	// The tunnels are closed with their ports.
	d.closeOverlay()
	if !remove {
		// The state file already says what the next start resumes.
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.ports {
		if p.kind != api.KindGateway {
			d.forgetLocked(p)
		}
	}
	if d.nat != nil {
		if err := d.nat.Close(); err != nil {
			d.log.Error("delete firewall table", "err", err)
		}
	}
	d.saveLocked()
	if d.persistent() {
		// Empty by now, unless a pin could not be removed.
		os.Remove(d.pinDir())
	}
}

// Version implements apiserver.Backend.
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
	return fmt.Errorf("%w: %w", api.ErrInvalid, fmt.Errorf(format, a...))
}

func conflict(format string, a ...any) error {
	return fmt.Errorf("%w: %w", api.ErrConflict, fmt.Errorf(format, a...))
}

func noNetwork(name string) error {
	return api.Errorf(api.ErrNotFound, api.ReasonNetworkNotFound, "network %q does not exist", name)
}

// classify gives an error of the switch its API class and reason.
func classify(err error) error {
	switch {
	case errors.Is(err, vswitch.ErrNoPort):
		return api.Errorf(api.ErrNotFound, api.ReasonPortNotFound, "%w", err)
	case errors.Is(err, vswitch.ErrNoNetwork):
		return api.Errorf(api.ErrNotFound, api.ReasonNetworkNotFound, "%w", err)
	case errors.Is(err, vswitch.ErrPortExists):
		return api.Errorf(api.ErrConflict, api.ReasonPortNameInUse, "%w", err)
	case errors.Is(err, vswitch.ErrNetworkExists):
		return api.Errorf(api.ErrConflict, api.ReasonNetworkExists, "%w", err)
	case errors.Is(err, vswitch.ErrNetworkInUse):
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	}
	return err
}

// ipamError gives an IPAM error its API class and reason.
func ipamError(err error) error {
	switch {
	case errors.Is(err, ipam.ErrInvalidSubnet), errors.Is(err, ipam.ErrInvalidGateway),
		errors.Is(err, ipam.ErrOutOfRange), errors.Is(err, ipam.ErrReserved):
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	case errors.Is(err, ipam.ErrInUse):
		return api.Errorf(api.ErrConflict, api.ReasonAddressInUse, "%w", err)
	case errors.Is(err, ipam.ErrUnsafeRange):
		return api.Errorf(api.ErrInvalid, api.ReasonUnsafeRange, "%w", err)
	case errors.Is(err, ipam.ErrOverlap):
		return api.Errorf(api.ErrConflict, api.ReasonSubnetOverlap, "%w", err)
	case errors.Is(err, ipam.ErrPoolExhausted):
		return api.Errorf(api.ErrConflict, api.ReasonPoolExhausted, "%w", err)
	case errors.Is(err, ipam.ErrFull):
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	}
	return err
}

// portFailed forgets a port whose device failed for good (its interface
// was deleted from outside); the switch has already detached it.
func (d *Daemon) portFailed(sp *vswitch.Port, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.ports[sp.Name()]
	switch {
	case !ok || p.sw != sp:
	case p.kind == api.KindGateway:
		d.events.Publish(failedEvent(p, err, "run"))
		d.log.Error("gateway interface lost: the network's containers have no gateway, DNS or outbound access until it is removed and created again, or tapswitchd restarts", "network", p.net.name, "bridge", p.name(), "err", err)
	default:
		d.events.Publish(failedEvent(p, err, "run"))
		d.forgetLocked(p)
		d.dockerPortFailedLocked(p)
		d.saveLocked()
	}
}

// Ports implements apiserver.Backend.
func (d *Daemon) Ports(all bool) []api.Port {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.locateDockerPortsLocked()
	var out []api.Port
	for _, sp := range d.sw.Ports() {
		if p, ok := d.ports[sp.Name()]; ok && p.sw == sp && (all || p.kind != api.KindGateway) {
			out = append(out, p.view())
		} else if n := d.tunnelOfLocked(sp); n != nil {
			out = append(out, n.tunnelView())
		}
	}
	if out == nil {
		out = []api.Port{}
	}
	return out
}

// FDB implements apiserver.Backend.
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

// Networks implements apiserver.Backend.
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
