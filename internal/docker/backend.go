package docker

import (
	"context"
	"net/netip"
)

// Backend does what the calls ask; the daemon implements it. Each method
// is idempotent: a call Docker repeats (after its own restart) succeeds
// without doing its work twice, and one for something already gone
// succeeds. Errors say what happened and what to do; their text is what
// the docker command shows.
type Backend interface {
	CreateNetwork(ctx context.Context, n Network) error
	DeleteNetwork(ctx context.Context, networkID string) error
	// CreateEndpoint reserves the endpoint's addresses and returns its
	// interface as far as Docker left it to the driver (the MAC).
	CreateEndpoint(ctx context.Context, e Endpoint) (EndpointInterface, error)
	DeleteEndpoint(ctx context.Context, networkID, endpointID string) error
	// EndpointInfo is what `docker inspect` and `docker port` show of
	// the endpoint: OptionPortMap with the host ports in use.
	EndpointInfo(ctx context.Context, networkID, endpointID string) (map[string]any, error)
	Join(ctx context.Context, j Join) (JoinResponse, error)
	Leave(ctx context.Context, networkID, endpointID string) error
	// ProgramExternal publishes the ports of portMap (nil: those of
	// CreateEndpoint or Join); RevokeExternal stops publishing them.
	ProgramExternal(ctx context.Context, networkID, endpointID string, portMap []PortBinding) error
	RevokeExternal(ctx context.Context, networkID, endpointID string) error

	// RequestPool holds a subnet for a network Docker is about to
	// create: p.Prefix if free, else a free one; it returns the pool's
	// id and prefix.
	RequestPool(ctx context.Context, p Pool) (id string, prefix netip.Prefix, err error)
	ReleasePool(ctx context.Context, poolID string) error
	// RequestAddress hands out addr (invalid: any free one, or the
	// gateway's when gateway is set) from the pool, with the pool's
	// length.
	RequestAddress(ctx context.Context, poolID string, addr netip.Addr, gateway bool) (netip.Prefix, error)
	ReleaseAddress(ctx context.Context, poolID string, addr netip.Addr) error
}
