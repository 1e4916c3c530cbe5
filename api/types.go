package api

import "time"

// DefaultSocket is where tapswitchd listens and the CLI connects unless
// told otherwise (--socket or TAPSWITCH_SOCKET).
const DefaultSocket = "/run/tapswitch/tapswitch.sock"

// SocketEnv names the environment variable that overrides DefaultSocket.
const SocketEnv = "TAPSWITCH_SOCKET"

// DefaultNetwork is the network ports join when none is named.
const DefaultNetwork = "default"

// Version describes a tapswitchd build.
type Version struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Pid       int    `json:"pid"`
}

// Status is the daemon's health: its process, what it holds, and how its
// last start went. Times "since start" count from when the process
// started (tapswitchd: when its main function began).
type Status struct {
	Version   string    `json:"version"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	// Goroutines, OpenFDs and RSSBytes are the process's goroutines,
	// open file descriptors and resident memory, for spotting leaks.
	Goroutines int    `json:"goroutines"`
	OpenFDs    int    `json:"open_fds"`
	RSSBytes   uint64 `json:"rss_bytes"`
	// Networks and Ports count the networks and the container ports.
	Networks int `json:"networks"`
	Ports    int `json:"ports"`
	// RestoredPorts are the ports of the state file taken back at start;
	// DroppedPorts those whose namespace or TAP was gone.
	RestoredPorts int `json:"restored_ports"`
	DroppedPorts  int `json:"dropped_ports"`
	// RestoreMs is the time from start until the state was restored and
	// the API served.
	RestoreMs float64 `json:"restore_ms"`
	// FirstForwardMs is the time from start until the switch forwarded
	// its first frame, to within a millisecond; -1 until it has. After a
	// restart it is the outage the daemon itself caused.
	FirstForwardMs float64 `json:"first_forward_ms"`
	// Cluster is the cluster's store (tapswitchd --cluster); nil
	// without one.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
	// Tunnel is the VXLAN endpoint (tapswitchd --advertise); nil
	// without one.
	Tunnel *TunnelStatus `json:"tunnel,omitempty"`
}

// AttachRequest asks the daemon to create a TAP inside a namespace and
// plug it into a network.
type AttachRequest struct {
	// Netns is a name under /run/netns, "pid:PID", or a path to a
	// network namespace file such as /proc/PID/ns/net.
	Netns string `json:"netns"`
	// Network is the network to join; empty means DefaultNetwork.
	Network string `json:"network,omitempty"`
	// Name is the port's name; empty means one is derived from Netns.
	Name string `json:"name,omitempty"`
	// Ifname is the TAP's name inside the namespace; empty means "eth0".
	Ifname string `json:"ifname,omitempty"`
	// IPs are addresses in CIDR form (IPv4 or IPv6) to put on the TAP.
	IPs []string `json:"ips,omitempty"`
	// MAC is the TAP's hardware address; empty means a random one.
	MAC string `json:"mac,omitempty"`
	// MTU of the TAP; 0 means 1500.
	MTU int `json:"mtu,omitempty"`
	// Publish lists host ports to forward to the port, each
	// [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp] as in `docker run -p`.
	Publish []string `json:"publish,omitempty"`
	// DNSName is the name the network's DNS answers with the port's
	// addresses, besides the port's own name; empty means the port's
	// name only. A container on several networks has one DNS name and a
	// port of another name on each.
	DNSName string `json:"dns_name,omitempty"`
	// ContainerID is a container engine's id of the container the port
	// is for (CNI_CONTAINERID), kept with the port so that the engine
	// finds it again to check, delete or garbage-collect it. At most
	// MaxContainerID characters: letters, digits, '_', '.' and '-'.
	ContainerID string `json:"container_id,omitempty"`
	// AllowHostNetns lets Netns be the daemon's own network namespace,
	// the host's, which is refused otherwise: the port's TAP and a
	// route for the network's subnet would go into the host.
	AllowHostNetns bool `json:"allow_host_netns,omitempty"`
	PortPolicy
}

// MaxContainerID bounds AttachRequest.ContainerID.
const MaxContainerID = 256

// PortPolicy is what a port may send and how much of the network's
// forwarding table it may fill. The zero value is the default: port
// security on, DefaultMACLimit.
type PortPolicy struct {
	// PortSecurity, when false, lets the port send frames from any
	// source MAC and IP address; nil or true allows only the port's own
	// MAC and addresses (ARP and neighbour discovery included).
	PortSecurity *bool `json:"port_security,omitempty"`
	// MACLimit is the most MAC addresses the network learns behind the
	// port, 1 to MaxMACLimit; 0 means DefaultMACLimit. It matters for a
	// port with security off, such as a namespace holding a bridge of
	// its own.
	MACLimit int `json:"mac_limit,omitempty"`
	// StormBroadcast, StormMulticast and StormUnknown bound the
	// broadcast, multicast and unknown-unicast frames a second the port
	// may send (storm control), 1 to MaxStormRate each; 0 means
	// DefaultStormRate, -1 no limit. Frames over the rate are dropped
	// (counted as "storm"). A port may send a second's worth at once.
	StormBroadcast int `json:"storm_broadcast,omitempty"`
	StormMulticast int `json:"storm_multicast,omitempty"`
	StormUnknown   int `json:"storm_unknown,omitempty"`
}

// DefaultStormRate and MaxStormRate bound the storm control rates of
// PortPolicy, in frames per second; NoStormLimit turns one off.
const (
	DefaultStormRate = 2000
	MaxStormRate     = 10_000_000
	NoStormLimit     = -1
)

// Secure reports whether port security is on under the policy.
func (p PortPolicy) Secure() bool { return p.PortSecurity == nil || *p.PortSecurity }

// DefaultMACLimit and MaxMACLimit bound PortPolicy.MACLimit.
const (
	DefaultMACLimit = 1024
	MaxMACLimit     = 1 << 20
)

// PortUpdateRequest changes an attached port's policy; a nil field is
// left as it is.
type PortUpdateRequest struct {
	PortSecurity *bool `json:"port_security,omitempty"`
	MACLimit     *int  `json:"mac_limit,omitempty"`
	// StormBroadcast, StormMulticast and StormUnknown are as in
	// PortPolicy: 0 puts a rate back to the default, -1 lifts it.
	StormBroadcast *int `json:"storm_broadcast,omitempty"`
	StormMulticast *int `json:"storm_multicast,omitempty"`
	StormUnknown   *int `json:"storm_unknown,omitempty"`
}

// Empty reports whether the request changes nothing.
func (r PortUpdateRequest) Empty() bool {
	return r.PortSecurity == nil && r.MACLimit == nil && r.StormBroadcast == nil && r.StormMulticast == nil && r.StormUnknown == nil
}

// ConnectRequest asks the daemon to give the namespace of an attached
// port a further interface, on another network.
type ConnectRequest struct {
	// Port is the name or id of a port already in the namespace.
	Port string `json:"port"`
	// Name is the new port's name; empty means PORT-NETWORK.
	Name string `json:"name,omitempty"`
	// IPs are addresses in CIDR form; empty means one from the
	// network's subnet.
	IPs []string `json:"ips,omitempty"`
	// AllowHostNetns lets Port be one in the daemon's own network
	// namespace, as AttachRequest.AllowHostNetns.
	AllowHostNetns bool `json:"allow_host_netns,omitempty"`
	PortPolicy
}

// NetworkCreateRequest asks the daemon for a new network.
type NetworkCreateRequest struct {
	// Name is the network's name, also its DNS domain.
	Name string `json:"name"`
	// Subnet in CIDR form; empty means a free one from the pool.
	Subnet string `json:"subnet,omitempty"`
	// Gateway is the daemon's address on the network; empty means the
	// subnet's first host address.
	Gateway string `json:"gateway,omitempty"`
	// Internal networks have no access outside and publish no ports.
	Internal bool `json:"internal,omitempty"`
	// Subnets are the network's subnets when it has more than one: at
	// most one IPv4 and one IPv6 prefix (a dual-stack network), each
	// with an optional gateway. Subnet and Gateway, when set, are one
	// more entry. An entry whose Subnet is "ipv4" or "ipv6" asks for a
	// free subnet of that family from the pool.
	Subnets []SubnetRequest `json:"subnets,omitempty"`
	// Scope is ScopeLocal (empty means it) or ScopeCluster: a network
	// that spans hosts, which needs tapswitchd --advertise.
	Scope string `json:"scope,omitempty"`
	// VNI is a cluster network's VXLAN network identifier, 1 to MaxVNI;
	// 0 means a free one.
	VNI uint32 `json:"vni,omitempty"`
}

// SubnetRequest is one subnet of a new network.
type SubnetRequest struct {
	// Subnet in CIDR form, or "ipv4" / "ipv6" for a free one of that
	// family from the pool.
	Subnet string `json:"subnet"`
	// Gateway is the daemon's address in the subnet; empty means its
	// first host address.
	Gateway string `json:"gateway,omitempty"`
}

// NetworkSubnet is one subnet of a network and the daemon's address in
// it.
type NetworkSubnet struct {
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
}

// Port kinds.
const (
	// KindContainer is a TAP inside an attached namespace.
	KindContainer = "container"
	// KindGateway is a network's TAP in the daemon's own namespace.
	KindGateway = "gateway"
	// KindDocker is a Docker container's TAP: made in the daemon's
	// namespace for the network driver's Join, then moved into the
	// container and renamed by Docker.
	KindDocker = "docker"
	// KindTunnel: see api/cluster.go.
)

// Port is one attached TAP as the API reports it.
type Port struct {
	ID      uint32 `json:"id"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Network string `json:"network"`
	// Netns is the namespace as given at attach; empty for a gateway,
	// which lives in the daemon's namespace.
	Netns  string   `json:"netns"`
	Ifname string   `json:"ifname"`
	MAC    string   `json:"mac"`
	IPs    []string `json:"ips"`
	MTU    int      `json:"mtu"`
	// DNSName is the name the network's DNS answers with the port's
	// addresses: the port's name, or for a port made by connect the
	// name of the port it joined.
	DNSName string `json:"dns_name,omitempty"`
	// ContainerID is the container engine's id given at attach, if any.
	ContainerID string `json:"container_id,omitempty"`
	// Publish lists the published ports in canonical form
	// (HOSTPORT:CONTAINERPORT/PROTO).
	Publish []string `json:"publish"`
	// Published are the counters of the published ports, one per entry
	// of Publish that is being served.
	Published []PublishedCounters `json:"published,omitempty"`
	// PortSecurity says whether the port may only send from its own MAC
	// and addresses; MACs is how many MACs the network has learned behind
	// it, of at most MACLimit.
	PortSecurity bool `json:"port_security"`
	MACs         int  `json:"macs"`
	MACLimit     int  `json:"mac_limit"`
	// StormBroadcast, StormMulticast and StormUnknown are the storm
	// control rates in force, in frames a second; -1 for no limit.
	StormBroadcast int          `json:"storm_broadcast"`
	StormMulticast int          `json:"storm_multicast"`
	StormUnknown   int          `json:"storm_unknown"`
	Stats          PortCounters `json:"stats"`
}

