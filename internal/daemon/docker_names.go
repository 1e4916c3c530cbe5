package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/internal/nat"
)

// Renames give what Docker made its own names once they are known: the
// driver protocol carries ids only, so a Docker network and a
// container's port start under provisional names (a prefix of Docker's
// ids) and are renamed from dockerd's API afterwards (docker_sync.go).
//
// A rename changes the name in the switch, the API, the events and the
// state file; a network's DNS domain follows its name, and a port's DNS
// record its name. The gateway interface keeps its name (the state file
// records it), so nothing on the data path or in the firewall's
// interface rules changes.

// renameNetworkLocked renames n to name.
func (d *Daemon) renameNetworkLocked(n *network, name string) error {
	old := n.name
	if name == old {
		return nil
	}
	if err := checkNetworkName(name); err != nil {
		return fmt.Errorf("rename network %q: %w", old, err)
	}
	if _, ok := d.nets[name]; ok {
		return fmt.Errorf("rename network %q: %w", old, api.Errorf(api.ErrConflict, api.ReasonNetworkExists, "network %q already exists", name))
	}
	for o := range d.nets {
		if strings.EqualFold(o, name) {
			return fmt.Errorf("rename network %q: %w", old, conflict("network %q differs only in case from %q, and DNS does not tell them apart", name, o))
		}
	}
	records, err := dns.NewRecords(name)
	if err != nil {
		return fmt.Errorf("rename network %q: %w", old, invalid("network name %q as a DNS domain: %w", name, err))
	}
	if err := d.sw.RenameNetwork(old, name); err != nil {
		return fmt.Errorf("rename network %q: %w", old, classify(err))
	}
	delete(d.nets, old)
	n.name = name
	d.nets[name] = n
	for _, p := range d.ports {
		if p.net == n && p.kind != api.KindGateway {
			p.state.Network = name
			p.state.Request.Network = name
			d.setRecordLocked(records, p)
		}
	}
	n.gw.state.Network = name
	d.dockerRenamedLocked("network", old, name)
	// The DNS server answers for one domain: a new one takes its place,
	// on the same address. A lookup in between is retried by the
	// resolver.
	if n.dns != nil {
		n.dns.Close()
	}
	n.records = records
	srv, err := d.host.startDNS(d.dnsConfig(n))
	if err != nil {
		n.dns = closedDNS{addr: netip.AddrPortFrom(n.subnet.Gateway(), 53)}
		d.log.Error("network renamed but its DNS server did not start again: names do not resolve on it until tapswitchd restarts", "network", name, "was", old, "err", err)
	} else {
		n.dns = srv
	}
	// Names across networks are kept by network name, and the search
	// domains of the namespaces on it name it.
	d.rebuildPeerNamesLocked()
	done := map[nsID]bool{}
	for _, p := range d.ports {
		if p.net == n && p.kind == api.KindContainer && !done[p.ns] {
			done[p.ns] = true
			d.refreshResolvConfLocked(p.ns)
		}
	}
	// The firewall's rules are kept by network name: the new ones are
	// in place before the old go, so nothing is let through or dropped
	// in between.
	if d.nat != nil {
		if err := d.nat.AddNetwork(n.natNetwork()); err != nil {
			d.log.Error("network renamed but its firewall rules were not set again under the new name", "network", name, "err", err)
		} else if err := d.nat.RemoveNetwork(old); err != nil && !errors.Is(err, nat.ErrUnknownNetwork) {
			d.log.Error("network renamed but its firewall rules under the old name were not removed", "network", name, "was", old, "err", err)
		}
	}
	d.saveLocked()
	d.events.Publish(api.Event{Type: api.EventNetworkRename, Network: name, Attrs: map[string]string{"was": old}})
	d.log.Info("network renamed", "network", name, "was", old, "bridge", n.bridge)
	return nil
}

// renamePortLocked renames the container port p to name, answering in
// DNS to name and dnsName ("" for none but its name).
func (d *Daemon) renamePortLocked(p *port, name, dnsName string) error {
	old := p.name()
	if p.kind == api.KindGateway {
		return fmt.Errorf("rename port %q: %w", old, api.Errorf(api.ErrInvalid, api.ReasonGatewayPort, "port %q is the gateway of network %q", old, p.net.name))
	}
	if dnsName == name {
		dnsName = ""
	}
	if name == old && dnsName == p.state.DNSName {
		return nil
	}
	if err := apiserver.CheckName("port", name); err != nil {
		return fmt.Errorf("rename port %q: %w", old, err)
	}
	if dnsName != "" {
		if err := apiserver.CheckName("port", dnsName); err != nil {
			return fmt.Errorf("rename port %q: DNS name: %w", old, err)
		}
	}
	if name != old {
		for o := range d.ports {
			if o != old && strings.EqualFold(o, name) {
				return fmt.Errorf("rename port %q: %w", old, api.Errorf(api.ErrConflict, api.ReasonPortNameInUse, "port name %q is taken by port %q", name, o))
			}
		}
		// The service manager keeps the port's descriptors by its name.
		d.unstoreLocked(p)
		if err := d.sw.RenamePort(p.sw, name); err != nil {
			d.storeLocked(p)
			return fmt.Errorf("rename port %q: %w", old, classify(err))
		}
		delete(d.ports, old)
		d.ports[name] = p
		d.dockerRenamedLocked("port", old, name)
	}
	p.net.records.Remove(old)
	p.state.Name, p.state.DNSName = name, dnsName
	if p.state.Request.Name == old {
		p.state.Request.Name = name
	}
	d.setRecordLocked(p.net.records, p)
	d.storeLocked(p)
	d.saveLocked()
	ev := portEvent(api.EventPortRename, p)
	ev.Attrs["was"] = old
	ev.Attrs["dns_name"] = p.dnsName()
	d.events.Publish(ev)
	d.log.Info("port renamed", "port", name, "was", old, "dns_name", p.dnsName())
	return nil
}

// setRecordLocked gives the port p its DNS record in records: its name
// and DNS name for its addresses in its network's subnet. Docker's ports
// have none: Docker's own resolver answers for its containers.
func (d *Daemon) setRecordLocked(records *dns.Records, p *port) {
	if p.kind != api.KindContainer {
		return
	}
	var local []netip.Addr
	for _, s := range p.state.IPs {
		if ip, err := netip.ParsePrefix(s); err == nil && p.net.contains(ip.Addr()) {
			local = append(local, ip.Addr())
		}
	}
	if len(local) == 0 {
		return
	}
	if err := records.Set(p.name(), []string{p.dnsName()}, local); err != nil {
		d.log.Warn("the port's DNS name is not served", "port", p.name(), "err", err)
	}
}

// closedDNS stands for a network's DNS server that is not running.
type closedDNS struct{ addr netip.AddrPort }

func (c closedDNS) Addr() netip.AddrPort { return c.addr }
func (closedDNS) Close() error           { return nil }

// bridgeOf is the gateway interface of a network of the state file: the
// one it records, for a network renamed since it was made, or the one
// its name gives.
func (d *Daemon) bridgeOf(ns networkState) string {
	if ns.Bridge != "" {
		return ns.Bridge
	}
	return GatewayName(d.cfg.StateDir, ns.Name)
}

// bridgeToRecord is what the state file records of n's gateway
// interface: nothing while its name gives it.
func (d *Daemon) bridgeToRecord(n *network) string {
	if n.bridge == GatewayName(d.cfg.StateDir, n.name) {
		return ""
	}
	return n.bridge
}
