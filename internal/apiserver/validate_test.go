package apiserver

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/ipam"
	"github.com/tapswitch/tapswitch/internal/publish"
)

func TestValidateAttachRequest(t *testing.T) {
	tests := []struct {
		name    string
		req     api.AttachRequest
		errText string // "" for a valid request
	}{
		{name: "minimal", req: api.AttachRequest{Netns: "web"}},
		{name: "everything", req: api.AttachRequest{Netns: "pid:42", Network: "front", Name: "web_1", Ifname: "eth1",
			IPs: []string{"10.0.0.1/24", "fd00::1/64", "192.0.2.0/31", "192.0.2.7/32", "fd00:1::/127"},
			MAC: "02:00:00:00:00:01", MTU: 9000, Publish: []string{"8080:80", "127.0.0.1:5353:53/udp"}}},
		{name: "path", req: api.AttachRequest{Netns: "/proc/42/ns/net"}},
		{name: "MTU at the bounds", req: api.AttachRequest{Netns: "a", MTU: 68}},
		{name: "MTU 65535", req: api.AttachRequest{Netns: "a", MTU: 65535}},
		{name: "name of 63", req: api.AttachRequest{Netns: "a", Name: strings.Repeat("a", 63)}},

		{name: "no netns", req: api.AttachRequest{}, errText: "empty network namespace"},
		{name: "relative netns path", req: api.AttachRequest{Netns: "../../etc/passwd"}, errText: "must be absolute"},
		{name: "netns with a newline", req: api.AttachRequest{Netns: "a\nb"}, errText: "control character"},
		{name: "bad pid", req: api.AttachRequest{Netns: "pid:x"}, errText: "pid must be a positive number"},
		{name: "port name with a dot", req: api.AttachRequest{Netns: "a", Name: "web.front"}, errText: "port name"},
		{name: "port name with a space", req: api.AttachRequest{Netns: "a", Name: "web front"}, errText: "port name"},
		{name: "port name starting with a hyphen", req: api.AttachRequest{Netns: "a", Name: "-x"}, errText: "port name"},
		{name: "port name ending in a hyphen", req: api.AttachRequest{Netns: "a", Name: "x-"}, errText: "DNS name"},
		{name: "port name of 64", req: api.AttachRequest{Netns: "a", Name: strings.Repeat("a", 64)}, errText: "1 to 63"},
		{name: "port name not ASCII", req: api.AttachRequest{Netns: "a", Name: "wéb"}, errText: "port name"},
		{name: "network name with a slash", req: api.AttachRequest{Netns: "a", Network: "../x"}, errText: "network name"},
		{name: "ifname too long", req: api.AttachRequest{Netns: "a", Ifname: "abcdefghijklmnop"}, errText: "interface name"},
		{name: "ifname with a slash", req: api.AttachRequest{Netns: "a", Ifname: "a/b"}, errText: "interface name"},
		{name: "ifname with a colon", req: api.AttachRequest{Netns: "a", Ifname: "eth0:1"}, errText: "interface name"},
		{name: "ifname with a space", req: api.AttachRequest{Netns: "a", Ifname: "eth 0"}, errText: "interface name"},
		{name: "ifname with a tab", req: api.AttachRequest{Netns: "a", Ifname: "eth\t0"}, errText: "interface name"},
		{name: "ifname dot dot", req: api.AttachRequest{Netns: "a", Ifname: ".."}, errText: "interface name"},
		{name: "address without length", req: api.AttachRequest{Netns: "a", IPs: []string{"10.0.0.1"}}, errText: "ADDR/LEN"},
		{name: "container id and DNS name", req: api.AttachRequest{Netns: "a", ContainerID: "0f3e9c_a.b-1", DNSName: "db"}},
		{name: "container id with a slash", req: api.AttachRequest{Netns: "a", ContainerID: "../x"}, errText: "container id"},
		{name: "container id too long", req: api.AttachRequest{Netns: "a", ContainerID: strings.Repeat("a", api.MaxContainerID+1)}, errText: "container id"},
		{name: "DNS name with a dot", req: api.AttachRequest{Netns: "a", DNSName: "db.front"}, errText: "DNS name"},
		{name: "address with a zone", req: api.AttachRequest{Netns: "a", IPs: []string{"fe80::1%eth0/64"}}, errText: "ADDR/LEN"},
		{name: "network address", req: api.AttachRequest{Netns: "a", IPs: []string{"10.0.0.0/24"}}, errText: "network address of 10.0.0.0/24"},
		{name: "broadcast address", req: api.AttachRequest{Netns: "a", IPs: []string{"10.0.0.255/24"}}, errText: "broadcast address"},
		{name: "IPv6 subnet address", req: api.AttachRequest{Netns: "a", IPs: []string{"fd00::/64"}}, errText: "network address"},
		{name: "unspecified", req: api.AttachRequest{Netns: "a", IPs: []string{"0.0.0.0/8"}}, errText: "in 0.0.0.0/8"},
		{name: "loopback", req: api.AttachRequest{Netns: "a", IPs: []string{"127.0.0.2/8"}}, errText: "in 127.0.0.0/8, loopback"},
		{name: "multicast", req: api.AttachRequest{Netns: "a", IPs: []string{"224.0.0.1/4"}}, errText: "in 224.0.0.0/4, IPv4 multicast"},
		{name: "limited broadcast", req: api.AttachRequest{Netns: "a", IPs: []string{"255.255.255.255/32"}}, errText: "in 240.0.0.0/4"},
		{name: "IPv4-mapped", req: api.AttachRequest{Netns: "a", IPs: []string{"::ffff:10.0.0.1/120"}}, errText: "10.0.0.1/24"},
		{name: "address twice", req: api.AttachRequest{Netns: "a", IPs: []string{"10.0.0.1/24", "10.0.0.1/16"}}, errText: "given twice"},
		{name: "too many addresses", req: api.AttachRequest{Netns: "a", IPs: manyAddrs(65)}, errText: "at most 64"},
		{name: "bad MAC", req: api.AttachRequest{Netns: "a", MAC: "zz"}, errText: "six bytes"},
		{name: "EUI-64 MAC", req: api.AttachRequest{Netns: "a", MAC: "02:00:00:00:00:00:00:01"}, errText: "six bytes"},
		{name: "multicast MAC", req: api.AttachRequest{Netns: "a", MAC: "01:00:5e:00:00:01"}, errText: "unicast"},
		{name: "broadcast MAC", req: api.AttachRequest{Netns: "a", MAC: "ff:ff:ff:ff:ff:ff"}, errText: "unicast"},
		{name: "zero MAC", req: api.AttachRequest{Netns: "a", MAC: "00:00:00:00:00:00"}, errText: "zero address"},
		{name: "MTU too small", req: api.AttachRequest{Netns: "a", MTU: 67}, errText: "between 68 and 65535"},
		{name: "MTU too big", req: api.AttachRequest{Netns: "a", MTU: 65536}, errText: "between 68 and 65535"},
		{name: "MTU negative", req: api.AttachRequest{Netns: "a", MTU: -1}, errText: "MTU -1"},
		{name: "MTU too small for IPv6", req: api.AttachRequest{Netns: "a", MTU: 1000, IPs: []string{"fd00::1/64"}}, errText: "IPv6"},
		{name: "publish without container port", req: api.AttachRequest{Netns: "a", Publish: []string{"8080"}}, errText: "HOSTPORT:CONTAINERPORT"},
		{name: "publish bad protocol", req: api.AttachRequest{Netns: "a", Publish: []string{"8080:80/sctp"}}, errText: "sctp"},
		{name: "ifname with a pattern", req: api.AttachRequest{Netns: "a", Ifname: "eth%d"}, errText: "'%'"},
		{name: "ifname all", req: api.AttachRequest{Netns: "a", Ifname: "all"}, errText: "/proc/sys/net/ipv4/conf/all"},
		{name: "ifname default", req: api.AttachRequest{Netns: "a", Ifname: "default"}, errText: "/proc/sys/net/ipv4/conf/default); choose another"},
		{name: "this-network address", req: api.AttachRequest{Netns: "a", IPs: []string{"0.1.2.3/8"}}, errText: "in 0.0.0.0/8"},
		{name: "link-local address", req: api.AttachRequest{Netns: "a", IPs: []string{"169.254.1.2/16"}}, errText: "in 169.254.0.0/16"},
		{name: "reserved address", req: api.AttachRequest{Netns: "a", IPs: []string{"240.0.0.1/4"}}, errText: "in 240.0.0.0/4"},
		{name: "IPv6 link-local address", req: api.AttachRequest{Netns: "a", IPs: []string{"fe80::5/64"}}, errText: "in fe80::/10"},
		{name: "IPv4-compatible address", req: api.AttachRequest{Netns: "a", IPs: []string{"::a00:1/96"}}, errText: "in ::/96"},
		{name: "IPv6 multicast address", req: api.AttachRequest{Netns: "a", IPs: []string{"ff15::5/64"}}, errText: "in ff00::/8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateAttach(tt.req)
			if tt.errText == "" {
				if err != nil {
					t.Fatalf("ValidateAttach(%+v) = %v, want nil", tt.req, err)
				}
				return
			}
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("ValidateAttach(%+v) = %v, want an ErrInvalid containing %q", tt.req, err, tt.errText)
			}
			if !strings.HasPrefix(err.Error(), "attach netns ") {
				t.Fatalf("ValidateAttach(%+v) = %v, want it to start with the netns", tt.req, err)
			}
		})
	}
}

