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
	chainInput       = "input"

	// commentPrefix starts the comment of every rule of a network; the
	// network's name follows.
	commentPrefix = "network "
)

// ruleSpec is one rule of a network, before it is bound to a table.
type ruleSpec struct {
	chain string
	// head puts the rule before every rule already in the chain. Every
	// drop of the forward chain goes there and every accept after, so
	// that no network's accept can come before another network's drop
	// whatever order the networks were added in.
	head  bool
	exprs []expr.Any
}

// rulesFor returns n's rules in the order they must be added. Forward
// and input rules come first so that, should the masquerade rule be
// refused, the batch fails on its last message; the kernel undoes the
// batch either way.
func rulesFor(n Network, isolate string) []ruleSpec {
	var specs []ruleSpec
	if isolate != "" {
		// iifname BRIDGE oifname != BRIDGE oifname "PREFIX*" drop, at the
		// head so no accept of another network comes first.
		specs = append(specs, ruleSpec{chain: chainForward, head: true, exprs: join(
			ifname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpEq),
			ifname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpNeq),
			ifnamePrefix(unix.NFT_META_OIFNAME, isolate),
			counterDrop())})
	}
	return append(specs, networkRules(n)...)
}

func networkRules(n Network) []ruleSpec {
	if n.Internal {
		// Inserted at the head one after the other, so listed last first.
		specs := []ruleSpec{
			{chain: chainForward, head: true, exprs: join(ifname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpEq), counterDrop())},
			{chain: chainForward, head: true, exprs: join(ifname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpEq), counterDrop())},
		}
		return append(specs, inputRules(n)...)
	}
	return append(sourceGuard(n, true), ordinaryRules(n)...)
}

// sourceGuard drops what arrives on n's gateway interface from a source
// outside n's subnet, or of the other IP family: only the network's own
// addresses enter the host from it. Without it a namespace that sends
// from another network's address (its port security off, as a router's
// is, or an --ip of a plain wire) has the host answer, or forward, to
// whoever owns that address in another network: an internal network
// could reach the outside, and one network another. On an IPv6 network
// neighbour discovery, which comes from link-local addresses and from
// ::, is let through first on input; the kernel forwards neither. The
// forward rules go at the head of the chain, before any accept; the
// input rules come first among the network's own.
func sourceGuard(n Network, forward bool) []ruleSpec {
	iif := ifname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpEq)
	var otherFamily []expr.Any
	if !n.Subnet6.IsValid() {
		// A dual-stack network has no other family.
		fam := byte(unix.NFPROTO_IPV4)
		if n.Subnet.Addr().Is6() {
			fam = unix.NFPROTO_IPV6
		}
		otherFamily = join(iif, nfprotoNot(fam), counterDrop())
	}
	// One rule per subnet: each matches only packets of its subnet's
	// family (saddr checks the protocol first).
	var foreign [][]expr.Any
	has6 := false
	for _, p := range n.subnets() {
		has6 = has6 || p.Addr().Is6()
		if p.Bits() > 0 { // a /0 has no foreign source of its family
			foreign = append(foreign, join(iif, saddrNot(p), counterDrop()))
		}
	}
	var specs []ruleSpec
	add := func(chain string, head bool, exprs []expr.Any) {
		if exprs != nil {
			specs = append(specs, ruleSpec{chain: chain, head: head, exprs: exprs})
		}
	}
	if forward {
		add(chainForward, true, otherFamily)
		for _, f := range foreign {
			add(chainForward, true, f)
		}
	}
	if has6 {
		for _, typ := range []byte{ndNeighborSolicit, ndNeighborAdvert} {
			specs = append(specs, ruleSpec{chain: chainInput, exprs: join(iif,
				nfproto(unix.NFPROTO_IPV6), l4proto(unix.IPPROTO_ICMPV6), icmpType(typ), verdict(expr.VerdictAccept))})
		}
	}
	add(chainInput, false, otherFamily)
	for _, f := range foreign {
		add(chainInput, false, f)
	}
	return specs
}

