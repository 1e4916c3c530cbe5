package daemon

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/docker"
	"github.com/tapswitch/tapswitch/internal/ipam"
	"github.com/tapswitch/tapswitch/internal/publish"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// The Docker network driver (internal/docker serves its protocol; this
// file is what the calls do). A Docker network is a tapswitch network
// with Docker's subnet and gateway, named for now after the first 12
// characters of Docker's id. A Docker endpoint is an address (and MAC)
// held at CreateEndpoint; Join makes its port, of kind docker: a TAP in
// the daemon's namespace, opened and plugged into the switch, which
// Docker then moves into the container and renames eth0. Leave unplugs
// and removes it, DeleteEndpoint lets the addresses go. The IPAM driver
// holds subnets (pools) from tapswitch's own pool, and the network made
// of a pool hands out its addresses from that very ipam.Subnet, so the
// two never disagree.
//
// Everything is in the state file (dockerDoc). A restarted daemon finds
// a joined port's TAP by its MAC in the container's namespace (the
// SandboxKey Join was given), whatever Docker renamed it to, or, when
// the container went away meanwhile and Docker gave it back, by its own
// name in the daemon's namespace.

// Docker is the daemon as the network and IPAM driver's backend.
func (d *Daemon) Docker() docker.Backend { return dockerDriver{d} }

// dockerDriver implements docker.Backend with the daemon's dockerXxx
// methods (the daemon has API methods of the same names).
type dockerDriver struct{ d *Daemon }

var _ docker.Backend = dockerDriver{}

func (b dockerDriver) CreateNetwork(ctx context.Context, n docker.Network) error {
	return b.d.dockerCreateNetwork(ctx, n)
}
func (b dockerDriver) DeleteNetwork(ctx context.Context, id string) error {
	return b.d.dockerDeleteNetwork(ctx, id)
}
func (b dockerDriver) CreateEndpoint(ctx context.Context, e docker.Endpoint) (docker.EndpointInterface, error) {
	return b.d.dockerCreateEndpoint(ctx, e)
}
func (b dockerDriver) DeleteEndpoint(ctx context.Context, nid, eid string) error {
	return b.d.dockerDeleteEndpoint(ctx, nid, eid)
}
func (b dockerDriver) EndpointInfo(ctx context.Context, nid, eid string) (map[string]any, error) {
	return b.d.dockerEndpointInfo(ctx, nid, eid)
}
func (b dockerDriver) Join(ctx context.Context, j docker.Join) (docker.JoinResponse, error) {
	return b.d.dockerJoin(ctx, j)
}
func (b dockerDriver) Leave(ctx context.Context, nid, eid string) error {
	return b.d.dockerLeave(ctx, nid, eid)
}
func (b dockerDriver) ProgramExternal(ctx context.Context, nid, eid string, pm []docker.PortBinding) error {
	return b.d.dockerProgramExternal(ctx, nid, eid, pm)
}
func (b dockerDriver) RevokeExternal(ctx context.Context, nid, eid string) error {
	return b.d.dockerRevokeExternal(ctx, nid, eid)
}
func (b dockerDriver) RequestPool(ctx context.Context, p docker.Pool) (string, netip.Prefix, error) {
	return b.d.dockerRequestPool(ctx, p)
}
func (b dockerDriver) ReleasePool(ctx context.Context, id string) error {
	return b.d.dockerReleasePool(ctx, id)
}
func (b dockerDriver) RequestAddress(ctx context.Context, id string, a netip.Addr, gw bool) (netip.Prefix, error) {
	return b.d.dockerRequestAddress(ctx, id, a, gw)
}
func (b dockerDriver) ReleaseAddress(ctx context.Context, id string, a netip.Addr) error {
	return b.d.dockerReleaseAddress(ctx, id, a)
}

// dockerState is what the driver holds, under d.mu.
type dockerState struct {
	// nets are Docker's networks by Docker's id.
	nets map[string]*dockerNet
	// endpoints are Docker's endpoints by Docker's id.
	endpoints map[string]*dockerEndpoint
	// pools are the IPAM driver's pools by id.
	pools map[string]*dockerPool
}

// dockerDoc is dockerState as the state file records it.
type dockerDoc struct {
	Networks  []dockerNet      `json:"networks,omitempty"`
	Endpoints []dockerEndpoint `json:"endpoints,omitempty"`
	Pools     []dockerPool     `json:"pools,omitempty"`
}

// dockerNet is one Docker network: its ids and the tapswitch network.
type dockerNet struct {
	ID string `json:"id"`
	// Network is the tapswitch network's name.
	Network string `json:"network"`
	// Pool is the IPAM pool the network was made of, if any; Pool6 the
	// one of its IPv6 subnet.
	Pool  string `json:"pool,omitempty"`
	Pool6 string `json:"pool6,omitempty"`
	// MTU is -o com.docker.network.driver.mtu, the MTU of the
	// network's containers' interfaces; 0 for 1500.
	MTU int `json:"mtu,omitempty"`
}

