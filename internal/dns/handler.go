package dns

import (
	"net"
	"net/netip"

	mdns "github.com/miekg/dns"
)

// localTTL is the TTL of local answers. Zero: names come and go with every
// attach and detach, and a container that caches the address of a port that
// was recreated elsewhere fails in ways that are hard to trace, while asking
// the gateway again costs a round trip on a veth.
//
// Negative local answers carry no SOA for the same reason: without one,
// resolvers do not cache the NXDOMAIN (RFC 2308, section 5), so a port is
// resolvable the moment it attaches.
const localTTL = 0

// ednsSize is the UDP payload size advertised in local answers to EDNS
// queries: the DNS Flag Day 2020 value, which avoids fragmentation on any
// path.
const ednsSize = 1232

// serveDNS answers one query that came over TCP (or, in tests, any
// ResponseWriter). It writes nothing for messages that are not queries,
// as answering a response could start a loop, and nothing to a client
// that is not admitted; a TCP client over its rate is disconnected.
func (s *Server) serveDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	src, _ := netip.ParseAddrPort(w.RemoteAddr().String())
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	proto := "tcp"
	if isUDP {
		proto = "udp"
	}
	if !s.admitQuery(src, proto) {
		if !isUDP {
			w.Close()
		}
		return
	}
	resp := s.answer(req, src, isUDP)
	if resp == nil {
		return
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("dns: write answer", "client", w.RemoteAddr(), "err", err)
		return
	}
	s.count.answered.Add(1)
}

// admitQuery reports whether a query from src is served: src is an
// address of the network, within its rate. Refusals are counted.
func (s *Server) admitQuery(src netip.AddrPort, proto string) bool {
	a := src.Addr().Unmap()
	if !s.clientAllowed(a) {
		s.refuse(refusedSource, src, proto)
		return false
	}
	if !s.limiter.allow(a, s.now()) {
		s.refuse(refusedRate, src, proto)
		return false
	}
	return true
}

// answer returns the reply to req from src, forwarding it if need be, or
// nil if req gets none. udp tells whether the reply must fit the client's
// UDP payload size.
func (s *Server) answer(req *mdns.Msg, src netip.AddrPort, udp bool) *mdns.Msg {
	resp, fwd := s.prepare(req, src.Addr())
	if fwd {
		proto := "tcp"
		if udp {
			proto = "udp"
		}
		if release, ok := s.acquireForward(src, proto); ok {
			resp = s.forward(req, udp)
			release()
		} else {
			resp = reply(req, mdns.RcodeServerFailure)
		}
	}
	return s.finish(req, resp, udp)
}

// prepare returns the reply to req from asker that needs no upstream, or
// nil if req gets none; fwd reports that req is to be forwarded instead.
func (s *Server) prepare(req *mdns.Msg, asker netip.Addr) (resp *mdns.Msg, fwd bool) {
	if req.Response {
		return nil, false
	}
	if req.Opcode != mdns.OpcodeQuery {
		return reply(req, mdns.RcodeNotImplemented), false
	}
	if len(req.Question) != 1 {
		return reply(req, mdns.RcodeFormatError), false
	}
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		// RFC 6891, section 6.1.3: only version 0 exists.
		return reply(req, mdns.RcodeBadVers), false
	}

	q := req.Question[0]
	if q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR {
		// Zone transfers span several messages, which neither the local
		// zone nor the forwarder produce.
		return reply(req, mdns.RcodeRefused), false
	}
	if resp := s.resolveLocal(req, q, asker); resp != nil {
		return resp, false
	}
	switch {
	case s.cfg.Internal:
		return s.notForwarded(req), false
	case len(s.upstreams) == 0:
		// Nothing to forward to: resolv.conf named no resolver, or only
		// this server. SERVFAIL rather than NXDOMAIN so that resolvers do
		// not cache that the name does not exist.
		return reply(req, mdns.RcodeServerFailure), false
	}
	return nil, true
}

// notForwarded answers a query of an internal network for a name outside
// it. An internal network reaches nothing beyond itself, so its server
// asks no upstream (as Docker's does for containers on internal networks
// only) and answers as Docker's does: SERVFAIL, which makes a resolver
// fail the lookup, or try its next nameserver, at once without caching
// that the name does not exist, since it may well exist. An EDNS client
// is told why (RFC 8914, Prohibited).
func (s *Server) notForwarded(req *mdns.Msg) *mdns.Msg {
	s.count.notForwarded.Add(1)
	resp := reply(req, mdns.RcodeServerFailure)
	resp.RecursionAvailable = false
	if opt := resp.IsEdns0(); opt != nil {
		opt.Option = append(opt.Option, &mdns.EDNS0_EDE{
			InfoCode:  mdns.ExtendedErrorCodeProhibited,
			ExtraText: "internal network: names outside it are not resolved",
		})
	}
	return resp
}

