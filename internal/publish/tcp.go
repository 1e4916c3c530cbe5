package publish

// A TCP connection through a Proxy:
//
//	client ──SYN──► listener ─accept─► client conn ─┐
//	                                                 ├─ io.Copy each way (splice)
//	target ◄──────────────── dial (5 s) ─ target conn┘
//
// An EOF one way becomes a FIN the same way (CloseWrite), and the other
// way keeps flowing until it ends too; an error either way resets both.

import (
	"errors"
	"io"
	"net"
)

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
		p.wg.Add(1)
		go p.serveConn(c)
	}
}

// serveConn connects client to the target and forwards until both
// directions end.
func (p *Proxy) serveConn(client *net.TCPConn) {
	defer p.wg.Done()
	if !p.track(client) {
		client.Close()
		return
	}
	defer p.untrack(client)
	p.stats.total.Add(1)
	p.stats.active.Add(1)
	defer p.stats.active.Add(-1)

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
	if !p.track(target) {
		target.Close()
		return
	}
	defer p.untrack(target)

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

// track records c for Close, and reports false once Close has begun.
func (p *Proxy) track(c *net.TCPConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// untrack forgets and closes c.
func (p *Proxy) untrack(c *net.TCPConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}
