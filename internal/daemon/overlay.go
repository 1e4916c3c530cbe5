package daemon

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/cluster"
	"github.com/tapswitch/tapswitch/internal/vxlan"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// Networks that span hosts. A network of scope "cluster" has a VNI, and
// its frames cross to the other hosts in VXLAN through one tunnel port
// (kind "tunnel") on the network's switch: one vxlan.Endpoint per
// daemon, bound to the advertised address, carries every cluster
// network, each as a vxlan.Tunnel of its VNI. The hosts it takes frames
// from are the static peers (--vxlan-peer) and, with a store
// (--cluster), every other host registered there (cluster.go); a
// network's broadcasts go to the static peers and to the hosts with
// ports on it (floodVTEPs). Every host has the network's
// gateway with the same address and the same MAC (gatewayMAC), which
// never crosses the tunnel, and gives the network's TAPs and gateway the
// overlay MTU: the underlay's less vxlan.Overhead.

// OverlayConfig configures networks that span hosts; the zero value has
// none (a network of scope cluster is refused).
type OverlayConfig struct {
	// Advertise is this host's tunnel address (VTEP): the VXLAN socket
	// binds to it only. Needed for everything below.
	Advertise netip.Addr
	// Port is the VXLAN UDP port; 0 means vxlan.DefaultPort.
	Port int
	// Receivers is how many sockets receive on the port, each read by
	// its own loop (vxlan.Config.Receivers); 0 means 1.
	Receivers int
	// Peers are static peers: hosts the cluster networks' frames go to
	// and may come from, with or without a store.
	Peers []netip.Addr
	// Cluster are the etcd URLs of the cluster's store; nil for none.
	Cluster []string
	// Host is this host's name in the cluster; "" means os.Hostname.
	Host string
	// TTL is the host's lease in the store; 0 means cluster.DefaultTTL.
	TTL time.Duration
	// ClusterTLS is TLS to https store URLs (cluster.TLSConfig): the
	// store's CA and this host's client certificate; nil for the
	// system's CAs and none.
	ClusterTLS *tls.Config
	// ClusterUser and ClusterPassword are this host's etcd user, for a
	// store with authentication enabled; "" for none.
	ClusterUser     string
	ClusterPassword string
}

// overlay is what the daemon keeps of its cluster networks' underlay.
type overlay struct {
	cfg OverlayConfig
	// ep is nil without an advertised address.
	ep          *vxlan.Endpoint
	underlayMTU int
	host        string
	// store is nil without --cluster (cluster.go).
	store *cluster.Store
	watch storeWatch
	// others are the VTEPs of the other hosts of the view last applied.
	others map[netip.Addr]bool
	// flood is each cluster network's head-end replication list as last
	// given to its tunnel, sorted, by network.
	flood map[string][]netip.Addr
	// pending are changes to the store not yet made (cluster.go).
	pending []storeOp
	// view is the store's view last applied; told are the networks of
	// it that could not be made here, with why, as last logged.
	view cluster.View
	told map[string]string
}

// openOverlayLocked opens the VXLAN endpoint and the store, before the
// state is restored, so that restored cluster networks get their
// tunnels.
func (d *Daemon) openOverlayLocked() error {
	c := d.cfg.Overlay
	ov := &d.ov
	ov.cfg = c
	if !c.Advertise.IsValid() {
		if len(c.Peers) > 0 || len(c.Cluster) > 0 {
			return fmt.Errorf("static peers and a cluster need the address this host's VXLAN tunnel uses: give --advertise IP")
		}
		return nil
	}
	ov.host = c.Host
	if ov.host == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("this host's name for the cluster: %w; give --cluster-host NAME", err)
		}
		ov.host = h
	}
	mtu, err := vxlan.UnderlayMTU(c.Advertise)
	if err != nil {
		return fmt.Errorf("--advertise %s: %w", c.Advertise, err)
	}
	ov.underlayMTU = mtu
	// A predecessor's receiving sockets are read once every port is
	// back (inheritedDoneLocked), as its TAPs are: before, the tunnels
	// their datagrams are for are not all made.
	rx := d.inheritedReceivers()
	ep, err := vxlan.Listen(vxlan.Config{Local: c.Advertise, Port: c.Port, Receivers: c.Receivers, Inherited: rx, Paused: len(rx) > 0, Logger: d.log.With("part", "vxlan")})
	if err != nil {
		return fmt.Errorf("VXLAN socket on %s: %w", netip.AddrPortFrom(c.Advertise, uint16(cmp.Or(c.Port, vxlan.DefaultPort))), err)
	}
	ov.ep = ep
	if len(rx) > 0 {
		d.inherited.paused = append(d.inherited.paused, ep)
	}
	if m := d.overlayMTU(); m < 576 {
		ep.Close()
		ov.ep = nil
		return fmt.Errorf("--advertise %s: its link's MTU %d leaves %d for the overlay, less than 576; raise the underlay's MTU", c.Advertise, mtu, m)
	}
	ep.SetMembers(c.Peers)
	d.log.Info("VXLAN endpoint up", "advertise", c.Advertise, "port", cmp.Or(c.Port, vxlan.DefaultPort), "underlay_mtu", mtu, "static_peers", c.Peers, "host", ov.host)
	if len(c.Cluster) > 0 {
		sess := d.inheritedSession()
		var lease int64
		var since time.Time
		if sess != nil {
			lease, since = sess.Lease, sess.ConnectedSince
			d.seedViewLocked(sess.View)
		}
		if err := d.openStore(lease, since); err != nil {
			ep.Close()
			ov.ep = nil
			return err
		}
		if sess != nil {
			for _, o := range sess.Owed {
				d.queueRemovalLocked(o)
			}
			if len(sess.Owed) > 0 {
				d.log.Info("removals owed to the cluster store taken over", "count", len(sess.Owed))
			}
		}
	}
	return nil
}

