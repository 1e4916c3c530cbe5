package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"
)

// A metric is one row of the report.
type metric struct {
	Key           string `json:"key"`
	Label         string `json:"label"`
	Unit          string `json:"unit"`
	LowerIsBetter bool   `json:"lower_is_better"`
}

// Units as they appear in the JSON; report.go scales them for reading.
const (
	unitBits    = "bit/s"
	unitPackets = "packets/s"
	unitMicros  = "us"
)

var (
	metricTCP1   = metric{"tcp_1_stream", "TCP 1 stream", unitBits, false}
	metricTCP4   = metric{"tcp_4_streams", "TCP 4 streams", unitBits, false}
	metricUDP64  = metric{"udp_64b_delivered", "UDP 64 B delivered", unitPackets, false}
	metricRTTAvg = metric{"udp_rtt_avg", "UDP RTT avg", unitMicros, true}
	metricRTTP99 = metric{"udp_rtt_p99", "UDP RTT p99", unitMicros, true}
)

// A test runs one tool once and fills one or more rows.
type test struct {
	metrics []metric
	run     func(ctx context.Context, tb *testbed, seconds int) ([]measurement, error)
}

type measurement struct {
	Metric string             `json:"metric"`
	Value  float64            `json:"value"`
	Unit   string             `json:"unit"`
	Error  string             `json:"error,omitempty"`
	Detail map[string]float64 `json:"detail,omitempty"`
}

func (m measurement) ok() bool { return m.Error == "" }

func iperfTCPTest(m metric, extra ...string) test {
	return test{
		metrics: []metric{m},
		run: func(ctx context.Context, tb *testbed, seconds int) ([]measurement, error) {
			prof := tb.profile.recording(ctx, m.Key, seconds, tb.switchPID)
			out, cpu, err := runIperf(ctx, tb, seconds, prof.watcher(), extra...)
			if err != nil {
				return nil, err
			}
			v, detail, err := parseIperfTCP(out)
			if err != nil {
				return nil, err
			}
			maps.Copy(detail, cpu)
			addCPUPerUnit(detail, perGB, v/8/1e9, 1)
			maps.Copy(detail, prof.figures(profPerGB, v/8/1e9, 1e3))
			return []measurement{{Metric: m.Key, Value: v, Unit: m.Unit, Detail: detail}}, nil
		},
	}
}

var (
	testTCP1 = iperfTCPTest(metricTCP1)
	testTCP4 = iperfTCPTest(metricTCP4, "-P", "4")
	// 64-byte payloads with no rate limit measure the per-frame cost of
	// the switch, where TSO and GRO cannot help.
	testUDP64 = test{
		metrics: []metric{metricUDP64},
		run: func(ctx context.Context, tb *testbed, seconds int) ([]measurement, error) {
			prof := tb.profile.recording(ctx, metricUDP64.Key, seconds, tb.switchPID)
			out, cpu, err := runIperf(ctx, tb, seconds, prof.watcher(), "-u", "-l", "64", "-b", "0")
			if err != nil {
				return nil, err
			}
			v, detail, err := parseIperfUDP(out)
			if err != nil {
				return nil, err
			}
			maps.Copy(detail, cpu)
			addCPUPerUnit(detail, perFrame, udpSentRate(detail), 1e6)
			addCPUPerUnit(detail, perDeliveredFrame, v, 1e6)
			// v is what reached the receiver, frames per second.
			maps.Copy(detail, prof.figures(perDeliveredFrame, v, 1e6))
			return []measurement{{Metric: metricUDP64.Key, Value: v, Unit: unitPackets, Detail: detail}}, nil
		},
	}
	testRTT = test{
		metrics: []metric{metricRTTAvg, metricRTTP99},
		run: func(ctx context.Context, tb *testbed, seconds int) ([]measurement, error) {
			out, cpu, err := runSockperf(ctx, tb, seconds)
			if err != nil {
				return nil, err
			}
			r, err := parseSockperf(out)
			if err != nil {
				return nil, err
			}
			detail := map[string]float64{"p50_us": r.P50Us, "max_us": r.MaxUs, "observations": r.Observations, "dropped": r.Dropped}
			maps.Copy(detail, cpu)
			if r.ValidSeconds > 0 {
				detail["seconds"] = r.ValidSeconds
				addCPUPerUnit(detail, perRoundTrip, r.Observations/r.ValidSeconds, 1e6)
			}
			return []measurement{
				{Metric: metricRTTAvg.Key, Value: r.AvgUs, Unit: unitMicros, Detail: detail},
				{Metric: metricRTTP99.Key, Value: r.P99Us, Unit: unitMicros},
			}, nil
		},
	}
)

