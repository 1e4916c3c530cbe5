package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/ipam"
	"github.com/tapswitch/tapswitch/namespace"
	"github.com/tapswitch/tapswitch/tap"
)

// restoreLocked brings back what the state file records: the networks
// with their addresses, gateways, DNS servers and firewall rules, then
// every port. A port's TAP outlived the daemon that made it (it is
// persistent), so it is opened again in its namespace, through the
// namespace's pin or its name under /run/netns, and plugged back in with
// its name, MAC, addresses, DNS name and published ports; the namespace
// never saw it go, only a short loss of frames. A port whose namespace
// or TAP is gone is dropped: its addresses are released, its pin and
// resolv.conf removed, and what else of it is left the start-up sweep
// removes (see sweep.go).
func (d *Daemon) restoreLocked(doc stateDoc) error {
	// The gateways a previous daemon left hold routes to the networks'
	// subnets; those are no overlap.
	var bridges []string
	for _, ns := range doc.Networks {
		bridges = append(bridges, d.bridgeOf(ns))
	}
	routes, routesErr := hostRoutes(bridges)
	for _, ns := range doc.Networks {
		if err := checkNetworkName(ns.Name); err != nil {
			return fmt.Errorf("state file: %w; correct or remove this network in %s", err, d.state.path)
		}
		subnets, err := restoreSubnets(ns)
		if err != nil {
			return fmt.Errorf("state file %s: network %q: %w", d.state.path, ns.Name, err)
		}
		n := d.newNetwork(ns.Name, ns.Internal, subnets)
		n.bridge = d.bridgeOf(ns)
		switch ns.Scope {
		case "", api.ScopeLocal:
		case api.ScopeCluster:
			if ns.VNI < 1 || ns.VNI > api.MaxVNI {
				return fmt.Errorf("state file %s: network %q: VNI %d: want 1 to %d; correct or remove this network", d.state.path, ns.Name, ns.VNI, api.MaxVNI)
			}
			// The store's, when this host last ran, or made here with
			// static peers only.
			n.scope, n.vni, n.stored, n.seen = ns.Scope, ns.VNI, ns.Stored, ns.Stored
		default:
			return fmt.Errorf("state file %s: network %q: scope %q is not one this tapswitchd knows; correct or remove this network", d.state.path, ns.Name, ns.Scope)
		}
		for _, p := range n.prefixes() {
			if err := ipam.CheckSubnetRange(p); err != nil {
				d.log.Warn("restored network lies in a range no new network may use; remove it and create it on another subnet", "network", n.name, "err", err)
			}
			if routesErr == nil {
				if err := ipam.CheckOverlap(p, routes); err != nil {
					d.log.Warn("restored network overlaps a host route; its containers may be unreachable", "network", n.name, "err", err)
				}
			}
		}
		if err := d.startNetworkLocked(n, true); err != nil {
			return fmt.Errorf("restore network %q: %w", ns.Name, err)
		}
	}
	var dropped []portState
	for _, ps := range doc.Ports {
		if err := d.restorePortLocked(ps); err != nil {
			if errors.Is(err, tap.ErrInUse) {
				return fmt.Errorf("restore port %q: %w: is another tapswitchd running with state directory %s? Stop it first", ps.Name, err, d.cfg.StateDir)
			}
			d.log.Warn("port dropped: it cannot be taken back; attach it again", "port", ps.Name, "netns", ps.Request.Netns, "network", ps.Network, "err", err)
			d.events.Publish(api.Event{Type: api.EventPortFailed, Port: ps.Name, Network: ps.Network, Netns: ps.Request.Netns,
				Reason: err.Error(), Attrs: map[string]string{"kind": kindOf(ps), "phase": "restore"}})
			dropped = append(dropped, ps)
		}
	}
	// What the dropped ports held, unless a restored port holds it too
	// (a state file edited by hand may say so).
	held := make(map[string]bool)
	for _, p := range d.ports {
		for _, a := range p.owned {
			held[p.net.name+" "+a.String()] = true
		}
		held[p.state.ResolvConf] = true
	}
	for _, ps := range dropped {
		if n, ok := d.nets[ps.Network]; ok {
			for _, s := range ps.Owned {
				if a, err := netip.ParseAddr(s); err == nil && !held[n.name+" "+a.String()] {
					n.release(a)
				}
			}
		}
		if ps.ResolvConf != "" && !held[ps.ResolvConf] {
			d.removeResolvConf(ps.ResolvConf)
		}
		// Its TAP may be there still, unopened; the sweep looks, through
		// the pin, which goes after it with the other stale pins.
		d.intendDroppedLocked(ps)
	}
	d.restored, d.dropped = len(doc.Ports)-len(dropped), len(dropped)
	d.rebuildPeerNamesLocked()
	return nil
}