// PortCounters are a port's traffic counters since it was attached. Rx
// counts frames the switch read from the port, Tx frames it wrote to it.
type PortCounters struct {
	RxFrames uint64 `json:"rx_frames"`
	RxBytes  uint64 `json:"rx_bytes"`
	TxFrames uint64 `json:"tx_frames"`
	TxBytes  uint64 `json:"tx_bytes"`
	// TxCoalescedFrames counts the frames (of TxFrames) that left inside
	// a super-frame the switch made by coalescing a run of one flow, and
	// TxCoalescedWrites those super-frames.
	TxCoalescedFrames uint64 `json:"tx_coalesced_frames"`
	TxCoalescedWrites uint64 `json:"tx_coalesced_writes"`
	// Drops counts frames dropped, by reason (for example "runt",
	// "bad_source", "tx_error"). Reasons with a zero count are omitted.
	Drops map[string]uint64 `json:"drops,omitempty"`
}

// PublishedCounters are one published port's counters since it was
// published.
type PublishedCounters struct {
	// Publish is the published port, as in Port.Publish.
	Publish string `json:"publish"`
	// Active is the number of open TCP connections or live UDP flows.
	Active int64 `json:"active"`
	// Total counts TCP connections served or UDP flows opened.
	Total int64 `json:"total"`
	// Failed counts TCP connections reset because the container could
	// not be reached, and UDP flows that could not be opened.
	Failed int64 `json:"failed"`
	// Dropped counts UDP datagrams dropped.
	Dropped int64 `json:"dropped"`
	// Refused counts new TCP connections reset, and datagrams of new UDP
	// clients dropped, because a limit was reached, by reason:
	// "port_limit", "source_limit" or "descriptors". Reasons with a zero
	// count are omitted.
	Refused map[string]uint64 `json:"refused,omitempty"`
	// IdleClosed counts TCP connections closed for idleness.
	IdleClosed    int64  `json:"idle_closed"`
	BytesToTarget uint64 `json:"bytes_to_target"`
	BytesToClient uint64 `json:"bytes_to_client"`
}

