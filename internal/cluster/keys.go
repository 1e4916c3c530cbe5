package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The keys under the prefix. Values are JSON; everything read back is
// outside input (any etcd client may write there) and checked by decode.
//
//	hosts/HOST             hostRecord, under HOST's lease
//	networks/NETWORK       networkRecord
//	vni/VNI                NETWORK, the VNI's holder
//	netrev                 empty; rewritten by every network change, so a
//	                       transaction can tell that no network changed
//	                       since it read them all (the overlap check)
//	addrs/NETWORK/IP       addrRecord, under the owner host's lease
//	endpoints/NETWORK/NAME endpointRecord, under the host's lease
const (
	hostsDir     = "hosts/"
	networksDir  = "networks/"
	vniDir       = "vni/"
	netrevKey    = "netrev"
	addrsDir     = "addrs/"
	endpointsDir = "endpoints/"
)

// maxVNI is the largest VXLAN network identifier (24 bits).
const maxVNI = 1<<24 - 1

// firstAutoVNI is where CreateNetwork starts looking for a free VNI, as
// Docker's overlay driver does: small numbers are left to those who pick
// one by hand, e.g. to match a kernel VTEP.
const firstAutoVNI = 4096

// hostRecord is the value of hosts/HOST.
type hostRecord struct {
	VTEP  string    `json:"vtep"`
	Since time.Time `json:"since"`
}

// networkRecord is the value of networks/NETWORK.
type networkRecord struct {
	VNI      uint32         `json:"vni"`
	Subnets  []subnetRecord `json:"subnets"`
	Internal bool           `json:"internal,omitempty"`
}

type subnetRecord struct {
	Prefix  string `json:"prefix"`
	Gateway string `json:"gateway"`
}

// addrRecord is the value of addrs/NETWORK/IP: who holds the address.
type addrRecord struct {
	Owner string `json:"owner"`
	Host  string `json:"host"`
}

// endpointRecord is the value of endpoints/NETWORK/NAME.
type endpointRecord struct {
	Host string   `json:"host"`
	MAC  string   `json:"mac"`
	IPs  []string `json:"ips,omitempty"`
	VTEP string   `json:"vtep"`
}

// checkName refuses names that would break the key layout or that no
// tapswitch network or port has.
func checkName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty %s name", ErrInvalid, what)
	case len(name) > 255:
		return fmt.Errorf("%w: %s name of %d bytes; use at most 255", ErrInvalid, what, len(name))
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: %s name %q contains '/' or NUL; choose another", ErrInvalid, what, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s name %q contains a control character; choose another", ErrInvalid, what, name)
		}
	}
	return nil
}

// checkVNI refuses a VNI outside 1..2^24-1.
func checkVNI(vni uint32) error {
	if vni == 0 || vni > maxVNI {
		return fmt.Errorf("%w: VNI %d is out of range; use 1 to %d", ErrInvalid, vni, maxVNI)
	}
	return nil
}

func encodeHost(h Host) []byte {
	b, _ := json.Marshal(hostRecord{VTEP: h.VTEP.String(), Since: h.Since.UTC()})
	return b
}

func decodeHost(name string, v []byte) (Host, error) {
	if err := checkName("host", name); err != nil {
		return Host{}, err
	}
	var r hostRecord
	if err := strictUnmarshal(v, &r); err != nil {
		return Host{}, fmt.Errorf("host %q: %w", name, err)
	}
	vtep, err := netip.ParseAddr(r.VTEP)
	if err != nil || vtep.Zone() != "" {
		return Host{}, fmt.Errorf("host %q: VTEP %q is not an IP address", name, r.VTEP)
	}
	if y := r.Since.UTC().Year(); y < 1 || y > 9999 {
		return Host{}, fmt.Errorf("host %q: registered in year %d", name, y)
	}
	return Host{Name: name, VTEP: vtep, Since: r.Since}, nil
}

func encodeNetwork(n Network) []byte {
	r := networkRecord{VNI: n.VNI, Internal: n.Internal, Subnets: make([]subnetRecord, len(n.Subnets))}
	for i, s := range n.Subnets {
		r.Subnets[i] = subnetRecord{Prefix: s.Prefix.String(), Gateway: s.Gateway.String()}
	}
	b, _ := json.Marshal(r)
	return b
}

func decodeNetwork(name string, v []byte) (Network, error) {
	if err := checkName("network", name); err != nil {
		return Network{}, err
	}
	var r networkRecord
	if err := strictUnmarshal(v, &r); err != nil {
		return Network{}, fmt.Errorf("network %q: %w", name, err)
	}
	if err := checkVNI(r.VNI); err != nil {
		return Network{}, fmt.Errorf("network %q: %w", name, err)
	}
	if len(r.Subnets) > 16 {
		return Network{}, fmt.Errorf("network %q: %d subnets; a network has at most 16", name, len(r.Subnets))
	}
	n := Network{Name: name, VNI: r.VNI, Internal: r.Internal}
	for _, s := range r.Subnets {
		p, err := netip.ParsePrefix(s.Prefix)
		if err != nil || p.Masked() != p || p.Addr().Zone() != "" {
			return Network{}, fmt.Errorf("network %q: subnet %q is not a network prefix", name, s.Prefix)
		}
		gw, err := netip.ParseAddr(s.Gateway)
		if err != nil || !p.Contains(gw) {
			return Network{}, fmt.Errorf("network %q: gateway %q is not an address of %s", name, s.Gateway, p)
		}
		for _, o := range n.Subnets {
			if o.Prefix.Overlaps(p) {
				return Network{}, fmt.Errorf("network %q: subnets %s and %s overlap", name, o.Prefix, p)
			}
		}
		n.Subnets = append(n.Subnets, Subnet{Prefix: p, Gateway: gw})
	}
	return n, nil
}