// OptionMTU is the driver option that sets the MTU of the containers'
// interfaces, as for Docker's bridge driver.
const OptionMTU = "com.docker.network.driver.mtu"

// dockerEndpoint is one Docker endpoint.
type dockerEndpoint struct {
	ID        string `json:"id"`
	NetworkID string `json:"network_id"`
	// Network is the tapswitch network's name.
	Network string `json:"network"`
	// Addrs are the endpoint's addresses with the subnet's length; Owned
	// those of them CreateEndpoint reserved in the network's IPAM (the
	// others the IPAM driver handed out, and Docker releases).
	Addrs []string `json:"addrs"`
	Owned []string `json:"owned,omitempty"`
	MAC   string   `json:"mac"`
	MTU   int      `json:"mtu,omitempty"`
	// PortMap is what Docker asked to publish; Publish what is published,
	// with the host ports chosen, while external connectivity is on.
	PortMap []docker.PortBinding `json:"port_map,omitempty"`
	Publish []publish.Mapping    `json:"publish,omitempty"`
	// SandboxKey is the container's namespace file, given at Join.
	SandboxKey string `json:"sandbox_key,omitempty"`
	// Port is the joined port's state: its name, network, MAC, and its
	// TAP's name and addresses as it was made. Nil until Join.
	Port *portState `json:"port,omitempty"`
}

// dockerPool is one pool of the IPAM driver.
type dockerPool struct {
	ID string `json:"id"`
	// Subnet is the pool's addresses; for a pool a network was made of,
	// the network's own (restored from the network).
	Subnet ipam.SubnetState `json:"subnet"`
	// Network is the tapswitch network made of the pool, once made.
	Network string `json:"network,omitempty"`
	// Given are the addresses RequestAddress handed out, the gateway's
	// aside.
	Given []string `json:"given,omitempty"`

	sub *ipam.Subnet
}

func (s *dockerState) init() {
	if s.nets == nil {
		s.nets = make(map[string]*dockerNet)
		s.endpoints = make(map[string]*dockerEndpoint)
		s.pools = make(map[string]*dockerPool)
	}
}

