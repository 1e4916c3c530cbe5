package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/internal/publish"
	"github.com/tapswitch/tapswitch/namespace"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// netnsEtcDir is where `ip netns exec NAME` finds files to bind-mount
// over /etc for the namespace NAME; a variable for the package's tests.
var netnsEtcDir = "/etc/netns"

// port is one port of the daemon: the switch's port and what the daemon
// set up around it.
type port struct {
	// kind is api.KindContainer or api.KindGateway (see plug.go).
	kind  string
	state portState
	sw    *vswitch.Port
	// dev is the port's device, which the switch owns.
	dev tap.Device
	net *network
	// ns identifies the namespace, however it was named at attach.
	ns nsID
	// nsPath is the namespace file the port is reached through: the
	// pin of a namespace attached by pid or path, /run/netns/NAME for
	// one attached by name.
	nsPath string
	// owned are the addresses the network's IPAM holds for the port.
	owned []netip.Addr
	// publish are the published ports, served by proxies.
	publish []publish.Mapping
	proxies []*publish.Proxy
}

func (p *port) name() string { return p.state.Name }

// dnsName is the name the network's DNS answers for the port.
func (p *port) dnsName() string {
	if p.state.DNSName != "" {
		return p.state.DNSName
	}
	return p.state.Name
}

func (p *port) stopProxies() {
	for _, px := range p.proxies {
		px.Close()
	}
	p.proxies = nil
}

func (p *port) view() api.Port {
	v := switchPortView(p.sw)
	v.Kind = p.kind
	if p.kind == api.KindGateway {
		return v
	}
	v.DNSName = p.dnsName()
	v.ContainerID = p.state.Request.ContainerID
	if p.kind == api.KindDocker && p.state.Ifname != "" {
		// Docker renames the TAP in the container (see docker.go).
		v.Ifname = p.state.Ifname
	}
	for _, m := range p.publish {
		v.Publish = append(v.Publish, m.String())
	}
	for _, px := range p.proxies {
		v.Published = append(v.Published, publishedView(px))
	}
	return v
}

// nsID identifies a network namespace by its nsfs inode, so that one
// namespace attached by name and by pid is known to be one.
type nsID struct{ dev, ino uint64 }

