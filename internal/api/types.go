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
}

// Port is one attached TAP as the API reports it.
type Port struct {
	ID      uint32       `json:"id"`
	Name    string       `json:"name"`
	Network string       `json:"network"`
	Netns   string       `json:"netns"`
	Ifname  string       `json:"ifname"`
	MAC     string       `json:"mac"`
	IPs     []string     `json:"ips"`
	MTU     int          `json:"mtu"`
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

// Network is one isolated switch.
type Network struct {
	Name  string `json:"name"`
	Ports int    `json:"ports"`
	// MACs is the number of learned addresses.
	MACs     int `json:"macs"`
	MACLimit int `json:"mac_limit"`
}

// Error is the body of every failed request.
type Error struct {
	Message string `json:"message"`
}