// dockerDocLocked is the driver's part of the state file.
func (d *Daemon) dockerDocLocked() *dockerDoc {
	s := &d.docker
	if len(s.nets)+len(s.endpoints)+len(s.pools) == 0 {
		return nil
	}
	doc := &dockerDoc{}
	for _, n := range s.nets {
		doc.Networks = append(doc.Networks, *n)
	}
	for _, e := range s.endpoints {
		c := *e
		if e.Port != nil {
			if p, ok := d.ports[e.Port.Name]; ok {
				ps := p.state
				c.Port = &ps
			}
		}
		doc.Endpoints = append(doc.Endpoints, c)
	}
	for _, p := range s.pools {
		c := *p
		c.Subnet = p.sub.State()
		doc.Pools = append(doc.Pools, c)
	}
	slices.SortFunc(doc.Networks, func(a, b dockerNet) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(doc.Endpoints, func(a, b dockerEndpoint) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(doc.Pools, func(a, b dockerPool) int { return cmp.Compare(a.ID, b.ID) })
	return doc
}

// dockerNetLocked is Docker's network id as tapswitch has it.
func (d *Daemon) dockerNetLocked(id string) (*dockerNet, *network, error) {
	dn, ok := d.docker.nets[id]
	if !ok {
		return nil, nil, fmt.Errorf("network %s is not one tapswitch has: was it created while tapswitchd ran with another --state-dir? Remove it with docker network rm and create it again", docker.ShortID(id))
	}
	n, ok := d.nets[dn.Network]
	if !ok {
		return nil, nil, fmt.Errorf("Docker network %s: its tapswitch network %q is gone; remove it with docker network rm and create it again", docker.ShortID(id), dn.Network)
	}
	return dn, n, nil
}

// dockerNetworkOf is the id of the Docker network that is the tapswitch
// network name, if any.
func (d *Daemon) dockerNetworkOf(name string) (string, bool) {
	for _, dn := range d.docker.nets {
		if dn.Network == name {
			return dn.ID, true
		}
	}
	return "", false
}

// dockerCreateNetwork is docker.Backend's CreateNetwork.
func (d *Daemon) dockerCreateNetwork(ctx context.Context, dn docker.Network) error {
	if err := d.lockFor(ctx); err != nil {
		return err
	}
	defer d.mu.Unlock()
	d.docker.init()
	if have, ok := d.docker.nets[dn.ID]; ok {
		if n, ok := d.nets[have.Network]; ok && slices.Equal(n.prefixes(), dn.Prefixes()) {
			return nil
		}
		return fmt.Errorf("network %s was created before with another subnet; remove it with docker network rm", docker.ShortID(dn.ID))
	}
	mtu := 0
	if v, ok := dn.Generic[OptionMTU]; ok {
		m, err := strconv.Atoi(v)
		if err != nil || m < 68 || m > 65535 {
			return fmt.Errorf("-o %s=%s: want an MTU from 68 to 65535", OptionMTU, v)
		}
		mtu = m
	}
	if err := checkDockerV6(dn, mtu); err != nil {
		return err
	}
	name := docker.ShortID(dn.ID)
	req := api.NetworkCreateRequest{Name: name, Subnet: dn.Subnet.String(), Internal: dn.Internal}
	if dn.Gateway.IsValid() {
		req.Gateway = dn.Gateway.String()
	}
	for _, s := range dn.V6 {
		sr := api.SubnetRequest{Subnet: s.Prefix.String()}
		if s.Gateway.IsValid() {
			sr.Gateway = s.Gateway.String()
		}
		req.Subnets = append(req.Subnets, sr)
	}
	// Pools of the IPAM driver: the network hands out from them.
	pool, err := d.dockerPoolForLocked(dn.Subnet, dn.Gateway)
	if err != nil {
		return err
	}
	var pool6 *dockerPool
	if len(dn.V6) == 1 {
		if pool6, err = d.dockerPoolForLocked(dn.V6[0].Prefix, dn.V6[0].Gateway); err != nil {
			return err
		}
	}
	n, err := d.createNetworkLocked(req)
	if err != nil {
		return fmt.Errorf("create network: %w", startError(err))
	}
	rec := &dockerNet{ID: dn.ID, Network: n.name, MTU: mtu}
	if pool != nil {
		// The first of n's subnets (see subnets.go), the one Docker's
		// IPv4 data names.
		n.subnet, n.subnets[0] = pool.sub, pool.sub
		pool.Network, rec.Pool = n.name, pool.ID
	}
	if pool6 != nil && len(n.subnets) == 2 {
		n.subnets[1] = pool6.sub
		pool6.Network, rec.Pool6 = n.name, pool6.ID
	}
	d.docker.nets[dn.ID] = rec
	d.saveLocked()
	return nil
}

// dockerPoolForLocked is the IPAM driver's pool not yet a network's
// whose subnet is prefix, if any; a gateway Docker gives must be the
// pool's.
func (d *Daemon) dockerPoolForLocked(prefix netip.Prefix, gw netip.Addr) (*dockerPool, error) {
	for _, p := range d.docker.pools {
		if p.Network == "" && p.sub.Prefix() == prefix {
			if gw.IsValid() && p.sub.Gateway() != gw {
				return nil, fmt.Errorf("gateway %s is not the one tapswitch's IPAM gave the subnet (%s)", gw, p.sub.Gateway())
			}
			return p, nil
		}
	}
	return nil, nil
}

// dockerDeleteNetwork is docker.Backend's DeleteNetwork.
func (d *Daemon) dockerDeleteNetwork(ctx context.Context, id string) error {
	if err := d.lockFor(ctx); err != nil {
		return err
	}
	defer d.mu.Unlock()
	d.docker.init()
	dn, ok := d.docker.nets[id]
	if !ok {
		return nil
	}
	n, ok := d.nets[dn.Network]
	if ok {
		if ports := d.portsOfLocked(n); len(ports) > 0 {
			return fmt.Errorf("network %s still has %d port(s) (%s); disconnect or remove their containers first", docker.ShortID(id), len(ports), ports[0].name())
		}
		for _, e := range d.docker.endpoints {
			if e.NetworkID == id {
				return fmt.Errorf("network %s still has endpoint %s; remove its container first", docker.ShortID(id), docker.ShortID(e.ID))
			}
		}
		if err := d.stopNetworkLocked(n); err != nil {
			d.log.Warn("remove Docker's network", "network", n.name, "err", err)
		}
		d.events.Publish(api.Event{Type: api.EventNetworkRemove, Network: n.name})
	}
	// The subnets are free once their network is gone; Docker's
	// ReleasePool that follows finds nothing left.
	delete(d.docker.pools, dn.Pool)
	delete(d.docker.pools, dn.Pool6)
	delete(d.docker.nets, id)
	d.saveLocked()
	return nil
}

// endpointMAC is the MAC of an endpoint Docker gave none: made of its
// IPv4 address, as Docker's bridge driver does (02:42 and the address),
// so that a container started again with the same address has the same
// MAC and its peers' ARP caches stay right; a random locally
// administered one without an address.
func endpointMAC(a netip.Addr) net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	if a.Is4() {
		b := a.As4()
		m[0], m[1] = 0x02, 0x42
		copy(m[2:], b[:])
		return m
	}
	rand.Read(m)
	m[0] = m[0]&0xfe | 0x02
	return m
}

// dockerCreateEndpoint is docker.Backend's CreateEndpoint.
func (d *Daemon) dockerCreateEndpoint(ctx context.Context, e docker.Endpoint) (docker.EndpointInterface, error) {
	if err := d.lockFor(ctx); err != nil {
		return docker.EndpointInterface{}, err
	}
	defer d.mu.Unlock()
	d.docker.init()
	if have, ok := d.docker.endpoints[e.EndpointID]; ok && have.NetworkID == e.NetworkID {
		return have.iface(), nil
	}
	if _, ok := d.docker.endpoints[e.EndpointID]; ok {
		return docker.EndpointInterface{}, fmt.Errorf("endpoint %s exists on another network", docker.ShortID(e.EndpointID))
	}
	dn, n, err := d.dockerNetLocked(e.NetworkID)
	if err != nil {
		return docker.EndpointInterface{}, err
	}
	if len(e.PortMap) > 0 && n.internal {
		return docker.EndpointInterface{}, fmt.Errorf("network %q is internal: its containers' ports cannot be published (-p); publish them on another network", n.name)
	}
	var mac net.HardwareAddr
	if e.MAC != "" {
		if mac, err = apiserver.ParseMAC(e.MAC); err != nil {
			return docker.EndpointInterface{}, err
		}
	}
	ep := &dockerEndpoint{ID: e.EndpointID, NetworkID: e.NetworkID, Network: n.name, PortMap: e.PortMap}
	release := func() {
		for _, s := range ep.Owned {
			if a, err := netip.ParseAddr(s); err == nil {
				n.release(a)
			}
		}
	}
	// An address of each of the network's subnets: Docker's (held in
	// tapswitch's IPAM too unless the IPAM driver handed it out), or one
	// the network hands out.
	for i, addr := range []netip.Prefix{e.Address, e.AddressIPv6} {
		a, err := d.dockerEndpointAddrLocked(n, e.NetworkID, addr, i == 1, ep)
		if err != nil {
			release()
			return docker.EndpointInterface{}, err
		}
		if a.IsValid() {
			ep.Addrs = append(ep.Addrs, a.String())
		}
	}
	ep.MTU = dn.MTU
	if mac == nil {
		var first netip.Prefix
		if len(ep.Addrs) > 0 {
			first, _ = netip.ParsePrefix(ep.Addrs[0])
		}
		mac = endpointMAC(first.Addr())
	}
	for _, p := range n.vn.Ports() {
		if p.Info().MAC.String() == mac.String() {
			release()
			return docker.EndpointInterface{}, fmt.Errorf("MAC %s is already in use by port %q on the network; give the container another --mac-address", mac, p.Name())
		}
	}
	for _, o := range d.docker.endpoints {
		if o.Network == n.name && o.MAC == mac.String() {
			release()
			return docker.EndpointInterface{}, fmt.Errorf("MAC %s is already in use by endpoint %s on the network; give the container another --mac-address", mac, docker.ShortID(o.ID))
		}
	}
	ep.MAC = mac.String()
	d.docker.endpoints[ep.ID] = ep
	d.saveLocked()
	return ep.iface(), nil
}

func (e *dockerEndpoint) iface() docker.EndpointInterface {
	ifc := docker.EndpointInterface{MacAddress: e.MAC}
	for _, s := range e.Addrs {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
		case p.Addr().Is4() && ifc.Address == "":
			ifc.Address = s
		case p.Addr().Is6() && ifc.AddressIPv6 == "":
			ifc.AddressIPv6 = s
		}
	}
	return ifc
}