// closeOverlay lets go of the store and closes the endpoint, once the
// switch has let go of the tunnels. With leave, the host leaves the
// cluster at once (its lease revoked); else its records stay for the
// lease's TTL, as its ports do for the next start.
func (d *Daemon) closeOverlay(leave bool) {
	d.stopStoreWatch()
	if d.ov.store != nil {
		if leave {
			d.ov.store.Close()
		} else {
			d.ov.store.Detach()
		}
		d.ov.store = nil
	}
	if d.ov.ep != nil {
		d.ov.ep.Close()
		d.ov.ep = nil
	}
}

// overlayMTU is the MTU of a cluster network's TAPs and gateway: the
// underlay's less the VXLAN overhead; 0 without an endpoint.
func (d *Daemon) overlayMTU() int {
	if d.ov.ep == nil {
		return 0
	}
	// The endpoint's: the underlay's less 50, or 70 over IPv6, and what
	// fits in one datagram (a loopback underlay has a larger MTU).
	if m := d.ov.ep.OverlayMTU(); m > 0 {
		return m
	}
	return min(d.ov.underlayMTU, maxIPPacket) - vxlan.Overhead
}

// maxIPPacket is the largest IPv4 packet.
const maxIPPacket = 65535

// gatewayMAC is the anycast gateway MAC of the cluster network of VNI
// vni, the same on every host: locally administered, unicast, 02:74:73
// ("ts") then the VNI's three bytes.
func gatewayMAC(vni uint32) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x74, 0x73, byte(vni >> 16), byte(vni >> 8), byte(vni)}
}

// freeVNI is the lowest VNI not in used, or 0 when all are.
func freeVNI(used map[uint32]bool) uint32 {
	for v := uint32(1); v <= api.MaxVNI; v++ {
		if !used[v] {
			return v
		}
	}
	return 0
}

// usedVNIsLocked are the VNIs of the daemon's cluster networks.
func (d *Daemon) usedVNIsLocked() map[uint32]bool {
	used := make(map[uint32]bool)
	for _, n := range d.nets {
		if n.scope == api.ScopeCluster {
			used[n.vni] = true
		}
	}
	return used
}

// tunnelPortName is the name of network's tunnel port: not a name a
// container port may take (a '.' is no part of a DNS label).
func tunnelPortName(network string) string { return "vxlan." + network }

// prepareClusterLocked sets what a cluster network's gateway is made
// with: the overlay MTU and the anycast MAC.
func (d *Daemon) prepareClusterLocked(n *network) {
	if n.scope != api.ScopeCluster {
		return
	}
	n.mtu = d.overlayMTU()
	n.gwMAC = gatewayMAC(n.vni)
}