func encodeAddr(r addrRecord) []byte {
	b, _ := json.Marshal(r)
	return b
}

func decodeAddr(v []byte) (addrRecord, error) {
	var r addrRecord
	if err := strictUnmarshal(v, &r); err != nil {
		return addrRecord{}, fmt.Errorf("address record: %w", err)
	}
	return r, nil
}

func encodeEndpoint(e Endpoint) []byte {
	r := endpointRecord{Host: e.Host, MAC: e.MAC.String(), VTEP: e.VTEP.String()}
	for _, ip := range e.IPs {
		r.IPs = append(r.IPs, ip.String())
	}
	b, _ := json.Marshal(r)
	return b
}

func decodeEndpoint(network, name string, v []byte) (Endpoint, error) {
	if err := checkName("network", network); err != nil {
		return Endpoint{}, err
	}
	if err := checkName("endpoint", name); err != nil {
		return Endpoint{}, err
	}
	var r endpointRecord
	if err := strictUnmarshal(v, &r); err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %s/%s: %w", network, name, err)
	}
	if err := checkName("host", r.Host); err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %s/%s: %w", network, name, err)
	}
	mac, err := net.ParseMAC(r.MAC)
	if err != nil || len(mac) != 6 {
		return Endpoint{}, fmt.Errorf("endpoint %s/%s: MAC %q is not an Ethernet address", network, name, r.MAC)
	}
	vtep, err := netip.ParseAddr(r.VTEP)
	if err != nil || vtep.Zone() != "" {
		return Endpoint{}, fmt.Errorf("endpoint %s/%s: VTEP %q is not an IP address", network, name, r.VTEP)
	}
	if len(r.IPs) > 16 {
		return Endpoint{}, fmt.Errorf("endpoint %s/%s: %d addresses; an endpoint has at most 16", network, name, len(r.IPs))
	}
	e := Endpoint{Network: network, Name: name, Host: r.Host, MAC: mac, VTEP: vtep}
	for _, s := range r.IPs {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return Endpoint{}, fmt.Errorf("endpoint %s/%s: address %q is not an IP address", network, name, s)
		}
		e.IPs = append(e.IPs, ip)
	}
	return e, nil
}

// strictUnmarshal decodes one JSON object and nothing after it.
func strictUnmarshal(v []byte, out any) error {
	d := json.NewDecoder(bytes.NewReader(v))
	if err := d.Decode(out); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// keyKind is what a key under the prefix holds.
type keyKind int

const (
	kindOther keyKind = iota
	kindHost
	kindNetwork
	kindEndpoint
	kindAddr
)

// parsedKey is a key under the prefix, split into its parts.
type parsedKey struct {
	kind keyKind
	// name is the host, network or endpoint name; for an address, the
	// address.
	name string
	// network is the network of an endpoint or an address.
	network string
	addr    netip.Addr
}

// parseKey splits rel, a key with the prefix removed. Keys it does not
// know, or cannot parse, are kindOther: the store ignores them.
func parseKey(rel string) parsedKey {
	two := func(rest string) (string, string, bool) {
		a, b, ok := strings.Cut(rest, "/")
		if !ok || checkName("network", a) != nil || checkName("name", b) != nil {
			return "", "", false
		}
		return a, b, true
	}
	switch {
	case strings.HasPrefix(rel, hostsDir):
		if n := rel[len(hostsDir):]; checkName("host", n) == nil {
			return parsedKey{kind: kindHost, name: n}
		}
	case strings.HasPrefix(rel, networksDir):
		if n := rel[len(networksDir):]; checkName("network", n) == nil {
			return parsedKey{kind: kindNetwork, name: n}
		}
	case strings.HasPrefix(rel, endpointsDir):
		if nw, n, ok := two(rel[len(endpointsDir):]); ok {
			return parsedKey{kind: kindEndpoint, network: nw, name: n}
		}
	case strings.HasPrefix(rel, addrsDir):
		if nw, a, ok := two(rel[len(addrsDir):]); ok {
			if ip, err := netip.ParseAddr(a); err == nil && ip.String() == a {
				return parsedKey{kind: kindAddr, network: nw, name: a, addr: ip}
			}
		}
	}
	return parsedKey{kind: kindOther}
}

// keys builds the store's keys under one prefix.
type keys string

func (k keys) host(name string) string    { return string(k) + hostsDir + name }
func (k keys) network(name string) string { return string(k) + networksDir + name }
func (k keys) vni(vni uint32) string {
	return string(k) + vniDir + strconv.FormatUint(uint64(vni), 10)
}
func (k keys) netrev() string                  { return string(k) + netrevKey }
func (k keys) addrs(network string) string     { return string(k) + addrsDir + network + "/" }
func (k keys) endpoints(network string) string { return string(k) + endpointsDir + network + "/" }
func (k keys) addr(network string, a netip.Addr) string {
	return k.addrs(network) + a.String()
}
func (k keys) endpoint(network, name string) string { return k.endpoints(network) + name }
