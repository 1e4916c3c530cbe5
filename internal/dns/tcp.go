package dns

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DNS over TCP is what a resolver falls back to when an answer does not
// fit a datagram: one connection per truncated answer, one or two
// queries on it (glibc sends A and AAAA together), then closed. Each
// connection holds a descriptor and a goroutine, so they are bounded.
const (
	// tcpMaxConns is the connections a network's server holds at once:
	// 64 lookups with large answers at the same moment, far more than a
	// network of containers makes, and 64 descriptors of the daemon's
	// budget per network at most.
	tcpMaxConns = 64
	// tcpMaxConnsPerSource leaves at least eight sources their full
	// share: a multi-threaded program has a few lookups in flight.
	tcpMaxConnsPerSource = 8
	// tcpReadTimeout bounds the wait for the first query of a connection,
	// and the reading of each query once its first byte is read: a query
	// is a few dozen bytes, so a client that cannot send it in 2 s is
	// holding the connection open, not asking.
	tcpReadTimeout = 2 * time.Second
	// tcpIdleTimeout bounds the wait for each further query. RFC 7766
	// asks for a few seconds; a resolver sends its queries on a
	// connection back to back.
	tcpIdleTimeout = 5 * time.Second
	// tcpWriteTimeout bounds the writing of one answer (64 KiB at most)
	// to a client that does not read it.
	tcpWriteTimeout = 2 * time.Second
	// tcpMaxQueries per connection, after which it is closed, so that a
	// client trickling queries cannot hold a connection for ever: with
	// the idle timeout, a connection lives 500 s at most.
	tcpMaxQueries = 100
)

// tcpListener admits connections from the network's ports within the
// limits and closes the others at once. The connections it returns give
// back what they hold when closed.
type tcpListener struct {
	*net.TCPListener
	s *Server
}

// Accept returns the next admitted connection.
func (l *tcpListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			// Out of descriptors (the budget should prevent it) or a
			// connection reset before it was accepted: wait a little,
			// doubling up to a second, rather than spin.
			l.s.log.Debug("dns: accept", "addr", l.s.addr, "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		src := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		release, ok := l.s.admitConn(src)
		if !ok {
			abort(c)
			continue
		}
		return &tcpConn{TCPConn: c, release: release}, nil
	}
}

// abort closes c with a reset, so that a refused connection leaves no
// TIME_WAIT behind.
func abort(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// admitConn decides on a new TCP connection from src and, if it is
// admitted, returns what gives back its share of the limits.
func (s *Server) admitConn(src netip.AddrPort) (release func(), ok bool) {
	a := src.Addr().Unmap()
	if !s.clientAllowed(a) {
		s.refuse(refusedSource, src, "tcp")
		return nil, false
	}
	// A connection costs a token too, so that a flood of connections is
	// stopped before it takes a descriptor.
	if !s.limiter.allow(a, s.now()) {
		s.refuse(refusedRate, src, "tcp")
		return nil, false
	}
	if !s.conns.acquire(a) {
		s.refuse(refusedTCP, src, "tcp")
		return nil, false
	}
	if !s.fds.Acquire(1) {
		s.conns.release(a)
		s.refuse(refusedFDs, src, "tcp")
		return nil, false
	}
	return func() {
		s.fds.Release(1)
		s.conns.release(a)
	}, true
}

// tcpConn is an admitted connection.
type tcpConn struct {
	*net.TCPConn
	release func()
	once    sync.Once
}

// Write bounds each write by tcpWriteTimeout: the DNS library sets no
// write deadline.
func (c *tcpConn) Write(b []byte) (int, error) {
	c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
	return c.TCPConn.Write(b)
}

func (c *tcpConn) Close() error {
	c.once.Do(c.release)
	return c.TCPConn.Close()
}
