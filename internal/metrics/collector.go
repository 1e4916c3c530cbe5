package metrics

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	vswitch "github.com/tapswitch/tapswitch/switch"
)

// Namespace is the prefix of every metric of tapswitchd's own.
const Namespace = "tapswitch"

// snapshotWait bounds a scrape's wait for the daemon's lock, which a
// change (attach, detach, network create) holds for tens of
// milliseconds, and a hand-over for about a second. Prometheus gives a
// scrape 10 s by default (scrape_timeout); after 5 s the scrape is
// answered without the daemon's metrics, with the Go and process ones,
// rather than not at all.
const snapshotWait = 5 * time.Second

// logEvery spaces out the warnings of scrapes answered without the
// daemon's metrics.
const logEvery = time.Minute

// Label names.
const (
	lNetwork   = "network"
	lPort      = "port"
	lKind      = "kind"
	lReason    = "reason"
	lPublish   = "publish"
	lDirection = "direction"
	lOutcome   = "outcome"
	lVersion   = "version"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(Namespace+"_"+name, help, labels, nil)
}

var (
	portLabels      = []string{lNetwork, lPort, lKind}
	publishedLabels = []string{lNetwork, lPort, lPublish}

	dPortRxFrames = desc("port_rx_frames_total", "Frames the switch read from the port that passed its checks (those dropped are in tapswitch_port_dropped_frames_total).", portLabels...)
	dPortRxBytes  = desc("port_rx_bytes_total", "Bytes of those frames (a super-frame counts whole).", portLabels...)
	dPortTxFrames = desc("port_tx_frames_total", "Frames the switch wrote to the port.", portLabels...)
	dPortTxBytes  = desc("port_tx_bytes_total", "Bytes of the frames the switch wrote to the port.", portLabels...)
	// Coalescing (issue #14): of the frames in port_tx_frames_total.
	dPortTxCoalFrames = desc("port_tx_coalesced_frames_total", "Frames the switch wrote to the port inside a super-frame it made by coalescing a run of one flow (counted in port_tx_frames_total too).", portLabels...)
	dPortTxCoalWrites = desc("port_tx_coalesced_writes_total", "Super-frames the switch made by coalescing and wrote to the port.", portLabels...)
	dPortDropped      = desc("port_dropped_frames_total", "Frames from or to the port that the switch dropped, by reason (runt, oversize, src_mac, ip_spoof, mac_limit, storm, tx_error, ...).", append(slices.Clone(portLabels), lReason)...)
	dPortMACs         = desc("port_macs", "MAC addresses the network has learned behind the port.", portLabels...)
	dPortMACLimit     = desc("port_mac_limit", "Most MAC addresses the network learns behind the port (--mac-limit).", portLabels...)

	dPubOpen     = desc("published_open_connections", "Open TCP connections, or live UDP flows, through the published port.", publishedLabels...)
	dPubConns    = desc("published_connections_total", "TCP connections served, or UDP flows opened, through the published port.", publishedLabels...)
	dPubFailed   = desc("published_failed_connections_total", "TCP connections reset because the container could not be reached, and UDP flows that could not be opened.", publishedLabels...)
	dPubRefused  = desc("published_refused_connections_total", "New TCP connections reset, and datagrams of new UDP clients dropped, at a limit, by reason (port_limit, source_limit, descriptors).", append(slices.Clone(publishedLabels), lReason)...)
	dPubIdle     = desc("published_idle_closed_connections_total", "TCP connections closed after the idle timeout (--publish-idle-timeout).", publishedLabels...)
	dPubDropped  = desc("published_dropped_datagrams_total", "UDP datagrams dropped by the published port.", publishedLabels...)
	dPubBytes    = desc("published_bytes_total", "Payload bytes through the published port, by direction (to_target: to the container; to_client). TCP bytes are added when a direction ends.", append(slices.Clone(publishedLabels), lDirection)...)
	dFDBEntries  = desc("fdb_entries", "MAC addresses in the network's forwarding table.", lNetwork)
	dFDBLimit    = desc("fdb_entries_limit", "Most MAC addresses the network's forwarding table holds (--fdb-limit).", lNetwork)
	dFDBLearned  = desc("fdb_learned_total", "MAC addresses learned into the network's forwarding table.", lNetwork)
	dFDBMoved    = desc("fdb_moved_total", "Known MAC addresses seen on another port of the network.", lNetwork)
	dFDBAged     = desc("fdb_aged_total", "MAC addresses removed from the network's forwarding table by ageing (--fdb-ageing).", lNetwork)
	dFDBLimDrops = desc("fdb_limit_drops_total", "MAC addresses not learned or not moved at a limit, by reason: fdb_full (the network's table) or mac_limit (the port's).", lNetwork, lReason)

	dDNSAnswers      = desc("dns_answers_total", "Replies the network's DNS server sent, local or forwarded, whatever their rcode.", lNetwork)
	dDNSForwarded    = desc("dns_forwarded_queries_total", "Queries the network's DNS server sent on to the upstream resolvers.", lNetwork)
	dDNSNotForwarded = desc("dns_not_forwarded_queries_total", "Queries of an internal network for names outside it, answered SERVFAIL without asking upstream.", lNetwork)
	dDNSRateLimited  = desc("dns_rate_limited_total", "Queries and TCP connections dropped unanswered because their source was over its query rate.", lNetwork)
	dDNSRefused      = desc("dns_refused_total", "Queries and connections the network's DNS server refused, by reason (source, interface, forwards, tcp, fds).", lNetwork, lReason)

	dRestoreDuration = desc("restore_duration_seconds", "Time from the daemon's start until its state was restored and its API served.")
	dRestorePorts    = desc("restore_ports", "Ports of the state file at the daemon's last start, by outcome: restored, or dropped (namespace or TAP gone).", lOutcome)
	dFirstForward    = desc("first_forward_seconds", "Time from the daemon's start until it forwarded its first frame: after a restart, the outage the daemon caused. Absent until a frame has been forwarded.")

	dFDUsed    = desc("fd_budget_used", "Descriptors taken from the budget of work outsiders cause (published ports' connections, DNS TCP and forwards).")
	dFDLimit   = desc("fd_budget_limit", "Size of the descriptor budget of outsiders' work: the descriptor limit less the control plane's reserve.")
	dFDRefused = desc("fd_budget_refused_total", "Requests for descriptors the budget refused.")

	dBuildInfo  = desc("build_info", "Always 1; its label is the daemon's version.", lVersion)
	dIncomplete = desc("metrics_incomplete_scrapes_total", "Scrapes answered without the daemon's metrics because the daemon's lock was not free within 5 s.")
	dConnsShed  = desc("metrics_refused_connections_total", "Connections to the metrics listener closed at once because it had its maximum open.")
)

