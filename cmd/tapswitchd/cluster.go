package main

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tapswitch/tapswitch/internal/cluster"
	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/internal/vxlan"
)

// clusterOptions are the flags of networks that span hosts
// (daemon.OverlayConfig).
type clusterOptions struct {
	advertise   string
	cluster     string
	clusterHost string
	clusterTTL  time.Duration
	vxlanPort   int
	vxlanPeers  []string
}

func addClusterFlags(f *pflag.FlagSet, o *clusterOptions) {
	f.StringVar(&o.advertise, "advertise", "", "this host's tunnel address (`IP`, one of this host's, IPv4 or IPv6): cluster networks' VXLAN socket binds to it only, and the other hosts send to it; needed by --cluster, --vxlan-peer and network create --scope cluster")
	f.StringVar(&o.cluster, "cluster", "", "the cluster's store, `etcd=URL[,URL]` (such as etcd=http://10.0.0.10:2379): cluster networks, their addresses and ports are kept there and made on every host; needs --advertise")
	f.StringVar(&o.clusterHost, "cluster-host", "", "this host's `NAME` in the cluster, unique there (default: the host name)")
	f.DurationVar(&o.clusterTTL, "cluster-ttl", cluster.DefaultTTL, "how long this host stays in the cluster after it stops renewing its lease (a daemon killed or cut off): then the others forget it")
	f.IntVar(&o.vxlanPort, "vxlan-port", vxlan.DefaultPort, "UDP port of the VXLAN tunnel, the same on every host")
	f.StringArrayVar(&o.vxlanPeers, "vxlan-peer", nil, "a static peer's tunnel address (`IP`): cluster networks' frames go to it and may come from it, with or without --cluster, as to a Linux vxlan device there (repeatable); needs --advertise")
}

// config checks the options and gives the daemon's configuration; local
// lists the addresses of this namespace (nil: not checked).
func (o clusterOptions) config(local []netip.Addr) (daemon.OverlayConfig, error) {
	var c daemon.OverlayConfig
	if o.advertise == "" {
		switch {
		case o.cluster != "":
			return c, fmt.Errorf("--cluster needs --advertise IP: the address of this host the other hosts' tunnels reach it at")
		case len(o.vxlanPeers) > 0:
			return c, fmt.Errorf("--vxlan-peer needs --advertise IP: the address of this host the peers' tunnels reach it at")
		}
	} else {
		a, err := netip.ParseAddr(o.advertise)
		if err != nil || a.Zone() != "" {
			return c, fmt.Errorf("--advertise %q: want an IP address of this host, such as 10.0.0.1", o.advertise)
		}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() {
			return c, fmt.Errorf("--advertise %s: give an address of one of this host's interfaces, one the other hosts reach", a)
		}
		if local != nil && !containsAddr(local, a) {
			return c, fmt.Errorf("--advertise %s: not an address of this host (of this network namespace); give one that `ip -br addr` lists", a)
		}
		c.Advertise = a
	}
	if o.vxlanPort < 1 || o.vxlanPort > 65535 {
		return c, fmt.Errorf("--vxlan-port %d: want 1 to 65535 (VXLAN's is %d)", o.vxlanPort, vxlan.DefaultPort)
	}
	c.Port = o.vxlanPort
	for _, s := range o.vxlanPeers {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return c, fmt.Errorf("--vxlan-peer %q: want the tunnel address of another host, such as 10.0.0.2", s)
		}
		a = a.Unmap()
		if c.Advertise.IsValid() && a.Is4() != c.Advertise.Is4() {
			return c, fmt.Errorf("--vxlan-peer %s: not of the family of --advertise %s; the underlay is one or the other", a, c.Advertise)
		}
		if a == c.Advertise {
			return c, fmt.Errorf("--vxlan-peer %s: that is this host's --advertise; name the other hosts", a)
		}
		if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			return c, fmt.Errorf("--vxlan-peer %s: want another host's unicast address", a)
		}
		for _, p := range c.Peers {
			if p == a {
				return c, fmt.Errorf("--vxlan-peer %s: given twice", a)
			}
		}
		c.Peers = append(c.Peers, a)
	}
	if o.cluster != "" {
		urls, err := parseCluster(o.cluster)
		if err != nil {
			return c, err
		}
		c.Cluster = urls
	}
	if o.clusterTTL < 2*time.Second || o.clusterTTL%time.Second != 0 {
		return c, fmt.Errorf("--cluster-ttl %s: want whole seconds, at least 2s (etcd's leases are in seconds)", o.clusterTTL)
	}
	c.Host, c.TTL = o.clusterHost, o.clusterTTL
	if c.Host != "" && (strings.ContainsAny(c.Host, "/ \t\n") || len(c.Host) > 253) {
		return c, fmt.Errorf("--cluster-host %q: want a host name: no '/' or spaces, at most 253 characters", c.Host)
	}
	return c, nil
}

// parseCluster reads --cluster: etcd=URL[,URL], each URL http or https
// with a host and port.
func parseCluster(s string) ([]string, error) {
	kind, list, ok := strings.Cut(s, "=")
	if !ok {
		return nil, fmt.Errorf("--cluster %q: want etcd=URL[,URL], such as etcd=http://10.0.0.10:2379", s)
	}
	if kind != "etcd" {
		return nil, fmt.Errorf("--cluster %q: store %q is not supported; the cluster's store is etcd: give etcd=URL[,URL]", s, kind)
	}
	var out []string
	for _, u := range strings.Split(list, ",") {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.Port() == "" || (p.Path != "" && p.Path != "/") {
			return nil, fmt.Errorf("--cluster: etcd URL %q: want http://HOST:PORT or https://HOST:PORT, such as http://10.0.0.10:2379", u)
		}
		out = append(out, p.Scheme+"://"+p.Host)
	}
	return out, nil
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, l := range list {
		if l == a {
			return true
		}
	}
	return false
}

// localAddrs lists the addresses of this network namespace's interfaces.
func localAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list this host's addresses: %w", err)
	}
	out := []netip.Addr{}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}