// FDBEntry is one learned MAC address.
type FDBEntry struct {
	Network string `json:"network"`
	MAC     string `json:"mac"`
	Port    string `json:"port"`
	// AgeSeconds is the time since a frame from MAC was last seen.
	AgeSeconds int64 `json:"age_seconds"`
}

// Network is one isolated switch with its subnet, gateway and DNS.
type Network struct {
	Name string `json:"name"`
	// Subnet is the network's prefix, such as 10.20.0.0/24.
	Subnet string `json:"subnet"`
	// Gateway is the daemon's address on the network: containers'
	// default route and nameserver.
	Gateway  string `json:"gateway"`
	Internal bool   `json:"internal"`
	// Subnets lists every subnet of the network with its gateway, the
	// IPv4 one first; Subnet and Gateway are the first of them.
	Subnets []NetworkSubnet `json:"subnets,omitempty"`
	// Bridge is the gateway's interface in the daemon's namespace.
	Bridge string `json:"bridge"`
	// DNS is where the network's name server listens.
	DNS string `json:"dns"`
	// Ports counts the container ports; the gateway is not counted.
	Ports int `json:"ports"`
	// MACs is the number of learned addresses.
	MACs     int `json:"macs"`
	MACLimit int `json:"mac_limit"`
	// Scope is ScopeLocal or ScopeCluster.
	Scope string `json:"scope"`
	// VNI is a cluster network's VXLAN network identifier; 0 for a
	// local network.
	VNI uint32 `json:"vni,omitempty"`
	// MTU is the MTU of the network's TAPs and gateway: for a cluster
	// network, the underlay's less the VXLAN overhead; 0 for a local
	// network, whose ports have the MTU they ask for (1500 by default).
	MTU int `json:"mtu,omitempty"`
}

