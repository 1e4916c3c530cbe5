package nat

import (
	"encoding/binary"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

const (
	chainPostrouting = "postrouting"
	chainForward     = "forward"

	// commentPrefix starts the comment of every rule of a network; the
	// network's name follows.
	commentPrefix = "network "
)

// ruleSpec is one rule of a network, before it is bound to a table.
type ruleSpec struct {
	chain string
	// head puts the rule before every rule already in the chain: an
	// internal network's drops must come before any other network's
	// accepts, or traffic from a non-internal network would be accepted
	// into it.
	head  bool
	exprs []expr.Any
}

// rulesFor returns n's rules in the order they must be added. Forward
// rules come first so that, should the masquerade rule be refused, the
// batch fails on its last message; the kernel undoes the batch either
// way.
func rulesFor(n Network, isolate string) []ruleSpec {
	var specs []ruleSpec
	if isolate != "" {
		// iifname BRIDGE oifname != BRIDGE oifname "PREFIX*" drop, at the
		// head so no accept of another network comes first.
		specs = append(specs, ruleSpec{chain: chainForward, head: true, exprs: join(
			ifname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpEq),
			ifname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpNeq),
			ifnamePrefix(unix.NFT_META_OIFNAME, isolate),
			verdict(expr.VerdictDrop))})
	}
	return append(specs, networkRules(n)...)
}

func networkRules(n Network) []ruleSpec {
	if n.Internal {
		// Inserted at the head one after the other, so listed last first.
		return []ruleSpec{
			{chain: chainForward, head: true, exprs: join(ifname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpEq), verdict(expr.VerdictDrop))},
			{chain: chainForward, head: true, exprs: join(ifname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpEq), verdict(expr.VerdictDrop))},
		}
	}
	return []ruleSpec{
		{chain: chainForward, exprs: join(ifname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpEq), verdict(expr.VerdictAccept))},
		// The reply path, explicit rather than left to the chain's policy.
		{chain: chainForward, exprs: join(ifname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpEq), ctEstablishedRelated(), verdict(expr.VerdictAccept))},
		// Traffic that stays on the network's own interface (a container
		// reaching another through the gateway) keeps its source.
		{chain: chainPostrouting, exprs: join(saddr(n.Subnet), ifname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpNeq), []expr.Any{&expr.Masq{}})},
	}
}

func join(parts ...[]expr.Any) []expr.Any {
	var all []expr.Any
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// ifname matches the input or output interface name the way nft does:
// the register holds IFNAMSIZ bytes, NUL padded.
func ifname(key expr.MetaKey, name string, op expr.CmpOp) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

// ifnamePrefix matches interface names starting with prefix, as nft's
// "prefix*" does: a compare of only the prefix's bytes.
func ifnamePrefix(key expr.MetaKey, prefix string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(prefix)},
	}
}

// saddr matches a source address in p. An inet table sees IPv4 and IPv6,
// so the network protocol is checked before the header is read.
func saddr(p netip.Prefix) []expr.Any {
	proto, offset := byte(unix.NFPROTO_IPV4), uint32(12) // ip saddr
	if p.Addr().Is6() {
		proto, offset = unix.NFPROTO_IPV6, 8 // ip6 saddr
	}
	out := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
	if p.Bits() == 0 {
		return out
	}
	addr := p.Addr().AsSlice()
	size := uint32(len(addr))
	out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size})
	if p.Bits() < p.Addr().BitLen() {
		mask := make([]byte, size)
		for i := range p.Bits() {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)})
	}
	return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr})
}

// ctEstablishedRelated matches `ct state established,related`.
func ctEstablishedRelated() []expr.Any {
	mask := binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func verdict(k expr.VerdictKind) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: k}}
}

// comment returns the rule user data that tags a rule as network name's,
// in the TLV form nft reads as a comment.
func comment(name string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, commentPrefix+name)
}

// networkOf returns the network named in a rule's user data. It walks the
// TLVs itself because the data comes from the kernel, where anyone may
// have put a rule with data of any shape.
func networkOf(udata []byte) (string, bool) {
	for len(udata) >= 2 {
		typ, size := userdata.Type(udata[0]), int(udata[1])
		if len(udata) < 2+size {
			return "", false
		}
		val := udata[2 : 2+size]
		udata = udata[2+size:]
		if typ != userdata.TypeComment {
			continue
		}
		s := strings.TrimSuffix(string(val), "\x00")
		if name, ok := strings.CutPrefix(s, commentPrefix); ok && name != "" {
			return name, true
		}
		return "", false
	}
	return "", false
}
