package daemon

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/ipam"
	"github.com/tapswitch/tapswitch/namespace"
)

// restoreDockerLocked takes back what the Docker driver kept: its
// networks (already restored as tapswitch networks), its pools, its
// endpoints and the joined ones' ports. A port's TAP is where Docker
// put it: in the container's namespace (the SandboxKey), renamed, found
// there by its MAC; or back in the daemon's namespace under its own
// name, when the container stopped while no tapswitchd ran. A port whose
// TAP is nowhere is dropped, and its endpoint stays for Docker's Leave
// and DeleteEndpoint.
func (d *Daemon) restoreDockerLocked(doc *dockerDoc) {
	d.docker.init()
	if doc == nil {
		return
	}
	for _, dn := range doc.Networks {
		if _, ok := d.nets[dn.Network]; !ok {
			d.log.Warn("Docker's network lost its tapswitch network; remove it with docker network rm", "docker_network", dn.ID, "network", dn.Network)
		}
		c := dn
		d.docker.nets[dn.ID] = &c
	}
	for _, p := range doc.Pools {
		c := p
		if sub := poolSubnetOf(d.nets[p.Network], p.Subnet.Prefix); sub != nil {
			c.sub = sub
		} else {
			sub, err := ipam.RestoreSubnet(p.Subnet)
			if err != nil {
				d.log.Warn("IPAM pool dropped: its subnet cannot be read", "pool", p.ID, "err", err)
				continue
			}
			c.sub, c.Network = sub, ""
		}
		d.docker.pools[p.ID] = &c
	}
	for _, e := range doc.Endpoints {
		ep := e
		d.docker.endpoints[e.ID] = &ep
		if ep.Port == nil {
			continue
		}
		if err := d.restoreDockerPortLocked(&ep); err != nil {
			d.log.Warn("Docker's port dropped: its TAP cannot be taken back; restart the container", "port", ep.Port.Name, "endpoint", ep.ID, "err", err)
			d.events.Publish(api.Event{Type: api.EventPortFailed, Port: ep.Port.Name, Network: ep.Network,
				Reason: err.Error(), Attrs: map[string]string{"kind": api.KindDocker, "phase": "restore"}})
			ep.Port, ep.Publish = nil, nil
			d.dropped++
			continue
		}
		d.restored++
	}
}

// restoreDockerPortLocked finds the TAP of ep's port and plugs it in.
func (d *Daemon) restoreDockerPortLocked(ep *dockerEndpoint) error {
	n, ok := d.nets[ep.Network]
	if !ok {
		return fmt.Errorf("its network %q is gone", ep.Network)
	}
	if _, ok := d.ports[ep.Port.Name]; ok {
		return fmt.Errorf("port %q is in the state file twice", ep.Port.Name)
	}
	finder, ok := d.host.(dockerTAPFinder)
	if !ok {
		return errors.New("the host cannot look for TAPs in namespaces")
	}
	nsPath, ifname, err := finder.findDockerTAP(ep.SandboxKey, ep.MAC, dockerIfname(ep.ID))
	if err != nil {
		return err
	}
	ns, err := nsIDOf(cmpOr(nsPath, selfNetns))
	if err != nil {
		return err
	}
	ips, err := apiserver.ParseAddrs(ep.Addrs)
	if err != nil {
		return fmt.Errorf("addresses: %w", err)
	}
	_, err = d.plugLocked(plugSpec{
		kind:    api.KindDocker,
		state:   *ep.Port,
		net:     n,
		nsPath:  nsPath,
		ns:      ns,
		ifname:  ifname,
		ips:     ips,
		publish: ep.Publish,
		mtu:     ep.MTU,
		restore: true,
	})
	return err
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// errNoDockerTAP: the TAP of a Docker port is in neither place.
var errNoDockerTAP = errors.New("its TAP is neither in the container's namespace nor in the daemon's")

// dockerTAPFinder is a host that finds a Docker port's TAP where Docker
// moved it: linuxHost.
type dockerTAPFinder interface {
	findDockerTAP(sandbox, mac, ownName string) (nsPath, ifname string, err error)
}

var _ dockerTAPFinder = linuxHost{}

// findDockerTAP looks for a Docker port's TAP: in the namespace
// sandbox, the TAP with MAC, whatever its name; else in the daemon's own
// namespace, by its own name. It returns the namespace file ("" for the
// daemon's own) and the TAP's name there.
func (linuxHost) findDockerTAP(sandbox, mac, ownName string) (string, string, error) {
	if sandbox != "" && namespace.Exists(sandbox) {
		var found string
		err := namespace.Do(sandbox, func() error {
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
				if t, ok := l.(*netlink.Tuntap); ok && t.Mode == netlink.TUNTAP_MODE_TAP && t.Attrs().HardwareAddr.String() == mac {
					found = t.Attrs().Name
				}
			}
			return nil
		})
		if err != nil {
			return "", "", fmt.Errorf("container's namespace %s: %w", sandbox, err)
		}
		if found != "" {
			return sandbox, found, nil
		}
	}
	l, err := netlink.LinkByName(ownName)
	if err == nil {
		if _, ok := l.(*netlink.Tuntap); ok {
			return "", ownName, nil
		}
	}
	if _, err := os.Stat(sandbox); err != nil && sandbox != "" {
		return "", "", fmt.Errorf("%w (the container's namespace %s is gone)", errNoDockerTAP, sandbox)
	}
	return "", "", errNoDockerTAP
}