func nsIDOf(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// attachSpec is a validated AttachRequest.
type attachSpec struct {
	// req is what was asked, recorded in the state file.
	req              api.AttachRequest
	netns, netnsPath string
	network, name    string
	ifname           string
	ips              []netip.Prefix
	mac              net.HardwareAddr
	mtu              int
	publish          []publish.Mapping
	// dnsName is the name DNS answers besides the port's own: asked for
	// (AttachRequest.DNSName), or set by connect to the name of the port
	// whose namespace the new port joins.
	dnsName string
}

func (d *Daemon) validate(req api.AttachRequest) (attachSpec, error) {
	s := attachSpec{req: req, netns: req.Netns, network: req.Network, name: req.Name, ifname: req.Ifname, mtu: req.MTU, dnsName: req.DNSName}
	if s.network == "" {
		s.network = api.DefaultNetwork
	}
	if s.ifname == "" {
		s.ifname = "eth0"
	}
	if err := apiserver.CheckIfname(s.ifname); err != nil {
		return s, err
	}
	if s.name == "" {
		s.name = defaultName(req.Netns)
		if apiserver.CheckName("port", s.name) != nil {
			return s, api.Errorf(api.ErrInvalid, api.ReasonPortNameRequired, "no port name can be made from netns %q (%s)", req.Netns, apiserver.NameRule)
		}
	}
	if err := apiserver.CheckName("port", s.name); err != nil {
		return s, err
	}
	var err error
	if req.MAC != "" {
		if s.mac, err = apiserver.ParseMAC(req.MAC); err != nil {
			return s, err
		}
	}
	if s.ips, err = apiserver.ParseAddrs(req.IPs); err != nil {
		return s, err
	}
	if err := apiserver.CheckAddrRanges(s.ips); err != nil {
		return s, err
	}
	if err := apiserver.CheckMTU(s.mtu, s.ips); err != nil {
		return s, err
	}
	if s.publish, err = apiserver.ParsePublish(req.Publish); err != nil {
		return s, err
	}
	if s.netnsPath, err = resolveNetns(req.Netns); err != nil {
		return s, err
	}
	ns, err := nsIDOf(s.netnsPath)
	if err != nil {
		return s, resolveError(err)
	}
	host := d.isHostNetns(ns)
	if host && !req.AllowHostNetns {
		return s, hostNetnsError(req.Netns)
	}
	// Recorded only where it mattered.
	s.req.AllowHostNetns = host
	return s, nil
}

func resolveNetns(spec string) (string, error) {
	path, err := namespace.Resolve(spec)
	if err != nil {
		return "", resolveError(err)
	}
	return path, nil
}

// resolveError gives a failure to find or read a namespace its API
// class: gone is 404, anything else the request's fault.
func resolveError(err error) error {
	if errors.Is(err, namespace.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	}
	return fmt.Errorf("%w: %w", api.ErrInvalid, err)
}

// Attach implements apiserver.Backend. ctx bounds the wait for the
// daemon's lock only.
func (d *Daemon) Attach(ctx context.Context, req api.AttachRequest) (api.Port, error) {
	start := time.Now()
	s, err := d.validate(req)
	if err != nil {
		return api.Port{}, fmt.Errorf("attach netns %q: %w", req.Netns, err)
	}
	if err := d.lockFor(ctx); err != nil {
		return api.Port{}, fmt.Errorf("attach netns %q: %w", req.Netns, err)
	}
	defer d.mu.Unlock()
	p, err := d.attachLocked(s)
	if err != nil {
		return api.Port{}, fmt.Errorf("attach netns %q: %w", req.Netns, kernelError(err, s.ips))
	}
	d.timeAttach(start)
	d.events.Publish(portEvent(api.EventPortAttach, p))
	return p.view(), nil
}

// attachLocked plugs in a new container port as s asks, with what goes
// with it: its addresses from the network's IPAM, a default route via the
// gateway, published ports, its DNS name and the namespace's resolv.conf.
// On failure nothing of it is left.
func (d *Daemon) attachLocked(s attachSpec) (_ *port, err error) {
	n, ok := d.nets[s.network]
	if !ok {
		return nil, noNetwork(s.network)
	}
	if err := d.checkFree(s, n); err != nil {
		return nil, err
	}
	if len(s.publish) > 0 && n.internal {
		return nil, invalid("network %q is internal: its ports cannot be published; attach to another network to publish", n.name)
	}
	// What a daemon killed from here on would leave is recorded first,
	// for the next start's sweep (see sweep.go).
	done, err := d.intendLocked(s)
	if err != nil {
		return nil, err
	}
	saved := false
	defer func() { done(err == nil && !saved) }()
	// A namespace attached by pid or path is pinned first: the port is
	// made through the pin, and the next daemon finds it there however
	// the process that held it fares.
	nsPath := s.netnsPath
	var pinPath string
	if d.persistent() && needsPin(s.netnsPath) {
		pinPath = d.pinPath(s.name)
		if err := d.host.pin(s.netnsPath, pinPath); err != nil {
			return nil, fmt.Errorf("pin network namespace %s: %w", s.netnsPath, err)
		}
		defer func() {
			if err != nil {
				d.unpin(pinPath)
			}
		}()
		nsPath = pinPath
	}
	ns, err := nsIDOf(nsPath)
	if err != nil {
		return nil, err
	}
	if n.mtu > 0 && s.mtu > n.mtu {
		return nil, invalid("MTU %d: network %q spans hosts over VXLAN, and its MTU is %d (the underlay's less %d); ask for at most that, or none", s.mtu, n.name, n.mtu, d.ov.underlayMTU-n.mtu)
	}
	clustered := d.inStore(n)
	var ips []netip.Prefix
	var owned []netip.Addr
	if clustered {
		if err := d.prepareClusterAttachLocked(n, &s); err != nil {
			return nil, err
		}
		ips, owned, err = d.clusterAddressesLocked(n, s.name, s.ips)
	} else {
		ips, owned, err = addresses(n, s.ips)
	}
	if err != nil {
		return nil, err
	}
	// What the store holds for the port, given back if it fails.
	release := func() {
		for _, a := range owned {
			n.release(a)
		}
		if clustered {
			d.releaseInStoreLocked(n, "", owned)
		}
	}
	// An address the network handed out may be IPv6, which the request's
	// own check of --mtu could not know of.
	if err := apiserver.CheckMTU(s.mtu, ips); err != nil {
		release()
		return nil, err
	}
	if len(s.publish) > 0 && !slices.ContainsFunc(ips, func(ip netip.Prefix) bool { return n.contains(ip.Addr()) }) {
		release()
		return nil, api.Errorf(api.ErrInvalid, api.ReasonPublishNeedsAddress, "published ports need an address in network %q's subnet %s, and the port has none", n.name, n.subnetsString())
	}
	if clustered {
		if err := d.publishEndpointLocked(d.endpointOf(n, s.name, s.mac, ips)); err != nil {
			release()
			return nil, err
		}
		defer func() {
			if err != nil {
				// plugLocked released the addresses here.
				d.releaseInStoreLocked(n, s.name, owned)
			}
		}()
	}
	p, err := d.plugLocked(plugSpec{
		kind: api.KindContainer,
		state: portState{Request: s.req, Name: s.name, Network: s.network, DNSName: s.dnsName,
			MTU: s.mtu, Pin: pinPath},
		net:     n,
		nsPath:  nsPath,
		ns:      ns,
		ifname:  s.ifname,
		ips:     ips,
		owned:   owned,
		publish: s.publish,
		mac:     s.mac,
		mtu:     s.mtu,
	})
	if err != nil {
		return nil, err
	}
	saved = d.saveLocked() == nil
	return p, nil
}

// checkFree refuses a port name, address or MAC another port holds.
func (d *Daemon) checkFree(s attachSpec, n *network) error {
	if p, err := d.sw.Port(s.name); err == nil {
		where := fmt.Sprintf("in netns %q", p.Info().Netns)
		if o, ok := d.ports[p.Name()]; ok && o.kind == api.KindGateway {
			where = "as a gateway"
		}
		return api.Errorf(api.ErrConflict, api.ReasonPortNameInUse, "port name %q already exists (%s)", s.name, where)
	}
	// A port's name is its DNS name, and DNS does not tell case apart.
	for name := range d.ports {
		if strings.EqualFold(name, s.name) {
			return api.Errorf(api.ErrConflict, api.ReasonPortNameInUse, "port name %q differs only in case from port %q, and DNS does not tell them apart; choose another name", s.name, name)
		}
	}
	for _, p := range n.vn.Ports() {
		if p != n.gw.sw {
			for _, have := range p.Info().IPs {
				for _, want := range s.ips {
					if have.Addr() == want.Addr() {
						return api.Errorf(api.ErrConflict, api.ReasonAddressInUse, "address %s already in use by port %q on network %q", want.Addr(), p.Name(), n.name)
					}
				}
			}
		}
		if s.mac != nil && p.Info().MAC.String() == s.mac.String() {
			return api.Errorf(api.ErrConflict, api.ReasonMACInUse, "MAC %s already in use by port %q on network %q", s.mac, p.Name(), n.name)
		}
	}
	return nil
}

// Detach implements apiserver.Backend.
func (d *Daemon) Detach(ctx context.Context, name string) error {
	start := time.Now()
	if err := d.lockFor(ctx); err != nil {
		return fmt.Errorf("detach %q: %w", name, err)
	}
	defer d.mu.Unlock()
	sp, err := d.sw.Port(name)
	if err != nil {
		return fmt.Errorf("detach: %w", classify(err))
	}
	if n := d.tunnelOfLocked(sp); n != nil {
		return fmt.Errorf("detach: %w", tunnelPortError(n))
	}
	p, ok := d.ports[sp.Name()]
	if !ok || p.kind == api.KindGateway {
		return fmt.Errorf("detach: %w", api.Errorf(api.ErrInvalid, api.ReasonGatewayPort, "port %q is the gateway of network %q", sp.Name(), sp.Network().Name()))
	}
	if err := dockerOwnsPort(p); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	if err := d.sw.RemovePort(sp); err != nil {
		return fmt.Errorf("detach: %w", classify(err))
	}
	d.events.Publish(portEvent(api.EventPortDetach, p))
	d.forgetLocked(p)
	d.saveLocked()
	d.timeDetach(start)
	return nil
}

// applyPolicy puts a port's requested policy into its switch port info.
func applyPolicy(info *vswitch.PortInfo, pol api.PortPolicy) {
	info.NoSecurity = !pol.Secure()
	info.MACLimit = pol.MACLimit
	info.Storm = vswitch.StormLimits{Broadcast: pol.StormBroadcast, Multicast: pol.StormMulticast, UnknownUnicast: pol.StormUnknown}
}

// UpdatePort changes an attached port's policy and records it, so that a
// restart keeps it.
func (d *Daemon) UpdatePort(ctx context.Context, name string, req api.PortUpdateRequest) (api.Port, error) {
	if err := d.lockFor(ctx); err != nil {
		return api.Port{}, fmt.Errorf("update port %q: %w", name, err)
	}
	defer d.mu.Unlock()
	sp, err := d.sw.Port(name)
	if err != nil {
		return api.Port{}, fmt.Errorf("update port: %w", classify(err))
	}
	if n := d.tunnelOfLocked(sp); n != nil {
		return api.Port{}, fmt.Errorf("update port: %w", tunnelPortError(n))
	}
	p, ok := d.ports[sp.Name()]
	if !ok || p.kind == api.KindGateway {
		return api.Port{}, fmt.Errorf("update port: %w", api.Errorf(api.ErrInvalid, api.ReasonGatewayPort, "port %q is the gateway of network %q; it routes for the host and has no port security", sp.Name(), sp.Network().Name()))
	}
	pol := &p.state.Request.PortPolicy
	if req.PortSecurity != nil {
		on := *req.PortSecurity
		pol.PortSecurity = &on
		sp.SetSecurity(on)
	}
	if req.MACLimit != nil {
		pol.MACLimit = *req.MACLimit
		sp.SetMACLimit(*req.MACLimit)
	}
	if req.StormBroadcast != nil || req.StormMulticast != nil || req.StormUnknown != nil {
		setStorm(pol, req)
		var info vswitch.PortInfo
		applyPolicy(&info, *pol)
		sp.SetStormLimits(info.Storm)
	}
	d.saveLocked()
	ev := portEvent(api.EventPortUpdate, p)
	ev.Attrs = updateAttrs(req)
	d.events.Publish(ev)
	return p.view(), nil
}

// setStorm puts the storm control rates req sets into pol.
func setStorm(pol *api.PortPolicy, req api.PortUpdateRequest) {
	for _, f := range []struct {
		to   *int
		from *int
	}{{&pol.StormBroadcast, req.StormBroadcast}, {&pol.StormMulticast, req.StormMulticast}, {&pol.StormUnknown, req.StormUnknown}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
}

// forgetLocked undoes what attachLocked set up around a port the switch
// no longer has.
func (d *Daemon) forgetLocked(p *port) {
	d.unstoreLocked(p)
	p.stopProxies()
	p.net.records.Remove(p.name())
	for _, a := range p.owned {
		p.net.release(a)
	}
	if p.kind == api.KindContainer {
		d.releaseInStoreLocked(p.net, p.name(), p.owned)
	}
	p.owned = nil
	delete(d.ports, p.name())
	d.namesChangedLocked(p.ns)
	if p.state.Pin != "" {
		d.unpin(p.state.Pin)
	}
	if p.state.ResolvConf == "" {
		return
	}
	for _, o := range d.ports {
		if o.kind == api.KindContainer && o.ns == p.ns {
			return
		}
	}
	d.removeResolvConf(p.state.ResolvConf)
}

// writeResolvConf points the namespace named netns at nameserver, with
// the search domains search (see names.go), through
// the file `ip netns exec` bind-mounts over /etc/resolv.conf, and returns
// its path; or "" for a namespace given by pid or path, which no such
// file serves, or when someone else wrote one (the administrator, or a
// tapswitchd of another state directory). A failure is logged, not
// returned: the port works without it. Nothing is written through a
// symbolic link (see dns.WriteResolvConfAs).
func (d *Daemon) writeResolvConf(netns string, nameserver netip.Addr, search []string) string {
	path := resolvConfPath(netns)
	if path == "" {
		return ""
	}
	line, err := dns.FirstLine(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		d.log.Warn("resolv.conf of the namespace not written: names will not resolve through the gateway there", "netns", netns, "err", err)
		return ""
	case !d.mayReplaceResolvConf(line):
		d.log.Info("resolv.conf of the namespace left as it is: it was not written by this tapswitchd", "path", path)
		return ""
	}
	if err := dns.WriteResolvConfAs(path, d.resolvOwner(), nameserver, search); err != nil {
		d.log.Warn("names will not resolve through the gateway in this namespace", "netns", netns, "err", err)
		return ""
	}
	return path
}

// resolvConfPath is the resolv.conf `ip netns exec` gives the namespace
// netns, or "" for a namespace given by pid or path.
func resolvConfPath(netns string) string {
	if netns == "" || strings.HasPrefix(netns, "pid:") || strings.ContainsRune(netns, '/') || netns == "." || netns == ".." {
		return ""
	}
	return filepath.Join(netnsEtcDir, netns, "resolv.conf")
}

// removeResolvConf removes a resolv.conf the state records, if this
// daemon wrote it, and its directory once empty. The directory goes even
// if the file already has: a daemon killed between the two left it so.
func (d *Daemon) removeResolvConf(path string) {
	if _, err := dns.RemoveResolvConf(path, d.resolvOwner(), d.mayReplaceResolvConf); err != nil {
		d.log.Warn("remove resolv.conf", "err", err)
	}
}

// resolvOwner names this daemon's resolv.conf files in their header and
// their temporary files: its state directory's id, as in its TAPs' alias.
// Two daemons with different state directories never take each other's.
func (d *Daemon) resolvOwner() string { return stateID(d.cfg.StateDir) }

// mayReplaceResolvConf reports whether a resolv.conf starting with line
// is this daemon's to replace or remove: written by it, or by a
// tapswitchd from before files named their owner (which an upgraded
// daemon's state records as its own).
func (d *Daemon) mayReplaceResolvConf(line string) bool {
	return line == dns.Header(d.resolvOwner()) || line == dns.Header("")
}

// writtenByUs reports whether the file at path is a resolv.conf this
// daemon may replace (see mayReplaceResolvConf).
func (d *Daemon) writtenByUs(path string) bool {
	line, err := dns.FirstLine(path)
	return err == nil && d.mayReplaceResolvConf(line)
}

// Connect implements apiserver.Backend. ctx bounds the wait for the
// daemon's lock only.
func (d *Daemon) Connect(ctx context.Context, network string, req api.ConnectRequest) (api.Port, error) {
	fail := func(err error) (api.Port, error) {
		return api.Port{}, fmt.Errorf("connect port %q to network %q: %w", req.Port, network, err)
	}
	ips, err := apiserver.ParseAddrs(req.IPs)
	if err != nil {
		return fail(err)
	}
	if err := apiserver.CheckAddrRanges(ips); err != nil {
		return fail(err)
	}
	if err := d.lockFor(ctx); err != nil {
		return fail(err)
	}
	defer d.mu.Unlock()
	sp, err := d.sw.Port(req.Port)
	if err != nil {
		return fail(classify(err))
	}
	if n := d.tunnelOfLocked(sp); n != nil {
		return fail(tunnelPortError(n))
	}
	orig, ok := d.ports[sp.Name()]
	if !ok || orig.kind == api.KindGateway {
		return fail(api.Errorf(api.ErrInvalid, api.ReasonGatewayPort, "port %q is a network's gateway, not a container's port", sp.Name()))
	}
	if orig.kind == api.KindDocker {
		return fail(invalid("port %q is a Docker container's: connect the container with docker network connect", sp.Name()))
	}
	host := d.isHostNetns(orig.ns)
	if host && !req.AllowHostNetns {
		return fail(hostNetnsError(orig.state.Request.Netns))
	}
	n, ok := d.nets[network]
	if !ok {
		return fail(noNetwork(network))
	}
	for _, o := range d.ports {
		if o.kind == api.KindContainer && o.ns == orig.ns && o.net == n {
			return fail(conflict("the namespace of port %q is already on network %q, through port %q", orig.name(), network, o.name()))
		}
	}
	name := req.Name
	if name == "" {
		if name, err = connectName(orig.name(), network); err != nil {
			return fail(err)
		}
	}
	if err := apiserver.CheckName("port", name); err != nil {
		return fail(err)
	}
	// The original port's own way into the namespace: its pin, for a
	// namespace attached by pid that has outlived the process.
	netns, path := orig.state.Request.Netns, orig.nsPath
	ifname, err := d.host.nextIfname(path)
	if err != nil {
		return fail(kernelError(err, nil))
	}
	s := attachSpec{
		req: api.AttachRequest{Netns: netns, Network: network, Name: name, Ifname: ifname, IPs: req.IPs, PortPolicy: req.PortPolicy,
			AllowHostNetns: host},
		netns:     netns,
		netnsPath: path,
		network:   network,
		name:      name,
		ifname:    ifname,
		ips:       ips,
		dnsName:   orig.dnsName(),
	}
	p, err := d.attachLocked(s)
	if err != nil {
		return fail(kernelError(err, ips))
	}
	ev := portEvent(api.EventPortConnect, p)
	ev.Attrs["from"] = orig.name()
	d.events.Publish(ev)
	return p.view(), nil
}
