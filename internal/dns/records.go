package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	mdns "github.com/miekg/dns"
)

var (
	// ErrInvalidName reports a name or domain that is not made of DNS labels.
	ErrInvalidName = errors.New("dns: invalid name")
	// ErrInvalidAddr reports an address that cannot go into an A or AAAA
	// record.
	ErrInvalidAddr = errors.New("dns: invalid address")
)

// Records holds the names of the ports of one network. It is safe for
// concurrent use. Every query reads it and only attach and detach write it,
// so readers load an immutable snapshot without locking and writers build a
// new one.
//
// The zero value is usable and has no domain: it answers single-label names
// only.
type Records struct {
	// domain is the network's domain, lower case, without the trailing
	// dot; its labels are in domainLabels. Both are set once by NewRecords.
	domain       string
	domainLabels []string

	// mu serialises writers; readers use tab only.
	mu sync.Mutex
	// ports maps a port name to what Set was given for it.
	ports map[string]port

	// tab is the snapshot lookups read, rebuilt from ports on every write.
	tab atomic.Pointer[table]
}

// port is what one port contributes: its aliases and addresses, already
// validated and normalised.
type port struct {
	aliases []string
	addrs   []netip.Addr
}

// table is an immutable lookup snapshot.
type table struct {
	// names maps each name and alias (a lower-case label) to the addresses
	// of every port that claims it; a present key with no addresses is a
	// name without records.
	names map[string][]netip.Addr
	// ptr maps an address to the names of the ports holding it.
	ptr map[netip.Addr][]string
}

// NewRecords returns empty Records for the network whose domain is domain
// (the network name), so that NAME.DOMAIN resolves as well as NAME. An empty
// domain leaves single-label names only.
func NewRecords(domain string) (*Records, error) {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	r := &Records{domain: d}
	if d == "" {
		return r, nil
	}
	if len(d) > 253-64 {
		// Leave room for a 63-byte port name and its dot.
		return nil, fmt.Errorf("domain %q: too long: %w", domain, ErrInvalidName)
	}
	r.domainLabels = strings.Split(d, ".")
	for _, l := range r.domainLabels {
		if !validLabel(l) {
			return nil, fmt.Errorf("domain %q: label %q: %w", domain, l, ErrInvalidName)
		}
	}
	return r, nil
}

// Domain returns the network's domain, lower case and without the trailing
// dot, or "" if it has none.
func (r *Records) Domain() string { return r.domain }

// Set adds or replaces the port name, answering for name and each alias with
// addrs. Names are case-insensitive DNS labels; IPv4-mapped IPv6 addresses
// are stored as IPv4 and zones are dropped. A name already claimed by another
// port answers with the addresses of both, as a round-robin name does.
func (r *Records) Set(name string, aliases []string, addrs []netip.Addr) error {
	key := strings.ToLower(name)
	if !validLabel(key) {
		return fmt.Errorf("set %q: %w", name, ErrInvalidName)
	}
	p := port{}
	for _, a := range aliases {
		la := strings.ToLower(a)
		if !validLabel(la) {
			return fmt.Errorf("set %q: alias %q: %w", name, a, ErrInvalidName)
		}
		if la != key && !slices.Contains(p.aliases, la) {
			p.aliases = append(p.aliases, la)
		}
	}
	for _, a := range addrs {
		if !a.IsValid() || a.IsUnspecified() {
			return fmt.Errorf("set %q: address %v: %w", name, a, ErrInvalidAddr)
		}
		a = a.Unmap().WithZone("")
		if !slices.Contains(p.addrs, a) {
			p.addrs = append(p.addrs, a)
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ports == nil {
		r.ports = make(map[string]port)
	}
	r.ports[key] = p
	r.rebuild()
	return nil
}

// Remove deletes the port name and its aliases. Removing an unknown name
// does nothing.
func (r *Records) Remove(name string) {
	key := strings.ToLower(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ports[key]; !ok {
		return
	}
	delete(r.ports, key)
	r.rebuild()
}

// rebuild publishes a new snapshot of r.ports. The caller holds r.mu.
func (r *Records) rebuild() {
	t := &table{
		names: make(map[string][]netip.Addr),
		ptr:   make(map[netip.Addr][]string),
	}
	// Sorted so that answers do not change order from one rebuild to the
	// next, which keeps clients' caches and tests stable.
	keys := make([]string, 0, len(r.ports))
	for k := range r.ports {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := r.ports[k]
		for _, n := range append([]string{k}, p.aliases...) {
			cur := t.names[n]
			if cur == nil {
				cur = []netip.Addr{}
			}
			for _, a := range p.addrs {
				if !slices.Contains(cur, a) {
					cur = append(cur, a)
				}
			}
			t.names[n] = cur
		}
		for _, a := range p.addrs {
			t.ptr[a] = append(t.ptr[a], k)
		}
	}
	r.tab.Store(t)
}

// Lookup returns the addresses of qname for qtype (A: IPv4, AAAA: IPv6, ANY:
// both, anything else: none). found reports whether qname exists at all, so
// that a name without records of qtype is told apart from an unknown name:
// NOERROR with no answer rather than NXDOMAIN. qname may be NAME or
// NAME.DOMAIN, in any case, with or without the trailing dot; the domain
// itself exists too. The returned slice must not be modified.
func (r *Records) Lookup(qname string, qtype uint16) (addrs []netip.Addr, found bool) {
	labels := mdns.SplitDomainName(qname)
	var all []netip.Addr
	if len(labels) == 1 || len(labels) == 1+len(r.domainLabels) && r.underDomain(labels) {
		if t := r.tab.Load(); t != nil {
			all, found = t.names[strings.ToLower(labels[0])]
		}
	}
	if !found {
		// The domain is the parent of every name, so it exists even though
		// it has no records of its own.
		return nil, len(labels) > 0 && len(labels) == len(r.domainLabels) && r.underDomain(labels)
	}
	switch qtype {
	case mdns.TypeANY:
		return all, true
	case mdns.TypeA, mdns.TypeAAAA:
		want4 := qtype == mdns.TypeA
		for _, a := range all {
			if a.Is4() == want4 {
				addrs = append(addrs, a)
			}
		}
		return addrs, true
	default:
		return nil, true
	}
}

// Reverse returns the port names holding addr, sorted, without the domain.
func (r *Records) Reverse(addr netip.Addr) (names []string) {
	t := r.tab.Load()
	if t == nil {
		return nil
	}
	return slices.Clone(t.ptr[addr.Unmap().WithZone("")])
}

// local reports whether qname belongs to this network's namespace: a single
// label, or the domain or a name under it. Such names are answered here and
// never forwarded, which is what keeps other networks' names out of reach.
func (r *Records) local(qname string) bool {
	labels := mdns.SplitDomainName(qname)
	return len(labels) == 1 || (len(r.domainLabels) > 0 && r.underDomain(labels))
}

// underDomain reports whether labels ends with the domain's labels.
func (r *Records) underDomain(labels []string) bool {
	n := len(r.domainLabels)
	if n == 0 || len(labels) < n {
		return false
	}
	for i, l := range labels[len(labels)-n:] {
		if !strings.EqualFold(l, r.domainLabels[i]) {
			return false
		}
	}
	return true
}

// validLabel reports whether s, already lower case, is a host name label
// (RFC 1123: letters, digits and inner hyphens, 1 to 63 bytes). Underscores
// are allowed as well because port names may hold them and resolvers pass
// them through; a dot is not, since a name is a single label under the
// network's domain.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