// NetworkDetail is a network as inspect shows it: its settings and every
// port on it, the gateway included. Its "ports" is that list, in place of
// Network's count.
type NetworkDetail struct {
	Network
	Ports []Port `json:"ports"`
	// DNSCounters are the network's DNS server's counters since the
	// daemon started it.
	DNSCounters *DNSCounters `json:"dns_counters,omitempty"`
}

// DNSCounters count what a network's DNS server did. It answers only the
// network's own ports, on the network's gateway, each within a query rate.
type DNSCounters struct {
	// Answered counts replies sent, local or forwarded, whatever their
	// rcode.
	Answered uint64 `json:"answered"`
	// Forwarded counts queries sent on to the upstream resolvers.
	Forwarded uint64 `json:"forwarded"`
	// NotForwarded counts queries of an internal network for names
	// outside it, answered SERVFAIL without asking any upstream.
	NotForwarded uint64 `json:"not_forwarded"`
	// RateLimited counts queries and TCP connections dropped unanswered
	// because their source was over its query rate.
	RateLimited uint64     `json:"rate_limited"`
	Refused     DNSRefused `json:"refused"`
}

// DNSRefused counts what a network's DNS server refused, by reason.
type DNSRefused struct {
	// Source: from an address outside the network's subnet; dropped
	// unanswered.
	Source uint64 `json:"source"`
	// Interface: UDP queries that reached the gateway address from
	// elsewhere than the network's gateway interface (the host, other
	// networks, routed hosts); dropped unanswered.
	Interface uint64 `json:"interface"`
	// Forwards: too many forwards in flight; answered SERVFAIL at once.
	Forwards uint64 `json:"forwards"`
	// TCP: connections over the limits; closed at once.
	TCP uint64 `json:"tcp"`
	// FDs: forwards and connections refused because the daemon's
	// descriptor budget was spent.
	FDs uint64 `json:"fds"`
}