func manyAddrs(n int) []string {
	out := make([]string, n)
	a := netip.MustParseAddr("10.0.0.1")
	for i := range out {
		out[i] = netip.PrefixFrom(a, 16).String()
		a = a.Next()
	}
	return out
}

func TestValidateConnectRequest(t *testing.T) {
	tests := []struct {
		name    string
		network string
		req     api.ConnectRequest
		errText string
	}{
		{name: "minimal", network: "back", req: api.ConnectRequest{Port: "api"}},
		{name: "full", network: "back", req: api.ConnectRequest{Port: "api", Name: "api-back", IPs: []string{"10.89.1.9/24"}}},
		{name: "port by id", network: "back", req: api.ConnectRequest{Port: "7"}},
		{name: "port with an old-style name", network: "back", req: api.ConnectRequest{Port: "web.1-"}},
		{name: "no port", network: "back", req: api.ConnectRequest{}, errText: "not a port name or id"},
		{name: "port with a slash", network: "back", req: api.ConnectRequest{Port: "a/b"}, errText: "not a port name or id"},
		{name: "bad network", network: "a b", req: api.ConnectRequest{Port: "api"}, errText: "network name"},
		{name: "bad new name", network: "back", req: api.ConnectRequest{Port: "api", Name: "api.back"}, errText: "port name"},
		{name: "bad address", network: "back", req: api.ConnectRequest{Port: "api", IPs: []string{"10.89.1.0/24"}}, errText: "network address"},
		{name: "link-local address", network: "back", req: api.ConnectRequest{Port: "api", IPs: []string{"169.254.9.9/16"}}, errText: "in 169.254.0.0/16"},
		{name: "host namespace allowed", network: "back", req: api.ConnectRequest{Port: "api", AllowHostNetns: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateConnect(tt.network, tt.req)
			if tt.errText == "" {
				if err != nil {
					t.Fatalf("ValidateConnect(%q, %+v) = %v, want nil", tt.network, tt.req, err)
				}
				return
			}
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.errText) || !strings.HasPrefix(err.Error(), "connect port ") {
				t.Fatalf("ValidateConnect(%q, %+v) = %v, want an ErrInvalid 'connect port ...' containing %q", tt.network, tt.req, err, tt.errText)
			}
		})
	}
}

