package publish

// A TCP connection through a Proxy:
//
//	client ──SYN──► listener ─accept─► admit? ──no──► reset at once
//	                                     │ yes (a place under the port's and
//	                                     │  the source's caps, 6 descriptors)
//	                                     ▼
//	                                client conn ─┐
//	                                             ├─ io.Copy each way (splice)
//	target ◄──────────── dial (5 s) ─ target conn┘
//
// An EOF one way becomes a FIN the same way (CloseWrite), and the other
// way keeps flowing until it ends too; an error either way resets both.
// sweepIdle closes a connection no data has passed through, either way,
// for Limits.IdleTimeout.

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// proxied is one client's TCP connection through the Proxy.
type proxied struct {
	client *net.TCPConn
	// src is the client's source, as the per-source cap counts it.
	src netip.Addr
	// mu guards target.
	mu sync.Mutex
	// target is the connection to the target, once dialed.
	target *net.TCPConn
}

func (c *proxied) setTarget(t *net.TCPConn) {
	c.mu.Lock()
	c.target = t
	c.mu.Unlock()
}

func (c *proxied) getTarget() *net.TCPConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.target
}

// close closes both sides; the copies of serveConn then end.
func (c *proxied) close() {
	c.client.Close()
	if t := c.getTarget(); t != nil {
		t.Close()
	}
}

// serveTCP accepts until Close.
func (p *Proxy) serveTCP() {
	defer p.wg.Done()
	var b backoff
	for {
		c, err := p.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d := b.next()
			p.log.Warn("accept failed; retrying", "err", err, "in", d)
			if !p.sleep(d) {
				return
			}
			continue
		}
		b.reset()
		pc := p.admitConn(c)
		if pc == nil {
			continue
		}
		p.wg.Add(1)
		go p.serveConn(pc)
	}
}

// admitConn tracks a just accepted connection, or resets it when the
// Proxy is closing or a limit is reached.
func (p *Proxy) admitConn(c *net.TCPConn) *proxied {
	client := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	p.mu.Lock()
	closed := p.closed
	var pc *proxied
	var r reason
	var limit int
	if !closed {
		var src netip.Addr
		var ok bool
		if src, r, limit, ok = p.admitLocked(client, len(p.conns), p.lim.ConnsPerPort, p.lim.ConnsPerSource, connFDs); ok {
			pc = &proxied{client: c, src: src}
			p.conns[pc] = struct{}{}
		}
	}
	p.mu.Unlock()
	if pc != nil {
		return pc
	}
	// Counted before the client can see it, so that its count is there
	// for whoever the client tells.
	if !closed {
		p.refuse(r, client, limit)
	}
	// A reset, at once: the client learns it was refused rather than
	// waiting on a connection nobody will serve.
	c.SetLinger(0)
	c.Close()
	return nil
}

// serveConn connects pc's client to the target and forwards until both
// directions end.
func (p *Proxy) serveConn(pc *proxied) {
	defer p.wg.Done()
	client := pc.client
	p.stats.total.Add(1)
	p.stats.active.Add(1)
	// Active drops once the place is given back, not before.
	defer p.stats.active.Add(-1)
	defer p.endConn(pc)

	d := net.Dialer{Timeout: p.lim.dialTimeout}
	c, err := d.DialContext(p.ctx, "tcp", p.target.String())
	if err != nil {
		p.stats.failed.Add(1)
		p.log.Debug("target unreachable; resetting client", "client", client.RemoteAddr().String(), "err", err)
		// A reset, not a FIN: a client that sees a clean close may
		// take it for an empty answer.
		client.SetLinger(0)
		return
	}
	target := c.(*net.TCPConn)
	pc.setTarget(target)
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		// Close may have missed the target, set after it looked.
		return
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := io.Copy(target, client)
		p.stats.toTarget.Add(uint64(n))
		endHalf(target, client, err)
	}()
	n, err := io.Copy(client, target)
	p.stats.toClient.Add(uint64(n))
	endHalf(client, target, err)
	<-done
}

// endHalf passes on the end of the direction src → dst. A clean EOF
// becomes a FIN to dst, so a peer that shuts down its sending side (an
// HTTP/1.0 client, `nc -N`, rsync) still gets its answer. Anything else
// resets both connections, so that neither side, nor the other
// direction's copy, waits on a peer that is gone.
func endHalf(dst, src *net.TCPConn, err error) {
	if err == nil {
		dst.CloseWrite()
		return
	}
	dst.SetLinger(0)
	src.SetLinger(0)
	dst.Close()
	src.Close()
}

// endConn forgets pc, closes both its sides and gives back its place.
func (p *Proxy) endConn(pc *proxied) {
	pc.close()
	p.mu.Lock()
	delete(p.conns, pc)
	p.releaseLocked(pc.src, connFDs)
	p.mu.Unlock()
}

// sweepIdle closes, until Close, the connections through which no data
// has passed either way for Limits.IdleTimeout. The kernel keeps when
// data last went each way on the client's socket (TCP_INFO), so the
// spliced data path is left as it is, with no timer or deadline per read.
func (p *Proxy) sweepIdle() {
	defer p.wg.Done()
	idle := p.lim.IdleTimeout
	t := time.NewTicker(sweepEvery(idle))
	defer t.Stop()
	var conns []*proxied
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		conns = conns[:0]
		p.mu.Lock()
		for c := range p.conns {
			conns = append(conns, c)
		}
		p.mu.Unlock()
		for _, c := range conns {
			if c.getTarget() == nil {
				// Still dialing, which dialTimeout bounds.
				continue
			}
			quiet, err := idleFor(c.client)
			if err != nil || quiet < idle {
				continue
			}
			p.stats.idle.Add(1)
			p.log.Debug("closing idle connection", "client", c.client.RemoteAddr().String(), "idle", quiet.Round(time.Second))
			c.close()
		}
		clear(conns)
	}
}