// finish fits resp to a UDP client's payload size; resp may be nil.
func (s *Server) finish(req, resp *mdns.Msg, udp bool) *mdns.Msg {
	if resp == nil || !udp {
		return resp
	}
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), mdns.MinMsgSize)
	}
	resp.Truncate(size)
	return resp
}

// acquireForward takes a forwarding slot for src (within the network's
// and src's share, see maxInflight) and a descriptor from the budget, and
// returns what gives them back; or reports false, counted, if either is
// spent.
func (s *Server) acquireForward(src netip.AddrPort, proto string) (release func(), ok bool) {
	a := src.Addr().Unmap()
	if !s.forwards.acquire(a) {
		s.refuse(refusedForwards, src, proto)
		return nil, false
	}
	// One descriptor: the forward's UDP socket, closed before the TCP
	// retry opens its own.
	if !s.fds.Acquire(1) {
		s.forwards.release(a)
		s.refuse(refusedFDs, src, proto)
		return nil, false
	}
	return func() {
		s.fds.Release(1)
		s.forwards.release(a)
	}, true
}

// resolveLocal answers q from the network's records, and from those of
// the other networks asker is on (Config.Peers), or returns nil if q is
// to be forwarded.
func (s *Server) resolveLocal(req *mdns.Msg, q mdns.Question, asker netip.Addr) *mdns.Msg {
	var peers []*Records
	if s.cfg.Peers != nil && asker.IsValid() {
		peers = s.cfg.Peers(asker.Unmap())
	}
	if addr, ok := reverseAddr(q.Name); ok {
		names, domain := s.records.Reverse(addr), s.records.Domain()
		for _, r := range peers {
			if len(names) > 0 {
				break
			}
			names, domain = r.Reverse(addr), r.Domain()
		}
		if len(names) == 0 {
			if s.inSubnets(addr) {
				return s.localReply(req, mdns.RcodeNameError)
			}
			return nil
		}
		resp := s.localReply(req, mdns.RcodeSuccess)
		if q.Qtype == mdns.TypePTR || q.Qtype == mdns.TypeANY {
			for _, n := range names {
				target := n + "."
				if domain != "" {
					target = n + "." + domain + "."
				}
				resp.Answer = append(resp.Answer, &mdns.PTR{Hdr: s.hdr(q, mdns.TypePTR), Ptr: target})
			}
		}
		return resp
	}

	local := s.records.local(q.Name)
	addrs, found := s.records.Lookup(q.Name, q.Qtype)
	// A name of the asker's own network comes first; then, in the order
	// Peers gives, those of the other networks it is on. A single label
	// is every network's, NAME.NETWORK only that network's.
	for _, r := range peers {
		if found {
			break
		}
		if r.local(q.Name) {
			local = true
			addrs, found = r.Lookup(q.Name, q.Qtype)
		}
	}
	if !local {
		return nil
	}
	if !found {
		return s.localReply(req, mdns.RcodeNameError)
	}
	resp := s.localReply(req, mdns.RcodeSuccess)
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		return resp
	}
	for _, a := range addrs {
		if a.Is4() {
			resp.Answer = append(resp.Answer, &mdns.A{Hdr: s.hdr(q, mdns.TypeA), A: a.AsSlice()})
		} else {
			resp.Answer = append(resp.Answer, &mdns.AAAA{Hdr: s.hdr(q, mdns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	return resp
}

// hdr is the header of a local answer to q. The owner name is q's as sent,
// case included, since resolvers that randomise the case of their queries
// (DNS 0x20) drop answers that do not echo it.
func (s *Server) hdr(q mdns.Question, rrtype uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: q.Name, Rrtype: rrtype, Class: mdns.ClassINET, Ttl: localTTL}
}

func (s *Server) inSubnets(a netip.Addr) bool {
	for _, p := range s.cfg.Subnets {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// localReply starts an authoritative reply for this network's zone.
func (s *Server) localReply(req *mdns.Msg, rcode int) *mdns.Msg {
	resp := reply(req, rcode)
	resp.Authoritative = true
	return resp
}

// reply starts a reply to req with rcode. Recursion is available since
// everything that is not local is forwarded.
func reply(req *mdns.Msg, rcode int) *mdns.Msg {
	resp := new(mdns.Msg)
	resp.SetRcode(req, rcode)
	resp.RecursionAvailable = true
	if req.IsEdns0() != nil {
		// RFC 6891, section 7: a responder that understands EDNS answers
		// an EDNS query with an OPT record; BADVERS needs it to carry the
		// upper bits of its rcode.
		resp.SetEdns0(ednsSize, false)
	}
	return resp
}
