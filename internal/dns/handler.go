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

// serveDNS answers one query. It writes nothing for messages that are not
// queries, as answering a response could start a loop.
func (s *Server) serveDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	resp := s.answer(req, isUDP)
	if resp == nil {
		return
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("dns: write answer", "client", w.RemoteAddr(), "err", err)
	}
}

// answer returns the reply to req, or nil if req gets none. udp tells
// whether the reply must fit the client's UDP payload size.
func (s *Server) answer(req *mdns.Msg, udp bool) *mdns.Msg {
	if req.Response {
		return nil
	}
	if req.Opcode != mdns.OpcodeQuery {
		return reply(req, mdns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return reply(req, mdns.RcodeFormatError)
	}
	opt := req.IsEdns0()
	if opt != nil && opt.Version() != 0 {
		// RFC 6891, section 6.1.3: only version 0 exists.
		return reply(req, mdns.RcodeBadVers)
	}

	q := req.Question[0]
	var resp *mdns.Msg
	switch {
	case q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR:
		// Zone transfers span several messages, which neither the local
		// zone nor the forwarder produce.
		resp = reply(req, mdns.RcodeRefused)
	default:
		resp = s.resolveLocal(req, q)
		if resp == nil {
			resp = s.forward(req, udp)
		}
	}

	if udp {
		size := mdns.MinMsgSize
		if opt != nil {
			size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	return resp
}

// resolveLocal answers q from the network's records, or returns nil if q
// is to be forwarded.
func (s *Server) resolveLocal(req *mdns.Msg, q mdns.Question) *mdns.Msg {
	if addr, ok := reverseAddr(q.Name); ok {
		names := s.records.Reverse(addr)
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
				if d := s.records.Domain(); d != "" {
					target = n + "." + d + "."
				}
				resp.Answer = append(resp.Answer, &mdns.PTR{Hdr: s.hdr(q, mdns.TypePTR), Ptr: target})
			}
		}
		return resp
	}

	if !s.records.local(q.Name) {
		return nil
	}
	addrs, found := s.records.Lookup(q.Name, q.Qtype)
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