// ordinaryRules are the forward and masquerade rules of a network that
// is not internal.
func ordinaryRules(n Network) []ruleSpec {
	specs := []ruleSpec{
		// Nothing enters the network from elsewhere but replies: a host
		// that routes to the subnet through this one (a LAN neighbour)
		// reaches no container port. The daemon's published ports are
		// not forwarded: its proxy connects from the host itself
		// (output). Ports published by destination NAT (CNI's portmap,
		// kube-proxy, an administrator's rule) are, and pass: whoever
		// wrote the DNAT rule chose to open that port. Traffic that comes
		// back in on the same interface (a container reaching another
		// through the gateway) is the network's own.
		{chain: chainForward, head: true, exprs: join(
			ifname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpEq),
			ifname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpNeq),
			ctNotEstablishedRelated(),
			ctNotDNAT(),
			counterDrop())},
		{chain: chainForward, exprs: join(ifname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpEq), verdict(expr.VerdictAccept))},
		// The reply path, explicit rather than left to the chain's policy.
		{chain: chainForward, exprs: join(ifname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpEq), ctEstablishedRelated(), verdict(expr.VerdictAccept))},
	}
	// Traffic that stays on the network's own interface (a container
	// reaching another through the gateway) keeps its source. Each
	// family of a dual-stack network is masqueraded alike: its IPv6
	// subnet is usually unique local space, which is not routed beyond
	// the host.
	for _, p := range n.subnets() {
		specs = append(specs, ruleSpec{chain: chainPostrouting, exprs: join(saddr(p), ifname(unix.NFT_META_OIFNAME, n.Bridge, expr.CmpOpNeq), []expr.Any{&expr.Masq{}})})
	}
	return specs
}

// inputRules close an internal network's gateway interface to
// everything the host serves but the network's own DNS. What a container
// sends to any of the host's addresses (its gateway's, another network's
// gateway's, the host's LAN address) is local delivery (hook input),
// which the forward drops do not see, and would reach the host's own
// services and every published port. Only these pass:
//
//   - replies (ct state established,related), to what the host or the
//     daemon sent into the network, and the ICMP errors about it;
//   - DNS, UDP and TCP port 53, to the network's own gateway address,
//     where its DNS server listens;
//   - ICMP echo requests to the gateway address: the network's only
//     router answering a ping is how its containers (and people) check
//     the link, and an echo reply carries nothing of the host's;
//   - on an IPv6 network, neighbour solicitations and advertisements,
//     without which a container cannot find the gateway's MAC (IPv6's
//     ARP, which the inet family filters as it does any IP packet).
//
// ARP is not IP and never reaches these chains; see the package
// documentation.
func inputRules(n Network) []ruleSpec {
	in := func(parts ...[]expr.Any) ruleSpec {
		return ruleSpec{chain: chainInput, exprs: join(append([][]expr.Any{ifname(unix.NFT_META_IIFNAME, n.Bridge, expr.CmpOpEq)}, parts...)...)}
	}
	// Only the network's own addresses, before anything is accepted: a
	// ping or a DNS query from another network's address would be
	// answered to that network.
	specs := sourceGuard(n, false)
	specs = append(specs, in(ctEstablishedRelated(), verdict(expr.VerdictAccept)))
	for _, gw := range n.gateways() {
		specs = append(specs,
			in(daddr(gw), l4proto(unix.IPPROTO_UDP), dport(53), verdict(expr.VerdictAccept)),
			in(daddr(gw), l4proto(unix.IPPROTO_TCP), dport(53), verdict(expr.VerdictAccept)),
			in(daddr(gw), echoRequest(gw), verdict(expr.VerdictAccept)),
		)
	}
	// Neighbour discovery on an IPv6 network was let through by the
	// source guard.
	return append(specs, in(counterDrop()))
}

