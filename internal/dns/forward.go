package dns

import (
	"context"
	"errors"
	"time"

	mdns "github.com/miekg/dns"
)

// errTruncated marks a UDP answer that was truncated and could not be had
// over TCP.
var errTruncated = errors.New("dns: truncated answer, TCP retry failed")

// forward sends req to the upstreams in order and returns the first usable
// answer with req's ID, or SERVFAIL. A client that asked over TCP has
// already been told its answer is large, so its query goes over TCP at once.
// The caller holds a forwarding slot (acquireForward).
func (s *Server) forward(req *mdns.Msg, udp bool) *mdns.Msg {
	if len(s.upstreams) == 0 {
		return reply(req, mdns.RcodeServerFailure)
	}
	s.count.forwarded.Add(1)

	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()

	// A fresh random ID towards the upstream, as the client's own may be
	// predictable and the upstream's answer crosses the host's network.
	fq := req.Copy()
	fq.Id = mdns.Id()

	// fallback is an answer to pass on if no upstream does better: a
	// SERVFAIL or REFUSED from one upstream may be a success at the next.
	var fallback *mdns.Msg
	for i, up := range s.upstreams {
		// Split what is left of the budget among the upstreams still to try,
		// so that one that drops packets cannot starve the ones after it.
		left := time.Until(deadline(ctx))
		if left <= 0 {
			break
		}
		actx, acancel := context.WithTimeout(ctx, left/time.Duration(len(s.upstreams)-i))
		r, err := s.exchange(actx, fq, up.String(), udp)
		acancel()
		if err != nil {
			if r != nil {
				fallback = r
			}
			s.log.Debug("dns: forward", "name", req.Question[0].Name, "upstream", up, "err", err)
			continue
		}
		if r.Rcode == mdns.RcodeServerFailure || r.Rcode == mdns.RcodeRefused {
			fallback = r
			continue
		}
		r.Id = req.Id
		return r
	}
	if fallback != nil {
		fallback.Id = req.Id
		return fallback
	}
	return reply(req, mdns.RcodeServerFailure)
}

// exchange asks one upstream, over UDP first unless udp is false, then over
// TCP if the UDP answer was truncated. On a failed TCP retry it returns the
// truncated answer with errTruncated.
func (s *Server) exchange(ctx context.Context, m *mdns.Msg, addr string, udp bool) (*mdns.Msg, error) {
	var truncated *mdns.Msg
	if udp {
		r, err := exchangeOnce(ctx, s.udpClient, m, addr)
		if err != nil {
			return nil, err
		}
		if !r.Truncated {
			return r, nil
		}
		truncated = r
	}
	r, err := exchangeOnce(ctx, s.tcpClient, m, addr)
	if err != nil {
		if truncated != nil {
			return truncated, errors.Join(errTruncated, err)
		}
		return nil, err
	}
	return r, nil
}

// exchangeOnce is c.ExchangeContext, but returns as soon as ctx is
// cancelled: the client only takes ctx's deadline, so Close would otherwise
// wait for every forward in flight to time out.
func exchangeOnce(ctx context.Context, c *mdns.Client, m *mdns.Msg, addr string) (*mdns.Msg, error) {
	co, err := c.DialContext(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	// Closing, unlike a deadline, cannot be undone by the deadlines the
	// exchange sets when it starts.
	stop := context.AfterFunc(ctx, func() { co.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, m, co)
	return r, err
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
