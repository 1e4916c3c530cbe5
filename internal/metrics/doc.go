// Package metrics exports the daemon's counters in Prometheus's text
// format, on a TCP listener tapswitchd opens only when asked
// (--metrics ADDR).
//
// Nothing here is on the data path. The switch, the forwarding tables,
// the DNS servers, the published ports and the descriptor budget keep
// their counters anyway (the API shows them); the Collector reads them
// when Prometheus scrapes, through a Source (the daemon), and hands them
// over as constant metrics. So a frame costs nothing more with metrics
// on, and a port that goes is gone from the next scrape. What the daemon
// does not count anyway, how long its attaches and detaches take, is
// observed into two histograms (Metrics.Attached, Metrics.Detached) once
// per change.
package metrics
