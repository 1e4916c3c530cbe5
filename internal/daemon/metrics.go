package daemon

import (
	"context"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/internal/fdlimit"
	"github.com/tapswitch/tapswitch/internal/metrics"
	"github.com/tapswitch/tapswitch/internal/publish"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// Timings is told how long each successful attach and detach took, from
// the request to the end, its wait for its turn included
// (metrics.Metrics).
type Timings interface {
	Attached(time.Duration)
	Detached(time.Duration)
}

var _ Timings = (*metrics.Metrics)(nil)

var _ metrics.Source = (*Daemon)(nil)

// MetricsSnapshot implements metrics.Source. It holds the daemon's lock
// only to list the ports and networks, waiting for it no longer than ctx
// allows; the counters are read after, from the atomics the switch, the
// tables, the DNS servers and the proxies keep anyway.
func (d *Daemon) MetricsSnapshot(ctx context.Context) (metrics.Snapshot, error) {
	type portRef struct {
		sw      *vswitch.Port
		kind    string
		proxies []*publish.Proxy
	}
	type netRef struct {
		name string
		vn   *vswitch.Network
		dns  nameServer
	}
	if err := d.mu.LockContext(ctx); err != nil {
		return metrics.Snapshot{}, err
	}
	ports := make([]portRef, 0, len(d.ports))
	for _, p := range d.ports {
		if p.sw != nil {
			ports = append(ports, portRef{sw: p.sw, kind: p.kind, proxies: p.proxies})
		}
	}
	nets := make([]netRef, 0, len(d.nets))
	for _, n := range d.nets {
		if n.vn != nil {
			nets = append(nets, netRef{name: n.name, vn: n.vn, dns: n.dns})
		}
		if n.tport != nil {
			ports = append(ports, portRef{sw: n.tport, kind: api.KindTunnel})
		}
	}
	var ov api.Status
	d.overlayStatusLocked(&ov)
	d.mu.Unlock()

	s := metrics.Snapshot{
		Ports:    make([]metrics.Port, 0, len(ports)),
		Networks: make([]metrics.Network, 0, len(nets)),
		Restore: metrics.Restore{
			Duration:      d.ready,
			RestoredPorts: d.restored,
			DroppedPorts:  d.dropped,
			FirstForward:  time.Duration(d.firstForward.Load()),
		},
	}
	for _, p := range ports {
		c := p.sw.Counters()
		mp := metrics.Port{
			Name:    p.sw.Name(),
			Network: p.sw.Network().Name(),
			Kind:    p.kind,
			Stats: api.PortCounters{RxFrames: c.RxFrames, RxBytes: c.RxBytes,
				TxFrames: c.TxFrames, TxBytes: c.TxBytes, Drops: c.Drops,
				TxCoalescedFrames: c.TxCoalescedFrames, TxCoalescedWrites: c.TxCoalescedWrites},
			MACs:     p.sw.MACs(),
			MACLimit: p.sw.MACLimit(),
		}
		for _, px := range p.proxies {
			mp.Published = append(mp.Published, publishedView(px))
		}
		s.Ports = append(s.Ports, mp)
	}
	for _, n := range nets {
		t := n.vn.FDB()
		mn := metrics.Network{Name: n.name, FDBEntries: t.Len(), FDBLimit: t.Limit(), FDB: t.Stats()}
		if st, ok := n.dns.(interface{ Stats() dns.Stats }); ok {
			mn.DNS = dnsCounters(st.Stats())
		}
		s.Networks = append(s.Networks, mn)
	}
	if t := ov.Tunnel; t != nil {
		s.Tunnel = &metrics.Tunnel{RxPackets: t.RxPackets, TxPackets: t.TxPackets, TxErrors: t.TxErrors, Dropped: t.Dropped}
	}
	if c := ov.Cluster; c != nil {
		s.Cluster = &metrics.Cluster{Connected: c.Connected, Hosts: c.Hosts}
	}
	b := fdlimit.Process()
	s.FDBudget = metrics.FDBudget{Used: b.Used(), Limit: b.Limit(), Refused: b.Refused()}
	return s, nil
}

// timeAttach and timeDetach tell cfg.Timings, if any, how long a change
// begun at start took.
func (d *Daemon) timeAttach(start time.Time) {
	if d.cfg.Timings != nil {
		d.cfg.Timings.Attached(time.Since(start))
	}
}

func (d *Daemon) timeDetach(start time.Time) {
	if d.cfg.Timings != nil {
		d.cfg.Timings.Detached(time.Since(start))
	}
}