// startTunnelLocked gives a cluster network its tunnel port, with what
// is known of the other hosts. Without an endpoint (a restart without
// --advertise) the network stays on this host, and the log says so.
func (d *Daemon) startTunnelLocked(n *network) error {
	if n.scope != api.ScopeCluster {
		return nil
	}
	ep := d.ov.ep
	if ep == nil {
		d.log.Error("cluster network without a tunnel: its frames stay on this host; restart tapswitchd with --advertise IP", "network", n.name, "vni", n.vni)
		return nil
	}
	t, err := ep.Tunnel(n.vni, vxlan.TunnelOptions{HostOnly: []net.HardwareAddr{n.gwMAC}, MTU: n.mtu})
	if err != nil {
		return conflict("VXLAN tunnel of VNI %d: %w", n.vni, err)
	}
	off := api.NoStormLimit
	sp, err := d.sw.AddPort(n.name, tunnelPortName(n.name), t, vswitch.PortInfo{
		Ifname:     fmt.Sprintf("vni %d", n.vni),
		MTU:        n.mtu,
		NoSecurity: true,
		MACLimit:   -1,
		Storm:      vswitch.StormLimits{Broadcast: off, Multicast: off, UnknownUnicast: off},
	})
	if err != nil {
		return classify(err)
	}
	n.tunnel, n.tport = t, sp
	n.remotes = make(map[string]netip.Addr)
	n.remoteNames = make(map[string]string)
	// The static peers and the hosts with ports on n in the view last
	// applied; views to come update the list.
	d.setFloodLocked(n, d.floodVTEPsLocked(n, nil))
	d.applyViewToNetworkLocked(n, true)
	return nil
}

// stopTunnelLocked removes n's tunnel port; the switch closes the
// tunnel, which frees its VNI on the endpoint.
func (d *Daemon) stopTunnelLocked(n *network) error {
	if n.tport == nil {
		return nil
	}
	err := d.sw.RemovePort(n.tport)
	n.tport, n.tunnel = nil, nil
	delete(d.ov.flood, n.name)
	for name := range n.remoteNames {
		if _, local := d.ports[name]; !local {
			n.records.Remove(name)
		}
	}
	n.remoteNames = nil
	return err
}

