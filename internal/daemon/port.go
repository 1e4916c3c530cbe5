package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/internal/ipam"
	"github.com/tapswitch/tapswitch/internal/publish"
	"github.com/tapswitch/tapswitch/namespace"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// netnsEtcDir is where `ip netns exec NAME` finds files to bind-mount
// over /etc for the namespace NAME.
const netnsEtcDir = "/etc/netns"

// port is one port of the daemon: the switch's port and what the daemon
// set up around it.
type port struct {
	// kind is api.KindContainer or api.KindGateway (see plug.go).
	kind  string
	state portState
	sw    *vswitch.Port
	net   *network
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
	for _, m := range p.publish {
		v.Publish = append(v.Publish, m.String())
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
	if err := apiserver.CheckMTU(s.mtu, s.ips); err != nil {
		return s, err
	}
	if s.publish, err = apiserver.ParsePublish(req.Publish); err != nil {
		return s, err
	}
	if s.netnsPath, err = resolveNetns(req.Netns); err != nil {
		return s, err
	}
	return s, nil
}

func resolveNetns(spec string) (string, error) {
	path, err := namespace.Resolve(spec)
	if err != nil {
		if errors.Is(err, namespace.ErrNotFound) {
			return "", fmt.Errorf("%w: %w", api.ErrNotFound, err)
		}
		return "", fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	return path, nil
}

// Attach implements apiserver.Backend.
func (d *Daemon) Attach(req api.AttachRequest) (api.Port, error) {
	s, err := d.validate(req)
	if err != nil {
		return api.Port{}, fmt.Errorf("attach netns %q: %w", req.Netns, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.attachLocked(s)
	if err != nil {
		return api.Port{}, fmt.Errorf("attach netns %q: %w", req.Netns, err)
	}
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
	ips, owned, err := addresses(n, s.ips)
	if err != nil {
		return nil, err
	}
	if len(s.publish) > 0 && !slices.ContainsFunc(ips, func(ip netip.Prefix) bool { return n.subnet.Contains(ip.Addr()) }) {
		for _, a := range owned {
			n.subnet.Release(a)
		}
		return nil, api.Errorf(api.ErrInvalid, api.ReasonPublishNeedsAddress, "published ports need an address in network %q's subnet %s, and the port has none", n.name, n.subnet.Prefix())
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
	d.saveLocked()
	return p, nil
}

// addresses returns the addresses a port on n gets and those of them
// that n's IPAM now holds for it: one allocated when none are asked for,
// and each asked for inside the subnet. Addresses outside the subnet are
// the user's own business, as on a plain wire.
func addresses(n *network, asked []netip.Prefix) (ips []netip.Prefix, owned []netip.Addr, err error) {
	bits := n.subnet.Prefix().Bits()
	if len(asked) == 0 {
		a, err := n.subnet.Allocate()
		if err != nil {
			return nil, nil, fmt.Errorf("network %q: %w", n.name, ipamError(err))
		}
		return []netip.Prefix{netip.PrefixFrom(a, bits)}, []netip.Addr{a}, nil
	}
	release := func() {
		for _, a := range owned {
			n.subnet.Release(a)
		}
	}
	for _, ip := range asked {
		a := ip.Addr()
		if !n.subnet.Contains(a) {
			continue
		}
		if ip.Bits() != bits {
			release()
			return nil, nil, invalid("address %s is in network %q's subnet %s: give it as %s", ip, n.name, n.subnet.Prefix(), netip.PrefixFrom(a, bits))
		}
		if err := n.subnet.Reserve(a); err != nil {
			release()
			if errors.Is(err, ipam.ErrInUse) {
				return nil, nil, api.Errorf(api.ErrConflict, api.ReasonAddressInUse, "address %s already in use in network %q", a, n.name)
			}
			return nil, nil, fmt.Errorf("network %q: %w", n.name, ipamError(err))
		}
		owned = append(owned, a)
	}
	return asked, owned, nil
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
func (d *Daemon) Detach(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	sp, err := d.sw.Port(name)
	if err != nil {
		return fmt.Errorf("detach: %w", classify(err))
	}
	p, ok := d.ports[sp.Name()]
	if !ok || p.kind == api.KindGateway {
		return fmt.Errorf("detach: %w", api.Errorf(api.ErrInvalid, api.ReasonGatewayPort, "port %q is the gateway of network %q", sp.Name(), sp.Network().Name()))
	}
	if err := d.sw.RemovePort(sp); err != nil {
		return fmt.Errorf("detach: %w", classify(err))
	}
	d.forgetLocked(p)
	d.saveLocked()
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
func (d *Daemon) UpdatePort(name string, req api.PortUpdateRequest) (api.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	sp, err := d.sw.Port(name)
	if err != nil {
		return api.Port{}, fmt.Errorf("update port: %w", classify(err))
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
	p.stopProxies()
	p.net.records.Remove(p.name())
	for _, a := range p.owned {
		p.net.subnet.Release(a)
	}
	p.owned = nil
	delete(d.ports, p.name())
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

// resolvConfHeader starts every resolv.conf dns.WriteResolvConf writes;
// a file without it is the administrator's and is left alone.
const resolvConfHeader = "# Written by tapswitch"

// writeResolvConf points the namespace named netns at nameserver, through
// the file `ip netns exec` bind-mounts over /etc/resolv.conf, and returns
// its path; or "" for a namespace given by pid or path, which no such
// file serves, or when the administrator wrote one. A failure is logged,
// not returned: the port works without it.
func (d *Daemon) writeResolvConf(netns string, nameserver netip.Addr) string {
	if netns == "" || strings.HasPrefix(netns, "pid:") || strings.ContainsRune(netns, '/') {
		return ""
	}
	path := filepath.Join(netnsEtcDir, netns, "resolv.conf")
	if _, err := os.Stat(path); err == nil && !writtenByUs(path) {
		d.log.Info("resolv.conf of the namespace left as it is: it was not written by tapswitch", "path", path)
		return ""
	}
	if err := dns.WriteResolvConf(path, nameserver, nil); err != nil {
		d.log.Warn("names will not resolve through the gateway in this namespace", "netns", netns, "err", err)
		return ""
	}
	return path
}

func (d *Daemon) removeResolvConf(path string) {
	if !writtenByUs(path) {
		return
	}
	if err := dns.RemoveResolvConf(path); err != nil {
		d.log.Warn("remove resolv.conf", "err", err)
	}
}

// writtenByUs reports whether the file at path starts with
// resolvConfHeader.
func writtenByUs(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	return strings.HasPrefix(line, resolvConfHeader)
}

// Connect implements apiserver.Backend.
func (d *Daemon) Connect(network string, req api.ConnectRequest) (api.Port, error) {
	fail := func(err error) (api.Port, error) {
		return api.Port{}, fmt.Errorf("connect port %q to network %q: %w", req.Port, network, err)
	}
	ips, err := apiserver.ParseAddrs(req.IPs)
	if err != nil {
		return fail(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sp, err := d.sw.Port(req.Port)
	if err != nil {
		return fail(classify(err))
	}
	orig, ok := d.ports[sp.Name()]
	if !ok || orig.kind == api.KindGateway {
		return fail(api.Errorf(api.ErrInvalid, api.ReasonGatewayPort, "port %q is a network's gateway, not a container's port", sp.Name()))
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
		return fail(err)
	}
	s := attachSpec{
		req:       api.AttachRequest{Netns: netns, Network: network, Name: name, Ifname: ifname, IPs: req.IPs, PortPolicy: req.PortPolicy},
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
		return fail(err)
	}
	return p.view(), nil
}
