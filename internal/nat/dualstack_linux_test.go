package nat

import (
	"cmp"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TestRulesForDualStack: a dual-stack network's rules guard, admit and
// masquerade both families, and drop neither family as foreign.
func TestRulesForDualStack(t *testing.T) {
	tests := []struct {
		name string
		n    Network
		want []string
	}{
		{
			name: "ordinary",
			n: Network{Name: "ds", Subnet: netip.MustParsePrefix("10.141.0.0/24"), Bridge: "tsw-ds", Gateway: netip.MustParseAddr("10.141.0.1"),
				Subnet6: netip.MustParsePrefix("fd41::/64"), Gateway6: netip.MustParseAddr("fd41::1")},
			want: []string{
				`forward (head): iifname "tsw-ds" meta nfproto ipv4 ip saddr != 10.141.0.0/24 counter drop`,
				`forward (head): iifname "tsw-ds" meta nfproto ipv6 ip6 saddr != fd41::/64 counter drop`,
				`input: iifname "tsw-ds" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit accept`,
				`input: iifname "tsw-ds" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert accept`,
				`input: iifname "tsw-ds" meta nfproto ipv4 ip saddr != 10.141.0.0/24 counter drop`,
				`input: iifname "tsw-ds" meta nfproto ipv6 ip6 saddr != fd41::/64 counter drop`,
				`forward (head): oifname "tsw-ds" iifname != "tsw-ds" ct state ! established,related ct status ! dnat counter drop`,
				`forward: iifname "tsw-ds" accept`,
				`forward: oifname "tsw-ds" ct state established,related accept`,
				`postrouting: meta nfproto ipv4 ip saddr 10.141.0.0/24 oifname != "tsw-ds" masquerade`,
				`postrouting: meta nfproto ipv6 ip6 saddr fd41::/64 oifname != "tsw-ds" masquerade`,
			},
		},
		{
			name: "internal",
			n: Network{Name: "dsi", Subnet: netip.MustParsePrefix("10.141.1.0/24"), Bridge: "tsw-dsi", Gateway: netip.MustParseAddr("10.141.1.1"),
				Subnet6: netip.MustParsePrefix("fd41:0:0:1::/64"), Gateway6: netip.MustParseAddr("fd41:0:0:1::1"), Internal: true},
			want: []string{
				`forward (head): oifname "tsw-dsi" counter drop`,
				`forward (head): iifname "tsw-dsi" counter drop`,
				`input: iifname "tsw-dsi" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit accept`,
				`input: iifname "tsw-dsi" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert accept`,
				`input: iifname "tsw-dsi" meta nfproto ipv4 ip saddr != 10.141.1.0/24 counter drop`,
				`input: iifname "tsw-dsi" meta nfproto ipv6 ip6 saddr != fd41:0:0:1::/64 counter drop`,
				`input: iifname "tsw-dsi" ct state established,related accept`,
				`input: iifname "tsw-dsi" meta nfproto ipv4 ip daddr 10.141.1.1 meta l4proto udp th dport 53 accept`,
				`input: iifname "tsw-dsi" meta nfproto ipv4 ip daddr 10.141.1.1 meta l4proto tcp th dport 53 accept`,
				`input: iifname "tsw-dsi" meta nfproto ipv4 ip daddr 10.141.1.1 meta l4proto icmp icmp type echo-request accept`,
				`input: iifname "tsw-dsi" meta nfproto ipv6 ip6 daddr fd41:0:0:1::1 meta l4proto udp th dport 53 accept`,
				`input: iifname "tsw-dsi" meta nfproto ipv6 ip6 daddr fd41:0:0:1::1 meta l4proto tcp th dport 53 accept`,
				`input: iifname "tsw-dsi" meta nfproto ipv6 ip6 daddr fd41:0:0:1::1 meta l4proto ipv6-icmp icmpv6 type echo-request accept`,
				`input: iifname "tsw-dsi" counter drop`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := normalize(tt.n)
			if err != nil {
				t.Fatalf("normalize(%+v) = %v", tt.n, err)
			}
			var got []string
			for _, r := range rulesFor(n, "") {
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

// TestRulesEvaluateDualStack puts IPv4 and IPv6 packets through the
// chains of a dual-stack network, a dual-stack internal one and an IPv4
// one: the verdicts are those of a network of either family alone, and
// isolation holds for IPv6 as for IPv4.
func TestRulesEvaluateDualStack(t *testing.T) {
	ds := Network{Name: "ds", Subnet: netip.MustParsePrefix("10.141.0.0/24"), Bridge: "tsw-ds", Gateway: netip.MustParseAddr("10.141.0.1"),
		Subnet6: netip.MustParsePrefix("fd41::/64"), Gateway6: netip.MustParseAddr("fd41::1")}
	dsi := Network{Name: "dsi", Subnet: netip.MustParsePrefix("10.141.1.0/24"), Bridge: "tsw-dsi", Gateway: netip.MustParseAddr("10.141.1.1"),
		Subnet6: netip.MustParsePrefix("fd41:0:0:1::/64"), Gateway6: netip.MustParseAddr("fd41:0:0:1::1"), Internal: true}
	ds2 := Network{Name: "ds2", Subnet: netip.MustParsePrefix("10.141.2.0/24"), Bridge: "tsw-ds2", Gateway: netip.MustParseAddr("10.141.2.1"),
		Subnet6: netip.MustParsePrefix("fd41:0:0:2::/64"), Gateway6: netip.MustParseAddr("fd41:0:0:2::1")}
	const (
		est = expr.CtStateBitESTABLISHED
		nw  = expr.CtStateBitNEW
		v4  = unix.NFPROTO_IPV4
		v6  = unix.NFPROTO_IPV6
		tcp = unix.IPPROTO_TCP
		udp = unix.IPPROTO_UDP
		ic6 = unix.IPPROTO_ICMPV6
	)
	own4 := map[string]string{"tsw-ds": "10.141.0.5", "tsw-dsi": "10.141.1.5", "tsw-ds2": "10.141.2.5"}
	own6 := map[string]string{"tsw-ds": "fd41::5", "tsw-dsi": "fd41:0:0:1::5", "tsw-ds2": "fd41:0:0:2::5"}
	pkt := func(iif, oif, src, dst string, ct uint32, l4 byte, dport uint16) packet {
		a := netip.MustParseAddr(dst)
		var p packet
		if a.Is4() {
			n, th := ipv4To(dst, l4, dport)
			p = packet{nfproto: v4, net: n, th: th}
			src = cmp.Or(src, own4[iif], "198.51.100.7")
			copy(p.net[12:], netip.MustParseAddr(src).AsSlice())
		} else {
			n, th := ipv6To(dst, l4, dport)
			p = packet{nfproto: v6, net: n, th: th}
			src = cmp.Or(src, own6[iif], "2001:db8::7")
			copy(p.net[8:], netip.MustParseAddr(src).AsSlice())
		}
		p.iif, p.oif, p.ct, p.l4proto = iif, oif, ct, l4
		return p
	}
	tests := []struct {
		name  string
		chain string
		p     packet
		want  string
	}{
		{"ipv4 out", chainForward, pkt("tsw-ds", "eth0", "", "192.0.2.1", nw, tcp, 80), "accept"},
		{"ipv6 out", chainForward, pkt("tsw-ds", "eth0", "", "2001:db8::1", nw, tcp, 80), "accept"},
		{"ipv6 forged source out", chainForward, pkt("tsw-ds", "eth0", "fd41:0:0:2::5", "2001:db8::1", nw, tcp, 80), "drop"},
		{"ipv4 forged source out", chainForward, pkt("tsw-ds", "eth0", "10.141.2.5", "192.0.2.1", nw, tcp, 80), "drop"},
		{"ipv6 lan in, new", chainForward, pkt("eth0", "tsw-ds", "", "fd41::5", nw, tcp, 80), "drop"},
		{"ipv6 lan in, reply", chainForward, pkt("eth0", "tsw-ds", "", "fd41::5", est, tcp, 80), "accept"},
		{"ipv6 network to network", chainForward, pkt("tsw-ds", "tsw-ds2", "", "fd41:0:0:2::5", nw, tcp, 80), "drop"},
		{"ipv6 network to network, established", chainForward, pkt("tsw-ds2", "tsw-ds", "", "fd41::5", est, tcp, 80), "drop"},
		{"ipv4 network to network", chainForward, pkt("tsw-ds", "tsw-ds2", "", "10.141.2.5", nw, tcp, 80), "drop"},
		{"ipv6 out of internal", chainForward, pkt("tsw-dsi", "eth0", "", "2001:db8::1", nw, tcp, 80), "drop"},
		{"ipv6 into internal", chainForward, pkt("tsw-ds", "tsw-dsi", "", "fd41:0:0:1::5", nw, tcp, 80), "drop"},
		{"ipv6 dns to own internal gateway", chainInput, pkt("tsw-dsi", "", "", "fd41:0:0:1::1", nw, udp, 53), "accept"},
		{"ipv4 dns to own internal gateway", chainInput, pkt("tsw-dsi", "", "", "10.141.1.1", nw, udp, 53), "accept"},
		{"ipv6 ping own internal gateway", chainInput, pkt("tsw-dsi", "", "", "fd41:0:0:1::1", nw, ic6, icmp6EchoRequest), "accept"},
		{"ipv6 service on internal gateway", chainInput, pkt("tsw-dsi", "", "", "fd41:0:0:1::1", nw, tcp, 22), "drop"},
		{"ipv6 dns to another gateway", chainInput, pkt("tsw-dsi", "", "", "fd41::1", nw, udp, 53), "drop"},
		{"ipv6 neighbour solicitation from ::", chainInput, pkt("tsw-dsi", "", "::", "ff02::1:ff00:1", nw, ic6, ndNeighborSolicit), "accept"},
		{"ipv6 forged source to the host", chainInput, pkt("tsw-ds", "", "fd41:0:0:2::5", "fd41::1", nw, udp, 53), "drop"},
		{"ipv6 to an ordinary gateway", chainInput, pkt("tsw-ds", "", "", "fd41::1", nw, udp, 53), "policy"},
		{"ipv4 to an ordinary gateway", chainInput, pkt("tsw-ds", "", "", "10.141.0.1", nw, udp, 53), "policy"},
	}
	nets := []Network{ds, dsi, ds2}
	for i := range nets {
		var err error
		if nets[i], err = normalize(nets[i]); err != nil {
			t.Fatal(err)
		}
	}
	orders := [][]Network{nets, {nets[2], nets[1], nets[0]}, {nets[1], nets[0], nets[2]}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, order := range orders {
				chains := buildChains(order, "tsw-")
				if got := evaluate(t, chains[tt.chain], tt.p); got != tt.want {
					var names []string
					for _, n := range order {
						names = append(names, n.Name)
					}
					t.Fatalf("chain %s, networks in order %v: %+v meets %s, want %s", tt.chain, names, tt.p, got, tt.want)
				}
			}
		})
	}
}