// vtepsLocked are the VTEPs this host takes cluster networks' frames
// from (vxlan.Endpoint.SetMembers): every static peer and every other
// host of the cluster, whether or not it has ports on a network yet (a
// port just attached there may send before this host has read of it in
// the store). Where a network's floods go is narrower: floodVTEPs.
func (d *Daemon) vtepsLocked() []netip.Addr {
	out := slices.Clone(d.ov.cfg.Peers)
	for v := range d.ov.others {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// floodVTEPs are where the broadcast, unknown unicast and multicast
// frames of cluster network go (head-end replication), by view v of the
// store, seen from host, whose VTEP is self: the static peers, and the
// VTEPs of the other hosts of v with at least one port (endpoint) on the
// network. A host without ports there would only drop the copy; it is
// sent copies from the moment one of its ports is in the store, and a
// port attached here needs nothing of this host's lists: the others read
// it in the store. The list is sorted, without duplicates.
func floodVTEPs(v cluster.View, host string, self netip.Addr, peers []netip.Addr, network string) []netip.Addr {
	vteps := make(map[string]netip.Addr, len(v.Hosts))
	for _, h := range v.Hosts {
		if h.Name != host && h.VTEP.IsValid() && h.VTEP != self {
			vteps[h.Name] = h.VTEP
		}
	}
	out := slices.Clone(peers)
	for _, e := range v.Endpoints {
		if e.Network != network {
			continue
		}
		// A host not in the view has lost its lease: its endpoints go
		// with it.
		if vt, ok := vteps[e.Host]; ok && !slices.Contains(out, vt) {
			out = append(out, vt)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// floodVTEPsLocked is n's replication list by the view last applied;
// keep are VTEPs it keeps even if the view lacks them (the list before,
// while the view is not settled: see viewSettled).
func (d *Daemon) floodVTEPsLocked(n *network, keep []netip.Addr) []netip.Addr {
	ov := &d.ov
	out := floodVTEPs(ov.view, ov.host, ov.cfg.Advertise, ov.cfg.Peers, n.name)
	for _, vt := range keep {
		if !slices.Contains(out, vt) {
			out = append(out, vt)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// setFloodLocked gives n's tunnel the replication list vteps, if it
// changed.
func (d *Daemon) setFloodLocked(n *network, vteps []netip.Addr) {
	ov := &d.ov
	if n.tunnel == nil {
		return
	}
	old, had := ov.flood[n.name]
	if had && slices.Equal(old, vteps) {
		return
	}
	n.tunnel.SetVTEPs(vteps)
	if ov.flood == nil {
		ov.flood = make(map[string][]netip.Addr)
	}
	ov.flood[n.name] = vteps
	if had {
		d.log.Debug("cluster network floods to new hosts", "network", n.name, "vteps", vteps, "was", old)
	}
}

// tunnelView is n's tunnel port as the API shows it.
func (n *network) tunnelView() api.Port {
	v := switchPortView(n.tport)
	v.Kind = api.KindTunnel
	return v
}

// tunnelOfLocked returns the network whose tunnel port sp is, or nil.
func (d *Daemon) tunnelOfLocked(sp *vswitch.Port) *network {
	for _, n := range d.nets {
		if n.tport != nil && n.tport == sp {
			return n
		}
	}
	return nil
}

// tunnelPortError refuses a change to a tunnel port.
func tunnelPortError(n *network) error {
	return api.Errorf(api.ErrInvalid, api.ReasonGatewayPort, "port %q is the VXLAN tunnel of cluster network %q; it goes with the network (network rm %s)", n.tport.Name(), n.name, n.name)
}

// Peers implements apiserver.Backend: this host, the cluster's other
// hosts and the static peers, with what the endpoint and the tunnels
// know of each.
func (d *Daemon) Peers() []api.Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []api.Peer{}
	ov := &d.ov
	if ov.ep == nil {
		return out
	}
	byVTEP := make(map[netip.Addr]*api.Peer)
	var order []netip.Addr
	add := func(v netip.Addr) *api.Peer {
		if p, ok := byVTEP[v]; ok {
			return p
		}
		p := &api.Peer{VTEP: v.String(), MACs: []api.PeerMAC{}}
		byVTEP[v] = p
		order = append(order, v)
		return p
	}
	self := add(ov.cfg.Advertise)
	self.Self, self.Name = true, ov.host
	for _, h := range ov.view.Hosts {
		if h.Name == ov.host {
			self.Since = h.Since
			continue
		}
		p := add(h.VTEP)
		p.Name, p.Since = h.Name, h.Since
	}
	for _, v := range ov.cfg.Peers {
		add(v).Static = true
	}
	for _, ep := range ov.ep.Peers() {
		if p, ok := byVTEP[ep.VTEP]; ok {
			p.LastHeard, p.RxPackets, p.TxPackets = ep.LastHeard, ep.RxPackets, ep.TxPackets
		}
	}
	for _, n := range d.nets {
		if n.tunnel == nil {
			continue
		}
		for _, r := range n.tunnel.Remotes() {
			if p, ok := byVTEP[r.VTEP]; ok {
				p.MACs = append(p.MACs, api.PeerMAC{MAC: r.MAC.String(), Network: n.name, Static: r.Static})
			}
		}
	}
	slices.SortFunc(order[1:], func(a, b netip.Addr) int { return a.Compare(b) })
	for _, v := range order {
		p := byVTEP[v]
		slices.SortFunc(p.MACs, func(a, b api.PeerMAC) int {
			return cmp.Or(cmp.Compare(a.Network, b.Network), cmp.Compare(a.MAC, b.MAC))
		})
		out = append(out, *p)
	}
	return out
}

// overlayStatusLocked fills the cluster's and the tunnel's part of s.
func (d *Daemon) overlayStatusLocked(s *api.Status) {
	ov := &d.ov
	if ov.ep == nil {
		return
	}
	st := ov.ep.Stats()
	s.Tunnel = &api.TunnelStatus{
		Advertise:   ov.cfg.Advertise.String(),
		Port:        cmp.Or(ov.cfg.Port, vxlan.DefaultPort),
		UnderlayMTU: ov.underlayMTU,
		RxPackets:   st.RxPackets, RxBytes: st.RxBytes,
		TxPackets: st.TxPackets, TxBytes: st.TxBytes,
		TxErrors: st.TxErrors,
		Dropped: map[string]uint64{
			"not_member":  st.DropNotMember,
			"unknown_vni": st.DropUnknownVNI,
			"malformed":   st.DropMalformed,
			"host_only":   st.DropHostOnly,
		},
	}
	if ov.store == nil {
		return
	}
	cs := ov.store.Status()
	s.Cluster = &api.ClusterStatus{
		Host:      ov.host,
		Advertise: ov.cfg.Advertise.String(),
		Endpoints: cs.Endpoints,
		Connected: cs.Connected,
		Since:     cs.Since,
		LastError: cs.LastError,
		Avoided:   cs.Avoided,
		Hosts:     len(ov.view.Hosts),
	}
}
