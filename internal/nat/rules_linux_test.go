package nat

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// render writes the expressions this package uses the way nft lists them,
// so that tests state rules as an administrator would read them. An
// expression it does not know shows as ?TYPE, which fails any comparison.
func render(exprs []expr.Any) string {
	var (
		out  []string
		lhs  string // what the last load put in the register
		mask []byte // the last bitwise mask, if any
		l4   byte   // the last transport protocol matched
	)
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			switch e.Key {
			case expr.MetaKeyNFPROTO:
				lhs = "meta nfproto"
			case expr.MetaKeyIIFNAME:
				lhs = "iifname"
			case expr.MetaKeyOIFNAME:
				lhs = "oifname"
			case expr.MetaKeyL4PROTO:
				lhs = "meta l4proto"
			default:
				lhs = fmt.Sprintf("meta?%d", e.Key)
			}
			mask = nil
		case *expr.Payload:
			switch {
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 12 && e.Len == 4:
				lhs = "ip saddr"
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 8 && e.Len == 16:
				lhs = "ip6 saddr"
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 16 && e.Len == 4:
				lhs = "ip daddr"
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 24 && e.Len == 16:
				lhs = "ip6 daddr"
			case e.Base == expr.PayloadBaseTransportHeader && e.Offset == 2 && e.Len == 2:
				lhs = "th dport"
			case e.Base == expr.PayloadBaseTransportHeader && e.Offset == 0 && e.Len == 1 && l4 == unix.IPPROTO_ICMP:
				lhs = "icmp type"
			case e.Base == expr.PayloadBaseTransportHeader && e.Offset == 0 && e.Len == 1 && l4 == unix.IPPROTO_ICMPV6:
				lhs = "icmpv6 type"
			default:
				lhs = fmt.Sprintf("payload?%d,%d,%d", e.Base, e.Offset, e.Len)
			}
			mask = nil
		case *expr.Ct:
			lhs = "ct?"
			switch e.Key {
			case expr.CtKeySTATE:
				lhs = "ct state"
			case expr.CtKeySTATUS:
				lhs = "ct status"
			}
			mask = nil
		case *expr.Bitwise:
			mask = e.Mask
		case *expr.Cmp:
			if lhs == "meta l4proto" && len(e.Data) == 1 {
				l4 = e.Data[0]
			}
			out = append(out, renderCmp(lhs, mask, e))
		case *expr.Counter:
			out = append(out, "counter")
		case *expr.Masq:
			out = append(out, "masquerade")
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictAccept:
				out = append(out, "accept")
			case expr.VerdictDrop:
				out = append(out, "drop")
			default:
				out = append(out, fmt.Sprintf("verdict?%d", e.Kind))
			}
		default:
			out = append(out, fmt.Sprintf("?%T", e))
		}
	}
	return strings.Join(out, " ")
}