func TestValidateNetworkCreateRequest(t *testing.T) {
	tests := []struct {
		name    string
		req     api.NetworkCreateRequest
		errText string
	}{
		{name: "name only", req: api.NetworkCreateRequest{Name: "front"}},
		{name: "subnet", req: api.NetworkCreateRequest{Name: "front", Subnet: "10.20.0.0/24"}},
		{name: "subnet and gateway", req: api.NetworkCreateRequest{Name: "front", Subnet: "10.20.0.0/24", Gateway: "10.20.0.254", Internal: true}},
		{name: "IPv6", req: api.NetworkCreateRequest{Name: "six", Subnet: "fd00:20::/64", Gateway: "fd00:20::1"}},
		{name: "no name", req: api.NetworkCreateRequest{}, errText: "network name"},
		{name: "scope local", req: api.NetworkCreateRequest{Name: "front", Scope: api.ScopeLocal}},
		{name: "scope cluster", req: api.NetworkCreateRequest{Name: "front", Scope: api.ScopeCluster}},
		{name: "cluster with a VNI", req: api.NetworkCreateRequest{Name: "front", Scope: api.ScopeCluster, VNI: 4242}},
		{name: "largest VNI", req: api.NetworkCreateRequest{Name: "front", Scope: api.ScopeCluster, VNI: api.MaxVNI}},
		{name: "VNI over 24 bits", req: api.NetworkCreateRequest{Name: "front", Scope: api.ScopeCluster, VNI: api.MaxVNI + 1}, errText: "use 1 to 16777215"},
		{name: "VNI of a local network", req: api.NetworkCreateRequest{Name: "front", VNI: 42}, errText: "add --scope cluster"},
		{name: "unknown scope", req: api.NetworkCreateRequest{Name: "front", Scope: "global"}, errText: `scope "global"`},
		{name: "name with a dot", req: api.NetworkCreateRequest{Name: "x.y"}, errText: "network name"},
		{name: "name too long", req: api.NetworkCreateRequest{Name: strings.Repeat("n", 64)}, errText: "network name"},
		{name: "subnet not a prefix", req: api.NetworkCreateRequest{Name: "x", Subnet: "10.20.0.0"}, errText: "want a prefix"},
		{name: "subnet not a network address", req: api.NetworkCreateRequest{Name: "x", Subnet: "10.30.0.1/24"}, errText: "10.30.0.0/24"},
		{name: "subnet of one address", req: api.NetworkCreateRequest{Name: "x", Subnet: "10.30.0.1/32"}, errText: "single address"},
		{name: "IPv4-mapped subnet", req: api.NetworkCreateRequest{Name: "x", Subnet: "::ffff:10.30.0.0/120"}, errText: "IPv4 form"},
		{name: "gateway without a subnet", req: api.NetworkCreateRequest{Name: "x", Gateway: "10.20.0.1"}, errText: "without a subnet"},
		{name: "gateway not an address", req: api.NetworkCreateRequest{Name: "x", Subnet: "10.30.0.0/24", Gateway: "gw"}, errText: "want an address"},
		{name: "gateway outside", req: api.NetworkCreateRequest{Name: "x", Subnet: "10.30.0.0/24", Gateway: "10.31.0.1"}, errText: "not in 10.30.0.0/24"},
		{name: "gateway of another family", req: api.NetworkCreateRequest{Name: "x", Subnet: "10.30.0.0/24", Gateway: "fd00::1"}, errText: "not in"},
		{name: "gateway on the broadcast address", req: api.NetworkCreateRequest{Name: "x", Subnet: "10.30.0.0/24", Gateway: "10.30.0.255"}, errText: "broadcast"},
		{name: "loopback subnet", req: api.NetworkCreateRequest{Name: "x", Subnet: "127.0.0.0/8"}, errText: "is in 127.0.0.0/8, loopback"},
		{name: "part of loopback", req: api.NetworkCreateRequest{Name: "x", Subnet: "127.150.0.0/24"}, errText: "is in 127.0.0.0/8"},
		{name: "over loopback", req: api.NetworkCreateRequest{Name: "x", Subnet: "126.0.0.0/7"}, errText: "overlaps 127.0.0.0/8"},
		{name: "everything", req: api.NetworkCreateRequest{Name: "x", Subnet: "0.0.0.0/0"}, errText: "overlaps 0.0.0.0/8"},
		{name: "this network", req: api.NetworkCreateRequest{Name: "x", Subnet: "0.150.0.0/24"}, errText: "0.0.0.0/8"},
		{name: "link-local subnet", req: api.NetworkCreateRequest{Name: "x", Subnet: "169.254.150.0/24"}, errText: "169.254.0.0/16"},
		{name: "multicast subnet", req: api.NetworkCreateRequest{Name: "x", Subnet: "224.150.0.0/24"}, errText: "224.0.0.0/4"},
		{name: "reserved subnet", req: api.NetworkCreateRequest{Name: "x", Subnet: "240.150.0.0/24"}, errText: "240.0.0.0/4"},
		{name: "broadcast in subnet", req: api.NetworkCreateRequest{Name: "x", Subnet: "255.255.255.0/24"}, errText: "255.255.255.255"},
		{name: "IPv6 link-local subnet", req: api.NetworkCreateRequest{Name: "x", Subnet: "fe80:150::/64"}, errText: "fe80::/10"},
		{name: "IPv6 multicast subnet", req: api.NetworkCreateRequest{Name: "x", Subnet: "ff15:150::/64"}, errText: "ff00::/8"},
		{name: "IPv6 loopback", req: api.NetworkCreateRequest{Name: "x", Subnet: "::/127"}, errText: "::/96"},
		{name: "IPv4-compatible subnet", req: api.NetworkCreateRequest{Name: "x", Subnet: "::100/120"}, errText: "::/96"},
		{name: "all of IPv6", req: api.NetworkCreateRequest{Name: "x", Subnet: "::/0"}, errText: "overlaps ::/96"},
		{name: "unsafe says what to use", req: api.NetworkCreateRequest{Name: "x", Subnet: "127.0.0.0/8"}, errText: "use a private range such as 10.0.0.0/8"},
		{name: "unsafe IPv6 says what to use", req: api.NetworkCreateRequest{Name: "x", Subnet: "fe80::/64"}, errText: "fd00::/8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateNetworkCreate(tt.req)
			if tt.errText == "" {
				if err != nil {
					t.Fatalf("ValidateNetworkCreate(%+v) = %v, want nil", tt.req, err)
				}
				return
			}
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.errText) || !strings.HasPrefix(err.Error(), "create network") {
				t.Fatalf("ValidateNetworkCreate(%+v) = %v, want an ErrInvalid 'create network ...' containing %q", tt.req, err, tt.errText)
			}
		})
	}
}

