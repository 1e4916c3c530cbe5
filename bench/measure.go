package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
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

	// The rows a real workload has and coalescing must not hurt (see
	// rows.go).
	metricTCP1NoTSO    = metric{"tcp_1_stream_no_tso", "TCP 1 stream, sender TSO/GSO off", unitBits, false}
	metricUDP64x8      = metric{"udp_64b_8_flows_delivered", "UDP 64 B, 8 flows, delivered", unitPackets, false}
	metricUDP1400      = metric{"udp_1400b_delivered", "UDP 1400 B delivered", unitPackets, false}
	metricUDP1400Bits  = metric{"udp_1400b_delivered_bits", "UDP 1400 B delivered, payload", unitBits, false}
	metricRTTLoadedAvg = metric{"udp_rtt_loaded_avg", "UDP RTT avg, 64 B load", unitMicros, true}
	metricRTTLoadedP99 = metric{"udp_rtt_loaded_p99", "UDP RTT p99, 64 B load", unitMicros, true}
)

// allMetrics is every row the comparison knows, in table order.
var allMetrics = []metric{
	metricTCP1, metricTCP1NoTSO, metricTCP4, metricUDP64, metricUDP64x8,
	metricUDP1400, metricUDP1400Bits, metricRTTAvg, metricRTTP99,
	metricRTTLoadedAvg, metricRTTLoadedP99,
}

// A test runs one tool once and fills one or more rows.
type test struct {
	// name is what -rows selects the test by.
	name    string
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

func iperfTCPTest(name string, m metric, extra ...string) test {
	return iperfTCPTestPrepared(name, m, nil, extra...)
}

// iperfTCPTestPrepared is iperfTCPTest with prepare, when not nil, run
// before the client and its undo after it, such as turning the sender's
// offloads off and on again. A failed undo fails the test: the tests
// after it would measure a changed namespace.
func iperfTCPTestPrepared(name string, m metric, prepare func(ctx context.Context, tb *testbed) (undo func() error, err error), extra ...string) test {
	return test{
		name:    name,
		metrics: []metric{m},
		run: func(ctx context.Context, tb *testbed, seconds int) (ms []measurement, err error) {
			if prepare != nil {
				undo, err := prepare(ctx, tb)
				if err != nil {
					return nil, err
				}
				defer func() {
					if uerr := undo(); uerr != nil && err == nil {
						ms, err = nil, uerr
					}
				}()
			}
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

// iperfUDPTest measures the UDP datagrams of length bytes that reach
// the receiver with no rate limit (-b 0): the sender sends as fast as it
// can and the path drops what it cannot carry. pps is the row of
// datagrams per second; bits, when not zero, a row of the same run's
// delivered payload in bit/s.
func iperfUDPTest(name string, pps, bits metric, length int, extra ...string) test {
	metrics := []metric{pps}
	if bits != (metric{}) {
		metrics = append(metrics, bits)
	}
	return test{
		name:    name,
		metrics: metrics,
		run: func(ctx context.Context, tb *testbed, seconds int) ([]measurement, error) {
			prof := tb.profile.recording(ctx, pps.Key, seconds, tb.switchPID)
			args := append([]string{"-u", "-l", strconv.Itoa(length), "-b", "0"}, extra...)
			out, cpu, err := runIperf(ctx, tb, seconds, prof.watcher(), args...)
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
			ms := []measurement{{Metric: pps.Key, Value: v, Unit: unitPackets, Detail: detail}}
			if bits != (metric{}) {
				ms = append(ms, measurement{Metric: bits.Key, Value: v * float64(length) * 8, Unit: unitBits})
			}
			return ms, nil
		},
	}
}

// sockperfTest measures UDP round trips with sockperf ping-pong into
// the rows avg and p99; load, when not nil, runs beside it (see
// rows.go's background load).
func sockperfTest(name string, avg, p99 metric, load *backgroundLoad) test {
	return test{
		name:    name,
		metrics: []metric{avg, p99},
		run: func(ctx context.Context, tb *testbed, seconds int) ([]measurement, error) {
			var bg *runningLoad
			if load != nil {
				var err error
				if bg, err = load.start(ctx, tb, seconds); err != nil {
					return nil, err
				}
				defer bg.stop()
			}
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
			if bg != nil {
				bd, err := bg.finish(ctx)
				if err != nil {
					return nil, err
				}
				maps.Copy(detail, bd)
			}
			return []measurement{
				{Metric: avg.Key, Value: r.AvgUs, Unit: unitMicros, Detail: detail},
				{Metric: p99.Key, Value: r.P99Us, Unit: unitMicros},
			}, nil
		},
	}
}

var (
	testTCP1 = iperfTCPTest("tcp1", metricTCP1)
	// The sender makes no super-frames: every segment crosses the path
	// on its own, as from a sender behind an MSS-limited route, which is
	// what coalescing TCP is for.
	testTCP1NoTSO = iperfTCPTestPrepared("tcp1-notso", metricTCP1NoTSO, senderOffloadsOff)
	testTCP4      = iperfTCPTest("tcp4", metricTCP4, "-P", "4")
	// 64-byte payloads with no rate limit measure the per-frame cost of
	// the switch, where TSO and GRO cannot help.
	testUDP64 = iperfUDPTest("udp64", metricUDP64, metric{}, 64)
	// Eight flows spread over the queues and workers as many clients
	// would, and give a coalescer eight runs to keep apart.
	testUDP64x8 = iperfUDPTest("udp64x8", metricUDP64x8, metric{}, 64, "-P", "8")
	// Datagrams near the MTU (1400 + 28 B of headers in 1500), as
	// media and tunnels send them.
	testUDP1400 = iperfUDPTest("udp1400", metricUDP1400, metricUDP1400Bits, 1400)
	testRTT     = sockperfTest("rtt", metricRTTAvg, metricRTTP99, nil)
	// A request/response exchange that shares the path with other
	// traffic, as a service's does: see rttLoad.
	testRTTLoaded = sockperfTest("rtt-loaded", metricRTTLoadedAvg, metricRTTLoadedP99, &rttLoad)
)

// allTests is every test of the comparison, in run order.
var allTests = []test{testTCP1, testTCP1NoTSO, testTCP4, testUDP64, testUDP64x8, testUDP1400, testRTT, testRTTLoaded}

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
	if m, ok := sys.(testbedMaker); ok {
		tb = m.testbed(pidForNames)
	}
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
	if sp, ok := sys.(switchProcesses); ok {
		tb.moreSwitchPIDs = sp.moreSwitchPIDs()
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
	for _, m := range allMetrics {
		if m.Key == key {
			return m
		}
	}
	return metric{Key: key, Label: key}
}
