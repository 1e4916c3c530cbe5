package cluster

import (
	"net"
	"net/netip"
	"time"
)

// View is what the store holds, as last read: every live host, every
// cluster network and every published endpoint, each list sorted.
type View struct {
	Hosts     []Host
	Networks  []Network
	Endpoints []Endpoint
}

// Host is a tapswitchd registered in the cluster under its lease.
type Host struct {
	// Name is unique in the cluster.
	Name string
	// VTEP is the address its VXLAN socket is bound to.
	VTEP netip.Addr
	// Since is when the host registered (its current lease).
	Since time.Time
}

// Network is a cluster network: it exists on every host.
type Network struct {
	Name string
	// VNI is the VXLAN network identifier, 1 to 2^24-1.
	VNI     uint32
	Subnets []Subnet
	// Internal networks have no route out of the overlay.
	Internal bool
}

// Subnet is one address range of a cluster network.
type Subnet struct {
	Prefix netip.Prefix
	// Gateway is the anycast gateway address, the same on every host.
	Gateway netip.Addr
}

// Endpoint is a port of a cluster network on some host: where its MAC
// lives, for unicast without flooding, and its names' addresses for DNS.
type Endpoint struct {
	Network string
	Name    string
	Host    string
	MAC     net.HardwareAddr
	IPs     []netip.Addr
	VTEP    netip.Addr
}

// Status says whether the store is connected to etcd.
type Status struct {
	Connected bool
	// Since is when Connected last changed; for a store that carried on
	// a predecessor's lease and connection (Config.ConnectedSince), when
	// the predecessor's store connected.
	Since time.Time
	// LastError is the last failure talking to etcd, "" if none since
	// the last connect.
	LastError string
	// Endpoints are the etcd client URLs.
	Endpoints []string
	// Avoided are those of Endpoints whose members did not answer as
	// healthy when last asked, which calls do not go to (members.go).
	Avoided []string
}
