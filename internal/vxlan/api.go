package vxlan

import (
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// DefaultPort is the IANA port of VXLAN (RFC 7348 section 5).
const DefaultPort = 4789

// Overhead is what the tunnel adds to an inner IP packet: outer IPv4 20,
// UDP 8, VXLAN 8 and the inner Ethernet header 14. The overlay MTU is the
// underlay MTU less Overhead (less 20 more over IPv6: Endpoint.OverlayMTU).
const Overhead = 50

// Config configures an Endpoint.
type Config struct {
	// Local is the advertised address; every socket binds to it (never
	// the wildcard).
	Local netip.Addr
	// Port is the UDP port; 0 means DefaultPort.
	Port int
	// Logger gets the endpoint's few log lines; nil means slog.Default.
	Logger *slog.Logger
	// Receivers is how many sockets receive, sharing the port
	// (SO_REUSEPORT), each read by a goroutine of its own that feeds
	// a queue of its own of every tunnel: the kernel spreads the
	// datagrams of different flows over them, and one flow keeps to
	// one. 0 means 1; at most MaxReceivers.
	Receivers int
	// Inherited are receiving sockets another endpoint of this host
	// handed over (ExportReceivers of a daemon that hands over to its
	// successor): Listen takes them, and closes the descriptors. It
	// reads them if each is a UDP socket bound to Local and Port (and,
	// if there are several, sharing it with SO_REUSEPORT); else it says
	// why in the log and binds afresh. Datagrams that arrived in
	// between wait in them, and are read. If fewer were handed over
	// than Receivers, Listen opens the others into the same
	// SO_REUSEPORT group; if more, it closes the surplus, and the
	// datagrams waiting in those are lost.
	Inherited []int
	// Paused starts the endpoint with its reads paused (PauseReads),
	// until ResumeReads: the tunnels a predecessor's datagrams are for
	// are not made yet.
	Paused bool
}

// MaxReceivers bounds Config.Receivers.
const MaxReceivers = 16

// TunnelOptions configures a Tunnel.
type TunnelOptions struct {
	// HostOnly MACs (the network's anycast gateway, the same MAC on every
	// host) never cross the tunnel: a frame from or to one is not sent,
	// and one arriving from one is dropped.
	HostOnly []net.HardwareAddr
	// MTU is the overlay MTU (the largest inner IP packet): super-frames
	// are cut to it; 0 means Endpoint.OverlayMTU.
	MTU int
}

// Stats are an Endpoint's counters, over all its tunnels.
type Stats struct {
	RxPackets, RxBytes uint64 // inner frames handed to tunnels
	TxPackets, TxBytes uint64 // inner frames sent (each replicated copy counts)
	DropNotMember      uint64 // packets from an address not in SetMembers
	DropUnknownVNI     uint64 // packets for a VNI with no tunnel
	DropMalformed      uint64 // packets too short or without the I flag
	DropHostOnly       uint64 // frames from or to a HostOnly MAC
	TxErrors           uint64 // frames not sent: socket errors, no VTEP, uncuttable
}

// Peer is one VTEP the endpoint heard from or sent to.
type Peer struct {
	VTEP      netip.Addr
	LastHeard time.Time // zero if never heard
	RxPackets uint64
	TxPackets uint64
	// Checksummed: its frames are taken as known good (SetChecksummed).
	Checksummed bool
}

// Remote is one MAC behind a VTEP in a tunnel's table.
type Remote struct {
	MAC      net.HardwareAddr
	VTEP     netip.Addr
	Static   bool      // set by SetRemote: never ages
	LastSeen time.Time // the last frame from MAC (learned entries)
}

// TunnelStats are one tunnel's counters.
type TunnelStats struct {
	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64
	Floods             uint64 // copies sent by head-end replication
	Drops              uint64 // frames dropped: HostOnly, no VTEP, uncuttable, send errors
}
