package daemon

import (
	"log/slog"
	"net/netip"

	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/internal/nat"
)

// host is what the daemon changes on the machine besides its TAPs (which
// Config.TAPs makes): routes and interface names inside namespaces, pins
// of namespaces, the firewall, the networks' DNS servers. linuxHost does
// it for real; the package's tests put a fake in its place, so that
// attach, connect, restore and every way they fail and roll back are
// tested without root.
type host interface {
	// addDefaultRoute makes gw, on ifname, the default route of the
	// namespace at netnsPath; errDefaultRouteExists if it has one.
	addDefaultRoute(netnsPath, ifname string, gw netip.Addr) error
	// nextIfname is the first of eth0, eth1, ... no interface of the
	// namespace is called.
	nextIfname(netnsPath string) (string, error)
	// pin bind-mounts the namespace file src on dst; unpin undoes it.
	pin(src, dst string) error
	unpin(path string) error
	// firewall makes or takes over the daemon's nftables table.
	firewall(log *slog.Logger, table, isolation string) (firewall, error)
	// startDNS starts a network's DNS server.
	startDNS(cfg dns.Config) (nameServer, error)
}

// firewall is the daemon's nftables table (nat.Manager).
type firewall interface {
	AddNetwork(n nat.Network) error
	RemoveNetwork(name string) error
	Close() error
}

// nameServer is a network's DNS server (dns.Server).
type nameServer interface {
	Addr() netip.AddrPort
	Close() error
}

// linuxHost is the machine itself.
type linuxHost struct{}

func (linuxHost) addDefaultRoute(netnsPath, ifname string, gw netip.Addr) error {
	return addDefaultRoute(netnsPath, ifname, gw)
}

func (linuxHost) nextIfname(netnsPath string) (string, error) { return nextIfname(netnsPath) }

func (linuxHost) pin(src, dst string) error { return pin(src, dst) }

func (linuxHost) unpin(path string) error { return unpin(path) }

func (linuxHost) firewall(log *slog.Logger, table, isolation string) (firewall, error) {
	return nat.New(log, nat.WithTable(table), nat.WithIsolation(isolation))
}

func (linuxHost) startDNS(cfg dns.Config) (nameServer, error) {
	srv := dns.NewServer(cfg)
	if err := srv.Start(); err != nil {
		return nil, err
	}
	return srv, nil
}
