package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Which tests a run makes (-rows), and what two of them need beyond a
// client and a server: the sender's offloads turned off (TCP without
// TSO) and a background flow (round trips under load).

// parseRows returns the test names in list, comma-separated, in run
// order; each must name one of allTests.
func parseRows(list string) ([]string, error) {
	want := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.ContainsFunc(allTests, func(t test) bool { return t.name == s }) {
			return nil, fmt.Errorf("-rows: unknown test %q (want some of %s)", s, strings.Join(testNames(), ","))
		}
		want[s] = true
	}
	if len(want) == 0 {
		return nil, errors.New("-rows: no test named")
	}
	var out []string
	for _, t := range allTests {
		if want[t.name] {
			out = append(out, t.name)
		}
	}
	return out, nil
}

func testNames() []string {
	var names []string
	for _, t := range allTests {
		names = append(names, t.name)
	}
	return names
}

// toolFor names, for the tests that need a tool beyond iperf3, the
// tool and the Debian package it comes in.
var toolFor = map[string]struct{ tool, pkg string }{
	testTCP1NoTSO.name: {"ethtool", "ethtool"},
	testRTT.name:       {"sockperf", "sockperf"},
	testRTTLoaded.name: {"sockperf", "sockperf"},
}

// chooseTests returns the tests to run, in order, with their rows: those
// named in rows, or all of them when rows is nil. A test whose tool is
// missing (lookPath fails) is left out with a note when it was not asked
// for by name, and is an error when it was.
func chooseTests(rows []string, lookPath func(string) (string, error)) (tests []test, metrics []metric, notes []string, err error) {
	missing := map[string]bool{}
	for _, t := range allTests {
		if rows != nil && !slices.Contains(rows, t.name) {
			continue
		}
		if need, ok := toolFor[t.name]; ok {
			if _, lerr := lookPath(need.tool); lerr != nil {
				if rows != nil {
					return nil, nil, nil, fmt.Errorf("-rows %s needs %s: apt-get install -y %s", t.name, need.tool, need.pkg)
				}
				if !missing[need.tool] {
					missing[need.tool] = true
					var skipped []string
					for name, n := range toolFor {
						if n.tool == need.tool {
							skipped = append(skipped, name)
						}
					}
					slices.Sort(skipped)
					notes = append(notes, fmt.Sprintf("%s not found: tests %s skipped; apt-get install -y %s to add them",
						need.tool, strings.Join(skipped, ", "), need.pkg))
				}
				continue
			}
		}
		tests = append(tests, t)
		metrics = append(metrics, t.metrics...)
	}
	return tests, metrics, notes, nil
}

// Offloads as `ethtool -k` names them, and as `ethtool -K` takes them.
var senderOffloads = []struct{ long, short string }{
	{"tcp-segmentation-offload", "tso"},
	{"generic-segmentation-offload", "gso"},
}

// senderDev is the sender's interface on every system: the veth's end
// for the bridge, the TAP for tapswitch and Open vSwitch.
const senderDev = "eth0"

// ethFeature is one line of `ethtool -k`.
type ethFeature struct {
	on    bool
	fixed bool // "[fixed]": the driver does not let it change
}

// parseEthtoolFeatures reads `ethtool -k DEV`: "name: on|off" lines,
// sub-features indented under their group, some with " [fixed]" or
// " [requested on]" after the state.
func parseEthtoolFeatures(out string) map[string]ethFeature {
	fs := map[string]ethFeature{}
	for _, line := range strings.Split(out, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || name == "" || strings.Contains(name, " ") {
			continue // "Features for eth0:" and the like
		}
		f := strings.Fields(rest)
		if len(f) == 0 || (f[0] != "on" && f[0] != "off") {
			continue
		}
		fs[name] = ethFeature{on: f[0] == "on", fixed: strings.Contains(rest, "[fixed]")}
	}
	return fs
}