// dropReasons are the switch's drop reasons, each exported for every
// port, zero included, so that a rate or an alert on one works from its
// first drop. vswitch.DropReason names them up to the last, after which
// String says "unknown".
var dropReasons = func() []string {
	var out []string
	for r := vswitch.DropReason(0); r < 256; r++ {
		s := r.String()
		if s == "unknown" {
			break
		}
		out = append(out, s)
	}
	return out
}()

// publishRefusals are the reasons internal/publish refuses a new
// connection or flow for (its Stats.Refused keys).
var publishRefusals = []string{"port_limit", "source_limit", "descriptors"}

// Attach and detach take from a few milliseconds (a TAP, its addresses
// and a route) to a second or more (behind other changes, with a state
// file synced on a slow disk); the buckets span 1 ms to 10 s.
var changeBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Metrics are the daemon's metrics: its own, read from a Source at each
// scrape, the attach and detach latencies, and the Go runtime's and the
// process's.
type Metrics struct {
	reg            *prometheus.Registry
	version        string
	log            *slog.Logger
	attach, detach prometheus.Histogram
	// src is the daemon, set once it runs and again if it is made anew
	// (a hand-over that failed); nil before.
	src atomic.Pointer[Source]
	// incomplete counts scrapes without the daemon's metrics; lastLog
	// is when one was last logged, in Unix ns.
	incomplete, lastLog atomic.Int64
	// shed counts connections the listener closed at once (server.go).
	shed atomic.Uint64
}

