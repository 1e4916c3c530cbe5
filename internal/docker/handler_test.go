package docker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// recorder is a Backend that records what it is asked and fails when
// told to.
type recorder struct {
	calls []string
	fail  error

	network  Network
	endpoint Endpoint
	join     Join
	portMap  []PortBinding
	pool     Pool
	addr     netip.Addr
	gateway  bool
	// ifc, when set, is what CreateEndpoint answers.
	ifc *EndpointInterface
}

func (r *recorder) rec(c string) error { r.calls = append(r.calls, c); return r.fail }

func (r *recorder) CreateNetwork(_ context.Context, n Network) error {
	r.network = n
	return r.rec("CreateNetwork")
}
func (r *recorder) DeleteNetwork(context.Context, string) error { return r.rec("DeleteNetwork") }
func (r *recorder) CreateEndpoint(_ context.Context, e Endpoint) (EndpointInterface, error) {
	r.endpoint = e
	if r.ifc != nil {
		return *r.ifc, r.rec("CreateEndpoint")
	}
	return EndpointInterface{Address: "10.131.0.9/24", MacAddress: "02:42:0a:83:00:09"}, r.rec("CreateEndpoint")
}
func (r *recorder) DeleteEndpoint(context.Context, string, string) error {
	return r.rec("DeleteEndpoint")
}
func (r *recorder) EndpointInfo(context.Context, string, string) (map[string]any, error) {
	return map[string]any{OptionPortMap: []PortBinding{{Proto: 6, Port: 80, HostPort: 8080}}}, r.rec("EndpointInfo")
}
func (r *recorder) Join(_ context.Context, j Join) (JoinResponse, error) {
	r.join = j
	return JoinResponse{InterfaceName: InterfaceName{SrcName: "tsabc", DstPrefix: "eth"}, Gateway: "10.131.0.1"}, r.rec("Join")
}
func (r *recorder) Leave(context.Context, string, string) error { return r.rec("Leave") }
func (r *recorder) ProgramExternal(_ context.Context, _, _ string, pm []PortBinding) error {
	r.portMap = pm
	return r.rec("ProgramExternal")
}
func (r *recorder) RevokeExternal(context.Context, string, string) error {
	return r.rec("RevokeExternal")
}
func (r *recorder) RequestPool(_ context.Context, p Pool) (string, netip.Prefix, error) {
	r.pool = p
	return "pool1", netip.MustParsePrefix("10.131.5.0/24"), r.rec("RequestPool")
}
func (r *recorder) ReleasePool(context.Context, string) error { return r.rec("ReleasePool") }
func (r *recorder) RequestAddress(_ context.Context, _ string, a netip.Addr, gw bool) (netip.Prefix, error) {
	r.addr, r.gateway = a, gw
	return netip.MustParsePrefix("10.131.5.1/24"), r.rec("RequestAddress")
}
func (r *recorder) ReleaseAddress(context.Context, string, netip.Addr) error {
	return r.rec("ReleaseAddress")
}

const (
	nid = "edd206efe708a4c7b4d0f772faf94e67ea7bde7b2e61834c67adec6638d92b5e"
	eid = "6a06dcd670ae0a4c7b4d0f772faf94e67ea7bde7b2e61834c67adec6638d92b5"
)

// post sends body to path and returns the status and the decoded answer.
func post(t *testing.T, h http.Handler, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if ct := w.Header().Get("Content-Type"); ct != ContentType {
		t.Errorf("POST %s: Content-Type %q, want %q", path, ct, ContentType)
	}
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("POST %s: answer %q is not JSON: %v", path, w.Body.String(), err)
	}
	return w.Code, out
}

func TestActivateAndCapabilities(t *testing.T) {
	h := NewHandler(&recorder{}, nil)
	_, out := post(t, h, "/Plugin.Activate", "")
	if got := out["Implements"]; len(got.([]any)) != 2 || got.([]any)[0] != "NetworkDriver" || got.([]any)[1] != "IpamDriver" {
		t.Errorf("Activate = %v, want NetworkDriver and IpamDriver", got)
	}
	_, out = post(t, h, "/NetworkDriver.GetCapabilities", "{}")
	if out["Scope"] != "local" || out["ConnectivityScope"] != "local" {
		t.Errorf("GetCapabilities = %v, want local scopes", out)
	}
	_, out = post(t, h, "/IpamDriver.GetDefaultAddressSpaces", "{}")
	if out["LocalDefaultAddressSpace"] != LocalAddressSpace {
		t.Errorf("GetDefaultAddressSpaces = %v", out)
	}
}

