package nat

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// TableName is the nftables table (family inet) that holds every rule of
// this package.
const TableName = "tapswitch"

// MaxNameLen bounds a network's name, which is stored in each rule's
// comment; nft shows comments of up to 128 bytes.
const MaxNameLen = 64

// maxIfaceLen is IFNAMSIZ less the terminating NUL.
const maxIfaceLen = 15

var (
	// ErrInvalidNetwork reports a Network that cannot be turned into rules.
	ErrInvalidNetwork = errors.New("nat: invalid network")
	// ErrUnknownNetwork reports a network name that has no rules.
	ErrUnknownNetwork = errors.New("nat: no such network")
	// ErrClosed reports a call on a Manager after Close.
	ErrClosed = errors.New("nat: manager closed")
	// ErrNotSupported reports a platform without nftables.
	ErrNotSupported = errors.New("nat: not supported on this platform")
)

// Network is what the firewall needs to know of a tapswitch network.
type Network struct {
	// Name identifies the network; its rules carry it in their comment.
	Name string
	// Subnet is the network's address range: its sources are masqueraded.
	// An address with a prefix length (10.20.0.1/24) is taken as its
	// subnet.
	Subnet netip.Prefix
	// Bridge is the gateway interface in the Manager's namespace, the
	// network's way in and out of the host.
	Bridge string
	// Gateway is the network's address on Bridge, where its DNS server
	// listens. An internal network's gateway interface admits DNS and
	// echo requests to it besides replies; without a Gateway it admits
	// replies only.
	Gateway netip.Addr
	// Internal networks get no forwarding at all, and their gateway
	// interface admits nothing of the host but their own DNS.
	Internal bool
	// Subnet6 and Gateway6 are the IPv6 subnet and gateway address of a
	// dual-stack network, whose Subnet and Gateway are IPv4: both
	// families are masqueraded, guarded and admitted alike. Zero for a
	// network of one subnet.
	Subnet6  netip.Prefix
	Gateway6 netip.Addr
}

// subnets returns n's subnets, one or two.
func (n Network) subnets() []netip.Prefix {
	if n.Subnet6.IsValid() {
		return []netip.Prefix{n.Subnet, n.Subnet6}
	}
	return []netip.Prefix{n.Subnet}
}

// gateways returns n's gateway addresses, those set.
func (n Network) gateways() []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Addr{n.Gateway, n.Gateway6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// Option configures New.
type Option func(*config)

type config struct {
	// table is the nftables table's name.
	table string
	// isolate is the name prefix shared by every network's gateway
	// interface; traffic is not forwarded from one such interface to
	// another. Empty means no isolation rules.
	isolate string
	// netns is a file descriptor of the network namespace to work in, or
	// -1 for the caller's own.
	netns int
}

// WithNetNS makes the Manager create its table, and enable forwarding, in
// the network namespace that fd refers to (an open /run/netns/NAME or
// /proc/PID/ns/net) instead of the caller's. The Manager keeps a
// duplicate of fd, so the caller may close its own.
func WithNetNS(fd int) Option {
	return func(c *config) { c.netns = fd }
}

// WithTable names the table (default TableName), so that daemons with
// separate state can run side by side without replacing each other's.
func WithTable(name string) Option {
	return func(c *config) { c.table = name }
}

// WithIsolation keeps networks apart at the IP layer: nothing is
// forwarded from a network's gateway interface to another interface whose
// name starts with prefix, the prefix all gateway interfaces share. Docker
// does the same with its isolation chains; without it the host would
// route between networks that must not see each other.
func WithIsolation(prefix string) Option {
	return func(c *config) { c.isolate = prefix }
}

// Manager owns the tapswitch table of one network namespace. It is safe
// for concurrent use.
type Manager struct {
	log *slog.Logger

	// mu serialises calls: each reads the kernel's rules and then changes
	// them, which must not interleave with another call's change.
	mu     sync.Mutex
	closed bool
	sys    *system
	// table is the table's name, for logs.
	table string
}

// New creates the tapswitch table with its postrouting, forward and
// input chains, replacing a table of that name a previous daemon left behind.
// A nil log means slog.Default().
func New(log *slog.Logger, opts ...Option) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg := config{netns: -1, table: TableName}
	for _, o := range opts {
		o(&cfg)
	}
	sys, err := newSystem(cfg)
	if err != nil {
		return nil, err
	}
	log.Debug("nat: table created", "table", "inet "+cfg.table)
	return &Manager{log: log, sys: sys, table: cfg.table}, nil
}

// AddNetwork gives n its rules, replacing those of a network of the same
// name. A non-internal network also turns on forwarding for its address
// family (see the package documentation: that is host-wide and stays on).
func (m *Manager) AddNetwork(n Network) error {
	n, err := normalize(n)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("add network %q: %w", n.Name, ErrClosed)
	}
	if err := m.sys.addNetwork(n); err != nil {
		return fmt.Errorf("add network %q: %w", n.Name, err)
	}
	m.log.Info("nat: network rules set", "network", n.Name, "subnet", n.Subnet, "subnet6", n.Subnet6, "bridge", n.Bridge, "internal", n.Internal)
	return nil
}