// udpSentRate is the frames per second the sender sent, dropped ones
// included, from parseIperfUDP's detail: the client's own count or,
// from iperf3 versions without it, the server's highest sequence number.
func udpSentRate(detail map[string]float64) float64 {
	if r := detail["sent_packets_per_second"]; r > 0 {
		return r
	}
	if s := detail["seconds"]; s > 0 {
		return (detail["delivered_packets"] + detail["lost_packets"]) / s
	}
	return 0
}

// passResult is one system measured once, in run order.
type passResult struct {
	System string `json:"system"`
	// Pass counts runs of the same system: the kernel bridge runs twice
	// with -bracket.
	Pass     int           `json:"pass"`
	Started  time.Time     `json:"started"`
	Error    string        `json:"error,omitempty"`
	Results  []measurement `json:"results"`
	Listings []listing     `json:"listings,omitempty"`
}

func (p *passResult) value(key string) (measurement, bool) {
	for _, m := range p.Results {
		if m.Metric == key {
			return m, true
		}
	}
	return measurement{}, false
}

// pause lets the previous test's sockets and queues drain before the next
// one starts.
const pause = time.Second

// stepOverhead is what a test takes beyond its duration, for the first
// estimate of a run's length: the pause before it, starting the tool
// and its server, and a pass's set-up and teardown spread over its tests
// (about 3s in all on a 2-CPU VM).
const stepOverhead = 3 * time.Second

// runPass sets up sys on a fresh pair of namespaces, runs the tests and
// tears everything down again, whatever happened in between. prof, when
// not nil, profiles the throughput tests (-profile).
func runPass(ctx context.Context, sys system, pass int, tests []test, seconds int, prof *profiler, prog *progress, passLabel string) (pr passResult) {
	pr = passResult{System: sys.name(), Pass: pass, Started: time.Now().UTC()}
	var errs []error
	defer func() {
		if err := errors.Join(errs...); err != nil {
			pr.Error = err.Error()
		}
	}()

	tb := newTestbed(pidForNames)
	tb.profile = prof.forPass(sys.name(), pass)
	// Deferred in this order so that the system goes first: the daemon
	// must let go of its TAPs before their namespaces disappear.
	defer func() {
		if err := tb.destroy(); err != nil {
			errs = append(errs, fmt.Errorf("teardown: %w", err))
		}
	}()
	if err := tb.create(ctx); err != nil {
		errs = append(errs, fmt.Errorf("setup: %w", err))
		return pr
	}
	logf("%s: setting up", sys.name())
	defer func() {
		if err := sys.teardown(); err != nil {
			errs = append(errs, fmt.Errorf("teardown: %w", err))
		}
		logf("%s: torn down", sys.name())
	}()
	if err := sys.setup(ctx, tb); err != nil {
		errs = append(errs, fmt.Errorf("setup: %w", err))
		return pr
	}
	if err := tb.waitReachable(ctx, 10*time.Second); err != nil {
		errs = append(errs, fmt.Errorf("setup: %w", err))
		return pr
	}
	if sp, ok := sys.(switchProcess); ok {
		tb.switchPID = sp.switchPID()
	}

	if err := runTests(ctx, tb, &pr, tests, seconds, prog, passLabel); err != nil {
		errs = append(errs, err)
		return pr
	}
	if l, ok := sys.(lister); ok {
		pr.Listings = l.listings()
	}
	return pr
}

// runTests runs tests one after the other on tb, which is set up and
// reachable, and adds their rows to pr. A test that fails fills its rows
// with the error and the next one runs; only an interrupted run stops,
// with ctx's error.
func runTests(ctx context.Context, tb *testbed, pr *passResult, tests []test, seconds int, prog *progress, passLabel string) error {
	for i, t := range tests {
		if i > 0 {
			if err := sleep(ctx, pause); err != nil {
				return err
			}
		}
		prog.step("%s: %s (test %d of %d)", passLabel, testLabel(t), i+1, len(tests))
		ms, err := t.run(ctx, tb, seconds)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for _, m := range t.metrics {
				ms = append(ms, measurement{Metric: m.Key, Unit: m.Unit, Error: err.Error()})
			}
			logf("%s: %s: %v", pr.System, t.metrics[0].Label, err)
		}
		for _, m := range ms {
			pr.Results = append(pr.Results, m)
			if m.ok() {
				logf("%-10s %-19s %s", pr.System+":", metricByKey(m.Metric).Label, formatValue(m.Unit, m.Value))
			}
		}
	}
	return nil
}

// testLabel names a test by its rows: "UDP RTT avg, UDP RTT p99".
func testLabel(t test) string {
	var out string
	for i, m := range t.metrics {
		if i > 0 {
			out += ", "
		}
		out += m.Label
	}
	return out
}

func metricByKey(key string) metric {
	for _, m := range []metric{metricTCP1, metricTCP4, metricUDP64, metricRTTAvg, metricRTTP99} {
		if m.Key == key {
			return m
		}
	}
	return metric{Key: key, Label: key}
}