// givenByPoolLocked reports whether the IPAM driver's pool of n handed
// out a.
func (d *Daemon) givenByPoolLocked(n *network, a netip.Addr) bool {
	for _, p := range d.docker.pools {
		if p.Network == n.name && slices.Contains(p.Given, a.String()) {
			return true
		}
	}
	return false
}

// dockerDeleteEndpoint is docker.Backend's DeleteEndpoint.
func (d *Daemon) dockerDeleteEndpoint(ctx context.Context, nid, eid string) error {
	if err := d.lockFor(ctx); err != nil {
		return err
	}
	defer d.mu.Unlock()
	d.docker.init()
	ep, ok := d.docker.endpoints[eid]
	if !ok {
		return nil
	}
	d.leaveLocked(ep, "")
	d.freeEndpointLocked(ep)
	d.saveLocked()
	return nil
}

// freeEndpointLocked releases the addresses ep owns and forgets it.
func (d *Daemon) freeEndpointLocked(ep *dockerEndpoint) {
	if n, ok := d.nets[ep.Network]; ok {
		for _, s := range ep.Owned {
			if a, err := netip.ParseAddr(s); err == nil {
				n.release(a)
			}
		}
	}
	delete(d.docker.endpoints, ep.ID)
}

// dockerEndpointInfo is docker.Backend's EndpointInfo.
func (d *Daemon) dockerEndpointInfo(ctx context.Context, nid, eid string) (map[string]any, error) {
	if err := d.lockFor(ctx); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	ep, ok := d.docker.endpoints[eid]
	if !ok {
		return nil, fmt.Errorf("endpoint %s is not one tapswitch has", docker.ShortID(eid))
	}
	out := map[string]any{"com.docker.network.endpoint.macaddress": ep.MAC}
	var target string
	if len(ep.Addrs) > 0 {
		if p, err := netip.ParsePrefix(ep.Addrs[0]); err == nil {
			target = p.Addr().String()
		}
	}
	pm := []docker.PortBinding{}
	for _, m := range ep.Publish {
		b := docker.PortBinding{Proto: docker.ProtoTCP, IP: target, Port: int(m.TargetPort), HostPort: int(m.HostPort), HostPortEnd: int(m.HostPort)}
		if m.Proto == "udp" {
			b.Proto = docker.ProtoUDP
		}
		if m.HostIP.IsValid() {
			b.HostIP = m.HostIP.String()
		}
		pm = append(pm, b)
	}
	out[docker.OptionPortMap] = pm
	return out, nil
}

