package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/tapswitch/tapswitch/internal/cluster"
	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/internal/vxlan"
)

// clusterOptions are the flags of networks that span hosts
// (daemon.OverlayConfig).
type clusterOptions struct {
	advertise      string
	cluster        string
	clusterHost    string
	clusterTTL     time.Duration
	vxlanPort      int
	vxlanReceivers int
	vxlanPeers     []string
	// TLS and user of the store.
	clusterCA           string
	clusterCert         string
	clusterKey          string
	clusterUser         string
	clusterPasswordFile string
}

func addClusterFlags(f *pflag.FlagSet, o *clusterOptions) {
	f.StringVar(&o.advertise, "advertise", "", "this host's tunnel address (`IP`, one of this host's, IPv4 or IPv6): cluster networks' VXLAN socket binds to it only, and the other hosts send to it; needed by --cluster, --vxlan-peer and network create --scope cluster")
	f.StringVar(&o.cluster, "cluster", "", "the cluster's store, `etcd=URL[,URL]` (such as etcd=http://10.0.0.10:2379): cluster networks, their addresses and ports are kept there and made on every host; needs --advertise")
	f.StringVar(&o.clusterHost, "cluster-host", "", "this host's `NAME` in the cluster, unique there (default: the host name)")
	f.DurationVar(&o.clusterTTL, "cluster-ttl", cluster.DefaultTTL, "how long this host stays in the cluster after it stops renewing its lease (a daemon killed or cut off): then the others forget it")
	f.StringVar(&o.clusterCA, "cluster-ca", "", "PEM `FILE` of the CA that signed etcd's server certificate, for https:// --cluster URLs (default: the system's CAs)")
	f.StringVar(&o.clusterCert, "cluster-cert", "", "PEM `FILE` of this host's client certificate for etcd (etcd's --client-cert-auth), signed by a CA etcd trusts; needs --cluster-key and https:// --cluster URLs")
	f.StringVar(&o.clusterKey, "cluster-key", "", "PEM `FILE` of the private key of --cluster-cert")
	f.StringVar(&o.clusterUser, "cluster-user", "", "this host's etcd user `NAME`, for an etcd with authentication enabled; needs --cluster-password-file")
	f.StringVar(&o.clusterPasswordFile, "cluster-password-file", "", "`FILE` whose first line is the password of --cluster-user (it is never given on the command line); owned by root, for its owner only (chmod 600), or tapswitchd refuses to start")
	f.IntVar(&o.vxlanPort, "vxlan-port", vxlan.DefaultPort, "UDP port of the VXLAN tunnel, the same on every host")
	f.IntVar(&o.vxlanReceivers, "vxlan-receivers", 1, fmt.Sprintf("sockets receiving the tunnel's packets, sharing --vxlan-port, each read by its own loop: the kernel spreads the flows from other hosts over them (1 to %d)", vxlan.MaxReceivers))
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
	if o.vxlanReceivers < 1 || o.vxlanReceivers > vxlan.MaxReceivers {
		return c, fmt.Errorf("--vxlan-receivers %d: want 1 to %d", o.vxlanReceivers, vxlan.MaxReceivers)
	}
	c.Receivers = o.vxlanReceivers
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
	if err := o.storeAccess(&c); err != nil {
		return c, err
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

// storeAccess checks and loads the TLS files and the user of the store
// into c, c.Cluster set.
func (o clusterOptions) storeAccess(c *daemon.OverlayConfig) error {
	for _, f := range []struct{ name, val string }{
		{"--cluster-ca", o.clusterCA}, {"--cluster-cert", o.clusterCert}, {"--cluster-key", o.clusterKey},
		{"--cluster-user", o.clusterUser}, {"--cluster-password-file", o.clusterPasswordFile},
	} {
		if f.val != "" && c.Cluster == nil {
			return fmt.Errorf("%s is for the cluster's store: give --cluster etcd=URL too", f.name)
		}
	}
	if o.clusterCA != "" || o.clusterCert != "" || o.clusterKey != "" {
		for _, u := range c.Cluster {
			if !strings.HasPrefix(u, "https://") {
				return fmt.Errorf("--cluster URL %s is http://, without TLS, but --cluster-ca, --cluster-cert or --cluster-key is given: use https:// URLs for etcd over TLS", u)
			}
		}
	}
	if o.clusterCert != "" && o.clusterKey == "" {
		return fmt.Errorf("--cluster-cert needs --cluster-key FILE, its private key")
	}
	if o.clusterKey != "" && o.clusterCert == "" {
		return fmt.Errorf("--cluster-key needs --cluster-cert FILE, the certificate of that key")
	}
	unwrap := func(err error) string { return strings.TrimPrefix(err.Error(), cluster.ErrInvalid.Error()+": ") }
	if o.clusterCA != "" || o.clusterCert != "" {
		if _, err := cluster.TLSConfig(o.clusterCA, "", ""); err != nil {
			return fmt.Errorf("--cluster-ca %s: %s", o.clusterCA, unwrap(err))
		}
		cfg, err := cluster.TLSConfig(o.clusterCA, o.clusterCert, o.clusterKey)
		if err != nil {
			return fmt.Errorf("--cluster-cert %s, --cluster-key %s: %s", o.clusterCert, o.clusterKey, unwrap(err))
		}
		c.ClusterTLS = cfg
	}
	switch {
	case o.clusterUser != "" && o.clusterPasswordFile == "":
		return fmt.Errorf("--cluster-user needs --cluster-password-file FILE, a file that holds the user's password")
	case o.clusterPasswordFile != "" && o.clusterUser == "":
		return fmt.Errorf("--cluster-password-file needs --cluster-user NAME, the etcd user whose password it holds")
	case o.clusterUser != "":
		pw, err := readPassword(o.clusterPasswordFile)
		if err != nil {
			return err
		}
		c.ClusterUser, c.ClusterPassword = o.clusterUser, pw
	}
	return nil
}

// readPassword reads the first line of a password file, which must be
// private (as ssh wants a private key): owned by root or by this
// daemon's user, with no permission for group or others.
func readPassword(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("--cluster-password-file %s: no such file", path)
		}
		return "", fmt.Errorf("--cluster-password-file: %w", err)
	}
	defer f.Close()
	// Checked on the open file, so that what is read is what was checked.
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("--cluster-password-file: %w", err)
	}
	if err := privateFile(path, fi, os.Geteuid()); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("--cluster-password-file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("--cluster-password-file %s: the first line is empty; put the password of --cluster-user there", path)
	}
	return line, nil
}

// privateFile refuses a password file that is not a regular file, that
// gives group or others any permission, or that is owned by neither root
// nor euid.
func privateFile(path string, fi os.FileInfo, euid int) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("--cluster-password-file %s: not a regular file (%s); give a file that holds the password", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("--cluster-password-file %s: its mode is %04o: group or others may get at the password it holds; make it its owner's only: chmod 600 %s", path, uint32(perm), path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != euid {
		return fmt.Errorf("--cluster-password-file %s: owned by uid %d, neither root nor this daemon's user (uid %d), who could change it; chown it to root or to uid %d", path, st.Uid, euid, euid)
	}
	return nil
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