func TestCreateNetworkOptions(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		internal bool
		gateway  string
		err      string
	}{
		{name: "plain", body: `{"NetworkID":"` + nid + `","Options":{"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"10.131.1.0/24","Gateway":"10.131.1.1/24"}]}`, gateway: "10.131.1.1"},
		{name: "internal", body: `{"NetworkID":"` + nid + `","Options":{"com.docker.network.internal":true},"IPv4Data":[{"Pool":"10.131.1.0/24"}]}`, internal: true},
		{name: "internal as driver option", body: `{"NetworkID":"` + nid + `","Options":{"com.docker.network.generic":{"internal":"true"}},"IPv4Data":[{"Pool":"10.131.1.0/24"}]}`, internal: true},
		{name: "no subnet", body: `{"NetworkID":"` + nid + `"}`, err: "no IPv4 subnet"},
		{name: "two subnets", body: `{"NetworkID":"` + nid + `","IPv4Data":[{"Pool":"10.131.1.0/24"},{"Pool":"10.131.2.0/24"}]}`, err: "2 IPv4 subnets"},
		{name: "gateway outside", body: `{"NetworkID":"` + nid + `","IPv4Data":[{"Pool":"10.131.1.0/24","Gateway":"10.131.2.1/24"}]}`, err: "outside subnet"},
		{name: "aux addresses", body: `{"NetworkID":"` + nid + `","IPv4Data":[{"Pool":"10.131.1.0/24","AuxAddresses":{"a":"10.131.1.9"}}]}`, err: "auxiliary"},
		{name: "bad id", body: `{"NetworkID":"../x","IPv4Data":[{"Pool":"10.131.1.0/24"}]}`, err: "want Docker's id"},
		{name: "bad internal", body: `{"NetworkID":"` + nid + `","Options":{"com.docker.network.internal":"maybe"},"IPv4Data":[{"Pool":"10.131.1.0/24"}]}`, err: "want true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			code, out := post(t, NewHandler(r, nil), "/NetworkDriver.CreateNetwork", tt.body)
			if tt.err != "" {
				if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), tt.err) {
					t.Fatalf("CreateNetwork = %d %v, want 500 with Err containing %q", code, out, tt.err)
				}
				if len(r.calls) != 0 {
					t.Errorf("the backend was called: %v", r.calls)
				}
				return
			}
			if code != http.StatusOK || out["Err"] != nil {
				t.Fatalf("CreateNetwork = %d %v, want 200", code, out)
			}
			if r.network.Internal != tt.internal || r.network.Subnet.String() != "10.131.1.0/24" {
				t.Errorf("network = %+v", r.network)
			}
			if tt.gateway != "" && r.network.Gateway.String() != tt.gateway {
				t.Errorf("gateway = %v, want %s", r.network.Gateway, tt.gateway)
			}
		})
	}
}

func TestCreateEndpointAnswersWhatDockerLeftOut(t *testing.T) {
	r := &recorder{}
	h := NewHandler(r, nil)
	// Docker's IPAM gave the address: only the MAC is the driver's.
	_, out := post(t, h, "/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","Interface":{"Address":"10.131.0.9/24"},
		"Options":{"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]}}`)
	ifc := out["Interface"].(map[string]any)
	if ifc["MacAddress"] != "02:42:0a:83:00:09" || ifc["Address"] != nil {
		t.Errorf("Interface = %v, want the MAC only", ifc)
	}
	if len(r.endpoint.PortMap) != 1 || r.endpoint.PortMap[0].HostPort != 8080 || r.endpoint.Address.String() != "10.131.0.9/24" {
		t.Errorf("endpoint = %+v", r.endpoint)
	}
	// Everything given: nothing to answer.
	_, out = post(t, h, "/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","Interface":{"Address":"10.131.0.9/24","MacAddress":"02:00:00:00:00:01"}}`)
	if out["Interface"] != nil {
		t.Errorf("Interface = %v, want none", out["Interface"])
	}
}

func TestJoinAndInfo(t *testing.T) {
	r := &recorder{}
	h := NewHandler(r, nil)
	_, out := post(t, h, "/NetworkDriver.Join", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","SandboxKey":"/var/run/docker/netns/abc","Options":{}}`)
	name := out["InterfaceName"].(map[string]any)
	if name["SrcName"] != "tsabc" || name["DstPrefix"] != "eth" || out["Gateway"] != "10.131.0.1" {
		t.Errorf("Join = %v", out)
	}
	code, out := post(t, h, "/NetworkDriver.Join", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","SandboxKey":"relative"}`)
	if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), "sandbox key") {
		t.Errorf("Join with a relative sandbox key = %d %v", code, out)
	}
	_, out = post(t, h, "/NetworkDriver.EndpointOperInfo", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`"}`)
	pm := out["Value"].(map[string]any)[OptionPortMap].([]any)
	if len(pm) != 1 || pm[0].(map[string]any)["HostPort"] != 8080.0 {
		t.Errorf("EndpointOperInfo = %v", out)
	}
	_, _ = post(t, h, "/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","Options":{"com.docker.network.portmap":[{"Proto":17,"Port":53,"HostPort":0}]}}`)
	if len(r.portMap) != 1 || r.portMap[0].ProtoName() != "udp" {
		t.Errorf("ProgramExternal got %+v", r.portMap)
	}
	code, out = post(t, h, "/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","Options":{"com.docker.network.portmap":[{"Proto":132,"Port":53}]}}`)
	if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), "protocol 132") {
		t.Errorf("ProgramExternal with SCTP = %d %v", code, out)
	}
}

