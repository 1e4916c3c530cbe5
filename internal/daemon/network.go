package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/internal/docker"
	"github.com/tapswitch/tapswitch/internal/fdlimit"
	"github.com/tapswitch/tapswitch/internal/ipam"
	"github.com/tapswitch/tapswitch/internal/nat"
	"github.com/tapswitch/tapswitch/internal/vxlan"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// network is one network of the daemon: a network of the switch, its
// subnet, and the gateway that gives it DNS and a way out.
type network struct {
	name     string
	internal bool
	// subnets are the network's subnets, one or one of each family, the
	// IPv4 one first; subnet is the first of them (see subnets.go).
	subnets []*ipam.Subnet
	subnet  *ipam.Subnet
	// bridge is the gateway interface's name (GatewayName).
	bridge string
	// scope is api.ScopeLocal or api.ScopeCluster; a cluster network
	// has a VNI (see overlay.go).
	scope string
	vni   uint32
	// mtu is the MTU of a cluster network's TAPs and gateway, and
	// gwMAC its anycast gateway MAC (prepareClusterLocked); 0 and nil
	// for a local network.
	mtu   int
	gwMAC net.HardwareAddr
	// stored: a cluster network made in the cluster's store (or taken
	// from there); seen: in a view of the store applied since (see
	// localNet); gone: removed from the store, with its addresses and
	// endpoints.
	stored, seen, gone bool

	// Set by startNetworkLocked.
	vn      *vswitch.Network
	gw      *port
	records *dns.Records
	dns     nameServer
	// tunnel and tport are a cluster network's VXLAN tunnel and its
	// port; remotes are the MACs set in it from the store, and
	// remoteNames the names of other hosts' ports in records, with
	// their addresses (see cluster.go).
	tunnel      *vxlan.Tunnel
	tport       *vswitch.Port
	remotes     map[string]netip.Addr
	remoteNames map[string]string
}

// natNetwork is n as the firewall sees it.
func (n *network) natNetwork() nat.Network {
	nn := nat.Network{Name: n.name, Subnet: n.subnet.Prefix(), Bridge: n.bridge, Gateway: n.subnet.Gateway(), Internal: n.internal}
	if len(n.subnets) > 1 {
		nn.Subnet6, nn.Gateway6 = n.subnets[1].Prefix(), n.subnets[1].Gateway()
	}
	return nn
}

// newNetwork is a network of the daemon, not yet started, on subnets.
func (d *Daemon) newNetwork(name string, internal bool, subnets []*ipam.Subnet) *network {
	return &network{name: name, internal: internal, subnets: subnets, subnet: subnets[0], bridge: GatewayName(d.cfg.StateDir, name), scope: api.ScopeLocal}
}

// CreateNetwork implements apiserver.Backend.
func (d *Daemon) CreateNetwork(ctx context.Context, req api.NetworkCreateRequest) (api.Network, error) {
	if err := checkNetworkName(req.Name); err != nil {
		return api.Network{}, fmt.Errorf("create network: %w", err)
	}
	if err := d.lockFor(ctx); err != nil {
		return api.Network{}, fmt.Errorf("create network %q: %w", req.Name, err)
	}
	defer d.mu.Unlock()
	n, err := d.createNetworkLocked(req)
	if err != nil {
		return api.Network{}, fmt.Errorf("create network %q: %w", req.Name, startError(err))
	}
	d.saveLocked()
	return d.networkViewLocked(n), nil
}

