package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/namespace"
)

// errDefaultRouteExists reports a namespace that already has a default
// route, which attach leaves alone.
var errDefaultRouteExists = errors.New("the namespace already has a default route")

// addDefaultRoute makes gw, on ifname, the default route of the namespace
// at netnsPath. The netlink socket is made inside the namespace, which is
// the only way to reach its routing table.
func addDefaultRoute(netnsPath, ifname string, gw netip.Addr) error {
	return namespace.Do(netnsPath, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		link, err := h.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("%s: %w", ifname, err)
		}
		bits := gw.BitLen()
		r := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)},
			Gw:        gw.AsSlice(),
		}
		if err := h.RouteAdd(r); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return errDefaultRouteExists
			}
			return fmt.Errorf("add default route via %s dev %s: %w", gw, ifname, err)
		}
		return nil
	})
}

// nextIfname returns the first of eth0, eth1, ... that no interface of
// the namespace at netnsPath is called.
func nextIfname(netnsPath string) (string, error) {
	var names []string
	err := namespace.Do(netnsPath, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		links, err := h.LinkList()
		if err != nil {
			return fmt.Errorf("list interfaces: %w", err)
		}
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	for i := 0; ; i++ {
		if name := fmt.Sprintf("eth%d", i); !slices.Contains(names, name) {
			return name, nil
		}
	}
}

// hostRoutes returns the routes of the daemon's namespace that a new
// network's subnet must not overlap, keyed for ipam.CheckOverlap. Default
// routes are left out (every subnet is under them, and the network's own
// route is more specific), and so are routes on the interfaces in skip:
// this daemon's own gateways, whose subnets are checked as networks.
func hostRoutes(skip []string) (map[string]netip.Prefix, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list the host's routes: %w", err)
	}
	names := make(map[int]string)
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	out := make(map[string]netip.Prefix)
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		bits, _ := r.Dst.Mask.Size()
		p := netip.PrefixFrom(ip.Unmap(), bits).Masked()
		if p.Bits() == 0 || p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() {
			continue
		}
		dev := names[r.LinkIndex]
		if slices.Contains(skip, dev) {
			continue
		}
		if dev == "" {
			dev = fmt.Sprintf("index %d", r.LinkIndex)
		}
		out[fmt.Sprintf("host route %s dev %s", p, dev)] = p
	}
	return out, nil
}