// New makes the daemon's metrics; version labels tapswitch_build_info. A
// nil log discards.
func New(version string, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		version: version,
		log:     log,
		attach: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "attach_duration_seconds",
			Help:    "Time a successful attach took, from the request to the port forwarding, its wait for its turn included.",
			Buckets: changeBuckets,
		}),
		detach: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "detach_duration_seconds",
			Help:    "Time a successful detach took, from the request to the port gone, its wait for its turn included.",
			Buckets: changeBuckets,
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.attach, m.detach,
		(*collector)(m),
	)
	return m
}

// SetSource makes the next scrapes read src.
func (m *Metrics) SetSource(src Source) { m.src.Store(&src) }

// Attached records how long a successful attach took.
func (m *Metrics) Attached(d time.Duration) { m.attach.Observe(d.Seconds()) }

// Detached records how long a successful detach took.
func (m *Metrics) Detached(d time.Duration) { m.detach.Observe(d.Seconds()) }

// Gatherer is the registry the handler serves.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// collector is Metrics as the prometheus.Collector of the daemon's own
// metrics.
type collector Metrics

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		dPortRxFrames, dPortRxBytes, dPortTxFrames, dPortTxBytes, dPortDropped, dPortMACs, dPortMACLimit,
		dPortTxCoalFrames, dPortTxCoalWrites,
		dPubOpen, dPubConns, dPubFailed, dPubRefused, dPubIdle, dPubDropped, dPubBytes,
		dFDBEntries, dFDBLimit, dFDBLearned, dFDBMoved, dFDBAged, dFDBLimDrops,
		dDNSAnswers, dDNSForwarded, dDNSNotForwarded, dDNSRateLimited, dDNSRefused,
		dRestoreDuration, dRestorePorts, dFirstForward,
		dFDUsed, dFDLimit, dFDRefused,
		dBuildInfo, dIncomplete, dConnsShed,
	} {
		ch <- d
	}
	describeOverlay(ch)
}

// Collect implements prometheus.Collector: it reads the Source's
// counters as they are now.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(c)
	ch <- gauge(dBuildInfo, 1, m.version)
	ch <- counter(dConnsShed, float64(m.shed.Load()))
	if p := m.src.Load(); p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), snapshotWait)
		s, err := (*p).MetricsSnapshot(ctx)
		cancel()
		if err == nil {
			collectSnapshot(ch, &s)
		} else {
			m.incompleteScrape(err)
		}
	}
	ch <- counter(dIncomplete, float64(m.incomplete.Load()))
}

// incompleteScrape counts a scrape without the daemon's metrics and logs
// it, at most once per logEvery.
func (m *Metrics) incompleteScrape(err error) {
	n := m.incomplete.Add(1)
	now, last := time.Now().UnixNano(), m.lastLog.Load()
	if now-last >= int64(logEvery) && m.lastLog.CompareAndSwap(last, now) {
		m.log.Warn("metrics scrape answered without the daemon's metrics: the daemon was busy with a change", "err", err, "incomplete_scrapes", n, "waited", snapshotWait)
	}
}

func collectSnapshot(ch chan<- prometheus.Metric, s *Snapshot) {
	for i := range s.Ports {
		collectPort(ch, &s.Ports[i])
	}
	for i := range s.Networks {
		collectNetwork(ch, &s.Networks[i])
	}
	ch <- gauge(dRestoreDuration, s.Restore.Duration.Seconds())
	ch <- gauge(dRestorePorts, float64(s.Restore.RestoredPorts), "restored")
	ch <- gauge(dRestorePorts, float64(s.Restore.DroppedPorts), "dropped")
	if s.Restore.FirstForward >= 0 {
		ch <- gauge(dFirstForward, s.Restore.FirstForward.Seconds())
	}
	ch <- gauge(dFDUsed, float64(s.FDBudget.Used))
	ch <- gauge(dFDLimit, float64(s.FDBudget.Limit))
	ch <- counter(dFDRefused, float64(s.FDBudget.Refused))
	collectOverlay(ch, s)
}