// ICMP and ICMPv6 message types the input rules name (RFC 792, RFC 4443,
// RFC 4861).
const (
	icmpEchoRequest   = 8
	icmp6EchoRequest  = 128
	ndNeighborSolicit = 135
	ndNeighborAdvert  = 136
)

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
	offset := uint32(12) // ip saddr
	if p.Addr().Is6() {
		offset = 8 // ip6 saddr
	}
	return addrMatch(p, offset)
}

// daddr matches the destination address a, the protocol checked first
// as in saddr.
func daddr(a netip.Addr) []expr.Any {
	offset := uint32(16) // ip daddr
	if a.Is6() {
		offset = 24 // ip6 daddr
	}
	return addrMatch(netip.PrefixFrom(a, a.BitLen()), offset)
}

func addrMatch(p netip.Prefix, offset uint32) []expr.Any {
	proto := byte(unix.NFPROTO_IPV4)
	if p.Addr().Is6() {
		proto = unix.NFPROTO_IPV6
	}
	out := nfproto(proto)
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

// nfproto matches the network protocol (meta nfproto ipv4 or ipv6).
// nfprotoNot matches packets of any family but proto.
func nfprotoNot(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{proto}},
	}
}

// saddrNot matches packets of p's family whose source is not in p.
func saddrNot(p netip.Prefix) []expr.Any {
	out := saddr(p)
	last := out[len(out)-1].(*expr.Cmp)
	return append(out[:len(out)-1:len(out)-1], &expr.Cmp{Op: expr.CmpOpNeq, Register: last.Register, Data: last.Data})
}

func nfproto(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// l4proto matches the transport protocol (meta l4proto), which the
// kernel finds after any IPv6 extension headers.
func l4proto(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// dport matches a UDP or TCP destination port (th dport), which sits at
// the same offset in both headers; l4proto must come first.
func dport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	}
}

// icmpType matches the first byte of the transport header, the type of
// an ICMP or ICMPv6 message; l4proto must come first.
func icmpType(typ byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}},
	}
}

// echoRequest matches an echo request of a's family: ICMP for IPv4,
// ICMPv6 for IPv6.
func echoRequest(a netip.Addr) []expr.Any {
	if a.Is6() {
		return join(l4proto(unix.IPPROTO_ICMPV6), icmpType(icmp6EchoRequest))
	}
	return join(l4proto(unix.IPPROTO_ICMP), icmpType(icmpEchoRequest))
}

// ctEstablishedRelated matches `ct state established,related`.
func ctEstablishedRelated() []expr.Any {
	return ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, expr.CmpOpNeq)
}

// ctNotEstablishedRelated matches `ct state ! established,related`:
// new connections, and packets conntrack finds invalid or does not track.
func ctNotEstablishedRelated() []expr.Any {
	return ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, expr.CmpOpEq)
}

// ipsDstNAT is IPS_DST_NAT of linux/netfilter/nf_conntrack_common.h,
// the conntrack status bit of a connection whose destination was
// rewritten (bit 5).
const ipsDstNAT = 1 << 5

// ctNotDNAT matches `ct status ! dnat`: a connection no rule gave a new
// destination.
func ctNotDNAT() []expr.Any {
	mask := binary.NativeEndian.AppendUint32(nil, ipsDstNAT)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)},
	}
}

// ctState tests the conntrack state bits of states against zero: op Neq
// means one of them is set, Eq none.
func ctState(states uint32, op expr.CmpOp) []expr.Any {
	mask := binary.NativeEndian.AppendUint32(nil, states)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: make([]byte, 4)},
	}
}

// counterDrop counts what it drops, so that `nft list table` shows
// which rule stopped how much (and Manager.Dropped sums it per network).
func counterDrop() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
}

func verdict(k expr.VerdictKind) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: k}}
}

// dropCount is the packet count of a drop rule's counter as the kernel
// returned the rule, and 0 for any other rule.
func dropCount(exprs []expr.Any) uint64 {
	var n uint64
	drop := false
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Counter:
			n = e.Packets
		case *expr.Verdict:
			drop = e.Kind == expr.VerdictDrop
		}
	}
	if !drop {
		return 0
	}
	return n
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