func renderCmp(lhs string, mask []byte, c *expr.Cmp) string {
	op := ""
	if c.Op == expr.CmpOpNeq {
		op = "!= "
	} else if c.Op != expr.CmpOpEq {
		op = fmt.Sprintf("op%d ", c.Op)
	}
	var val string
	switch lhs {
	case "meta nfproto":
		val = map[byte]string{unix.NFPROTO_IPV4: "ipv4", unix.NFPROTO_IPV6: "ipv6"}[c.Data[0]]
	case "ct status":
		if c.Op == expr.CmpOpEq && binary.NativeEndian.Uint32(c.Data) == 0 && len(mask) == 4 && binary.NativeEndian.Uint32(mask) == ipsDstNAT {
			op, val = "! ", "dnat"
		}
	case "meta l4proto":
		val = map[byte]string{unix.IPPROTO_ICMP: "icmp", unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_ICMPV6: "ipv6-icmp"}[c.Data[0]]
	case "th dport":
		val = fmt.Sprint(binary.BigEndian.Uint16(c.Data))
	case "icmp type":
		val = map[byte]string{icmpEchoRequest: "echo-request"}[c.Data[0]]
	case "icmpv6 type":
		val = map[byte]string{icmp6EchoRequest: "echo-request", ndNeighborSolicit: "nd-neighbor-solicit", ndNeighborAdvert: "nd-neighbor-advert"}[c.Data[0]]
	case "iifname", "oifname":
		val = fmt.Sprintf("%q", strings.TrimRight(string(c.Data), "\x00"))
	case "ip saddr", "ip6 saddr", "ip daddr", "ip6 daddr":
		addr, _ := netip.AddrFromSlice(c.Data)
		ones := addr.BitLen()
		if mask != nil {
			ones = 0 // a prefix shorter than the address
			for _, b := range mask {
				ones += bits.OnesCount8(b)
			}
		}
		val = netip.PrefixFrom(addr, ones).String()
		if strings.HasSuffix(lhs, "daddr") && ones == addr.BitLen() {
			val = addr.String() // one address, as nft shows it
		}
	case "ct state":
		// `ct state established,related` is a mask tested against zero,
		// and `ct state ! established,related` the mask equal to zero.
		if binary.NativeEndian.Uint32(c.Data) == 0 && len(mask) == 4 {
			op = map[expr.CmpOp]string{expr.CmpOpNeq: "", expr.CmpOpEq: "! "}[c.Op]
			var states []string
			m := binary.NativeEndian.Uint32(mask)
			for _, s := range []struct {
				bit  uint32
				name string
			}{{expr.CtStateBitINVALID, "invalid"}, {expr.CtStateBitESTABLISHED, "established"}, {expr.CtStateBitRELATED, "related"}, {expr.CtStateBitNEW, "new"}} {
				if m&s.bit != 0 {
					states = append(states, s.name)
				}
			}
			val = strings.Join(states, ",")
		}
	}
	if val == "" {
		val = fmt.Sprintf("%x", c.Data)
	}
	return lhs + " " + op + val
}