// senderOffloadsOff turns TSO and GSO off on the sender's interface, so
// that its TCP hands the path one segment per frame, and checks that it
// took. undo turns back on what was on, and checks that too. The
// namespaces go at the end of the pass anyway; undo is for the tests
// after this one in the same pass.
func senderOffloadsOff(ctx context.Context, tb *testbed) (undo func() error, err error) {
	features := func(ctx context.Context) (map[string]ethFeature, error) {
		name, args := inNetns(tb.enterA, "ethtool", "-k", senderDev)
		out, err := run(ctx, name, args...)
		if err != nil {
			return nil, err
		}
		return parseEthtoolFeatures(out), nil
	}
	set := func(ctx context.Context, state string, shorts []string) error {
		args := []string{"ethtool", "-K", senderDev}
		for _, s := range shorts {
			args = append(args, s, state)
		}
		name, args := inNetns(tb.enterA, args...)
		_, err := run(ctx, name, args...)
		return err
	}
	// check returns an error naming each offload not in state.
	check := func(fs map[string]ethFeature, on bool, shorts []string) error {
		var wrong []string
		for _, o := range senderOffloads {
			if slices.Contains(shorts, o.short) && fs[o.long].on != on {
				wrong = append(wrong, o.long)
			}
		}
		if len(wrong) > 0 {
			state := map[bool]string{true: "on", false: "off"}[!on]
			return fmt.Errorf("ethtool -k %s in %s: %s still %s", senderDev, tb.nsA, strings.Join(wrong, ", "), state)
		}
		return nil
	}

	before, err := features(ctx)
	if err != nil {
		return nil, err
	}
	var wasOn, all []string
	for _, o := range senderOffloads {
		all = append(all, o.short)
		f, ok := before[o.long]
		switch {
		case !ok:
			return nil, fmt.Errorf("ethtool -k %s shows no %s", senderDev, o.long)
		case f.on && f.fixed:
			return nil, fmt.Errorf("%s: %s is fixed on; the test needs it off", senderDev, o.long)
		case f.on:
			wasOn = append(wasOn, o.short)
		}
	}
	undo = func() error {
		if len(wasOn) == 0 {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := set(ctx, "on", wasOn); err != nil {
			return fmt.Errorf("turn the sender's offloads back on: %w", err)
		}
		after, err := features(ctx)
		if err != nil {
			return err
		}
		return check(after, true, wasOn)
	}
	if len(wasOn) > 0 {
		if err := set(ctx, "off", wasOn); err != nil {
			return nil, errors.Join(err, undo())
		}
	}
	after, err := features(ctx)
	if err == nil {
		err = check(after, false, all)
	}
	if err != nil {
		return nil, errors.Join(err, undo())
	}
	return undo, nil
}

// backgroundLoad is a flow of UDP datagrams at a fixed rate from the
// client's namespace to the server's, sent while another test measures.
type backgroundLoad struct {
	length int // payload bytes
	pps    int // datagrams per second offered
	port   int // the iperf3 server's
}

// rttLoad is the load the loaded round trip runs under: 64 B datagrams,
// 20,000 a second, the same for every system. A service's requests share
// the path with other traffic, in bursts, that does not fill it: 20 kpps
// is a seventh of what the bridge carries at 64 B on these machines and
// a fifth of tapswitch's or Open vSwitch's before batching, so every
// system carries all of it and the row shows how long a request waits
// behind other frames (a batch, a poll, a merge) rather than how long
// a full queue is, which the throughput rows show. iperf3 paces it
// with its default 1 ms timer, so it comes in bursts of about 20
// datagrams, which a batch or a coalescer meets as it would a real
// neighbour's. The load is its own flow, on its own ports, so a
// coalescer has to keep it apart from the requests.
var rttLoad = backgroundLoad{length: 64, pps: 20000, port: iperfPort}

// loadLead is how long the load runs before the measurement starts, so
// that the switch has seen its flow and the first round trip meets it;
// the load's client runs that long again after the measurement's
// planned end, for the tool's own start-up and wind-down.
const loadLead = time.Second

// runningLoad is a backgroundLoad under way.
type runningLoad struct {
	load     *backgroundLoad
	srv      *proc
	client   *proc
	planned  time.Duration // the client's -t
	started  time.Time
	finished bool
}

// start starts the load's server and client, and returns after
// loadLead with the load running.
func (l *backgroundLoad) start(ctx context.Context, tb *testbed, seconds int) (*runningLoad, error) {
	srv, err := startIperfServer(ctx, tb.enterB, tb.serverAddr, l.port)
	if err != nil {
		return nil, fmt.Errorf("background load: %w", err)
	}
	r := &runningLoad{load: l, srv: srv, planned: time.Duration(seconds)*time.Second + 2*loadLead}
	name, args := inNetns(tb.enterA, "iperf3", "-c", tb.serverAddr, "-p", strconv.Itoa(l.port), "-u",
		"-l", strconv.Itoa(l.length), "-b", strconv.Itoa(l.length*8*l.pps),
		"-t", strconv.Itoa(int(r.planned/time.Second)), "-J")
	r.started = time.Now()
	if r.client, err = startProc(name, args...); err != nil {
		r.stop()
		return nil, fmt.Errorf("background load: %w", err)
	}
	if err := sleep(ctx, loadLead); err != nil {
		r.stop()
		return nil, err
	}
	if r.client.exited() {
		defer r.stop()
		return nil, fmt.Errorf("background load: iperf3 exited at once: %v: %s", r.client.err, r.client.output.String())
	}
	return r, nil
}

// finish waits for the load's client to end and returns what it
// delivered, as Detail figures:
//
//	load_offered_pps     the rate asked for
//	load_delivered_pps   datagrams per second that reached the server
//	load_lost_percent    iperf3's loss, in percent
//
// A load that fell short is reported, not failed: the figures say so.
func (r *runningLoad) finish(ctx context.Context) (map[string]float64, error) {
	defer r.stop()
	wait := time.Until(r.started.Add(r.planned)) + 30*time.Second
	select {
	case <-r.client.done:
	case <-time.After(wait):
		return nil, fmt.Errorf("background load: iperf3 still running %v after its planned end", wait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r.finished = true
	out := r.client.output.String()
	pps, detail, err := parseIperfUDP([]byte(out))
	if err != nil {
		return nil, fmt.Errorf("background load: %w", err)
	}
	d := map[string]float64{
		"load_offered_pps":   float64(r.load.pps),
		"load_delivered_pps": pps,
		"load_lost_percent":  detail["lost_percent"],
	}
	return d, nil
}

// stop stops whatever of the load still runs; it may be called again.
func (r *runningLoad) stop() {
	if r.client != nil && !r.finished {
		r.client.stop(2 * time.Second)
	}
	if r.srv != nil {
		r.srv.stop(2 * time.Second)
	}
}

// loadShortfall is how far below the rate asked for a background load
// may deliver before the report says so: the row is then a round trip
// under less load on that system than on the others.
const loadShortfall = 0.05

// loadNotes says which passes' background load delivered less than it
// was asked to, by more than loadShortfall.
func loadNotes(rep *report) []string {
	var notes []string
	for _, p := range rep.Systems {
		for _, m := range p.Results {
			offered, delivered := m.Detail["load_offered_pps"], m.Detail["load_delivered_pps"]
			if offered > 0 && delivered < offered*(1-loadShortfall) {
				notes = append(notes, fmt.Sprintf("%s: %s: the background load delivered %.0f of %.0f datagrams a second; the round trips ran under less load there",
					p.title(), metricByKey(m.Metric).Label, delivered, offered))
			}
		}
	}
	return notes
}