// dockerIfname is the name of an endpoint's TAP in the daemon's
// namespace: "ts" and the endpoint id's first 13 characters, 15 in all.
func dockerIfname(eid string) string {
	if len(eid) > 13 {
		eid = eid[:13]
	}
	return "ts" + eid
}

// dockerJoin is docker.Backend's Join.
func (d *Daemon) dockerJoin(ctx context.Context, j docker.Join) (docker.JoinResponse, error) {
	if err := d.lockFor(ctx); err != nil {
		return docker.JoinResponse{}, err
	}
	defer d.mu.Unlock()
	d.docker.init()
	ep, ok := d.docker.endpoints[j.EndpointID]
	if !ok {
		return docker.JoinResponse{}, fmt.Errorf("endpoint %s is not one tapswitch has: was it created while tapswitchd ran with another --state-dir? Remove the container and run it again", docker.ShortID(j.EndpointID))
	}
	_, n, err := d.dockerNetLocked(ep.NetworkID)
	if err != nil {
		return docker.JoinResponse{}, err
	}
	resp := docker.JoinResponse{InterfaceName: docker.InterfaceName{SrcName: dockerIfname(ep.ID), DstPrefix: "eth"}}
	if !n.internal {
		// The default routes; an internal network has none, as with
		// Docker's bridge.
		resp.Gateway = n.subnet.Gateway().String()
		if s := n.subnet6(); s != nil {
			resp.GatewayIPv6 = s.Gateway().String()
		}
	}
	if ep.Port != nil {
		if _, ok := d.ports[ep.Port.Name]; ok {
			return resp, nil
		}
		ep.Port = nil
	}
	if len(j.PortMap) > 0 {
		ep.PortMap = j.PortMap
	}
	// Docker gives a container's port map to each of its endpoints and
	// publishes it on one, its gateway's: ProgramExternalConnectivity
	// names it, RevokeExternalConnectivity takes the ports from the one
	// before when the gateway moves. A Join publishes at once, unless
	// another endpoint of the container publishes them already (docker
	// network connect of a container with -p): its host ports are taken.
	pm := ep.PortMap
	if d.sandboxPublishesLocked(j.SandboxKey, ep.ID) {
		pm = nil
	}
	if len(pm) > 0 && n.internal {
		return docker.JoinResponse{}, fmt.Errorf("network %q is internal: its containers' ports cannot be published (-p); publish them on another network", n.name)
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return docker.JoinResponse{}, fmt.Errorf("endpoint %s: MAC %q: %w", docker.ShortID(ep.ID), ep.MAC, err)
	}
	var ips []netip.Prefix
	for _, s := range ep.Addrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return docker.JoinResponse{}, fmt.Errorf("endpoint %s: address %q: %w", docker.ShortID(ep.ID), s, err)
		}
		ips = append(ips, p)
	}
	mappings, err := hostPorts(pm)
	if err != nil {
		return docker.JoinResponse{}, publishError(err)
	}
	name := docker.ShortID(ep.ID)
	ifname := resp.InterfaceName.SrcName
	// A daemon killed from here on leaves a TAP in its own namespace
	// that no port holds: the next start removes it (removeStaleLocked
	// takes every TAP of this daemon there whose queues nobody holds).
	if d.persistent() {
		if err := d.writeIntent(intentRecord{Port: name, Network: n.name, NetnsPath: selfNetns, Ifname: ifname}, false); err != nil {
			return docker.JoinResponse{}, fmt.Errorf("record the join in %s: %w; the state directory must be writable", d.intentDir(), err)
		}
		defer d.clearIntent(name)
	}
	own, err := nsIDOf(selfNetns)
	if err != nil {
		return docker.JoinResponse{}, err
	}
	p, err := d.plugLocked(plugSpec{
		kind: api.KindDocker,
		state: portState{Name: name, Network: n.name, MTU: ep.MTU,
			Request: api.AttachRequest{Netns: j.SandboxKey, Network: n.name, Name: name}},
		net:     n,
		ns:      own,
		ifname:  ifname,
		ips:     ips,
		publish: mappings,
		mac:     mac,
		mtu:     ep.MTU,
	})
	if err != nil {
		return docker.JoinResponse{}, fmt.Errorf("join: %w", kernelError(err, ips))
	}
	ep.SandboxKey, ep.Publish = j.SandboxKey, mappings
	ps := p.state
	ep.Port = &ps
	d.saveLocked()
	d.events.Publish(portEvent(api.EventPortAttach, p))
	return resp, nil
}

