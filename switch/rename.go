package vswitch

import "fmt"

// A rename changes what a port or network is called and nothing else:
// the forwarding path never reads names, and readers of Name (the API,
// logs, metrics) see the old or the new one whole.

// RenamePort renames p to name, which no other port of the switch may
// have.
func (s *Switch) RenamePort(p *Port, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := p.Name()
	if s.ports[old] != p {
		return fmt.Errorf("port %q: %w", old, ErrNoPort)
	}
	if old == name {
		return nil
	}
	if _, ok := s.ports[name]; ok {
		return fmt.Errorf("port %q: %w", name, ErrPortExists)
	}
	delete(s.ports, old)
	s.ports[name] = p
	p.name.Store(&name)
	s.log.Info("port renamed", "port", name, "was", old, "id", p.id)
	return nil
}

// RenameNetwork renames the network old to name, which no other network
// of the switch may have.
func (s *Switch) RenameNetwork(old, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.networks[old]
	if !ok {
		return fmt.Errorf("network %q: %w", old, ErrNoNetwork)
	}
	if old == name {
		return nil
	}
	if _, ok := s.networks[name]; ok {
		return fmt.Errorf("network %q: %w", name, ErrNetworkExists)
	}
	delete(s.networks, old)
	s.networks[name] = n
	n.name.Store(&name)
	s.log.Info("network renamed", "network", name, "was", old)
	return nil
}
