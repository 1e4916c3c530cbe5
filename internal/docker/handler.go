package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// MaxBody bounds a request's body: Docker's largest, a CreateNetwork
// with its options, is a few KiB.
const MaxBody = 1 << 20

// callTimeout bounds a call's wait for the daemon: Docker's plugin client
// gives up after 90 s and retries nothing but a failed connection.
const callTimeout = 60 * time.Second

// ErrBadRequest wraps what is wrong with a request's body.
var ErrBadRequest = errors.New("bad request")

// NewHandler serves the plugin protocol with b. Every request gets an
// answer: a call that fails, an unknown path or a body that does not
// decode is answered with status 500 and {"Err": "..."}, which Docker's
// plugin client shows as the call's error (for a status other than 200 it
// reads Err from the body; go-plugins-helpers answers likewise).
func NewHandler(b Backend, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &handler{b: b, log: log}
}

type handler struct {
	b   Backend
	log *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	call := strings.TrimPrefix(r.URL.Path, "/")
	defer func() {
		if v := recover(); v != nil {
			h.log.Error("plugin call panicked", "call", call, "panic", v)
			reply(w, http.StatusInternalServerError, ErrResponse{Err: fmt.Sprintf("tapswitchd: %s failed unexpectedly; see tapswitchd's log", call)})
		}
	}()
	if r.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, ErrResponse{Err: fmt.Sprintf("tapswitchd: %s %s: the plugin protocol takes POST only", r.Method, r.URL.Path)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		reply(w, http.StatusRequestEntityTooLarge, ErrResponse{Err: fmt.Sprintf("tapswitchd: %s: read request: %v", call, err)})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	out, err := h.dispatch(ctx, call, body)
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, errUnknownCall) {
			level = slog.LevelInfo
		}
		h.log.Log(ctx, level, "plugin call failed", "call", call, "err", err, "took", time.Since(start))
		reply(w, http.StatusInternalServerError, ErrResponse{Err: "tapswitch: " + err.Error()})
		return
	}
	h.log.Debug("plugin call", "call", call, "took", time.Since(start))
	reply(w, http.StatusOK, out)
}