func TestRulesFor(t *testing.T) {
	tests := []struct {
		name string
		n    Network
		want []string // chain: rule, in the order they are sent
	}{
		{
			name: "ipv4",
			n:    Network{Name: "front", Subnet: netip.MustParsePrefix("10.20.0.0/24"), Bridge: "tsw-front"},
			want: []string{
				`forward (head): iifname "tsw-front" meta nfproto != ipv4 counter drop`,
				`forward (head): iifname "tsw-front" meta nfproto ipv4 ip saddr != 10.20.0.0/24 counter drop`,
				`input: iifname "tsw-front" meta nfproto != ipv4 counter drop`,
				`input: iifname "tsw-front" meta nfproto ipv4 ip saddr != 10.20.0.0/24 counter drop`,
				`forward (head): oifname "tsw-front" iifname != "tsw-front" ct state ! established,related ct status ! dnat counter drop`,
				`forward: iifname "tsw-front" accept`,
				`forward: oifname "tsw-front" ct state established,related accept`,
				`postrouting: meta nfproto ipv4 ip saddr 10.20.0.0/24 oifname != "tsw-front" masquerade`,
			},
		},
		{
			name: "ipv6",
			n:    Network{Name: "v6", Subnet: netip.MustParsePrefix("fd00:20::/64"), Bridge: "tsw-v6"},
			want: []string{
				`forward (head): iifname "tsw-v6" meta nfproto != ipv6 counter drop`,
				`forward (head): iifname "tsw-v6" meta nfproto ipv6 ip6 saddr != fd00:20::/64 counter drop`,
				`input: iifname "tsw-v6" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit accept`,
				`input: iifname "tsw-v6" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert accept`,
				`input: iifname "tsw-v6" meta nfproto != ipv6 counter drop`,
				`input: iifname "tsw-v6" meta nfproto ipv6 ip6 saddr != fd00:20::/64 counter drop`,
				`forward (head): oifname "tsw-v6" iifname != "tsw-v6" ct state ! established,related ct status ! dnat counter drop`,
				`forward: iifname "tsw-v6" accept`,
				`forward: oifname "tsw-v6" ct state established,related accept`,
				`postrouting: meta nfproto ipv6 ip6 saddr fd00:20::/64 oifname != "tsw-v6" masquerade`,
			},
		},
		{
			name: "single host",
			n:    Network{Name: "one", Subnet: netip.MustParsePrefix("10.20.0.7/32"), Bridge: "tsw-one"},
			want: []string{
				`forward (head): iifname "tsw-one" meta nfproto != ipv4 counter drop`,
				`forward (head): iifname "tsw-one" meta nfproto ipv4 ip saddr != 10.20.0.7/32 counter drop`,
				`input: iifname "tsw-one" meta nfproto != ipv4 counter drop`,
				`input: iifname "tsw-one" meta nfproto ipv4 ip saddr != 10.20.0.7/32 counter drop`,
				`forward (head): oifname "tsw-one" iifname != "tsw-one" ct state ! established,related ct status ! dnat counter drop`,
				`forward: iifname "tsw-one" accept`,
				`forward: oifname "tsw-one" ct state established,related accept`,
				`postrouting: meta nfproto ipv4 ip saddr 10.20.0.7/32 oifname != "tsw-one" masquerade`,
			},
		},
		{
			name: "every ipv4 address",
			n:    Network{Name: "all", Subnet: netip.MustParsePrefix("0.0.0.0/0"), Bridge: "tsw-all"},
			want: []string{
				`forward (head): iifname "tsw-all" meta nfproto != ipv4 counter drop`,
				`input: iifname "tsw-all" meta nfproto != ipv4 counter drop`,
				`forward (head): oifname "tsw-all" iifname != "tsw-all" ct state ! established,related ct status ! dnat counter drop`,
				`forward: iifname "tsw-all" accept`,
				`forward: oifname "tsw-all" ct state established,related accept`,
				`postrouting: meta nfproto ipv4 oifname != "tsw-all" masquerade`,
			},
		},
		{
			name: "internal",
			n:    Network{Name: "back", Subnet: netip.MustParsePrefix("10.30.0.0/24"), Bridge: "tsw-back", Gateway: netip.MustParseAddr("10.30.0.1"), Internal: true},
			want: []string{
				`forward (head): oifname "tsw-back" counter drop`,
				`forward (head): iifname "tsw-back" counter drop`,
				`input: iifname "tsw-back" meta nfproto != ipv4 counter drop`,
				`input: iifname "tsw-back" meta nfproto ipv4 ip saddr != 10.30.0.0/24 counter drop`,
				`input: iifname "tsw-back" ct state established,related accept`,
				`input: iifname "tsw-back" meta nfproto ipv4 ip daddr 10.30.0.1 meta l4proto udp th dport 53 accept`,
				`input: iifname "tsw-back" meta nfproto ipv4 ip daddr 10.30.0.1 meta l4proto tcp th dport 53 accept`,
				`input: iifname "tsw-back" meta nfproto ipv4 ip daddr 10.30.0.1 meta l4proto icmp icmp type echo-request accept`,
				`input: iifname "tsw-back" counter drop`,
			},
		},
		{
			name: "internal ipv6",
			n:    Network{Name: "back6", Subnet: netip.MustParsePrefix("fd00:30::/64"), Bridge: "tsw-back6", Gateway: netip.MustParseAddr("fd00:30::1"), Internal: true},
			want: []string{
				`forward (head): oifname "tsw-back6" counter drop`,
				`forward (head): iifname "tsw-back6" counter drop`,
				`input: iifname "tsw-back6" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit accept`,
				`input: iifname "tsw-back6" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert accept`,
				`input: iifname "tsw-back6" meta nfproto != ipv6 counter drop`,
				`input: iifname "tsw-back6" meta nfproto ipv6 ip6 saddr != fd00:30::/64 counter drop`,
				`input: iifname "tsw-back6" ct state established,related accept`,
				`input: iifname "tsw-back6" meta nfproto ipv6 ip6 daddr fd00:30::1 meta l4proto udp th dport 53 accept`,
				`input: iifname "tsw-back6" meta nfproto ipv6 ip6 daddr fd00:30::1 meta l4proto tcp th dport 53 accept`,
				`input: iifname "tsw-back6" meta nfproto ipv6 ip6 daddr fd00:30::1 meta l4proto ipv6-icmp icmpv6 type echo-request accept`,
				`input: iifname "tsw-back6" counter drop`,
			},
		},
		{
			// No gateway address: the interface admits replies only.
			name: "internal without gateway",
			n:    Network{Name: "bare", Subnet: netip.MustParsePrefix("10.31.0.0/24"), Bridge: "tsw-bare", Internal: true},
			want: []string{
				`forward (head): oifname "tsw-bare" counter drop`,
				`forward (head): iifname "tsw-bare" counter drop`,
				`input: iifname "tsw-bare" meta nfproto != ipv4 counter drop`,
				`input: iifname "tsw-bare" meta nfproto ipv4 ip saddr != 10.31.0.0/24 counter drop`,
				`input: iifname "tsw-bare" ct state established,related accept`,
				`input: iifname "tsw-bare" counter drop`,
			},
		},
		{
			// A gateway is only for the input rules of an internal
			// network: an ordinary one gets none.
			name: "gateway of an ordinary network",
			n:    Network{Name: "front", Subnet: netip.MustParsePrefix("10.20.0.0/24"), Bridge: "tsw-front", Gateway: netip.MustParseAddr("10.20.0.1")},
			want: []string{
				`forward (head): iifname "tsw-front" meta nfproto != ipv4 counter drop`,
				`forward (head): iifname "tsw-front" meta nfproto ipv4 ip saddr != 10.20.0.0/24 counter drop`,
				`input: iifname "tsw-front" meta nfproto != ipv4 counter drop`,
				`input: iifname "tsw-front" meta nfproto ipv4 ip saddr != 10.20.0.0/24 counter drop`,
				`forward (head): oifname "tsw-front" iifname != "tsw-front" ct state ! established,related ct status ! dnat counter drop`,
				`forward: iifname "tsw-front" accept`,
				`forward: oifname "tsw-front" ct state established,related accept`,
				`postrouting: meta nfproto ipv4 ip saddr 10.20.0.0/24 oifname != "tsw-front" masquerade`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range rulesFor(tt.n, "") {
				where := r.chain
				if r.head {
					where += " (head)"
				}
				got = append(got, where+": "+render(r.exprs))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("rulesFor(%+v) =\n%s\nwant\n%s", tt.n, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestNetworkOf(t *testing.T) {
	tests := []struct {
		name   string
		udata  []byte
		want   string
		wantOK bool
	}{
		{name: "ours", udata: comment("front"), want: "front", wantOK: true},
		{name: "after another tlv", udata: append([]byte{7, 1, 0}, comment("front")...), want: "front", wantOK: true},
		{name: "no user data", udata: nil},
		{name: "other comment", udata: userdata.AppendString(nil, userdata.TypeComment, "hand made")},
		{name: "prefix only", udata: userdata.AppendString(nil, userdata.TypeComment, commentPrefix)},
		{name: "length past end", udata: []byte{byte(userdata.TypeComment), 200, 'n'}},
		{name: "one byte", udata: []byte{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := networkOf(tt.udata)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("networkOf(%q) = %q, %v; want %q, %v", tt.udata, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// FuzzNetworkOf feeds rule user data as any process with CAP_NET_ADMIN
// could have stored it in the table.
func FuzzNetworkOf(f *testing.F) {
	f.Add(comment("front"))
	f.Add([]byte{byte(userdata.TypeComment), 200, 'n'})
	f.Fuzz(func(t *testing.T, udata []byte) {
		if name, ok := networkOf(udata); ok && name == "" {
			t.Fatalf("networkOf(%q) = \"\", true", udata)
		}
	})
}

func TestRulesForIsolation(t *testing.T) {
	n := Network{Name: "front", Subnet: netip.MustParsePrefix("10.20.0.0/24"), Bridge: "tsw-front"}
	specs := rulesFor(n, "tsw-")
	if len(specs) != 9 {
		t.Fatalf("rulesFor(%+v, tsw-) = %d rules, want 9", n, len(specs))
	}
	first := specs[0]
	got := first.chain + ": " + render(first.exprs)
	if !first.head || !strings.Contains(got, `iifname "tsw-front"`) || !strings.Contains(got, `oifname != "tsw-front"`) || !strings.HasSuffix(got, "drop") {
		t.Fatalf("rulesFor(%+v, tsw-)[0] = %q (head %v), want the isolation drop at the head", n, got, first.head)
	}
}

// packet is what the rule evaluator below knows of a packet.
type packet struct {
	iif, oif string
	ct       uint32 // one expr.CtStateBit*
	status   uint32 // conntrack status bits (ipsDstNAT)
	nfproto  byte
	l4proto  byte
	// net and th are the network and transport headers, as far as the
	// rules read them.
	net, th []byte
}

// evaluate runs a chain of rules over p the way nf_tables does, for the
// expressions this package uses, and returns the first verdict, or
// "policy" when no rule decides. It lets the tests state what each kind
// of packet meets without root.
func evaluate(t *testing.T, chain [][]expr.Any, p packet) string {
	t.Helper()
rules:
	for _, exprs := range chain {
		var reg []byte
		for _, e := range exprs {
			switch e := e.(type) {
			case *expr.Meta:
				switch e.Key {
				case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
					name := p.iif
					if e.Key == expr.MetaKeyOIFNAME {
						name = p.oif
					}
					reg = make([]byte, unix.IFNAMSIZ)
					copy(reg, name)
				case expr.MetaKeyNFPROTO:
					reg = []byte{p.nfproto}
				case expr.MetaKeyL4PROTO:
					reg = []byte{p.l4proto}
				default:
					t.Fatalf("evaluate: meta key %d", e.Key)
				}
			case *expr.Ct:
				switch e.Key {
				case expr.CtKeySTATE:
					reg = binary.NativeEndian.AppendUint32(nil, p.ct)
				case expr.CtKeySTATUS:
					reg = binary.NativeEndian.AppendUint32(nil, p.status)
				default:
					t.Fatalf("evaluate: ct key %d", e.Key)
				}
			case *expr.Payload:
				src := p.net
				if e.Base == expr.PayloadBaseTransportHeader {
					src = p.th
				}
				if int(e.Offset+e.Len) > len(src) {
					continue rules // the kernel breaks off the rule
				}
				reg = slices.Clone(src[e.Offset : e.Offset+e.Len])
			case *expr.Bitwise:
				for i := range reg {
					reg[i] = reg[i]&e.Mask[i] ^ e.Xor[i]
				}
			case *expr.Cmp:
				// The kernel compares as many bytes as the data holds,
				// which is how an interface name prefix matches.
				eq := len(reg) >= len(e.Data) && bytes.Equal(reg[:len(e.Data)], e.Data)
				if eq != (e.Op == expr.CmpOpEq) {
					continue rules
				}
			case *expr.Counter:
			case *expr.Verdict:
				return map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop"}[e.Kind]
			default:
				t.Fatalf("evaluate: expression %T", e)
			}
		}
	}
	return "policy"
}

// buildChains adds nets' rules in order as the kernel would hold them:
// head rules inserted before all, the others appended.
func buildChains(nets []Network, isolate string) map[string][][]expr.Any {
	chains := make(map[string][][]expr.Any)
	for _, n := range nets {
		for _, r := range rulesFor(n, isolate) {
			if r.head {
				chains[r.chain] = slices.Insert(chains[r.chain], 0, r.exprs)
			} else {
				chains[r.chain] = append(chains[r.chain], r.exprs)
			}
		}
	}
	return chains
}

// ipv4To makes an IPv4 header with destination dst and a transport
// header with destination port (or ICMP type) dport.
func ipv4To(dst string, l4 byte, dport uint16) (net, th []byte) {
	net = make([]byte, 20)
	copy(net[16:], netip.MustParseAddr(dst).AsSlice())
	th = make([]byte, 8)
	if l4 == unix.IPPROTO_ICMP || l4 == unix.IPPROTO_ICMPV6 {
		th[0] = byte(dport)
	} else {
		binary.BigEndian.PutUint16(th[2:], dport)
	}
	return net, th
}

func ipv6To(dst string, l4 byte, dport uint16) (net, th []byte) {
	net = make([]byte, 40)
	copy(net[24:], netip.MustParseAddr(dst).AsSlice())
	_, th = ipv4To("0.0.0.0", l4, dport)
	return net, th
}

// TestRulesEvaluate puts packets of each kind through the chains that
// three networks' rules make, added in every order, and checks the
// verdict: it must not depend on the order.
func TestRulesEvaluate(t *testing.T) {
	front := Network{Name: "front", Subnet: netip.MustParsePrefix("10.20.0.0/24"), Bridge: "tsw-front", Gateway: netip.MustParseAddr("10.20.0.1")}
	side := Network{Name: "side", Subnet: netip.MustParsePrefix("fd00:21::/64"), Bridge: "tsw-side", Gateway: netip.MustParseAddr("fd00:21::1")}
	back := Network{Name: "back", Subnet: netip.MustParsePrefix("10.30.0.0/24"), Bridge: "tsw-back", Gateway: netip.MustParseAddr("10.30.0.1"), Internal: true}
	back6 := Network{Name: "back6", Subnet: netip.MustParsePrefix("fd00:30::/64"), Bridge: "tsw-back6", Gateway: netip.MustParseAddr("fd00:30::1"), Internal: true}
	const (
		est = expr.CtStateBitESTABLISHED
		rel = expr.CtStateBitRELATED
		nw  = expr.CtStateBitNEW
		inv = expr.CtStateBitINVALID
		v4  = unix.NFPROTO_IPV4
		v6  = unix.NFPROTO_IPV6
		tcp = unix.IPPROTO_TCP
		udp = unix.IPPROTO_UDP
		ic4 = unix.IPPROTO_ICMP
		ic6 = unix.IPPROTO_ICMPV6
	)
	// from sets a packet's source address.
	from := func(p packet, src string) packet {
		a := netip.MustParseAddr(src)
		p.net = slices.Clone(p.net)
		if a.Is4() {
			copy(p.net[12:], a.AsSlice())
		} else {
			copy(p.net[8:], a.AsSlice())
		}
		return p
	}
	// Packets come from an address of the network behind their input
	// interface (a link-local one for IPv6 on an IPv4 network), or from
	// a LAN host.
	own4 := map[string]string{"tsw-front": "10.20.0.5", "tsw-back": "10.30.0.5", "tsw-back6": "10.30.0.5"}
	own6 := map[string]string{"tsw-side": "fd00:21::5", "tsw-back6": "fd00:30::5"}
	in4 := func(iif, dst string, ct uint32, l4 byte, dport uint16) packet {
		n, th := ipv4To(dst, l4, dport)
		return from(packet{iif: iif, ct: ct, nfproto: v4, l4proto: l4, net: n, th: th}, cmp.Or(own4[iif], "198.51.100.7"))
	}
	in6 := func(iif, dst string, ct uint32, l4 byte, dport uint16) packet {
		n, th := ipv6To(dst, l4, dport)
		return from(packet{iif: iif, ct: ct, nfproto: v6, l4proto: l4, net: n, th: th}, cmp.Or(own6[iif], "fe80::5"))
	}
	fwd := func(iif, oif string, ct uint32) packet {
		n, th := ipv4To("192.0.2.1", tcp, 80)
		return from(packet{iif: iif, oif: oif, ct: ct, nfproto: v4, l4proto: tcp, net: n, th: th}, cmp.Or(own4[iif], "198.51.100.7"))
	}
	dnat := func(p packet) packet {
		p.status |= ipsDstNAT
		return p
	}
	tests := []struct {
		name  string
		chain string
		p     packet
		want  string
	}{
		// Forward: into an ordinary network, replies only.
		{"lan to container, new", chainForward, fwd("eth0", "tsw-front", nw), "drop"},
		{"lan to container, invalid", chainForward, fwd("eth0", "tsw-front", inv), "drop"},
		{"lan to container, untracked", chainForward, fwd("eth0", "tsw-front", expr.CtStateBitUNTRACKED), "drop"},
		{"reply to container", chainForward, fwd("eth0", "tsw-front", est), "accept"},
		{"icmp error to container", chainForward, fwd("eth0", "tsw-front", rel), "accept"},
		{"lan to ipv6 container, new", chainForward, fwd("eth0", "tsw-side", nw), "drop"},
		// The chains' policy is accept: no rule stops it.
		{"lan to a port published by dnat", chainForward, dnat(fwd("eth0", "tsw-front", nw)), "policy"},
		{"dnat into internal", chainForward, dnat(fwd("eth0", "tsw-back", nw)), "drop"},
		{"dnat from another network", chainForward, dnat(fwd("tsw-side", "tsw-front", nw)), "drop"},
		{"container out", chainForward, fwd("tsw-front", "eth0", nw), "accept"},
		{"container back in through its gateway", chainForward, fwd("tsw-front", "tsw-front", nw), "accept"},
		{"network to network", chainForward, fwd("tsw-front", "tsw-side", nw), "drop"},
		{"network to network, established", chainForward, fwd("tsw-front", "tsw-side", est), "drop"},
		{"into internal", chainForward, fwd("tsw-front", "tsw-back", nw), "drop"},
		{"into internal, established", chainForward, fwd("eth0", "tsw-back", est), "drop"},
		{"out of internal", chainForward, fwd("tsw-back", "eth0", nw), "drop"},
		{"someone else's interfaces", chainForward, fwd("eth0", "eth1", nw), "policy"},

		// Input on an internal network's gateway interface.
		{"dns udp to own gateway", chainInput, in4("tsw-back", "10.30.0.1", nw, udp, 53), "accept"},
		{"dns tcp to own gateway", chainInput, in4("tsw-back", "10.30.0.1", nw, tcp, 53), "accept"},
		{"ping own gateway", chainInput, in4("tsw-back", "10.30.0.1", nw, ic4, icmpEchoRequest), "accept"},
		{"reply to the host", chainInput, in4("tsw-back", "10.30.0.1", est, tcp, 40000), "accept"},
		{"host service on gateway", chainInput, in4("tsw-back", "10.30.0.1", nw, tcp, 22), "drop"},
		{"udp service on gateway", chainInput, in4("tsw-back", "10.30.0.1", nw, udp, 123), "drop"},
		{"other icmp to gateway", chainInput, in4("tsw-back", "10.30.0.1", nw, ic4, 13), "drop"},
		{"dns to another gateway", chainInput, in4("tsw-back", "10.20.0.1", nw, udp, 53), "drop"},
		{"published port on another gateway", chainInput, in4("tsw-back", "10.20.0.1", nw, tcp, 8080), "drop"},
		{"ping another gateway", chainInput, in4("tsw-back", "10.20.0.1", nw, ic4, icmpEchoRequest), "drop"},
		{"host's other address", chainInput, in4("tsw-back", "192.0.2.10", nw, tcp, 22), "drop"},
		{"broadcast", chainInput, in4("tsw-back", "10.30.0.255", nw, udp, 53), "drop"},
		{"ipv6 to an ipv4 network's gateway", chainInput, in6("tsw-back", "fe80::1", nw, tcp, 22), "drop"},
		{"neighbour solicitation on an ipv4 network", chainInput, in6("tsw-back", "ff02::1:ff00:1", nw, ic6, ndNeighborSolicit), "drop"},
		{"dns to own ipv6 gateway", chainInput, in6("tsw-back6", "fd00:30::1", nw, udp, 53), "accept"},
		{"ping own ipv6 gateway", chainInput, in6("tsw-back6", "fd00:30::1", nw, ic6, icmp6EchoRequest), "accept"},
		{"neighbour solicitation", chainInput, in6("tsw-back6", "ff02::1:ff00:1", nw, ic6, ndNeighborSolicit), "accept"},
		{"neighbour advertisement", chainInput, in6("tsw-back6", "fd00:30::1", nw, ic6, ndNeighborAdvert), "accept"},
		{"router advertisement", chainInput, in6("tsw-back6", "ff02::1", nw, ic6, 134), "drop"},
		{"ipv6 service on gateway", chainInput, in6("tsw-back6", "fd00:30::1", nw, tcp, 22), "drop"},
		{"ipv6 link-local gateway", chainInput, in6("tsw-back6", "fe80::1", nw, udp, 53), "drop"},
		{"ipv4 on an ipv6 network", chainInput, in4("tsw-back6", "10.30.0.1", nw, udp, 53), "drop"},
		// An ordinary network's gateway interface is left open, as
		// Docker's bridges are.
		{"ordinary network to host service", chainInput, in4("tsw-front", "10.20.0.1", nw, tcp, 22), "policy"},
		// Only a network's own addresses come in through its gateway.
		{"forged source out of an ordinary network", chainForward, from(fwd("tsw-front", "eth0", nw), "10.30.0.5"), "drop"},
		{"forged source, reply to another network", chainForward, from(fwd("tsw-front", "eth0", est), "10.30.0.5"), "drop"},
		{"other family out of an ipv4 network", chainForward, from(packet{iif: "tsw-front", oif: "eth0", ct: nw, nfproto: v6, l4proto: tcp, net: make([]byte, 40), th: make([]byte, 8)}, "fd00:21::5"), "drop"},
		{"forged source to the host from an ordinary network", chainInput, from(in4("tsw-front", "10.20.0.1", nw, ic4, icmpEchoRequest), "10.30.0.5"), "drop"},
		{"ping own gateway from another network's address", chainInput, from(in4("tsw-back", "10.30.0.1", nw, ic4, icmpEchoRequest), "10.20.0.5"), "drop"},
		{"dns from another network's address", chainInput, from(in4("tsw-back", "10.30.0.1", nw, udp, 53), "10.20.0.5"), "drop"},
		{"forged established into the host", chainInput, from(in4("tsw-back", "10.30.0.1", est, tcp, 40000), "10.20.0.5"), "drop"},
		{"ipv6 forged source", chainInput, from(in6("tsw-side", "fd00:21::1", nw, udp, 53), "fd00:30::5"), "drop"},
		{"ipv6 neighbour solicitation from ::", chainInput, from(in6("tsw-side", "ff02::1:ff00:1", nw, ic6, ndNeighborSolicit), "::"), "accept"},
		{"ipv6 to an ordinary ipv6 network's gateway", chainInput, in6("tsw-side", "fd00:21::1", nw, udp, 53), "policy"},
	}
	nets := []Network{front, side, back, back6}
	var orders [][]Network
	var permute func(done, rest []Network)
	permute = func(done, rest []Network) {
		if len(rest) == 0 {
			orders = append(orders, slices.Clone(done))
			return
		}
		for i := range rest {
			permute(append(done, rest[i]), slices.Concat(rest[:i], rest[i+1:]))
		}
	}
	permute(nil, nets)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, order := range orders {
				chains := buildChains(order, "tsw-")
				if got := evaluate(t, chains[tt.chain], tt.p); got != tt.want {
					var names []string
					for _, n := range order {
						names = append(names, n.Name)
					}
					t.Fatalf("chain %s, networks added in order %v: %+v meets %s, want %s", tt.chain, names, tt.p, got, tt.want)
				}
			}
		})
	}
}
