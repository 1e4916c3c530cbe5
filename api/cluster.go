package api

import "time"

// Network scopes.
const (
	// ScopeLocal is a network of one host: today's and the default.
	ScopeLocal = "local"
	// ScopeCluster is a network that spans hosts: its frames cross
	// between them in VXLAN (RFC 7348) with the network's VNI, to the
	// cluster's hosts (tapswitchd --cluster) and the static peers
	// (tapswitchd --vxlan-peer).
	ScopeCluster = "cluster"
)

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// KindTunnel is a cluster network's VXLAN tunnel: one port per network,
// in the daemon, through which the network's frames go to and come from
// the other hosts.
const KindTunnel = "tunnel"

// Peer is a host a cluster network's frames cross to: a member of the
// cluster (this host included, as Self) or a static peer (--vxlan-peer).
type Peer struct {
	// Name is the host's name in the cluster; empty for a static peer
	// that is no cluster member.
	Name string `json:"name,omitempty"`
	// VTEP is the host's tunnel address (its --advertise).
	VTEP string `json:"vtep"`
	// Self is this host.
	Self bool `json:"self,omitempty"`
	// Static: named by --vxlan-peer.
	Static bool `json:"static,omitempty"`
	// Since is when the host joined the cluster; zero for a static peer.
	Since time.Time `json:"since,omitzero"`
	// LastHeard is when a packet last came from the host; zero if never.
	LastHeard time.Time `json:"last_heard,omitzero"`
	// RxPackets and TxPackets count the VXLAN packets received from the
	// host and sent to it.
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
	// MACs are the addresses known to be behind the host, by network.
	MACs []PeerMAC `json:"macs"`
}

// PeerMAC is one MAC address behind a peer.
type PeerMAC struct {
	MAC     string `json:"mac"`
	Network string `json:"network"`
	// Static: published in the cluster's store (an endpoint of the
	// host); else learned from a frame that came from the host.
	Static bool `json:"static,omitempty"`
}

// ClusterStatus is the state of the cluster's store, as Status shows it.
type ClusterStatus struct {
	// Host is this host's name in the cluster, Advertise its tunnel
	// address.
	Host      string `json:"host"`
	Advertise string `json:"advertise"`
	// Endpoints are the store's URLs.
	Endpoints []string `json:"endpoints"`
	// Connected says whether the store is reachable now, Since since
	// when it is, or is not.
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since,omitzero"`
	// LastError is the last failure to reach the store.
	LastError string `json:"last_error,omitempty"`
	// Avoided are those of Endpoints whose etcd members did not answer
	// as healthy when last asked (every second, with several members):
	// the store's calls go to the others until they do.
	Avoided []string `json:"avoided,omitempty"`
	// Hosts counts the cluster's hosts, this one included.
	Hosts int `json:"hosts"`
}

// TunnelStatus is the VXLAN endpoint's counters, as Status shows them.
type TunnelStatus struct {
	// Advertise is the address the tunnel socket is bound to, Port its
	// UDP port.
	Advertise string `json:"advertise"`
	Port      int    `json:"port"`
	// UnderlayMTU is the MTU of the advertised address's link; cluster
	// networks get it less the VXLAN overhead.
	UnderlayMTU int    `json:"underlay_mtu"`
	RxPackets   uint64 `json:"rx_packets"`
	RxBytes     uint64 `json:"rx_bytes"`
	TxPackets   uint64 `json:"tx_packets"`
	TxBytes     uint64 `json:"tx_bytes"`
	TxErrors    uint64 `json:"tx_errors"`
	// Dropped counts packets dropped, by reason: "not_member" (from an
	// address that is neither a cluster host nor a static peer),
	// "unknown_vni" (for a network this host does not have),
	// "malformed", "host_only" (to or from a network's gateway, which
	// every host has of its own).
	Dropped map[string]uint64 `json:"dropped"`
}