// RemoveNetwork deletes the rules of the network called name, and only
// those. It reports ErrUnknownNetwork when there are none.
func (m *Manager) RemoveNetwork(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("remove network %q: %w", name, ErrClosed)
	}
	if err := m.sys.removeNetwork(name); err != nil {
		return fmt.Errorf("remove network %q: %w", name, err)
	}
	m.log.Info("nat: network rules removed", "network", name)
	return nil
}

// Networks returns, sorted, the names of the networks that have rules in
// the kernel's copy of the table: what is in force, not what was asked.
func (m *Manager) Networks() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("list networks: %w", ErrClosed)
	}
	names, err := m.sys.networks()
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	return names, nil
}

// Dropped returns, for each network with rules, how many packets its drop
// rules have dropped since they were added: isolation, new connections
// from outside into the network, and for an internal network everything
// it sends out or is sent, and what its gateway interface does not admit.
func (m *Manager) Dropped() (map[string]uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("read drop counters: %w", ErrClosed)
	}
	drops, err := m.sys.dropped()
	if err != nil {
		return nil, fmt.Errorf("read drop counters: %w", err)
	}
	return drops, nil
}

// Close deletes the whole table, for daemon shutdown. Forwarding stays
// on. Calls after the first do nothing.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if err := m.sys.close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	m.log.Debug("nat: table deleted", "table", "inet "+m.table)
	return nil
}

// normalize checks n and returns it with its subnet masked.
func normalize(n Network) (Network, error) {
	if err := checkName(n.Name); err != nil {
		return n, err
	}
	if err := checkIface(n.Bridge); err != nil {
		return n, fmt.Errorf("network %q: %w", n.Name, err)
	}
	if !n.Subnet.IsValid() {
		return n, fmt.Errorf("network %q: %w: subnet %v is not a valid prefix", n.Name, ErrInvalidNetwork, n.Subnet)
	}
	if n.Subnet.Addr().Is4In6() {
		return n, fmt.Errorf("network %q: %w: subnet %v is IPv4-mapped IPv6; give the IPv4 prefix", n.Name, ErrInvalidNetwork, n.Subnet)
	}
	if n.Subnet.Addr().Zone() != "" {
		return n, fmt.Errorf("network %q: %w: subnet %v has a zone", n.Name, ErrInvalidNetwork, n.Subnet)
	}
	n.Subnet = n.Subnet.Masked()
	if n.Gateway.IsValid() && !n.Subnet.Contains(n.Gateway) {
		// Contains is false for another family, a zone or a mapped form.
		return n, fmt.Errorf("network %q: %w: gateway %v is not an address of subnet %v", n.Name, ErrInvalidNetwork, n.Gateway, n.Subnet)
	}
	if !n.Subnet6.IsValid() {
		if n.Gateway6.IsValid() {
			return n, fmt.Errorf("network %q: %w: IPv6 gateway %v without an IPv6 subnet", n.Name, ErrInvalidNetwork, n.Gateway6)
		}
		return n, nil
	}
	if !n.Subnet.Addr().Is4() || !n.Subnet6.Addr().Is6() || n.Subnet6.Addr().Is4In6() || n.Subnet6.Addr().Zone() != "" {
		return n, fmt.Errorf("network %q: %w: subnets %v and %v: a dual-stack network has an IPv4 Subnet and an IPv6 Subnet6", n.Name, ErrInvalidNetwork, n.Subnet, n.Subnet6)
	}
	n.Subnet6 = n.Subnet6.Masked()
	if n.Gateway6.IsValid() && !n.Subnet6.Contains(n.Gateway6) {
		return n, fmt.Errorf("network %q: %w: gateway %v is not an address of subnet %v", n.Name, ErrInvalidNetwork, n.Gateway6, n.Subnet6)
	}
	return n, nil
}

// checkName accepts names that read well inside nft's quoted comments.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidNetwork)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: name %q is longer than %d bytes", ErrInvalidNetwork, name, MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name %q is not UTF-8", ErrInvalidNetwork, name)
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) || r == '"' || r == '\\' }):
		return fmt.Errorf("%w: name %q holds a control character, quote or backslash", ErrInvalidNetwork, name)
	}
	return nil
}

// checkIface applies the kernel's rules for interface names
// (dev_valid_name), so a name the kernel would refuse is refused here
// with a clearer message rather than matching nothing.
func checkIface(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty bridge interface name", ErrInvalidNetwork)
	case len(name) > maxIfaceLen:
		return fmt.Errorf("%w: bridge interface name %q is longer than %d bytes", ErrInvalidNetwork, name, maxIfaceLen)
	case name == "." || name == "..":
		return fmt.Errorf("%w: bridge interface name %q is not valid", ErrInvalidNetwork, name)
	case strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || r == 0 || unicode.IsSpace(r) }):
		return fmt.Errorf("%w: bridge interface name %q holds '/', ':', a NUL or a space", ErrInvalidNetwork, name)
	}
	return nil
}