// TestValidateWraps checks that a request refused for what another
// package found keeps that package's error under ErrInvalid.
func TestValidateWraps(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		cause error
	}{
		{"publish", ValidateAttach(api.AttachRequest{Netns: "a", Publish: []string{"8080"}}), publish.ErrInvalidSpec},
		{"subnet", ValidateNetworkCreate(api.NetworkCreateRequest{Name: "x", Subnet: "10.0.0.1/24"}), ipam.ErrInvalidSubnet},
		{"gateway", ValidateNetworkCreate(api.NetworkCreateRequest{Name: "x", Subnet: "10.0.0.0/24", Gateway: "10.1.0.1"}), ipam.ErrInvalidGateway},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, api.ErrInvalid) || !errors.Is(tt.err, tt.cause) {
			t.Errorf("%s: %v, want it to wrap %v and %v", tt.name, tt.err, api.ErrInvalid, tt.cause)
		}
	}
}

// TestServerValidates checks that the server answers a bad request with
// 400 and a message, and never passes it to the Backend.
func TestServerValidates(t *testing.T) {
	b := &fakeBackend{}
	c := serve(t, b)
	tests := []struct {
		name, method, path, body string
		want                     string // in the message
	}{
		{"attach bad MTU", http.MethodPost, "/v1/ports", `{"netns":"a","mtu":10}`, "MTU 10"},
		{"attach bad name", http.MethodPost, "/v1/ports", `{"netns":"a","name":"a b"}`, "port name"},
		{"attach relative netns", http.MethodPost, "/v1/ports", `{"netns":"x/../../etc/passwd"}`, "must be absolute"},
		{"detach bad name", http.MethodDelete, "/v1/ports/a%20b", "", "not a port name or id"},
		{"fdb bad network", http.MethodGet, "/v1/fdb?network=a%2Fb", "", "network name"},
		{"create bad subnet", http.MethodPost, "/v1/networks", `{"name":"x","subnet":"10.0.0.1/24"}`, "10.0.0.0/24"},
		{"inspect bad network", http.MethodGet, "/v1/networks/a.b", "", "network name"},
		{"remove bad network", http.MethodDelete, "/v1/networks/a%0Ab", "", "network name"},
		{"connect bad network", http.MethodPost, "/v1/networks/a.b/connect", `{"port":"api"}`, "network name"},
		{"connect bad address", http.MethodPost, "/v1/networks/back/connect", `{"port":"api","ips":["10.0.0.1"]}`, "ADDR/LEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e := request(t, c, tt.method, tt.path, tt.body)
			if status != http.StatusBadRequest || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("%s %s = %d %+v, want 400 containing %q", tt.method, tt.path, status, e, tt.want)
			}
		})
	}
	if len(b.attached) != 0 || len(b.networks) != 0 || len(b.removed) != 0 || len(b.connected) != 0 {
		t.Fatalf("backend got attached %v, networks %v, removed %v, connected %v; want nothing", b.attached, b.networks, b.removed, b.connected)
	}
}

