package daemon

import (
	"cmp"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/dns"
)

// Names across networks. A namespace on several networks (attach, then
// connect) resolves the names of every network it is on, as Docker's
// embedded resolver answers a container on several networks:
//
//   - its resolv.conf, which tapswitchd writes for a namespace attached
//     by name, names the gateway of its first network as nameserver and
//     lists the domain of every network it is on as search domains, in
//     the order its ports joined; it is written again whenever a port
//     of the namespace connects or leaves;
//   - each network's DNS server answers a query with its own names
//     first, then with the names of the other networks the asker is on,
//     as NAME and as NAME.NETWORK (dns.Config.Peers). The asker is known
//     by its source address, which the server only answers from the
//     network's own subnets on its own gateway interface: a name of a
//     network the asker is not on stays unknown (NXDOMAIN), so networks
//     remain as isolated from each other's names as from their traffic.
//
// The servers never take the daemon's lock, which is held while a
// network's server is closed: they read peerNames, rebuilt under the
// daemon's lock whenever a port comes or goes, under a lock of its own.

// peerNames maps, per network, each address of a port on it to the
// records of the other networks that port's namespace is on.
type peerNames struct {
	mu sync.RWMutex
	// byNet is replaced whole on every change; lookups only read it.
	byNet map[string]map[netip.Addr][]*dns.Records
}

// lookup is dns.Config.Peers for the network called network.
func (p *peerNames) lookup(network string, asker netip.Addr) []*dns.Records {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.byNet[network][asker]
}

// set replaces what lookup answers.
func (p *peerNames) set(byNet map[string]map[netip.Addr][]*dns.Records) {
	p.mu.Lock()
	p.byNet = byNet
	p.mu.Unlock()
}

// namespacePortsLocked returns the container ports of the namespace ns,
// by id: the order they were plugged in.
func (d *Daemon) namespacePortsLocked(ns nsID) []*port {
	var out []*port
	for _, p := range d.ports {
		if p.kind == api.KindContainer && p.ns == ns {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *port) int { return cmp.Compare(a.sw.ID(), b.sw.ID()) })
	return out
}

// localAddrs returns the addresses of p inside its network's subnets:
// those the network's DNS server sees p's queries come from.
func (p *port) localAddrs() []netip.Addr {
	var out []netip.Addr
	for _, ip := range p.sw.Info().IPs {
		if p.net.contains(ip.Addr()) {
			out = append(out, ip.Addr())
		}
	}
	return out
}

// rebuildPeerNamesLocked recomputes what every network's DNS server
// answers of the other networks, from the ports the daemon has.
func (d *Daemon) rebuildPeerNamesLocked() {
	byNS := make(map[nsID][]*port)
	for _, p := range d.ports {
		if p.kind == api.KindContainer {
			byNS[p.ns] = append(byNS[p.ns], p)
		}
	}
	byNet := make(map[string]map[netip.Addr][]*dns.Records)
	for _, ports := range byNS {
		if len(ports) < 2 {
			continue
		}
		slices.SortFunc(ports, func(a, b *port) int { return cmp.Compare(a.sw.ID(), b.sw.ID()) })
		for _, p := range ports {
			var peers []*dns.Records
			for _, o := range ports {
				if o.net != p.net && !slices.Contains(peers, o.net.records) {
					peers = append(peers, o.net.records)
				}
			}
			if len(peers) == 0 {
				continue
			}
			m := byNet[p.net.name]
			if m == nil {
				m = make(map[netip.Addr][]*dns.Records)
				byNet[p.net.name] = m
			}
			for _, a := range p.localAddrs() {
				m[a] = peers
			}
		}
	}
	d.peers.set(byNet)
}

// namesChangedLocked follows a port of the namespace ns coming or
// going: the DNS servers' view of who is on which networks, and the
// namespace's resolv.conf, if tapswitchd wrote it.
func (d *Daemon) namesChangedLocked(ns nsID) {
	d.rebuildPeerNamesLocked()
	d.refreshResolvConfLocked(ns)
}

// refreshResolvConfLocked writes the resolv.conf of the namespace ns
// again, if tapswitchd wrote one, for the networks it is on now: the
// nameserver of its first port's network and the domains of all, in the
// order its ports were plugged in. A failure is logged: names of the
// first network resolve still.
func (d *Daemon) refreshResolvConfLocked(ns nsID) {
	ports := d.namespacePortsLocked(ns)
	if len(ports) == 0 {
		return
	}
	path := ""
	for _, p := range ports {
		if p.state.ResolvConf != "" {
			path = p.state.ResolvConf
			break
		}
	}
	if path == "" || !d.writtenByUs(path) {
		return
	}
	var nameserver netip.Addr
	var search []string
	for _, p := range ports {
		if len(p.localAddrs()) == 0 {
			continue
		}
		if !nameserver.IsValid() {
			nameserver = p.net.subnet.Gateway()
		}
		if dom := p.net.records.Domain(); dom != "" && !slices.Contains(search, dom) {
			search = append(search, dom)
		}
	}
	if !nameserver.IsValid() {
		return
	}
	// Most changes leave it as it is (a port of a namespace on one
	// network); the write syncs the file, which an attach need not wait
	// for then.
	want, err := dns.ResolvConfText(d.resolvOwner(), nameserver, search)
	if have, rerr := os.ReadFile(path); err == nil && rerr == nil && string(have) == want {
		return
	}
	if err := dns.WriteResolvConfAs(path, d.resolvOwner(), nameserver, search); err != nil {
		d.log.Warn("resolv.conf of the namespace not updated: names of its other networks may not resolve", "path", path, "err", err)
	}
}

// searchOf is the search domains of a namespace on n alone.
func searchOf(n *network) []string {
	if dom := n.records.Domain(); dom != "" {
		return []string{dom}
	}
	return nil
}
