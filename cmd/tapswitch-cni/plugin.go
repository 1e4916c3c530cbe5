package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/tapswitch/tapswitch/api"
)

// supported are the CNI versions the plugin speaks. CHECK needs 0.4.0,
// STATUS and GC 1.1.0 (skel refuses them below).
var supported = version.PluginSupports("0.4.0", "1.0.0", "1.1.0")

// requestTimeout bounds one command's talk with tapswitchd; a runtime
// has its own, usually longer, timeout around the plugin.
const requestTimeout = time.Minute

// plugin runs the CNI commands.
type plugin struct {
	// out takes the results (stdout); log takes notes (stderr).
	out io.Writer
	log io.Writer
	// exec runs delegated (IPAM) plugins.
	exec invoke.Exec
	// inspectLink reads an interface inside a namespace (CHECK).
	inspectLink func(netnsPath, ifname string) (linkState, error)
}

// linkState is what CHECK reads of an interface in a namespace.
type linkState struct {
	MAC   string
	Addrs []netip.Prefix
}

func newPlugin() *plugin {
	return &plugin{
		out:         os.Stdout,
		log:         os.Stderr,
		exec:        &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}},
		inspectLink: inspectLink,
	}
}

func (p *plugin) funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.add, Del: p.del, Check: p.check, Status: p.status, GC: p.gc}
}

// attachment is where a port is looked for: CNI_CONTAINERID and
// CNI_IFNAME on the network.
func findPort(ports []api.Port, network, containerID, ifname string) *api.Port {
	for i := range ports {
		q := &ports[i]
		if q.Kind != api.KindGateway && q.Network == network && q.ContainerID == containerID && q.Ifname == ifname {
			return q
		}
	}
	return nil
}

func (p *plugin) add(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c := api.NewClient(conf.Socket)
	det, err := c.InspectNetwork(ctx, conf.Network)
	if err != nil {
		return cniError(conf, "add", err)
	}
	// An ADD repeated for the same container and interface (a runtime
	// retrying after a timeout) gets what the first made.
	port := findPort(det.Ports, conf.Network, args.ContainerID, args.IfName)
	if port == nil {
		if port, err = p.attach(ctx, c, conf, args); err != nil {
			return err
		}
		det.Ports = append(det.Ports, *port)
	}
	all, err := c.Ports(ctx)
	if err != nil {
		return cniError(conf, "add", err)
	}
	res, err := buildResult(det, port, args.Netns, firstPort(all, port))
	if err != nil {
		return types.NewError(types.ErrInternal, "add: "+err.Error(), "")
	}
	if conf.PrevResult != nil {
		if res, err = mergePrev(conf.PrevResult, res); err != nil {
			return types.NewError(types.ErrDecodingFailure, "add: prevResult: "+err.Error(), "")
		}
	}
	out, err := res.GetAsVersion(conf.CNIVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, "add: "+err.Error(), "")
	}
	return out.PrintTo(p.out)
}

// attach makes the port: addresses from the IPAM plugin when one is
// configured, then the first free name of portNames.
func (p *plugin) attach(ctx context.Context, c *api.Client, conf *netConf, args *skel.CmdArgs) (port *api.Port, err error) {
	pod := cniArg(args.Args, "K8S_POD_NAME")
	req := api.AttachRequest{
		Netns:       args.Netns,
		Network:     conf.Network,
		Ifname:      args.IfName,
		ContainerID: args.ContainerID,
	}
	if validName(pod) {
		req.DNSName = pod
	}
	if conf.IPAM.Type != "" {
		ips, err := p.ipamAdd(ctx, conf, args.StdinData)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				if derr := p.ipamDel(ctx, conf, args.StdinData); derr != nil {
					fmt.Fprintf(p.log, "tapswitch-cni: release the addresses of %s after a failed add: %v\n", conf.IPAM.Type, derr)
				}
			}
		}()
		req.IPs = ips
	}
	names := portNames(pod, args.IfName, args.ContainerID)
	if len(names) == 0 {
		names = []string{""} // the daemon names it after the namespace
	}
	for _, name := range names {
		req.Name = name
		q, err := c.Attach(ctx, req)
		if err == nil {
			return &q, nil
		}
		if api.ReasonOf(err) == api.ReasonPortNameInUse {
			continue
		}
		return nil, cniError(conf, fmt.Sprintf("attach %s (%s) to tapswitch network %q", args.Netns, args.IfName, conf.Network), err)
	}
	return nil, types.NewError(types.ErrInternal,
		fmt.Sprintf("attach %s to tapswitch network %q: port names %s are all in use; detach one (tapswitch detach NAME) or give the pod another name", args.Netns, conf.Network, strings.Join(names, ", ")), "")
}

func (p *plugin) del(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c := api.NewClient(conf.Socket)
	var derr error
	ports, err := c.Ports(ctx)
	if err == nil {
		if q := findPort(ports, conf.Network, args.ContainerID, args.IfName); q != nil {
			err = c.Detach(ctx, q.Name)
			if api.ReasonOf(err) == api.ReasonPortNotFound {
				err = nil // gone meanwhile
			}
		}
	}
	if err != nil {
		derr = cniError(conf, fmt.Sprintf("del container %s interface %s", args.ContainerID, args.IfName), err)
	}
	// The addresses go even when the daemon does not answer: the runtime
	// removes the namespace after DEL, and the TAP with it.
	if conf.IPAM.Type != "" {
		if err := p.ipamDel(ctx, conf, args.StdinData); err != nil {
			if derr == nil {
				return err
			}
			fmt.Fprintf(p.log, "tapswitch-cni: %v\n", err)
		}
	}
	return derr
}