// sandboxPublishesLocked reports whether an endpoint other than eid in
// the container's namespace sandbox publishes ports.
func (d *Daemon) sandboxPublishesLocked(sandbox, eid string) bool {
	if sandbox == "" {
		return false
	}
	for _, o := range d.docker.endpoints {
		if o.ID != eid && o.SandboxKey == sandbox && len(o.Publish) > 0 {
			return true
		}
	}
	return false
}

// hostPorts are the mappings of a portmap, with a free host port chosen
// where it gives none (HostPort 0) or a range.
func hostPorts(pm []docker.PortBinding) ([]publish.Mapping, error) {
	var out []publish.Mapping
	for _, b := range pm {
		m := publish.Mapping{Proto: b.ProtoName(), HostPort: uint16(b.HostPort), TargetPort: uint16(b.Port)}
		if b.HostIP != "" {
			a, err := netip.ParseAddr(b.HostIP)
			if err != nil {
				return nil, fmt.Errorf("host address %q: %w", b.HostIP, err)
			}
			m.HostIP = a
		}
		if b.HostPort == 0 || b.HostPortEnd > b.HostPort {
			port, err := freePort(m, b.HostPort, b.HostPortEnd)
			if err != nil {
				return nil, err
			}
			m.HostPort = port
		}
		out = append(out, m)
	}
	return out, nil
}

// freePort finds a host port for m that nothing listens on: the first
// free one of from..to, or one the kernel chooses when from is 0. It is
// taken a moment later by the proxy; another process binding it
// meanwhile makes the Join fail with the port in use.
func freePort(m publish.Mapping, from, to int) (uint16, error) {
	host := ""
	if m.HostIP.IsValid() {
		host = m.HostIP.String()
	}
	try := func(port int) (uint16, bool) {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		if m.Proto == "udp" {
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				return 0, false
			}
			defer c.Close()
			return uint16(c.LocalAddr().(*net.UDPAddr).Port), true
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return 0, false
		}
		defer l.Close()
		return uint16(l.Addr().(*net.TCPAddr).Port), true
	}
	if from == 0 {
		if p, ok := try(0); ok {
			return p, nil
		}
		return 0, fmt.Errorf("no free host port for %s/%d: %w", m.Proto, m.TargetPort, publish.ErrPortInUse)
	}
	for port := from; port <= to; port++ {
		if p, ok := try(port); ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("host ports %d-%d/%s are all in use: %w", from, to, m.Proto, publish.ErrPortInUse)
}

// dockerLeave is docker.Backend's Leave.
func (d *Daemon) dockerLeave(ctx context.Context, nid, eid string) error {
	if err := d.lockFor(ctx); err != nil {
		return err
	}
	defer d.mu.Unlock()
	ep, ok := d.docker.endpoints[eid]
	if !ok {
		return nil
	}
	d.leaveLocked(ep, "")
	d.saveLocked()
	return nil
}

// leaveLocked unplugs ep's port, if joined, and removes its TAP; reason,
// if any, goes on the port.detach event.
func (d *Daemon) leaveLocked(ep *dockerEndpoint, reason string) {
	if ep.Port == nil {
		return
	}
	if p, ok := d.ports[ep.Port.Name]; ok && p.kind == api.KindDocker {
		if err := d.sw.RemovePort(p.sw); err != nil && !errors.Is(err, vswitch.ErrNoPort) {
			d.log.Warn("unplug Docker's port", "port", p.name(), "err", err)
		}
		ev := portEvent(api.EventPortDetach, p)
		ev.Reason = reason
		d.events.Publish(ev)
		d.forgetLocked(p)
	}
	ep.Port, ep.SandboxKey, ep.Publish = nil, "", nil
}