func collectPort(ch chan<- prometheus.Metric, p *Port) {
	l := []string{p.Network, p.Name, p.Kind}
	ch <- counter(dPortRxFrames, float64(p.Stats.RxFrames), l...)
	ch <- counter(dPortRxBytes, float64(p.Stats.RxBytes), l...)
	ch <- counter(dPortTxFrames, float64(p.Stats.TxFrames), l...)
	ch <- counter(dPortTxBytes, float64(p.Stats.TxBytes), l...)
	ch <- counter(dPortTxCoalFrames, float64(p.Stats.TxCoalescedFrames), l...)
	ch <- counter(dPortTxCoalWrites, float64(p.Stats.TxCoalescedWrites), l...)
	byReason(ch, dPortDropped, dropReasons, p.Stats.Drops, l)
	ch <- gauge(dPortMACs, float64(p.MACs), l...)
	ch <- gauge(dPortMACLimit, float64(p.MACLimit), l...)
	for _, pub := range p.Published {
		l := []string{p.Network, p.Name, pub.Publish}
		ch <- gauge(dPubOpen, float64(pub.Active), l...)
		ch <- counter(dPubConns, float64(pub.Total), l...)
		ch <- counter(dPubFailed, float64(pub.Failed), l...)
		byReason(ch, dPubRefused, publishRefusals, pub.Refused, l)
		ch <- counter(dPubIdle, float64(pub.IdleClosed), l...)
		ch <- counter(dPubDropped, float64(pub.Dropped), l...)
		ch <- counter(dPubBytes, float64(pub.BytesToTarget), with(l, "to_target")...)
		ch <- counter(dPubBytes, float64(pub.BytesToClient), with(l, "to_client")...)
	}
}

func collectNetwork(ch chan<- prometheus.Metric, n *Network) {
	ch <- gauge(dFDBEntries, float64(n.FDBEntries), n.Name)
	ch <- gauge(dFDBLimit, float64(n.FDBLimit), n.Name)
	ch <- counter(dFDBLearned, float64(n.FDB.Learned), n.Name)
	ch <- counter(dFDBMoved, float64(n.FDB.Moves), n.Name)
	ch <- counter(dFDBAged, float64(n.FDB.Expired), n.Name)
	ch <- counter(dFDBLimDrops, float64(n.FDB.LimitDrops), n.Name, "fdb_full")
	ch <- counter(dFDBLimDrops, float64(n.FDB.PortLimitDrops), n.Name, "mac_limit")
	if d := n.DNS; d != nil {
		ch <- counter(dDNSAnswers, float64(d.Answered), n.Name)
		ch <- counter(dDNSForwarded, float64(d.Forwarded), n.Name)
		ch <- counter(dDNSNotForwarded, float64(d.NotForwarded), n.Name)
		ch <- counter(dDNSRateLimited, float64(d.RateLimited), n.Name)
		for _, r := range []struct {
			reason string
			n      uint64
		}{
			{"source", d.Refused.Source}, {"interface", d.Refused.Interface},
			{"forwards", d.Refused.Forwards}, {"tcp", d.Refused.TCP}, {"fds", d.Refused.FDs},
		} {
			ch <- counter(dDNSRefused, float64(r.n), n.Name, r.reason)
		}
	}
}

// byReason sends a counter per reason: every known one, zero or not,
// then any other counts has, so that a reason added where the counts
// come from shows before it is listed here.
func byReason(ch chan<- prometheus.Metric, d *prometheus.Desc, known []string, counts map[string]uint64, labels []string) {
	for _, r := range known {
		ch <- counter(d, float64(counts[r]), with(labels, r)...)
	}
	if len(counts) == 0 {
		return
	}
	for _, r := range slices.Sorted(maps.Keys(counts)) {
		if !slices.Contains(known, r) {
			ch <- counter(d, float64(counts[r]), with(labels, r)...)
		}
	}
}

// with is labels and one more value, in a slice of its own.
func with(labels []string, v string) []string { return append(slices.Clip(labels), v) }

func counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return constMetric(d, prometheus.CounterValue, v, labels)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return constMetric(d, prometheus.GaugeValue, v, labels)
}

// constMetric is a metric of the value v, or, should a label value be
// one Prometheus refuses (not UTF-8; the API's validation lets none
// through), an invalid metric, which fails that series of the scrape
// rather than the daemon.
func constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels []string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}