func (d *Daemon) createNetworkLocked(req api.NetworkCreateRequest) (*network, error) {
	if _, ok := d.nets[req.Name]; ok {
		return nil, api.Errorf(api.ErrConflict, api.ReasonNetworkExists, "network %q already exists", req.Name)
	}
	subnets, err := d.newSubnetsLocked(req)
	if err != nil {
		return nil, err
	}
	scope, vni := cmp.Or(req.Scope, api.ScopeLocal), uint32(0)
	if scope == api.ScopeCluster {
		if vni, err = d.clusterVNILocked(req, subnets); err != nil {
			return nil, err
		}
	}
	n := d.newNetwork(req.Name, req.Internal, subnets)
	n.scope, n.vni = scope, vni
	n.stored = scope == api.ScopeCluster && d.ov.store != nil
	if err := d.startNetworkLocked(n, false); err != nil {
		if scope == api.ScopeCluster {
			d.unmakeInStoreLocked(n.name)
		}
		return nil, err
	}
	attrs := map[string]string{"subnet": n.subnetsString(), "gateway": n.gatewaysString(), "internal": strconv.FormatBool(n.internal)}
	if n.scope == api.ScopeCluster {
		attrs["scope"], attrs["vni"] = n.scope, strconv.FormatUint(uint64(n.vni), 10)
	}
	d.events.Publish(api.Event{Type: api.EventNetworkCreate, Network: n.name, Attrs: attrs})
	return n, nil
}

// inUseLocked returns what a new network's subnet must not overlap: the
// networks' subnets and the host's routes, but not the routes of the
// daemon's own gateways, which are those subnets again.
func (d *Daemon) inUseLocked() (map[string]netip.Prefix, error) {
	var own []string
	for _, n := range d.nets {
		own = append(own, n.bridge)
	}
	inUse, err := hostRoutes(own)
	if err != nil {
		return nil, err
	}
	for _, n := range d.nets {
		for i, p := range n.prefixes() {
			key := fmt.Sprintf("network %q", n.name)
			if i > 0 {
				key += " (its IPv6 subnet)"
			}
			inUse[key] = p
		}
	}
	return inUse, nil
}

// startNetworkLocked brings n up: a network of the switch, a gateway TAP
// in the daemon's namespace holding the gateway address and plugged in
// as a port, a DNS server on the gateway, and the firewall rules. With
// reopen, the network is one of the state file and its gateway, which a
// previous daemon left, is taken back as it is (or made again if gone).
// On failure nothing new of it is left.
func (d *Daemon) startNetworkLocked(n *network, reopen bool) (err error) {
	d.prepareClusterLocked(n)
	vn, err := d.sw.CreateNetwork(n.name)
	if err != nil {
		return classify(err)
	}
	defer func() {
		if err != nil {
			d.sw.RemoveNetwork(n.name)
		}
	}()
	records, err := dns.NewRecords(n.name)
	if err != nil {
		return invalid("network name %q as a DNS domain: %w", n.name, err)
	}
	n.vn, n.records = vn, records
	gw, err := d.plugLocked(plugSpec{
		kind:    api.KindGateway,
		state:   portState{Name: n.bridge, Network: n.name},
		net:     n,
		ifname:  n.bridge,
		ips:     n.gatewayPrefixes(),
		mac:     n.gwMAC,
		mtu:     n.mtu,
		restore: reopen,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			delete(d.ports, gw.name())
			d.sw.RemovePort(gw.sw)
		}
	}()
	srv, err := d.host.startDNS(d.dnsConfig(n))
	if err != nil {
		return fmt.Errorf("DNS server on %s: %w (is another DNS server bound to every address on port 53?)", netip.AddrPortFrom(n.subnet.Gateway(), 53), err)
	}
	defer func() {
		if err != nil {
			srv.Close()
		}
	}()
	if err := d.startTunnelLocked(n); err != nil {
		return err
	}
	// While a daemon restores its state the firewall is not there yet;
	// New gives the restored networks their rules once it is.
	if d.nat != nil {
		if err := d.nat.AddNetwork(n.natNetwork()); err != nil {
			return fmt.Errorf("firewall rules: %w", err)
		}
	}
	n.gw, n.dns = gw, srv
	d.nets[n.name] = n
	d.log.Info("network up", "network", n.name, "subnet", n.subnetsString(), "gateway", n.gatewaysString(), "bridge", n.bridge, "internal", n.internal)
	return nil
}