// dockerProgramExternal is docker.Backend's ProgramExternal.
func (d *Daemon) dockerProgramExternal(ctx context.Context, nid, eid string, pm []docker.PortBinding) error {
	if err := d.lockFor(ctx); err != nil {
		return err
	}
	defer d.mu.Unlock()
	ep, ok := d.docker.endpoints[eid]
	if !ok {
		return fmt.Errorf("endpoint %s is not one tapswitch has", docker.ShortID(eid))
	}
	if len(pm) > 0 {
		ep.PortMap = pm
	}
	if ep.Port == nil {
		return fmt.Errorf("endpoint %s has not joined a container", docker.ShortID(eid))
	}
	p, ok := d.ports[ep.Port.Name]
	if !ok {
		return nil
	}
	if len(p.proxies) > 0 || len(ep.PortMap) == 0 {
		return nil
	}
	if p.net.internal {
		return fmt.Errorf("network %q is internal: its containers' ports cannot be published (-p); publish them on another network", p.net.name)
	}
	mappings, err := hostPorts(ep.PortMap)
	if err != nil {
		return err
	}
	target, ok := dockerTarget(p)
	if !ok {
		return errors.New("the endpoint has no address to publish ports to")
	}
	for i, m := range mappings {
		px, err := d.startProxyLocked(p.name(), i, m, target, d.log.With("port", p.name()))
		if err != nil {
			p.stopProxies()
			return publishError(err)
		}
		p.proxies = append(p.proxies, px)
	}
	p.publish, ep.Publish = mappings, mappings
	d.storeLocked(p)
	d.saveLocked()
	return nil
}

// locateDockerPortsLocked records where Docker has put the TAPs of the
// Docker ports not yet found in their containers: Docker moves a TAP
// into the container and renames it after the driver's calls, when it
// sets up the container's namespace. A port then shows the container's
// name of it; the switch, holding its queues, needs nothing. Each port
// is looked for until found, when the ports are listed.
func (d *Daemon) locateDockerPortsLocked() {
	finder, ok := d.host.(dockerTAPFinder)
	if !ok {
		return
	}
	changed := false
	for _, ep := range d.docker.endpoints {
		if ep.Port == nil || ep.SandboxKey == "" {
			continue
		}
		p, ok := d.ports[ep.Port.Name]
		if !ok || p.kind != api.KindDocker || p.nsPath == ep.SandboxKey {
			continue
		}
		nsPath, ifname, err := finder.findDockerTAP(ep.SandboxKey, ep.MAC, dockerIfname(ep.ID))
		if err != nil || nsPath != ep.SandboxKey {
			continue
		}
		ns, err := nsIDOf(nsPath)
		if err != nil {
			continue
		}
		p.nsPath, p.ns, p.state.Ifname = nsPath, ns, ifname
		changed = true
	}
	if changed {
		d.saveLocked()
	}
}

