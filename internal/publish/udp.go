package publish

// UDP through a Proxy, one flow per client address:
//
//	client ──► listening socket ─serveUDP─► flow[client].conn ──► target
//	client ◄── listening socket ◄─runFlow── flow[client].conn ◄── target
//
// The connected socket of a flow gives the target a distinct source port
// per client, so its replies sort themselves out, and the kernel drops
// anything that does not come from the target.

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// maxDatagram holds the largest UDP payload (65507 bytes over IPv4,
	// 65527 over IPv6), so no datagram is truncated.
	maxDatagram = 64 << 10
	// oobSize holds an IPv4 or IPv6 packet-info control message.
	oobSize = 128
)

// flowBufs are the reply buffers of flows: a live flow holds one while it
// waits on the target, and an expired flow hands it to the next client.
var flowBufs = sync.Pool{New: func() any {
	b := make([]byte, maxDatagram)
	return &b
}}

// udpFlow is one client's traffic.
type udpFlow struct {
	// client is where replies go.
	client netip.AddrPort
	// src is the client's source, as the per-source cap counts it.
	src netip.Addr
	// conn is connected to the target.
	conn *net.UDPConn
	// oob makes replies leave from the address the client sent to; nil
	// when the listening socket is bound to one address anyway.
	oob []byte
	// last is when a datagram last passed either way, as time since the
	// Proxy's epoch.
	last atomic.Int64
}

func (p *Proxy) touch(f *udpFlow) {
	f.last.Store(int64(time.Since(p.epoch)))
}

// serveUDP reads datagrams from clients until Close.
func (p *Proxy) serveUDP() {
	defer p.wg.Done()
	buf := make([]byte, maxDatagram)
	oob := make([]byte, oobSize)
	var b backoff
	for {
		n, oobn, _, client, err := p.udp.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d := b.next()
			p.log.Warn("UDP read failed; retrying", "err", err, "in", d)
			if !p.sleep(d) {
				return
			}
			continue
		}
		b.reset()
		p.toTarget(buf[:n], oob[:oobn], client)
	}
}

// toTarget sends a client's datagram on through the client's flow.
func (p *Proxy) toTarget(pkt, oob []byte, client netip.AddrPort) {
	// A flow can expire between finding it and writing to it; then the
	// write fails with ErrClosed and a second try opens a new one.
	for range 2 {
		f := p.flow(client, oob)
		if f == nil {
			p.stats.dropped.Add(1)
			return
		}
		_, err := f.conn.Write(pkt)
		if err == nil {
			p.touch(f)
			p.stats.toTarget.Add(uint64(len(pkt)))
			return
		}
		if !errors.Is(err, net.ErrClosed) {
			// ECONNREFUSED here reports an ICMP port unreachable
			// for an earlier datagram: the service is not up yet.
			p.stats.dropped.Add(1)
			p.log.Debug("UDP send to target failed", "client", client.String(), "err", err)
			return
		}
	}
	p.stats.dropped.Add(1)
}

// flow finds client's flow or opens one. It returns nil when the client
// must be turned away: the port has maxFlows flows, the client's source
// its FlowsPerSource, or the descriptor budget is spent. Only serveUDP
// calls it, so two flows are never opened for one client.
func (p *Proxy) flow(client netip.AddrPort, oob []byte) *udpFlow {
	p.mu.Lock()
	f, closed := p.flows[client], p.closed
	var (
		src   netip.Addr
		r     reason
		limit int
		ok    bool
	)
	if f == nil && !closed {
		src, r, limit, ok = p.admitLocked(client, len(p.flows), p.lim.maxFlows, p.lim.FlowsPerSource, flowFDs)
	}
	p.mu.Unlock()
	switch {
	case f != nil:
		return f
	case closed:
		return nil
	case !ok:
		p.refuse(r, client, limit)
		return nil
	}

	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.target))
	if err != nil {
		p.mu.Lock()
		p.releaseLocked(src, flowFDs)
		p.mu.Unlock()
		p.stats.failed.Add(1)
		p.log.Debug("cannot open UDP flow", "client", client.String(), "err", err)
		return nil
	}
	f = &udpFlow{client: client, src: src, conn: conn}
	if p.pktinfo {
		f.oob = replyOOB(oob)
	}
	p.touch(f)

	p.mu.Lock()
	if p.closed {
		p.releaseLocked(src, flowFDs)
		p.mu.Unlock()
		conn.Close()
		return nil
	}
	p.flows[client] = f
	p.wg.Add(1)
	p.mu.Unlock()

	p.stats.total.Add(1)
	p.stats.active.Add(1)
	p.log.Debug("UDP flow opened", "client", client.String())
	go p.runFlow(f)
	return f
}

// runFlow sends the target's replies to f's client until f has been idle
// for udpIdle or Close.
func (p *Proxy) runFlow(f *udpFlow) {
	defer p.wg.Done()
	defer p.endFlow(f)
	bp := flowBufs.Get().(*[]byte)
	defer flowBufs.Put(bp)
	buf := *bp

	// One deadline per idle period, not per datagram: when it fires,
	// the flow either expires or waits out the rest of the period since
	// its last datagram either way.
	idle := p.lim.udpIdle
	f.conn.SetReadDeadline(time.Now().Add(idle))
	for {
		n, err := f.conn.Read(buf)
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				quiet := time.Since(p.epoch) - time.Duration(f.last.Load())
				if quiet >= idle {
					p.log.Debug("UDP flow expired", "client", f.client.String())
					return
				}
				f.conn.SetReadDeadline(time.Now().Add(idle - quiet))
			case errors.Is(err, syscall.ECONNREFUSED):
				// An ICMP port unreachable from the target. It may
				// come up; the client decides when to give up.
			case errors.Is(err, net.ErrClosed):
				return
			default:
				p.log.Debug("UDP flow failed", "client", f.client.String(), "err", err)
				return
			}
			continue
		}
		p.touch(f)
		if _, _, err := p.udp.WriteMsgUDPAddrPort(buf[:n], f.oob, f.client); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.stats.dropped.Add(1)
			p.log.Debug("UDP send to client failed", "client", f.client.String(), "err", err)
			continue
		}
		p.stats.toClient.Add(uint64(n))
	}
}

// endFlow forgets and closes f.
func (p *Proxy) endFlow(f *udpFlow) {
	// Out of the table before it is closed, so that toTarget's second
	// try finds no closed flow but opens a new one.
	p.mu.Lock()
	if p.flows[f.client] == f {
		delete(p.flows, f.client)
	}
	p.mu.Unlock()
	f.conn.Close()
	p.mu.Lock()
	p.releaseLocked(f.src, flowFDs)
	p.mu.Unlock()
	p.stats.active.Add(-1)
}
