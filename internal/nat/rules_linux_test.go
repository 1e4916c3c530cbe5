package nat

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
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
			default:
				lhs = fmt.Sprintf("payload?%d,%d,%d", e.Base, e.Offset, e.Len)
			}
			mask = nil
		case *expr.Ct:
			lhs = "ct?"
			if e.Key == expr.CtKeySTATE {
				lhs = "ct state"
			}
			mask = nil
		case *expr.Bitwise:
			mask = e.Mask
		case *expr.Cmp:
			out = append(out, renderCmp(lhs, mask, e))
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
	case "iifname", "oifname":
		val = fmt.Sprintf("%q", strings.TrimRight(string(c.Data), "\x00"))
	case "ip saddr", "ip6 saddr":
		addr, _ := netip.AddrFromSlice(c.Data)
		ones := addr.BitLen()
		if mask != nil {
			ones = 0
			for _, b := range mask {
				ones += bits.OnesCount8(b)
			}
		}
		val = netip.PrefixFrom(addr, ones).String()
	case "ct state":
		// `ct state established,related` is a mask tested against zero.
		if c.Op == expr.CmpOpNeq && binary.NativeEndian.Uint32(c.Data) == 0 && len(mask) == 4 {
			op = ""
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
				`forward: iifname "tsw-front" accept`,
				`forward: oifname "tsw-front" ct state established,related accept`,
				`postrouting: meta nfproto ipv4 ip saddr 10.20.0.0/24 oifname != "tsw-front" masquerade`,
			},
		},
		{
			name: "ipv6",
			n:    Network{Name: "v6", Subnet: netip.MustParsePrefix("fd00:20::/64"), Bridge: "tsw-v6"},
			want: []string{
				`forward: iifname "tsw-v6" accept`,
				`forward: oifname "tsw-v6" ct state established,related accept`,
				`postrouting: meta nfproto ipv6 ip6 saddr fd00:20::/64 oifname != "tsw-v6" masquerade`,
			},
		},
		{
			name: "single host",
			n:    Network{Name: "one", Subnet: netip.MustParsePrefix("10.20.0.7/32"), Bridge: "tsw-one"},
			want: []string{
				`forward: iifname "tsw-one" accept`,
				`forward: oifname "tsw-one" ct state established,related accept`,
				`postrouting: meta nfproto ipv4 ip saddr 10.20.0.7/32 oifname != "tsw-one" masquerade`,
			},
		},
		{
			name: "every ipv4 address",
			n:    Network{Name: "all", Subnet: netip.MustParsePrefix("0.0.0.0/0"), Bridge: "tsw-all"},
			want: []string{
				`forward: iifname "tsw-all" accept`,
				`forward: oifname "tsw-all" ct state established,related accept`,
				`postrouting: meta nfproto ipv4 oifname != "tsw-all" masquerade`,
			},
		},
		{
			name: "internal",
			n:    Network{Name: "back", Subnet: netip.MustParsePrefix("10.30.0.0/24"), Bridge: "tsw-back", Internal: true},
			want: []string{
				`forward (head): oifname "tsw-back" drop`,
				`forward (head): iifname "tsw-back" drop`,
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
	if len(specs) != 4 {
		t.Fatalf("rulesFor(%+v, tsw-) = %d rules, want 4", n, len(specs))
	}
	first := specs[0]
	got := first.chain + ": " + render(first.exprs)
	if !first.head || !strings.Contains(got, `iifname "tsw-front"`) || !strings.Contains(got, `oifname != "tsw-front"`) || !strings.HasSuffix(got, "drop") {
		t.Fatalf("rulesFor(%+v, tsw-)[0] = %q (head %v), want the isolation drop at the head", n, got, first.head)
	}
}
