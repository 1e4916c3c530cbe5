package dns

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"time"

	mdns "github.com/miekg/dns"
)

// udpReadSize is the read buffer of the UDP listener: the largest
// datagram, so that no query is cut short.
const udpReadSize = 65535

// udpRcvBuf is the receive buffer asked for the UDP listener: room for a
// burst from every port of a network while the reader drops a flooder's
// excess. The kernel caps it at net.core.rmem_max (208 KiB by default,
// a few hundred small queries, which measured enough: a neighbour lost
// at most one query in 200 to a port flooding at full speed).
const udpRcvBuf = 1 << 20

// udpWriter is where UDP answers go: the listener, or a fake in tests.
type udpWriter interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// serveUDP reads queries from pc until it is closed. One goroutine reads
// and answers local names itself; a query to forward gets a goroutine of
// its own only once it holds a forwarding slot, so the goroutines of a
// server are bounded by maxInflight.
func (s *Server) serveUDP(pc *net.UDPConn) {
	defer s.done.Done()
	buf := make([]byte, udpReadSize)
	oob := make([]byte, oobSize)
	for {
		n, oobn, _, src, err := pc.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			// An ICMP error queued on the socket, or a signal: nothing
			// to do with it but read on, a little later so that a
			// persistent error does not spin.
			s.log.Debug("dns: read", "addr", s.addr, "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		ifindex, ok := pktinfoIfindex(oob[:oobn])
		if !ok {
			ifindex = -1
		}
		s.serveUDPPacket(pc, buf[:n], src, ifindex)
	}
}

// serveUDPPacket answers one datagram b from src that arrived on the
// interface ifindex (-1 if unknown). b is only read before it returns.
func (s *Server) serveUDPPacket(w udpWriter, b []byte, src netip.AddrPort, ifindex int) {
	if s.ifindex != 0 && ifindex != s.ifindex {
		s.refuse(refusedInterface, src, "udp")
		return
	}
	if !s.admitQuery(src, "udp") {
		return
	}
	req := new(mdns.Msg)
	// A copy, so that a forward can keep req while the reader reuses b.
	if err := req.Unpack(bytes.Clone(b)); err != nil {
		if resp := formErr(b); resp != nil {
			s.sendUDP(w, resp, src)
		}
		return
	}
	resp, fwd := s.prepare(req, src.Addr())
	if fwd {
		release, ok := s.acquireForward(src, "udp")
		if ok {
			s.done.Add(1)
			go func() {
				defer s.done.Done()
				r := s.forward(req, true)
				release()
				s.sendUDP(w, s.finish(req, r, true), src)
			}()
			return
		}
		resp = reply(req, mdns.RcodeServerFailure)
	}
	if resp != nil {
		s.sendUDP(w, s.finish(req, resp, true), src)
	}
}

// formErr is the FORMERR answer to a datagram that has a query's header
// but does not parse, or nil for one that has not even that: answering
// noise would make the server a reflector of it.
func formErr(b []byte) *mdns.Msg {
	const headerSize = 12
	if len(b) < headerSize || b[2]&0x80 != 0 { // QR: a response
		return nil
	}
	m := new(mdns.Msg)
	m.Id = uint16(b[0])<<8 | uint16(b[1])
	m.Response = true
	m.Opcode = int(b[2]>>3) & 0xf
	m.Rcode = mdns.RcodeFormatError
	return m
}

func (s *Server) sendUDP(w udpWriter, m *mdns.Msg, dst netip.AddrPort) {
	if m == nil {
		return
	}
	b, err := m.Pack()
	if err != nil {
		s.log.Debug("dns: pack answer", "client", dst, "err", err)
		return
	}
	if _, err := w.WriteToUDPAddrPort(b, dst); err != nil {
		s.log.Debug("dns: write answer", "client", dst, "err", err)
		return
	}
	s.count.answered.Add(1)
}

// drainSink reads what arrives at the gateway address on any other
// interface than the gateway's, counts it and drops it unanswered.
func (s *Server) drainSink(pc *net.UDPConn) {
	defer s.done.Done()
	buf := make([]byte, 512)
	for {
		_, src, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.refuse(refusedInterface, src, "udp")
	}
}
