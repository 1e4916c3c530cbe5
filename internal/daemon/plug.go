package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/publish"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// Every port, whatever its kind, comes in through plugLocked: attach and
// connect plug in a new container port, startNetworkLocked a network's
// gateway, restore the ports of the state file. A kind says how its device
// is made and taken back (deviceLocked) and what goes with the port
// (plugLocked); a later kind adds a case to each, and a kindOf entry if
// the state file records it.
//
//	kind        device                                       recorded   goes with it
//	container   a TAP the daemon makes inside a namespace     yes        default route, DNS name, published ports, resolv.conf
//	gateway     a TAP in the daemon's namespace               no (the    nothing of its own: the network's DNS server and
//	                                                          network)   firewall rules are the network's
//	docker      a TAP made in the daemon's namespace, which   yes (its   DNS name, published ports; Docker sets the route,
//	            Docker moves into the container (docker.go)   endpoint)  resolv.conf and addresses

// kindOf is the kind of a port the state file records; files written
// before kinds were recorded hold container ports only.
func kindOf(ps portState) string {
	if ps.Kind == "" {
		return api.KindContainer
	}
	return ps.Kind
}

// plugSpec is a port to plug in: a new one, or one the state file records
// (restore).
type plugSpec struct {
	kind string
	// state is what the state file records of the port, and its name
	// and network.
	state portState
	net   *network
	// nsPath is the namespace file the port's device is in (a pin, or
	// /run/netns/NAME); empty for the daemon's own namespace.
	nsPath string
	ns     nsID
	ifname string
	// ips are the addresses on the port's interface; owned those of
	// them the network's IPAM holds for the port, released if a new
	// port fails to plug in.
	ips     []netip.Prefix
	owned   []netip.Addr
	publish []publish.Mapping
	// mac and mtu are what a new port asked for (nil and 0: the
	// kernel's random MAC, 1500).
	mac net.HardwareAddr
	mtu int
	// restore: the port is taken back, not made. Its device is opened
	// again as it is; what goes with it is set up as far as it can be,
	// and what cannot is logged, since the port forwards already.
	restore bool
}

// plugLocked makes or takes back the device of s, plugs it into the
// switch and sets up what goes with a port of its kind. A new port that
// fails leaves nothing behind (its device, proxies, DNS name, and the
// addresses it owned); a restored one that fails to plug in is dropped by
// the caller.
func (d *Daemon) plugLocked(s plugSpec) (_ *port, err error) {
	start := time.Now()
	n := s.net
	if s.mtu == 0 && n.mtu > 0 {
		// A cluster network's overlay MTU.
		s.mtu = n.mtu
	}
	if !s.restore {
		defer func() {
			if err != nil {
				for _, a := range s.owned {
					n.release(a)
				}
			}
		}()
	}
	dev, err := d.deviceLocked(s)
	if err != nil {
		return nil, err
	}
	// The addresses in the subnet are what the gateway, DNS and published
	// ports reach; others (a flat wire between namespaces) are only put on
	// the interface.
	var local []netip.Addr
	if s.kind != api.KindGateway {
		for _, ip := range s.ips {
			if n.contains(ip.Addr()) {
				local = append(local, ip.Addr())
			}
		}
	}
	// A namespace's first port gets its default route; a new port shares
	// the resolv.conf another port of its namespace has, and a restored
	// one keeps what the state file says.
	first, resolvConf := true, s.state.ResolvConf
	for _, o := range d.ports {
		if o.kind == api.KindContainer && o.ns == s.ns {
			first = false
			if resolvConf == "" && !s.restore {
				resolvConf = o.state.ResolvConf
			}
		}
	}
	if s.kind == api.KindContainer && !s.restore && first && len(local) > 0 {
		for _, gw := range defaultGateways(n, local) {
			if err := d.host.addDefaultRoute(s.nsPath, s.ifname, gw); err != nil {
				if !errors.Is(err, errDefaultRouteExists) {
					dev.Close()
					return nil, err
				}
				d.log.Warn("default route left as it was", "netns", s.state.Request.Netns, "gateway", gw, "err", err)
			}
		}
	}
	mtu := s.mtu
	if mtu == 0 {
		mtu = 1500
	}
	info := vswitch.PortInfo{Netns: s.state.Request.Netns, NetnsPath: s.nsPath, Ifname: s.ifname, MAC: dev.MAC(), IPs: s.ips, MTU: mtu}
	if s.kind == api.KindGateway {
		// The gateway routes for the network: replies from outside come
		// out of it with their own source addresses. Its host stack
		// takes frames of any size, from ports of a larger MTU too.
		info.NoSecurity, info.TakesAnySize = true, true
	} else {
		applyPolicy(&info, s.state.Request.PortPolicy)
	}
	sp, err := d.sw.AddPort(n.name, s.state.Name, dev, info)
	if err != nil {
		return nil, classify(err)
	}
	p := &port{kind: s.kind, state: s.state, sw: sp, dev: dev, net: n, ns: s.ns, nsPath: s.nsPath, owned: s.owned, publish: s.publish}
	if s.restore && p.state.MAC != "" && p.state.MAC != dev.MAC().String() {
		d.log.Warn("the port's MAC was changed while tapswitchd was down; taking the new one", "port", p.name(), "was", p.state.MAC, "now", dev.MAC().String())
	}
	p.state.Kind, p.state.Ifname, p.state.MAC = s.kind, s.ifname, dev.MAC().String()
	p.state.IPs, p.state.Owned = nil, nil
	for _, ip := range s.ips {
		p.state.IPs = append(p.state.IPs, ip.String())
	}
	for _, a := range s.owned {
		p.state.Owned = append(p.state.Owned, a.String())
	}
	if !s.restore {
		defer func() {
			if err != nil {
				p.stopProxies()
				n.records.Remove(p.name())
				d.sw.RemovePort(sp)
			}
		}()
	}
	// What goes with it: a restored port forwards again whatever becomes
	// of these, so their failures are only logged.
	fail := func(err error, msg string, args ...any) error {
		if !s.restore {
			return err
		}
		d.log.Error(msg, append(args, "port", p.name(), "err", err)...)
		return nil
	}
	for i, m := range s.publish {
		if len(local) == 0 {
			break
		}
		px, err := d.startProxyLocked(p.name(), i, m, local[0], d.log.With("port", p.name()))
		if err != nil {
			if err := fail(publishError(err), "published port not restored; detach and attach the port again once the host port is free", "publish", m.String()); err != nil {
				return nil, err
			}
			continue
		}
		p.proxies = append(p.proxies, px)
	}
	if len(local) > 0 {
		if err := n.records.Set(p.name(), []string{p.dnsName()}, local); err != nil {
			if err := fail(invalid("DNS name of port %q: %w", p.name(), err), "the port's DNS name is not served"); err != nil {
				return nil, err
			}
		}
	}
	if s.kind == api.KindContainer && !s.restore && resolvConf == "" && len(local) > 0 {
		resolvConf = d.writeResolvConf(s.state.Request.Netns, n.subnet.Gateway(), searchOf(n))
	}
	if s.kind == api.KindContainer {
		p.state.ResolvConf = resolvConf
	}
	d.ports[p.name()] = p
	d.storeLocked(p)
	if !s.restore {
		d.namesChangedLocked(p.ns)
	}
	d.log.Debug("port plugged in", "port", p.name(), "kind", p.kind, "restore", s.restore, "took", time.Since(start))
	return p, nil
}