func reply(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"Err":"tapswitchd: encode answer failed"}`)
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

var errUnknownCall = errors.New("unknown call")

// empty is the answer of a call that has nothing to say.
type empty struct{}

// Decode reads a call's body into v. An empty body is an empty request
// (Docker sends none to Plugin.Activate).
func Decode(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return nil
}

func (h *handler) dispatch(ctx context.Context, call string, body []byte) (any, error) {
	b := h.b
	switch call {
	case "Plugin.Activate":
		return ActivateResponse{Implements: []string{"NetworkDriver", "IpamDriver"}}, nil
	case "NetworkDriver.GetCapabilities":
		return CapabilitiesResponse{Scope: "local", ConnectivityScope: "local"}, nil
	case "NetworkDriver.CreateNetwork":
		var req CreateNetworkRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		n, err := ParseNetwork(req)
		if err != nil {
			return nil, err
		}
		return empty{}, b.CreateNetwork(ctx, n)
	case "NetworkDriver.DeleteNetwork", "NetworkDriver.FreeNetwork":
		var req NetworkRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		if err := checkID("network id", req.NetworkID); err != nil {
			return nil, err
		}
		return empty{}, b.DeleteNetwork(ctx, req.NetworkID)
	case "NetworkDriver.CreateEndpoint":
		var req CreateEndpointRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		e, err := ParseEndpoint(req)
		if err != nil {
			return nil, err
		}
		ifc, err := b.CreateEndpoint(ctx, e)
		if err != nil {
			return nil, err
		}
		// Only what Docker did not give: it refuses an answer that
		// repeats or changes what it set.
		var out EndpointInterface
		if req.Interface == nil || req.Interface.MacAddress == "" {
			out.MacAddress = ifc.MacAddress
		}
		if req.Interface == nil || req.Interface.Address == "" {
			out.Address = ifc.Address
		}
		if req.Interface == nil || req.Interface.AddressIPv6 == "" {
			out.AddressIPv6 = ifc.AddressIPv6
		}
		if out == (EndpointInterface{}) {
			return CreateEndpointResponse{}, nil
		}
		return CreateEndpointResponse{Interface: &out}, nil
	case "NetworkDriver.EndpointOperInfo":
		req, err := endpointRequest(body)
		if err != nil {
			return nil, err
		}
		v, err := b.EndpointInfo(ctx, req.NetworkID, req.EndpointID)
		if err != nil {
			return nil, err
		}
		if v == nil {
			v = map[string]any{}
		}
		return EndpointInfoResponse{Value: v}, nil
	case "NetworkDriver.DeleteEndpoint":
		req, err := endpointRequest(body)
		if err != nil {
			return nil, err
		}
		return empty{}, b.DeleteEndpoint(ctx, req.NetworkID, req.EndpointID)
	case "NetworkDriver.Join":
		var req JoinRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		j, err := ParseJoin(req)
		if err != nil {
			return nil, err
		}
		return b.Join(ctx, j)
	case "NetworkDriver.Leave":
		req, err := endpointRequest(body)
		if err != nil {
			return nil, err
		}
		return empty{}, b.Leave(ctx, req.NetworkID, req.EndpointID)
	case "NetworkDriver.ProgramExternalConnectivity":
		var req ExternalRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		if err := checkEndpoint(req.NetworkID, req.EndpointID); err != nil {
			return nil, err
		}
		pm, err := portMap(req.Options)
		if err != nil {
			return nil, err
		}
		return empty{}, b.ProgramExternal(ctx, req.NetworkID, req.EndpointID, pm)
	case "NetworkDriver.RevokeExternalConnectivity":
		req, err := endpointRequest(body)
		if err != nil {
			return nil, err
		}
		return empty{}, b.RevokeExternal(ctx, req.NetworkID, req.EndpointID)
	case "NetworkDriver.DiscoverNew", "NetworkDriver.DiscoverDelete":
		var req DiscoveryRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		// A local driver has nothing to learn of other nodes.
		return empty{}, nil
	case "IpamDriver.GetCapabilities":
		return IPAMCapabilitiesResponse{}, nil
	case "IpamDriver.GetDefaultAddressSpaces":
		return AddressSpacesResponse{LocalDefaultAddressSpace: LocalAddressSpace, GlobalDefaultAddressSpace: GlobalAddressSpace}, nil
	case "IpamDriver.RequestPool":
		var req RequestPoolRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		p, err := ParsePool(req)
		if err != nil {
			return nil, err
		}
		id, prefix, err := b.RequestPool(ctx, p)
		if err != nil {
			return nil, err
		}
		return RequestPoolResponse{PoolID: id, Pool: prefix.String(), Data: map[string]string{}}, nil
	case "IpamDriver.ReleasePool":
		var req ReleasePoolRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		if req.PoolID == "" {
			return nil, errors.New("ReleasePool: no PoolID given")
		}
		return empty{}, b.ReleasePool(ctx, req.PoolID)
	case "IpamDriver.RequestAddress":
		var req RequestAddressRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		if req.PoolID == "" {
			return nil, errors.New("RequestAddress: no PoolID given")
		}
		addr, err := parseAddr(req.Address)
		if err != nil {
			return nil, err
		}
		a, err := b.RequestAddress(ctx, req.PoolID, addr, req.Options[OptionRequestAddressType] == RequestAddressGateway)
		if err != nil {
			return nil, err
		}
		return RequestAddressResponse{Address: a.String(), Data: map[string]string{}}, nil
	case "IpamDriver.ReleaseAddress":
		var req ReleaseAddressRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		addr, err := parseAddr(req.Address)
		if err != nil {
			return nil, err
		}
		if req.PoolID == "" || !addr.IsValid() {
			return nil, errors.New("ReleaseAddress: want a PoolID and an Address")
		}
		return empty{}, b.ReleaseAddress(ctx, req.PoolID, addr)
	}
	return nil, fmt.Errorf("%w %q: this tapswitchd serves Plugin.Activate, NetworkDriver.* and IpamDriver.* of the plugin protocol v1.2; is Docker newer than it knows?", errUnknownCall, call)
}

func endpointRequest(body []byte) (EndpointRequest, error) {
	var req EndpointRequest
	if err := Decode(body, &req); err != nil {
		return req, err
	}
	return req, checkEndpoint(req.NetworkID, req.EndpointID)
}

func checkEndpoint(nid, eid string) error {
	if err := checkID("network id", nid); err != nil {
		return err
	}
	return checkID("endpoint id", eid)
}

// parseAddr reads an address, bare or with a length ("" is none).
func parseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: want an address such as 10.20.0.5", s)
	}
	return a, nil
}

// ParseNetwork checks a CreateNetwork request.
func ParseNetwork(req CreateNetworkRequest) (Network, error) {
	n := Network{ID: req.NetworkID}
	if err := checkID("network id", req.NetworkID); err != nil {
		return n, err
	}
	var err error
	if n.Internal, err = flag(req.Options, OptionInternal); err != nil {
		return n, err
	}
	if n.IPv6, err = flag(req.Options, OptionEnableIPv6); err != nil {
		return n, err
	}
	if n.Generic, err = generic(req.Options); err != nil {
		return n, err
	}
	// docker network create -o internal=true says it as well.
	for _, k := range []string{"internal", OptionInternal} {
		if v, ok := n.Generic[k]; ok {
			in, err := flag(map[string]any{k: v}, k)
			if err != nil {
				return n, err
			}
			n.Internal = n.Internal || in
		}
	}
	switch len(req.IPv4Data) {
	case 0:
		if len(req.IPv6Data) > 0 {
			return n, errors.New("IPv6-only networks are not supported: a tapswitch network made by Docker has an IPv4 subnet, and an IPv6 one with --ipv6; give an IPv4 --subnet too")
		}
		return n, errors.New("the network has no IPv4 subnet: give --subnet, or let an IPAM driver choose one")
	case 1:
	default:
		return n, fmt.Errorf("the network has %d IPv4 subnets; a tapswitch network has one: give one --subnet", len(req.IPv4Data))
	}
	s, err := ipamData(req.IPv4Data[0], false)
	if err != nil {
		return n, err
	}
	n.Subnet, n.Gateway = s.Prefix, s.Gateway
	for _, d := range req.IPv6Data {
		s, err := ipamData(d, true)
		if err != nil {
			return n, err
		}
		n.V6 = append(n.V6, s)
	}
	return n, nil
}

func ipamData(d IPAMData, v6 bool) (Subnet, error) {
	var s Subnet
	p, err := netip.ParsePrefix(d.Pool)
	if err != nil {
		return s, fmt.Errorf("subnet %q: want a prefix such as 10.20.0.0/24", d.Pool)
	}
	if p.Addr().Is6() != v6 {
		return s, fmt.Errorf("subnet %s is not of the family Docker gave it as", p)
	}
	s.Prefix = p.Masked()
	if d.Gateway != "" {
		g, err := parseAddr(d.Gateway)
		if err != nil {
			return s, fmt.Errorf("gateway: %w", err)
		}
		if !s.Prefix.Contains(g) {
			return s, fmt.Errorf("gateway %s is outside subnet %s", g, s.Prefix)
		}
		s.Gateway = g
	}
	if len(d.AuxAddresses) > 0 {
		return s, fmt.Errorf("subnet %s: auxiliary addresses (--aux-address) are not supported by tapswitch; leave them out", s.Prefix)
	}
	return s, nil
}

// ParseEndpoint checks a CreateEndpoint request.
func ParseEndpoint(req CreateEndpointRequest) (Endpoint, error) {
	e := Endpoint{NetworkID: req.NetworkID, EndpointID: req.EndpointID}
	if err := checkEndpoint(req.NetworkID, req.EndpointID); err != nil {
		return e, err
	}
	if ifc := req.Interface; ifc != nil {
		if ifc.Address != "" {
			p, err := netip.ParsePrefix(ifc.Address)
			if err != nil || !p.Addr().Is4() {
				return e, fmt.Errorf("endpoint address %q: want an IPv4 address with its length, such as 10.20.0.5/24", ifc.Address)
			}
			e.Address = p
		}
		if ifc.AddressIPv6 != "" {
			p, err := netip.ParsePrefix(ifc.AddressIPv6)
			if err != nil || !p.Addr().Is6() {
				return e, fmt.Errorf("endpoint address %q: want an IPv6 address with its length, such as fd00::5/64", ifc.AddressIPv6)
			}
			e.AddressIPv6 = p
		}
		e.MAC = ifc.MacAddress
	}
	pm, err := portMap(req.Options)
	if err != nil {
		return e, err
	}
	e.PortMap = pm
	return e, nil
}

// ParseJoin checks a Join request.
func ParseJoin(req JoinRequest) (Join, error) {
	j := Join{NetworkID: req.NetworkID, EndpointID: req.EndpointID, SandboxKey: req.SandboxKey}
	if err := checkEndpoint(req.NetworkID, req.EndpointID); err != nil {
		return j, err
	}
	if req.SandboxKey == "" || !strings.HasPrefix(req.SandboxKey, "/") {
		return j, fmt.Errorf("join: sandbox key %q is not the path of the container's network namespace", req.SandboxKey)
	}
	pm, err := portMap(req.Options)
	if err != nil {
		return j, err
	}
	j.PortMap = pm
	return j, nil
}

// ParsePool checks a RequestPool request.
func ParsePool(req RequestPoolRequest) (Pool, error) {
	p := Pool{V6: req.V6, Options: req.Options}
	if req.Pool != "" {
		pr, err := netip.ParsePrefix(req.Pool)
		if err != nil {
			return p, fmt.Errorf("subnet %q: want a prefix such as 10.20.0.0/24", req.Pool)
		}
		if pr.Addr().Is6() != req.V6 {
			return p, fmt.Errorf("subnet %s is not of the family asked for", pr)
		}
		p.Prefix = pr.Masked()
	}
	if req.SubPool != "" {
		if !p.Prefix.IsValid() {
			return p, fmt.Errorf("ip range %q without a subnet", req.SubPool)
		}
		sp, err := netip.ParsePrefix(req.SubPool)
		if err != nil || !p.Prefix.Contains(sp.Addr()) || sp.Bits() < p.Prefix.Bits() {
			return p, fmt.Errorf("ip range %q: want a prefix inside subnet %s", req.SubPool, p.Prefix)
		}
		p.SubPool = sp.Masked()
	}
	return p, nil
}