func TestIPAM(t *testing.T) {
	r := &recorder{}
	h := NewHandler(r, nil)
	_, out := post(t, h, "/IpamDriver.RequestPool", `{"AddressSpace":"tapswitch-local","Pool":"10.131.5.0/24","SubPool":"","Options":{},"V6":false}`)
	if out["PoolID"] != "pool1" || out["Pool"] != "10.131.5.0/24" || r.pool.Prefix.String() != "10.131.5.0/24" {
		t.Errorf("RequestPool = %v (asked %+v)", out, r.pool)
	}
	_, out = post(t, h, "/IpamDriver.RequestAddress", `{"PoolID":"pool1","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)
	if out["Address"] != "10.131.5.1/24" || !r.gateway || r.addr.IsValid() {
		t.Errorf("RequestAddress(gateway) = %v, gateway %v addr %v", out, r.gateway, r.addr)
	}
	code, out := post(t, h, "/IpamDriver.RequestPool", `{"Pool":"10.131.5.0/24","SubPool":"10.131.6.0/25"}`)
	if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), "inside subnet") {
		t.Errorf("RequestPool with a range outside = %d %v", code, out)
	}
	code, out = post(t, h, "/IpamDriver.ReleaseAddress", `{"PoolID":"pool1","Address":"nonsense"}`)
	if code != http.StatusInternalServerError || out["Err"] == nil {
		t.Errorf("ReleaseAddress(nonsense) = %d %v", code, out)
	}
}

func TestErrorsReachDocker(t *testing.T) {
	r := &recorder{fail: errors.New("network 1234 still has port(s)")}
	h := NewHandler(r, nil)
	code, out := post(t, h, "/NetworkDriver.DeleteNetwork", `{"NetworkID":"`+nid+`"}`)
	if code != http.StatusInternalServerError || out["Err"] != "tapswitch: network 1234 still has port(s)" {
		t.Errorf("DeleteNetwork = %d %v", code, out)
	}
	for _, tt := range []struct{ path, body, want string }{
		{"/NetworkDriver.Nonsense", "{}", "unknown call"},
		{"/NetworkDriver.CreateNetwork", "{", "bad request"},
		{"/NetworkDriver.Leave", `{"NetworkID":1}`, "bad request"},
		{"/NetworkDriver.Leave", `{}`, "no network id"},
	} {
		code, out := post(t, h, tt.path, tt.body)
		if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), tt.want) {
			t.Errorf("POST %s %s = %d %v, want Err with %q", tt.path, tt.body, code, out, tt.want)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/Plugin.Activate", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Body.String(), "POST only") {
		t.Errorf("GET = %d %s", w.Code, w.Body)
	}
}

// panicky panics on every call.
type panicky struct{ recorder }

func (panicky) DeleteNetwork(context.Context, string) error { panic("boom") }

func TestPanicAnswered(t *testing.T) {
	code, out := post(t, NewHandler(&panicky{}, nil), "/NetworkDriver.DeleteNetwork", `{"NetworkID":"`+nid+`"}`)
	if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), "failed unexpectedly") {
		t.Errorf("a panicking call = %d %v", code, out)
	}
}

// FuzzRequests sends any body to every call: each gets a JSON answer,
// never a panic.
func FuzzRequests(f *testing.F) {
	for _, s := range []string{
		`{"NetworkID":"` + nid + `","Options":{"com.docker.network.generic":{"a":1}},"IPv4Data":[{"Pool":"10.131.1.0/24","Gateway":"10.131.1.1/24"}]}`,
		`{"NetworkID":"` + nid + `","EndpointID":"` + eid + `","Interface":{"Address":"10.131.0.9/24"},"Options":{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":8080}]}}`,
		`{"NetworkID":"` + nid + `","EndpointID":"` + eid + `","SandboxKey":"/x","Options":{"com.docker.network.portmap":null}}`,
		`{"Pool":"10.0.0.0/8","SubPool":"10.1.0.0/16","V6":true}`,
		`{"PoolID":"p","Address":"::1","Options":{"RequestAddressType":"com.docker.network.gateway"}}`,
		``, `null`, `[]`, `{"Options":7}`,
	} {
		f.Add(s)
	}
	calls := []string{
		"Plugin.Activate", "NetworkDriver.CreateNetwork", "NetworkDriver.DeleteNetwork", "NetworkDriver.CreateEndpoint",
		"NetworkDriver.EndpointOperInfo", "NetworkDriver.DeleteEndpoint", "NetworkDriver.Join", "NetworkDriver.Leave",
		"NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.RevokeExternalConnectivity", "NetworkDriver.DiscoverNew",
		"IpamDriver.RequestPool", "IpamDriver.ReleasePool", "IpamDriver.RequestAddress", "IpamDriver.ReleaseAddress",
	}
	h := NewHandler(&recorder{}, nil)
	f.Fuzz(func(t *testing.T, body string) {
		for _, c := range calls {
			req := httptest.NewRequest(http.MethodPost, "/"+c, strings.NewReader(body))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			var out map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
				t.Fatalf("%s(%q): answer %q is not a JSON object", c, body, w.Body)
			}
			if w.Code != http.StatusOK && out["Err"] == nil {
				t.Fatalf("%s(%q) = %d without Err", c, body, w.Code)
			}
		}
	})
}

// FuzzParse decodes any body as each request and checks it, outside the
// handler's recover, so that a panic in the parsing fails the test.
func FuzzParse(f *testing.F) {
	f.Add(`{"NetworkID":"` + nid + `","Options":{"com.docker.network.generic":{"internal":"1"},"com.docker.network.enable_ipv6":true},"IPv4Data":[{"Pool":"10.131.1.0/24","Gateway":"10.131.1.1"}],"IPv6Data":[{"Pool":"fd31::/64"}]}`)
	f.Add(`{"NetworkID":"` + nid + `","EndpointID":"` + eid + `","Interface":{"Address":"10.131.0.9/24","AddressIPv6":"fd31::9/64"},"Options":{"com.docker.network.portmap":[{"Proto":17,"Port":53,"HostIP":"127.0.0.1","HostPort":1,"HostPortEnd":9}]}}`)
	f.Add(`{"Pool":"10.131.0.0/16","SubPool":"10.131.1.0/24"}`)
	f.Add(`{"NetworkID":"` + nid + `","IPv4Data":[{"Pool":"10.133.1.0/24","Gateway":"10.133.1.1/24"}],"IPv6Data":[{"Pool":"fd33:0:0:1::/64","Gateway":"fd33:0:0:1::1/64"}]}`)
	f.Add(`{"NetworkID":"` + nid + `","IPv6Data":[{"Pool":"fd33::/64","Gateway":"10.0.0.1"}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var n CreateNetworkRequest
		if Decode([]byte(body), &n) == nil {
			if got, err := ParseNetwork(n); err == nil {
				if !got.Subnet.IsValid() || !got.Subnet.Addr().Is4() || got.Gateway.IsValid() && !got.Subnet.Contains(got.Gateway) {
					t.Fatalf("ParseNetwork(%q) = %+v: no IPv4 subnet, or a gateway outside it", body, got)
				}
				for _, s := range got.V6 {
					if !s.Prefix.Addr().Is6() || s.Gateway.IsValid() && !s.Prefix.Contains(s.Gateway) {
						t.Fatalf("ParseNetwork(%q) = %+v: an IPv6 subnet that is not, or a gateway outside it", body, got)
					}
				}
			}
		}
		var e CreateEndpointRequest
		if Decode([]byte(body), &e) == nil {
			if got, err := ParseEndpoint(e); err == nil {
				for _, b := range got.PortMap {
					if b.Check() != nil {
						t.Fatalf("ParseEndpoint(%q) took %+v", body, b)
					}
				}
			}
		}
		var j JoinRequest
		if Decode([]byte(body), &j) == nil {
			ParseJoin(j)
		}
		var p RequestPoolRequest
		if Decode([]byte(body), &p) == nil {
			if got, err := ParsePool(p); err == nil && got.SubPool.IsValid() && !got.Prefix.Contains(got.SubPool.Addr()) {
				t.Fatalf("ParsePool(%q) = %+v: range outside the subnet", body, got)
			}
		}
	})
}

// TestDualStack: Docker's IPv6 data reaches the backend; an IPv6-only
// network is refused with the reason; the driver's IPv6 address is
// answered only when Docker gave none; Join's IPv6 gateway reaches Docker.
func TestDualStack(t *testing.T) {
	r := &recorder{}
	h := NewHandler(r, nil)
	code, out := post(t, h, "/NetworkDriver.CreateNetwork", `{"NetworkID":"`+nid+`","Options":{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{}},
		"IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"10.133.1.0/24","Gateway":"10.133.1.1/24"}],
		"IPv6Data":[{"AddressSpace":"LocalDefault","Pool":"fd33:0:0:1::/64","Gateway":"fd33:0:0:1::1/64"}]}`)
	if code != http.StatusOK || !r.network.IPv6 || len(r.network.V6) != 1 ||
		r.network.V6[0].Prefix.String() != "fd33:0:0:1::/64" || r.network.V6[0].Gateway.String() != "fd33:0:0:1::1" {
		t.Errorf("CreateNetwork = %d %v; backend got %+v", code, out, r.network)
	}
	if got := r.network.Prefixes(); len(got) != 2 || got[0].String() != "10.133.1.0/24" || got[1].String() != "fd33:0:0:1::/64" {
		t.Errorf("Prefixes() = %v", got)
	}
	for body, want := range map[string]string{
		`{"NetworkID":"` + nid + `","IPv6Data":[{"Pool":"fd33:0:0:1::/64"}]}`:                                                        "IPv6-only",
		`{"NetworkID":"` + nid + `","IPv4Data":[{"Pool":"10.133.1.0/24"}],"IPv6Data":[{"Pool":"10.133.2.0/24"}]}`:                    "not of the family",
		`{"NetworkID":"` + nid + `","IPv4Data":[{"Pool":"10.133.1.0/24"}],"IPv6Data":[{"Pool":"fd33::/64","Gateway":"fd34::1/64"}]}`: "outside",
	} {
		code, out := post(t, h, "/NetworkDriver.CreateNetwork", body)
		if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), want) {
			t.Errorf("CreateNetwork(%s) = %d %v, want an Err saying %q", body, code, out, want)
		}
	}
	r.ifc = &EndpointInterface{Address: "10.133.1.2/24", AddressIPv6: "fd33:0:0:1::2/64", MacAddress: "02:42:0a:85:01:02"}
	_, out = post(t, h, "/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","Interface":{"Address":"10.133.1.2/24"}}`)
	if ifc := out["Interface"].(map[string]any); ifc["AddressIPv6"] != "fd33:0:0:1::2/64" || ifc["Address"] != nil {
		t.Errorf("CreateEndpoint without an IPv6 address = %v, want the driver's IPv6 address and not the IPv4 one", ifc)
	}
	_, out = post(t, h, "/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","Interface":{"Address":"10.133.1.2/24","AddressIPv6":"fd33:0:0:1::2/64"}}`)
	if ifc := out["Interface"].(map[string]any); ifc["AddressIPv6"] != nil || ifc["MacAddress"] == nil {
		t.Errorf("CreateEndpoint with both addresses = %v, want the MAC only", ifc)
	}
	if r.endpoint.AddressIPv6.String() != "fd33:0:0:1::2/64" {
		t.Errorf("the backend got %+v", r.endpoint)
	}
	code, out = post(t, h, "/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+nid+`","EndpointID":"`+eid+`","Interface":{"Address":"10.133.1.2/24","AddressIPv6":"10.133.1.3/24"}}`)
	if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), "IPv6") {
		t.Errorf("CreateEndpoint with an IPv4 AddressIPv6 = %d %v", code, out)
	}
	code, out = post(t, h, "/IpamDriver.RequestPool", `{"AddressSpace":"tapswitch-local","Pool":"","V6":true}`)
	if code != http.StatusOK || !r.pool.V6 {
		t.Errorf("RequestPool(V6) = %d %v; backend got %+v", code, out, r.pool)
	}
	code, out = post(t, h, "/IpamDriver.RequestPool", `{"Pool":"10.133.0.0/24","V6":true}`)
	if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), "family") {
		t.Errorf("RequestPool(V6) of an IPv4 prefix = %d %v", code, out)
	}
}