func (p *plugin) check(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "check: the config has no prevResult; a runtime must pass the result of ADD", "")
	}
	prev, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "check: prevResult: "+err.Error(), "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c := api.NewClient(conf.Socket)
	ports, err := c.Ports(ctx)
	if err != nil {
		return cniError(conf, "check", err)
	}
	port := findPort(ports, conf.Network, args.ContainerID, args.IfName)
	if port == nil {
		return types.NewError(types.ErrInternal,
			fmt.Sprintf("check: tapswitch has no port for container %s interface %s on network %q: it was detached (tapswitch detach) or dropped when its namespace went; delete the container's network (DEL) and add it again", args.ContainerID, args.IfName, conf.Network), "")
	}
	want, mac, err := expected(prev, args.IfName, args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "check: prevResult: "+err.Error(), "")
	}
	have := make(map[netip.Prefix]bool)
	for _, s := range port.IPs {
		if a, err := netip.ParsePrefix(s); err == nil {
			have[a] = true
		}
	}
	for _, a := range want {
		if !have[a] {
			return types.NewError(types.ErrInternal,
				fmt.Sprintf("check: port %q has addresses %v, not %s of the ADD result", port.Name, port.IPs, a), "")
		}
	}
	link, err := p.inspectLink(args.Netns, args.IfName)
	if err != nil {
		return types.NewError(types.ErrInternal,
			fmt.Sprintf("check: port %q: %v; delete the container's network (DEL) and add it again", port.Name, err), "")
	}
	if mac != "" && !strings.EqualFold(mac, link.MAC) {
		return types.NewError(types.ErrInternal, fmt.Sprintf("check: %s in %s has MAC %s, not %s of the ADD result", args.IfName, args.Netns, link.MAC, mac), "")
	}
	for _, a := range want {
		if !slices.Contains(link.Addrs, a) {
			return types.NewError(types.ErrInternal,
				fmt.Sprintf("check: %s in %s has addresses %v, not %s of the ADD result", args.IfName, args.Netns, link.Addrs, a), "")
		}
	}
	if conf.IPAM.Type != "" {
		return p.ipamCheck(ctx, conf, args.StdinData)
	}
	return nil
}

// expected returns the addresses and the MAC prevResult lists for the
// interface ifname in the sandbox netns.
func expected(prev *types100.Result, ifname, netns string) ([]netip.Prefix, string, error) {
	idx := -1
	for i, ifc := range prev.Interfaces {
		if ifc.Name == ifname && ifc.Sandbox != "" && (ifc.Sandbox == netns || idx < 0) {
			idx = i
		}
	}
	if idx < 0 {
		return nil, "", fmt.Errorf("no interface %s in a sandbox", ifname)
	}
	var want []netip.Prefix
	for _, ip := range prev.IPs {
		if ip.Interface == nil || *ip.Interface != idx {
			continue
		}
		a, ok := prefixOf(ip.Address)
		if !ok {
			return nil, "", fmt.Errorf("address %s", ip.Address.String())
		}
		want = append(want, a)
	}
	return want, prev.Interfaces[idx].Mac, nil
}

func prefixOf(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func (p *plugin) status(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c := api.NewClient(conf.Socket)
	if _, err := c.InspectNetwork(ctx, conf.Network); err != nil {
		var de *api.DaemonError
		switch {
		case unreachable(err):
			// The switch is the daemon: while it is down, no frame moves
			// between the containers already attached either.
			return types.NewError(types.ErrLimitedConnectivity, notAnswering(conf.Socket), err.Error())
		case errors.As(err, &de) && de.Reason == api.ReasonNetworkNotFound:
			e := networkNotFound(conf, err)
			e.Code = types.ErrPluginNotAvailable
			return e
		default:
			e := cniError(conf, "status", err)
			e.Code = types.ErrPluginNotAvailable
			return e
		}
	}
	if conf.IPAM.Type != "" {
		return p.ipamStatus(ctx, conf, args.StdinData)
	}
	return nil
}

func (p *plugin) gc(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var errs []error
	if conf.hasValid {
		errs = append(errs, p.gcPorts(ctx, conf)...)
	} else {
		fmt.Fprintf(p.log, "tapswitch-cni: gc: no cni.dev/valid-attachments in the config; no port detached\n")
	}
	if conf.IPAM.Type != "" {
		if err := p.ipamGC(ctx, conf, args.StdinData); err != nil {
			errs = append(errs, err)
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return types.NewError(types.ErrInternal, "gc: "+strings.Join(msgs, "; "), "")
}

// gcPorts detaches the ports of the network that a runtime attached (they
// have a container id) and that are not valid attachments; it carries on
// past a failure and returns every one.
func (p *plugin) gcPorts(ctx context.Context, conf *netConf) []error {
	c := api.NewClient(conf.Socket)
	ports, err := c.Ports(ctx)
	if err != nil {
		return []error{cniError(conf, "gc", err)}
	}
	valid := make(map[types.GCAttachment]bool, len(conf.ValidAttachments))
	for _, a := range conf.ValidAttachments {
		valid[a] = true
	}
	var errs []error
	for _, q := range ports {
		if q.Kind == api.KindGateway || q.Network != conf.Network || q.ContainerID == "" ||
			valid[types.GCAttachment{ContainerID: q.ContainerID, IfName: q.Ifname}] {
			continue
		}
		if err := c.Detach(ctx, q.Name); err != nil && api.ReasonOf(err) != api.ReasonPortNotFound {
			errs = append(errs, cniError(conf, fmt.Sprintf("gc: detach port %q (container %s interface %s)", q.Name, q.ContainerID, q.Ifname), err))
			continue
		}
		fmt.Fprintf(p.log, "tapswitch-cni: gc: detached port %q (container %s interface %s)\n", q.Name, q.ContainerID, q.Ifname)
	}
	return errs
}
