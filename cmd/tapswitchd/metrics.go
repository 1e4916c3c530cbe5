package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/tapswitch/tapswitch/internal/fdset"
	"github.com/tapswitch/tapswitch/internal/metrics"
	"github.com/tapswitch/tapswitch/internal/version"
)

// metricsFDName names the metrics listener among the descriptors handed
// over, so that a successor with the same --metrics serves on the very
// socket: the port is never free for another program to take, and
// Prometheus's scrapes are answered throughout.
const metricsFDName = "metrics"

// metricsFlagHelp is --metrics's line in --help.
const metricsFlagHelp = "serve Prometheus metrics at http://`ADDR`/metrics, ADDR an IP:PORT such as 127.0.0.1:9469 or [::1]:9469, or :PORT for every address (off by default). Whoever reaches ADDR reads the names and traffic of every port and network: keep it on loopback, or behind a firewall"

// openMetrics readies the metrics when --metrics is given: the
// listener handed over in set, if it listens on the address asked for,
// or a new one. They are served once the daemon runs (serveMetrics).
func (s *server) openMetrics(addr netip.AddrPort, set *fdset.Set) error {
	s.metrics = metrics.New(version.String(), s.log)
	if fd := set.TakeOne(metricsFDName); fd >= 0 {
		ln, err := fileListener(fd)
		if err == nil {
			if tl, ok := ln.(*net.TCPListener); ok && sameAddr(tl.Addr().(*net.TCPAddr).AddrPort(), addr) {
				s.mln = tl
				return nil
			}
			ln.Close()
			err = fmt.Errorf("it listens on %s, not --metrics %s", ln.Addr(), addr)
		}
		s.log.Warn("metrics listener handed over not used; listening afresh", "err", err)
	}
	ln, err := metrics.Listen(addr)
	if err != nil {
		return err
	}
	s.mln = ln
	return nil
}

// sameAddr reports whether a listener bound to have serves want.
func sameAddr(have, want netip.AddrPort) bool {
	if have.Port() != want.Port() {
		return false
	}
	h, w := have.Addr().Unmap(), want.Addr().Unmap()
	return h == w || h.IsUnspecified() && w.IsUnspecified()
}

// serveMetrics serves the metrics of s.d, if asked for.
func (s *server) serveMetrics() {
	if s.metrics == nil {
		return
	}
	s.metrics.SetSource(s.d)
	if s.msrv == nil {
		s.msrv = s.metrics.Serve(s.mln)
		addr := s.mln.Addr().(*net.TCPAddr).AddrPort()
		if !metrics.Loopback(addr) {
			s.log.Warn("metrics served on an address other hosts may reach: keep it behind a firewall, or use 127.0.0.1", "metrics", addr.String())
		}
		s.log.Info("serving metrics", "url", "http://"+addr.String()+"/metrics")
	}
}

// handMetricsOver adds a copy of the metrics listener to set, for the
// successor. The listener goes on serving here until this daemon exits.
func (s *server) handMetricsOver(set *fdset.Set, log *slog.Logger) {
	if s.mln == nil {
		return
	}
	fd, err := dupListener(s.mln)
	if err != nil {
		log.Warn("metrics listener not handed over; the successor listens afresh once the port is free", "err", err)
		return
	}
	set.Add(metricsFDName, fd)
}

// stopMetrics stops serving the metrics, letting scrapes in progress
// finish for a moment.
func (s *server) stopMetrics() {
	if s.msrv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.msrv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("metrics listener", "err", err)
	}
}