// dnsConfig is the configuration of n's DNS server.
func (d *Daemon) dnsConfig(n *network) dns.Config {
	// The server's own copy: a rename starts a new server.
	name := n.name
	return dns.Config{
		Addr:      netip.AddrPortFrom(n.subnet.Gateway(), 53),
		Records:   n.records,
		Subnets:   n.prefixes(),
		Peers:     func(a netip.Addr) []*dns.Records { return d.peers.lookup(name, a) },
		Upstreams: d.upstreams,
		Logger:    d.log.With("network", n.name),
		// Only the network's own ports, on its gateway; an internal
		// network's names stay its own and nothing is forwarded.
		Interface: n.bridge,
		Internal:  n.internal,
		FDs:       fdlimit.Process(),
	}
}

// stopNetworkLocked undoes startNetworkLocked; n must have no container
// ports left.
func (d *Daemon) stopNetworkLocked(n *network) error {
	var errs []error
	if err := n.dns.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := d.nat.RemoveNetwork(n.name); err != nil && !errors.Is(err, nat.ErrUnknownNetwork) {
		errs = append(errs, err)
	}
	d.unstoreLocked(n.gw)
	if err := d.sw.RemovePort(n.gw.sw); err != nil && !errors.Is(err, vswitch.ErrNoPort) {
		errs = append(errs, err)
	}
	delete(d.ports, n.gw.name())
	if err := d.stopTunnelLocked(n); err != nil && !errors.Is(err, vswitch.ErrNoPort) {
		errs = append(errs, err)
	}
	if err := d.sw.RemoveNetwork(n.name); err != nil {
		errs = append(errs, err)
	}
	delete(d.nets, n.name)
	return errors.Join(errs...)
}

// RemoveNetwork implements apiserver.Backend.
func (d *Daemon) RemoveNetwork(ctx context.Context, name string, force bool) error {
	if name == api.DefaultNetwork {
		return fmt.Errorf("remove network %q: %w", name, invalid("the default network is predefined and cannot be removed"))
	}
	if err := d.lockFor(ctx); err != nil {
		return fmt.Errorf("remove network %q: %w", name, err)
	}
	defer d.mu.Unlock()
	n, ok := d.nets[name]
	if !ok {
		return fmt.Errorf("remove network: %w", noNetwork(name))
	}
	dockerID, isDocker := d.dockerNetworkOf(name)
	if isDocker && !force {
		return fmt.Errorf("remove network %q: %w", name, d.dockerOwnsNetworkLocked(name))
	}
	if isDocker {
		// Docker's own later calls for what goes here (Leave,
		// DeleteEndpoint, DeleteNetwork) find nothing, and succeed.
		for _, ep := range d.docker.endpoints {
			if ep.NetworkID == dockerID {
				d.dropDockerEndpointLocked(ep, "network_removed")
			}
		}
		d.forgetDockerNetworkLocked(dockerID)
		d.log.Warn("a network of Docker's removed with --force", "network", name, "docker_network", docker.ShortID(dockerID))
	}
	ports := d.portsOfLocked(n)
	if len(ports) > 0 && !force {
		names := make([]string, len(ports))
		for i, p := range ports {
			names[i] = p.name()
		}
		return fmt.Errorf("remove network %q: %w", name, api.Errorf(api.ErrConflict, api.ReasonNetworkHasPorts, "%d port(s) still attached (%s)", len(ports), strings.Join(names, ", ")))
	}
	if err := d.removeFromStoreLocked(n, force); err != nil {
		return fmt.Errorf("remove network %q: %w", name, err)
	}
	d.detachForRemovalLocked(ports, "network_removed")
	err := d.stopNetworkLocked(n)
	d.saveLocked()
	d.events.Publish(api.Event{Type: api.EventNetworkRemove, Network: name, Counts: map[string]int64{"ports": int64(len(ports))}})
	if err != nil {
		return fmt.Errorf("remove network %q: %w", name, err)
	}
	d.log.Info("network removed", "network", name, "ports_detached", len(ports))
	return nil
}