// checkAttach is what a valid AttachRequest guarantees the daemon.
func checkAttach(t *testing.T, req api.AttachRequest) {
	t.Helper()
	if req.Name != "" && !nameRE.MatchString(req.Name) {
		t.Fatalf("accepted port name %q", req.Name)
	}
	if req.Network != "" && !nameRE.MatchString(req.Network) {
		t.Fatalf("accepted network name %q", req.Network)
	}
	if req.MTU != 0 && (req.MTU < MinMTU || req.MTU > MaxMTU) {
		t.Fatalf("accepted MTU %d", req.MTU)
	}
	if req.Ifname != "" && (len(req.Ifname) > 15 || strings.ContainsAny(req.Ifname, "/: \t\n\x00")) {
		t.Fatalf("accepted interface name %q", req.Ifname)
	}
	for _, s := range req.IPs {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().IsValid() || p.Addr().IsMulticast() {
			t.Fatalf("accepted address %q", s)
		}
	}
	if req.MAC != "" {
		if mac, err := ParseMAC(req.MAC); err != nil || mac[0]&1 != 0 {
			t.Fatalf("accepted MAC %q", req.MAC)
		}
	}
}

func FuzzValidateAttachRequest(f *testing.F) {
	f.Add(`{"netns":"a","ips":["10.0.0.1/24"],"mtu":1500,"mac":"02:00:00:00:00:01"}`)
	f.Add(`{"netns":"pid:1","name":"web","network":"front","ifname":"eth1","publish":["8080:80/udp"]}`)
	f.Add(`{"netns":"/proc/1/ns/net","ips":["fd00::/64"],"mtu":1000}`)
	f.Add(`{"netns":"../x","name":"a.b"}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := DecodeAttachRequest(strings.NewReader(body))
		if err != nil {
			return
		}
		if err := ValidateAttach(req); err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("ValidateAttach(%+v) = %v, not an ErrInvalid", req, err)
			}
			return
		}
		checkAttach(t, req)
	})
}

func FuzzValidateConnectRequest(f *testing.F) {
	f.Add("back", `{"port":"api","name":"api-back","ips":["10.89.1.9/24"]}`)
	f.Add("a.b", `{"port":"x y"}`)
	f.Fuzz(func(t *testing.T, network, body string) {
		req, err := DecodeConnectRequest(strings.NewReader(body))
		if err != nil {
			return
		}
		if err := ValidateConnect(network, req); err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("ValidateConnect(%q, %+v) = %v, not an ErrInvalid", network, req, err)
			}
			return
		}
		if !nameRE.MatchString(network) || !portRefRE.MatchString(req.Port) || (req.Name != "" && !nameRE.MatchString(req.Name)) {
			t.Fatalf("ValidateConnect(%q, %+v) accepted a bad name", network, req)
		}
		checkAttach(t, api.AttachRequest{Netns: "a", IPs: req.IPs})
	})
}

func FuzzValidateNetworkCreateRequest(f *testing.F) {
	f.Add(`{"name":"front","subnet":"10.20.0.0/24","gateway":"10.20.0.1"}`)
	f.Add(`{"name":"six","subnet":"fd00::/64"}`)
	f.Add(`{"name":"x","gateway":"10.0.0.1"}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := DecodeNetworkCreateRequest(strings.NewReader(body))
		if err != nil {
			return
		}
		if err := ValidateNetworkCreate(req); err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("ValidateNetworkCreate(%+v) = %v, not an ErrInvalid", req, err)
			}
			return
		}
		if !nameRE.MatchString(req.Name) {
			t.Fatalf("ValidateNetworkCreate(%+v) accepted network name %q", req, req.Name)
		}
		if req.Subnet == "" {
			if req.Gateway != "" {
				t.Fatalf("ValidateNetworkCreate(%+v) accepted a gateway without a subnet", req)
			}
			return
		}
		p, err := netip.ParsePrefix(req.Subnet)
		if err != nil || p.Masked() != p {
			t.Fatalf("ValidateNetworkCreate(%+v) accepted subnet %q", req, req.Subnet)
		}
		if req.Gateway != "" {
			if gw, err := netip.ParseAddr(req.Gateway); err != nil || !p.Contains(gw) {
				t.Fatalf("ValidateNetworkCreate(%+v) accepted gateway %q", req, req.Gateway)
			}
		}
	})
}

// TestCheckNameLocalhost: localhost, in any case, names no port or
// network (RFC 6761).
func TestCheckNameLocalhost(t *testing.T) {
	for _, name := range []string{"localhost", "LocalHost"} {
		if err := CheckName("port", name); err == nil || !strings.Contains(err.Error(), "RFC 6761") {
			t.Errorf("CheckName(port, %q) = %v; want refused as reserved", name, err)
		}
	}
	if err := CheckName("port", "localhost2"); err != nil {
		t.Errorf("CheckName(port, localhost2) = %v; want nil", err)
	}
}