// publishError gives a published port's failure its API class.
func publishError(err error) error {
	switch {
	case errors.Is(err, publish.ErrPortInUse):
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EACCES):
		// A host address that is not the host's, or a privileged port:
		// the request is what to change.
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	return err
}

// deviceLocked makes the device of a new port of s's kind, or takes back
// that of a restored one.
func (d *Daemon) deviceLocked(s plugSpec) (tap.Device, error) {
	cfg := tap.Config{Netns: s.nsPath, Name: s.ifname, Queues: d.cfg.Queues, Movable: s.kind == api.KindDocker}
	cfg.NAPI, cfg.TxQueueLen = d.cfg.TAP.NAPI, d.cfg.TAP.TxQueueLen
	if s.restore {
		if dev, ok := d.adoptTAPLocked(s, cfg); ok {
			return dev, nil
		}
	}
	switch s.kind {
	case api.KindContainer:
		if s.restore {
			return d.openTAP(cfg)
		}
	case api.KindDocker:
		if s.restore {
			return d.openTAP(cfg)
		}

	case api.KindGateway:
		if s.restore && d.persistent() {
			// A gateway gone while no daemon ran is made again.
			dev, err := d.openTAP(cfg)
			if !errors.Is(err, tap.ErrNotFound) {
				return dev, gatewayError(d, s.ifname, err)
			}
		}
	default:
		return nil, fmt.Errorf("port kind %q is not one this tapswitchd knows", s.kind)
	}
	cfg.MAC, cfg.MTU, cfg.Addrs = s.mac, s.mtu, s.ips
	if s.kind == api.KindDocker {
		// Made in the daemon's namespace for Docker to move into the
		// container, where Docker puts the addresses on it.
		cfg.Addrs = nil
	}
	cfg.Persist, cfg.Alias = d.persistent(), d.alias()
	dev, err := d.cfg.TAPs.Create(cfg)
	if s.kind == api.KindGateway {
		return dev, gatewayError(d, s.ifname, err)
	}
	if errors.Is(err, tap.ErrExists) {
		err = api.Errorf(api.ErrConflict, api.ReasonIfnameInUse, "%w", err)
	}
	return dev, err
}

// gatewayError says what a failure to make or take back a gateway's TAP
// means.
func gatewayError(d *Daemon, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tap.ErrExists), errors.Is(err, tap.ErrInUse):
		return conflict("gateway interface %s already exists in the daemon's namespace: is another tapswitchd running with state directory %s? Stop it, or delete the interface (ip link del %s)", name, d.cfg.StateDir, name)
	}
	return fmt.Errorf("gateway interface %s: %w", name, err)
}

// inUseWait bounds how long openTAP waits for a TAP's queues to be let
// go: a daemon killed a moment ago may still be closing them.
const inUseWait = 2 * time.Second

// openTAP opens a persistent TAP again, waiting up to inUseWait while its
// queues are still held.
func (d *Daemon) openTAP(cfg tap.Config) (tap.Device, error) {
	deadline := time.Now().Add(inUseWait)
	for {
		dev, err := d.cfg.TAPs.Open(cfg)
		if !errors.Is(err, tap.ErrInUse) || time.Now().After(deadline) {
			return dev, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
