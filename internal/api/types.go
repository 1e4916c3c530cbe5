// Package api holds the JSON types of the tapswitchd control API and the
// client the tapswitch CLI uses to speak it.
//
// The API is HTTP/1.1 with JSON bodies on a Unix socket, with versioned
// paths, in the style of the Docker Engine API:
//
//	GET    /v1/version            Version
//	GET    /v1/ports              []Port
//	POST   /v1/ports              AttachRequest -> Port (201)
//	DELETE /v1/ports/{port}       204; {port} is a port name or id
//	GET    /v1/fdb?network=NET    []FDBEntry
//	GET    /v1/networks           []Network
//	POST   /v1/networks           NetworkCreateRequest -> Network (201)
//	GET    /v1/networks/{network} NetworkDetail
//	DELETE /v1/networks/{network}?force=true  204
//	POST   /v1/networks/{network}/connect     ConnectRequest -> Port (201)
//
// GET /v1/ports lists the ports of containers; ?all=true adds the
// gateway ports, the daemon's own side of each network.
//
// Errors are returned with a 4xx/5xx status and an Error body.
package api

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
}

// Port kinds.
const (
	// KindContainer is a TAP inside an attached namespace.
	KindContainer = "container"
	// KindGateway is a network's TAP in the daemon's own namespace.
	KindGateway = "gateway"
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
	// Publish lists the published ports in canonical form
	// (HOSTPORT:CONTAINERPORT/PROTO).
	Publish []string     `json:"publish"`
	Stats   PortCounters `json:"stats"`
}

// PortCounters are a port's traffic counters since it was attached. Rx
// counts frames the switch read from the port, Tx frames it wrote to it.
type PortCounters struct {
	RxFrames uint64 `json:"rx_frames"`
	RxBytes  uint64 `json:"rx_bytes"`
	TxFrames uint64 `json:"tx_frames"`
	TxBytes  uint64 `json:"tx_bytes"`
	// Drops counts frames dropped, by reason (for example "runt",
	// "bad_source", "tx_error"). Reasons with a zero count are omitted.
	Drops map[string]uint64 `json:"drops,omitempty"`
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
	// Bridge is the gateway's interface in the daemon's namespace.
	Bridge string `json:"bridge"`
	// DNS is where the network's name server listens.
	DNS string `json:"dns"`
	// Ports counts the container ports; the gateway is not counted.
	Ports int `json:"ports"`
	// MACs is the number of learned addresses.
	MACs     int `json:"macs"`
	MACLimit int `json:"mac_limit"`
}

// NetworkDetail is a network as inspect shows it: its settings and every
// port on it, the gateway included. Its "ports" is that list, in place of
// Network's count.
type NetworkDetail struct {
	Network
	Ports []Port `json:"ports"`
}

// Error is the body of every failed request.
type Error struct {
	Message string `json:"message"`
}
