package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/tapswitch/tapswitch/internal/fdlimit"
	"github.com/tapswitch/tapswitch/internal/publish"
)

// limitOptions bound what outsiders can make the daemon hold.
type limitOptions struct {
	// maxFDs is the RLIMIT_NOFILE to set; 0 keeps the one inherited.
	maxFDs  int
	publish publish.Limits
}

func addLimitFlags(f *pflag.FlagSet, o *limitOptions) {
	d := publish.DefaultLimits()
	f.IntVar(&o.maxFDs, "max-fds", fdlimit.DefaultLimit, "set the daemon's descriptor limit (RLIMIT_NOFILE) to `N`, at most fs.nr_open; an eighth of it, at least 1024, is kept for the API, attach and detach, the rest is the budget of what outsiders can make it open: published ports' connections and flows, DNS over TCP (0: keep the limit the daemon was started with)")
	f.IntVar(&o.publish.ConnsPerPort, "publish-max-conns", 0, fmt.Sprintf("most open TCP connections of one published port; a new one beyond is reset (default %d, or a quarter of what the descriptor budget holds when that is less)", d.ConnsPerPort))
	f.IntVar(&o.publish.ConnsPerSource, "publish-max-conns-per-source", d.ConnsPerSource, "most open TCP connections of one published port from one source address (an IPv6 /64); a new one beyond is reset")
	f.IntVar(&o.publish.FlowsPerSource, "publish-max-flows-per-source", d.FlowsPerSource, "most live UDP flows of one published port from one source address (an IPv6 /64), of the port's 1024; datagrams that would open another are dropped")
	f.DurationVar(&o.publish.IdleTimeout, "publish-idle-timeout", d.IdleTimeout, "close a published port's TCP connection when no data has passed either way for this long")
}

// check validates the options without changing anything.
func (o limitOptions) check() error {
	if o.maxFDs < 0 || o.maxFDs > 0 && o.maxFDs < 2*fdlimit.Reserve {
		return fmt.Errorf("--max-fds %d: must be 0 (keep the inherited limit) or at least %d", o.maxFDs, 2*fdlimit.Reserve)
	}
	if err := o.publish.Check(); err != nil {
		return fmt.Errorf("--publish-max-*: %w", err)
	}
	return nil
}

// apply sets the descriptor limit and the published ports' limits. It
// runs before anything that opens descriptors for outsiders, because the
// budget is read from the limit once.
func (o limitOptions) apply(log *slog.Logger) error {
	if o.maxFDs > 0 {
		if _, err := fdlimit.SetLimit(o.maxFDs); err != nil {
			log.Warn("descriptor limit not set; published ports get less", "err", err)
		}
	}
	if err := publish.SetLimits(o.publish); err != nil {
		return fmt.Errorf("--publish-max-*: %w", err)
	}
	limit := fdlimit.Limit()
	b := fdlimit.Process()
	conns := o.publish.ConnsPerPort
	if conns == 0 {
		conns = publish.PortConns(b.Limit())
	}
	log.Info("descriptor limits", "limit", limit, "reserve", limit-b.Limit(), "outside_budget", b.Limit(),
		"publish_conns", conns, "publish_conns_per_source", o.publish.ConnsPerSource,
		"publish_flows_per_source", o.publish.FlowsPerSource, "publish_idle", o.publish.IdleTimeout)
	return nil
}