// dockerTarget is the address of p the published ports forward to.
func dockerTarget(p *port) (netip.Addr, bool) {
	for _, ip := range p.sw.Info().IPs {
		if p.net.subnet.Contains(ip.Addr()) {
			return ip.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// dockerRevokeExternal is docker.Backend's RevokeExternal.
func (d *Daemon) dockerRevokeExternal(ctx context.Context, nid, eid string) error {
	if err := d.lockFor(ctx); err != nil {
		return err
	}
	defer d.mu.Unlock()
	ep, ok := d.docker.endpoints[eid]
	if !ok {
		return nil
	}
	if ep.Port != nil {
		if p, ok := d.ports[ep.Port.Name]; ok {
			d.unstoreLocked(p)
			p.stopProxies()
			p.publish = nil
			d.storeLocked(p)
		}
	}
	ep.Publish = nil
	d.saveLocked()
	return nil
}

// dockerRequestPool is docker.Backend's RequestPool.
func (d *Daemon) dockerRequestPool(ctx context.Context, req docker.Pool) (string, netip.Prefix, error) {
	if err := d.lockFor(ctx); err != nil {
		return "", netip.Prefix{}, err
	}
	defer d.mu.Unlock()
	d.docker.init()
	if req.SubPool.IsValid() && req.SubPool != req.Prefix {
		return "", netip.Prefix{}, errors.New("--ip-range is not supported by tapswitch's IPAM: addresses come from the whole subnet; leave it out")
	}
	inUse, err := d.inUseLocked()
	if err != nil {
		return "", netip.Prefix{}, err
	}
	for _, p := range d.docker.pools {
		if p.Network == "" {
			inUse[fmt.Sprintf("IPAM pool %s", p.ID)] = p.sub.Prefix()
		}
	}
	prefix := req.Prefix
	if prefix.IsValid() {
		if err := ipam.CheckOverlap(prefix, inUse); err != nil {
			return "", netip.Prefix{}, ipamError(err)
		}
	} else if prefix, err = d.poolOf(req.V6).Next(slices.Collect(maps.Values(inUse))); err != nil {
		return "", netip.Prefix{}, ipamError(err)
	}
	sub, err := ipam.NewSubnet(prefix, netip.Addr{})
	if err != nil {
		return "", netip.Prefix{}, ipamError(err)
	}
	id := "ts-" + prefix.String()
	d.docker.pools[id] = &dockerPool{ID: id, sub: sub}
	d.saveLocked()
	return id, prefix, nil
}

// dockerReleasePool is docker.Backend's ReleasePool.
func (d *Daemon) dockerReleasePool(ctx context.Context, id string) error {
	if err := d.lockFor(ctx); err != nil {
		return err
	}
	defer d.mu.Unlock()
	p, ok := d.docker.pools[id]
	if !ok {
		return nil
	}
	if p.Network != "" {
		if _, ok := d.nets[p.Network]; ok {
			// Docker releases a pool after deleting its network; a
			// pool whose network is still there stays with it.
			return nil
		}
	}
	delete(d.docker.pools, id)
	d.saveLocked()
	return nil
}

// dockerRequestAddress is docker.Backend's RequestAddress.
func (d *Daemon) dockerRequestAddress(ctx context.Context, id string, addr netip.Addr, gateway bool) (netip.Prefix, error) {
	if err := d.lockFor(ctx); err != nil {
		return netip.Prefix{}, err
	}
	defer d.mu.Unlock()
	p, ok := d.docker.pools[id]
	if !ok {
		return netip.Prefix{}, fmt.Errorf("pool %s is not one tapswitch's IPAM has; remove the network and create it again", id)
	}
	bits := p.sub.Prefix().Bits()
	if gateway {
		if !addr.IsValid() || addr == p.sub.Gateway() {
			return netip.PrefixFrom(p.sub.Gateway(), bits), nil
		}
		if p.Network != "" || len(p.Given) > 0 {
			return netip.Prefix{}, fmt.Errorf("gateway %s: the pool's gateway is %s", addr, p.sub.Gateway())
		}
		// A --gateway of the user's: the pool is made again with it.
		sub, err := ipam.NewSubnet(p.sub.Prefix(), addr)
		if err != nil {
			return netip.Prefix{}, ipamError(err)
		}
		p.sub = sub
		d.saveLocked()
		return netip.PrefixFrom(addr, bits), nil
	}
	if addr.IsValid() {
		// The protocol names no endpoint: an address given already is
		// another container's (Docker asks once per endpoint and replays
		// nothing, see GetCapabilities). Handing it out again would give
		// two containers one address, and the ReleaseAddress of the
		// refused one would free the other's.
		if slices.Contains(p.Given, addr.String()) {
			return netip.Prefix{}, api.Errorf(api.ErrConflict, api.ReasonAddressInUse,
				"address %s is already in use by another container; give the container another --ip, or leave it out", addr)
		}
		if err := p.sub.Reserve(addr); err != nil {
			return netip.Prefix{}, fmt.Errorf("address %s: %w", addr, ipamError(err))
		}
	} else {
		a, err := p.sub.Allocate()
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("pool %s: %w", p.sub.Prefix(), ipamError(err))
		}
		addr = a
	}
	p.Given = append(p.Given, addr.String())
	d.saveLocked()
	return netip.PrefixFrom(addr, bits), nil
}

// dockerReleaseAddress is docker.Backend's ReleaseAddress.
func (d *Daemon) dockerReleaseAddress(ctx context.Context, id string, addr netip.Addr) error {
	if err := d.lockFor(ctx); err != nil {
		return err
	}
	defer d.mu.Unlock()
	p, ok := d.docker.pools[id]
	if !ok || addr == p.sub.Gateway() {
		return nil
	}
	if i := slices.Index(p.Given, addr.String()); i >= 0 {
		p.Given = slices.Delete(p.Given, i, i+1)
		p.sub.Release(addr)
		d.saveLocked()
	}
	return nil
}

// dockerOwnsPort refuses to detach a port Docker manages.
func dockerOwnsPort(p *port) error {
	if p.kind != api.KindDocker {
		return nil
	}
	return invalid("port %q is a Docker container's: remove it with docker rm, docker stop or docker network disconnect", p.name())
}

// dockerOwnsNetworkLocked refuses to remove a network Docker manages.
func (d *Daemon) dockerOwnsNetworkLocked(name string) error {
	id, ok := d.dockerNetworkOf(name)
	if !ok {
		return nil
	}
	return invalid("network %q is Docker's (network id %s): remove it with docker network rm; if dockerd no longer has it, tapswitch network rm --force removes it here", name, docker.ShortID(id))
}
