package docker

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ContentType is the media type of the plugin protocol's bodies.
const ContentType = "application/vnd.docker.plugins.v1.2+json"

// The options Docker passes, in CreateNetwork's and CreateEndpoint's
// Options.
const (
	// OptionGeneric holds the driver's own options, `docker network
	// create -o KEY=VALUE`, as a map of strings.
	OptionGeneric = "com.docker.network.generic"
	// OptionEnableIPv6 is true for `docker network create --ipv6`.
	OptionEnableIPv6 = "com.docker.network.enable_ipv6"
	// OptionInternal is true for `docker network create --internal`.
	OptionInternal = "com.docker.network.internal"
	// OptionPortMap holds the container's published ports (`-p`).
	OptionPortMap = "com.docker.network.portmap"
	// OptionExposedPorts holds the container's exposed ports.
	OptionExposedPorts = "com.docker.network.endpoint.exposedports"
	// OptionRequestAddressType in RequestAddress's Options says what the
	// address is for; RequestAddressGateway asks for the gateway's.
	OptionRequestAddressType = "RequestAddressType"
	RequestAddressGateway    = "com.docker.network.gateway"
)

// ErrResponse is a failed call's answer.
type ErrResponse struct {
	Err string
}

// ActivateResponse answers /Plugin.Activate.
type ActivateResponse struct {
	Implements []string
}

// CapabilitiesResponse answers NetworkDriver.GetCapabilities.
type CapabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
}

// IPAMData is one address family's data of a network.
type IPAMData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]string
}

// CreateNetworkRequest is NetworkDriver.CreateNetwork's request.
type CreateNetworkRequest struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []IPAMData
	IPv6Data  []IPAMData
}

// Network is what a Backend is asked to make of a CreateNetworkRequest.
type Network struct {
	ID string
	// Subnet and Gateway are IPv4Data's Pool and Gateway (a prefix
	// such as 10.20.0.1/24, whose address is the gateway's).
	Subnet  netip.Prefix
	Gateway netip.Addr
	// V6 are the IPv6 subnets, with their gateways.
	V6       []Subnet
	Internal bool
	IPv6     bool
	// Generic are the driver options, `docker network create -o`.
	Generic map[string]string
}

// Subnet is a subnet and its gateway (invalid when Docker gave none).
type Subnet struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
}

// NetworkRequest names a network: DeleteNetwork's request.
type NetworkRequest struct {
	NetworkID string
}

// EndpointInterface is an endpoint's interface, as Docker gives it at
// CreateEndpoint and as the driver answers with what Docker left out.
type EndpointInterface struct {
	Address     string `json:",omitempty"`
	AddressIPv6 string `json:",omitempty"`
	MacAddress  string `json:",omitempty"`
}

// CreateEndpointRequest is NetworkDriver.CreateEndpoint's request.
type CreateEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *EndpointInterface
	Options    map[string]any
}

// CreateEndpointResponse answers CreateEndpoint.
type CreateEndpointResponse struct {
	Interface *EndpointInterface `json:",omitempty"`
}

// Endpoint is a CreateEndpointRequest checked.
type Endpoint struct {
	NetworkID, EndpointID string
	// Address and AddressIPv6 are invalid when Docker gave none.
	Address     netip.Prefix
	AddressIPv6 netip.Prefix
	// MAC is empty when Docker gave none: the driver chooses.
	MAC     string
	PortMap []PortBinding
}

// EndpointRequest names an endpoint: the request of EndpointOperInfo,
// DeleteEndpoint, Leave and RevokeExternalConnectivity.
type EndpointRequest struct {
	NetworkID  string
	EndpointID string
}

// EndpointInfoResponse answers EndpointOperInfo.
type EndpointInfoResponse struct {
	Value map[string]any
}

// JoinRequest is NetworkDriver.Join's request.
type JoinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]any
}

// InterfaceName is the device Join hands Docker, to move into the
// container and rename DstPrefix plus a number.
type InterfaceName struct {
	SrcName   string
	DstPrefix string
}

// StaticRoute is a route Join asks Docker to add in the container.
type StaticRoute struct {
	Destination string
	RouteType   int
	NextHop     string `json:",omitempty"`
}

// JoinResponse answers Join.
type JoinResponse struct {
	InterfaceName         InterfaceName
	Gateway               string        `json:",omitempty"`
	GatewayIPv6           string        `json:",omitempty"`
	StaticRoutes          []StaticRoute `json:",omitempty"`
	DisableGatewayService bool          `json:",omitempty"`
}

// Join is a JoinRequest checked.
type Join struct {
	NetworkID, EndpointID string
	SandboxKey            string
	PortMap               []PortBinding
}

// ExternalRequest is ProgramExternalConnectivity's request.
type ExternalRequest struct {
	NetworkID  string
	EndpointID string
	Options    map[string]any
}

// DiscoveryRequest is DiscoverNew's and DiscoverDelete's request.
type DiscoveryRequest struct {
	DiscoveryType int
	DiscoveryData any
}