// detachForRemovalLocked detaches the ports of a network that goes,
// each with a detach event of reason.
func (d *Daemon) detachForRemovalLocked(ports []*port, reason string) {
	for _, p := range ports {
		if err := d.sw.RemovePort(p.sw); err != nil && !errors.Is(err, vswitch.ErrNoPort) {
			d.log.Error("detach port of removed network", "port", p.name(), "err", err)
		}
		ev := portEvent(api.EventPortDetach, p)
		ev.Reason = reason
		d.events.Publish(ev)
		d.forgetLocked(p)
	}
}

// InspectNetwork implements apiserver.Backend.
func (d *Daemon) InspectNetwork(name string) (api.NetworkDetail, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.nets[name]
	if !ok {
		return api.NetworkDetail{}, fmt.Errorf("inspect network: %w", noNetwork(name))
	}
	out := api.NetworkDetail{Network: d.networkViewLocked(n), Ports: []api.Port{n.gw.view()}}
	if n.tport != nil {
		out.Ports = append(out.Ports, n.tunnelView())
	}
	if st, ok := n.dns.(interface{ Stats() dns.Stats }); ok {
		out.DNSCounters = dnsCounters(st.Stats())
	}
	for _, p := range d.portsOfLocked(n) {
		out.Ports = append(out.Ports, p.view())
	}
	return out, nil
}

// portsOfLocked returns n's container ports by id.
func (d *Daemon) portsOfLocked(n *network) []*port {
	var out []*port
	for _, p := range d.ports {
		if p.net == n && p.kind != api.KindGateway {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *port) int { return cmp.Compare(a.sw.ID(), b.sw.ID()) })
	return out
}

func (d *Daemon) networkViewLocked(n *network) api.Network {
	return api.Network{
		Name:     n.name,
		Subnet:   n.subnet.Prefix().String(),
		Gateway:  n.subnet.Gateway().String(),
		Subnets:  n.subnetViews(),
		Internal: n.internal,
		Bridge:   n.bridge,
		DNS:      n.dns.Addr().String(),
		Ports:    len(d.portsOfLocked(n)),
		MACs:     n.vn.FDB().Len(),
		MACLimit: n.vn.FDB().Limit(),
		Scope:    n.scope,
		VNI:      n.vni,
		MTU:      n.mtu,
	}
}

// dnsCounters is a network's DNS server's counters as the API shows them.
func dnsCounters(s dns.Stats) *api.DNSCounters {
	return &api.DNSCounters{
		Answered:     s.Answered,
		Forwarded:    s.Forwarded,
		NotForwarded: s.NotForwarded,
		RateLimited:  s.RateLimited,
		Refused: api.DNSRefused{
			Source:    s.RefusedSource,
			Interface: s.RefusedInterface,
			Forwards:  s.RefusedForwards,
			TCP:       s.RefusedTCP,
			FDs:       s.RefusedFDs,
		},
	}
}

// switchPortView is what the switch knows of a port.
func switchPortView(sp *vswitch.Port) api.Port {
	info := sp.Info()
	ips := make([]string, 0, len(info.IPs))
	for _, ip := range info.IPs {
		ips = append(ips, ip.String())
	}
	c := sp.Counters()
	storm := sp.StormLimits()
	return api.Port{
		ID:           sp.ID(),
		Name:         sp.Name(),
		Network:      sp.Network().Name(),
		Netns:        info.Netns,
		Ifname:       info.Ifname,
		MAC:          info.MAC.String(),
		IPs:          ips,
		MTU:          info.MTU,
		Publish:      []string{},
		PortSecurity: sp.Security(),
		MACs:         sp.MACs(),
		MACLimit:     sp.MACLimit(),
		// Storm control rates in force.
		StormBroadcast: storm.Broadcast, StormMulticast: storm.Multicast, StormUnknown: storm.UnknownUnicast,
		Stats: api.PortCounters{
			RxFrames: c.RxFrames, RxBytes: c.RxBytes,
			TxFrames: c.TxFrames, TxBytes: c.TxBytes,
			TxCoalescedFrames: c.TxCoalescedFrames, TxCoalescedWrites: c.TxCoalescedWrites,
			Drops: c.Drops,
		},
	}
}

func fdbEntries(nets []*vswitch.Network) []api.FDBEntry {
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
	return out
}
