package metrics

import (
	"context"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/fdb"
)

// Source gives the daemon's counters as they are at one moment. ctx
// bounds the wait for whatever lock the Source takes to list its ports
// and networks; reading the counters themselves takes none.
type Source interface {
	MetricsSnapshot(ctx context.Context) (Snapshot, error)
}

// Snapshot is what one scrape shows of the daemon.
type Snapshot struct {
	Ports    []Port
	Networks []Network
	Restore  Restore
	// FDBudget is the budget of descriptors outsiders draw from
	// (internal/fdlimit).
	FDBudget FDBudget
	// Tunnel and Cluster are nil without --advertise and --cluster.
	Tunnel  *Tunnel
	Cluster *Cluster
}

// Port is one port of the switch, a container's or a gateway.
type Port struct {
	Name, Network string
	// Kind is api.KindContainer or api.KindGateway.
	Kind  string
	Stats api.PortCounters
	// MACs the network has learned behind the port, of at most MACLimit.
	MACs, MACLimit int
	// Published are the port's published ports being served.
	Published []api.PublishedCounters
}

// Network is one network: its forwarding table and its DNS server.
type Network struct {
	Name string
	// FDBEntries are the MACs learned, of at most FDBLimit.
	FDBEntries, FDBLimit int
	FDB                  fdb.Stats
	// DNS is nil while the network has no DNS server.
	DNS *api.DNSCounters
}

// Restore is how the daemon's last start went.
type Restore struct {
	// Duration is from the start of the process until the state was
	// restored and the API served.
	Duration time.Duration
	// RestoredPorts and DroppedPorts are the ports of the state file
	// taken back, and given up (namespace or TAP gone).
	RestoredPorts, DroppedPorts int
	// FirstForward is from the start of the process until the first
	// frame was forwarded; negative until one has been.
	FirstForward time.Duration
}

// FDBudget is the descriptor budget's use (fdlimit.Budget).
type FDBudget struct {
	Used, Limit int
	// Refused counts descriptors asked for and refused.
	Refused uint64
}