// restorePortLocked takes the device of a port the state file records
// back and plugs it in again as it was.
func (d *Daemon) restorePortLocked(ps portState) error {
	n, ok := d.nets[ps.Network]
	if !ok {
		return fmt.Errorf("its network %q is gone", ps.Network)
	}
	if _, ok := d.ports[ps.Name]; ok {
		return fmt.Errorf("the state file names port %q twice", ps.Name)
	}
	kind := kindOf(ps)
	if kind != api.KindContainer {
		return fmt.Errorf("port kind %q is not one this tapswitchd takes back", kind)
	}
	path := ps.Pin
	if path == "" {
		// A namespace attached by name: iproute2's own pin.
		path = ps.Request.Netns
	}
	path, err := namespace.Resolve(path)
	if err != nil {
		return err
	}
	ns, err := nsIDOf(path)
	if err != nil {
		return err
	}
	ipStrings := ps.IPs
	if ipStrings == nil {
		ipStrings = ps.Request.IPs
	}
	ips, err := apiserver.ParseAddrs(ipStrings)
	if err != nil {
		return fmt.Errorf("addresses: %w", err)
	}
	mappings, err := apiserver.ParsePublish(ps.Request.Publish)
	if err != nil {
		return fmt.Errorf("published ports: %w", err)
	}
	var owned []netip.Addr
	for _, s := range ps.Owned {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("address %q: %w", s, err)
		}
		owned = append(owned, a)
	}
	_, err = d.plugLocked(plugSpec{
		kind:    kind,
		state:   ps,
		net:     n,
		nsPath:  path,
		ns:      ns,
		ifname:  cmp.Or(ps.Ifname, ps.Request.Ifname, "eth0"),
		ips:     ips,
		owned:   owned,
		publish: mappings,
		mtu:     ps.MTU,
		restore: true,
	})
	return err
}

// removeStaleLocked removes what a daemon of this state directory left
// and no network or port holds: what the sweep finds (TAPs and
// resolv.conf files of interrupted attaches), pins, and gateways of
// networks it was creating when it died.
func (d *Daemon) removeStaleLocked() {
	if !d.persistent() {
		return
	}
	// The sweep goes through the pins, so before they go.
	d.sweepLocked()
	d.removeStalePinsLocked()
	links, err := netlink.LinkList()
	if err != nil {
		d.log.Warn("look for stale gateway interfaces", "err", err)
		return
	}
	var bridges []string
	for _, n := range d.nets {
		bridges = append(bridges, n.bridge)
	}
	for _, l := range links {
		t, ok := l.(*netlink.Tuntap)
		if !ok || t.Attrs().Alias != d.alias() || t.NonPersist || t.Queues != 0 || slices.Contains(bridges, t.Attrs().Name) {
			continue
		}
		d.log.Info("removing a gateway interface no network holds", "bridge", t.Attrs().Name)
		if err := netlink.LinkDel(t); err != nil {
			d.log.Warn("remove stale gateway interface", "bridge", t.Attrs().Name, "err", err)
		}
	}
}

// restoreSubnets rebuilds the subnets the state file records of a
// network: Subnet, and Subnet6 of a dual-stack one.
func restoreSubnets(ns networkState) ([]*ipam.Subnet, error) {
	sub, err := ipam.RestoreSubnet(ns.Subnet)
	if err != nil {
		return nil, err
	}
	subnets := []*ipam.Subnet{sub}
	if ns.Subnet6 != nil {
		sub6, err := ipam.RestoreSubnet(*ns.Subnet6)
		if err != nil {
			return nil, err
		}
		if !sub.Prefix().Addr().Is4() || !sub6.Prefix().Addr().Is6() {
			return nil, fmt.Errorf("%w: subnets %s and %s: a dual-stack network has an IPv4 subnet and an IPv6 one; correct or remove this network in the state file", ipam.ErrInvalidState, sub.Prefix(), sub6.Prefix())
		}
		subnets = append(subnets, sub6)
	}
	return subnets, nil
}