// IPAM's requests and answers.

// IPAMCapabilitiesResponse answers IpamDriver.GetCapabilities.
type IPAMCapabilitiesResponse struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

// AddressSpacesResponse answers GetDefaultAddressSpaces.
type AddressSpacesResponse struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

// The address spaces of the IPAM driver: one, local.
const (
	LocalAddressSpace  = "tapswitch-local"
	GlobalAddressSpace = "tapswitch-global"
)

// RequestPoolRequest is RequestPool's request.
type RequestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

// RequestPoolResponse answers RequestPool.
type RequestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

// ReleasePoolRequest is ReleasePool's request.
type ReleasePoolRequest struct {
	PoolID string
}

// RequestAddressRequest is RequestAddress's request.
type RequestAddressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

// RequestAddressResponse answers RequestAddress.
type RequestAddressResponse struct {
	Address string
	Data    map[string]string
}

// ReleaseAddressRequest is ReleaseAddress's request.
type ReleaseAddressRequest struct {
	PoolID  string
	Address string
}

// Pool is a RequestPoolRequest checked.
type Pool struct {
	// Prefix is the pool asked for; invalid for any free one.
	Prefix netip.Prefix
	// SubPool, when valid, is the range inside Prefix to hand out from.
	SubPool netip.Prefix
	V6      bool
	Options map[string]string
}

// Protocols of a PortBinding, as Docker numbers them.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// PortBinding is one published port of com.docker.network.portmap.
// HostPort 0 asks for a free port; HostPortEnd above HostPort for one
// of that range.
type PortBinding struct {
	Proto       int
	IP          string
	Port        int
	HostIP      string
	HostPort    int
	HostPortEnd int
}

// ProtoName is b's protocol as tapswitch writes it.
func (b PortBinding) ProtoName() string {
	if b.Proto == ProtoUDP {
		return "udp"
	}
	return "tcp"
}

// Check reports what is wrong with b.
func (b PortBinding) Check() error {
	switch {
	case b.Proto != ProtoTCP && b.Proto != ProtoUDP:
		return fmt.Errorf("published port %d: protocol %d is not TCP (6) or UDP (17)", b.Port, b.Proto)
	case b.Port < 1 || b.Port > 65535:
		return fmt.Errorf("published port: container port %d is not 1 to 65535", b.Port)
	case b.HostPort < 0 || b.HostPort > 65535, b.HostPortEnd < 0 || b.HostPortEnd > 65535:
		return fmt.Errorf("published port %d: host port %d-%d is not 0 to 65535", b.Port, b.HostPort, b.HostPortEnd)
	case b.HostPortEnd != 0 && b.HostPortEnd < b.HostPort:
		return fmt.Errorf("published port %d: host port range %d-%d ends before it starts", b.Port, b.HostPort, b.HostPortEnd)
	}
	if b.HostIP != "" {
		if _, err := netip.ParseAddr(b.HostIP); err != nil {
			return fmt.Errorf("published port %d: host address %q: %w", b.Port, b.HostIP, err)
		}
	}
	return nil
}

// portMap reads com.docker.network.portmap from options.
func portMap(options map[string]any) ([]PortBinding, error) {
	v, ok := options[OptionPortMap]
	if !ok || v == nil {
		return nil, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out []PortBinding
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("option %s: %w", OptionPortMap, err)
	}
	for _, b := range out {
		if err := b.Check(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// flag reads a boolean option: true, or a string strconv.ParseBool takes.
func flag(options map[string]any, key string) (bool, error) {
	switch v := options[key].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("option %s=%q: want true or false", key, v)
		}
		return b, nil
	}
	return false, fmt.Errorf("option %s: want true or false, not %v", key, options[key])
}

// generic reads the driver's options, com.docker.network.generic.
func generic(options map[string]any) (map[string]string, error) {
	v, ok := options[OptionGeneric]
	if !ok || v == nil {
		return map[string]string{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("option %s: want an object of driver options", OptionGeneric)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out[k] = v
		case bool:
			out[k] = strconv.FormatBool(v)
		case float64:
			out[k] = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			return nil, fmt.Errorf("driver option %s: want a string", k)
		}
	}
	return out, nil
}

// ShortID is the first 12 characters of a Docker id, as docker ps shows.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// checkID refuses an id that is not what Docker makes: 1 to 128
// letters and digits (Docker's are 64 hex digits).
func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("no %s given", what)
	}
	if len(id) > 128 || strings.IndexFunc(id, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}) >= 0 {
		return fmt.Errorf("%s %q: want Docker's id, letters and digits", what, id)
	}
	return nil
}

// Prefixes are n's subnets, the IPv4 one first.
func (n Network) Prefixes() []netip.Prefix {
	out := []netip.Prefix{n.Subnet}
	for _, s := range n.V6 {
		out = append(out, s.Prefix)
	}
	return out
}
