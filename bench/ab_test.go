package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRunOrder(t *testing.T) {
	tests := []struct {
		name    string
		systems []string
		bracket bool
		want    []string
	}{
		{"plain", []string{"bridge", "tapswitch", "ovs"}, false, []string{"bridge", "tapswitch", "ovs"}},
		{"bracket", []string{"bridge", "tapswitch", "ovs"}, true, []string{"bridge", "tapswitch", "ovs", "bridge"}},
		{"bracket alone", []string{"bridge"}, true, []string{"bridge"}},
		{"ab", []string{"bridge", baseSystem, "tapswitch"}, true,
			[]string{"bridge", baseSystem, "tapswitch", "tapswitch", baseSystem, "bridge"}},
		// ovs runs between the two halves, so it delays both builds' second
		// passes alike.
		{"ab with ovs", []string{"bridge", baseSystem, "tapswitch", "ovs"}, true,
			[]string{"bridge", baseSystem, "tapswitch", "ovs", "tapswitch", baseSystem, "bridge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runOrder(tt.systems, tt.bracket); !slices.Equal(got, tt.want) {
				t.Errorf("runOrder(%q, %v) = %q, want %q", tt.systems, tt.bracket, got, tt.want)
			}
		})
	}
}

// abSample is a bracketed A/B run in ABBA order: TCP new 8.7% worse with a
// bridge drift of 25% (within), RTT new 14.6% worse with a drift of 10%
// (beyond), UDP new 14% better with a drift of 11.1% (beyond), base's
// second UDP test failed, and another process took 40% of a CPU during
// base's second RTT test.
func abSample() *report {
	metrics := []metric{metricTCP1, metricUDP64, metricRTTAvg}
	pass := func(system string, n int, tcp, udp, rtt float64) passResult {
		p := passResult{System: system, Pass: n, Results: []measurement{
			ok(metricTCP1.Key, unitBits, tcp), ok(metricUDP64.Key, unitPackets, udp), ok(metricRTTAvg.Key, unitMicros, rtt)}}
		if udp == 0 {
			p.Results[1] = measurement{Metric: metricUDP64.Key, Unit: unitPackets, Error: "iperf3: boom"}
		}
		return p
	}
	r := &report{
		Date:           time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine:        machineInfo{NProc: 2, Kernel: "6.1.0", CPU: "Test CPU", Load: 0.25},
		SecondsPerTest: 3,
		ElapsedSeconds: 61,
		Metrics:        metrics,
		Systems: []passResult{
			pass("bridge", 1, 16e9, 180e3, 30),
			pass(baseSystem, 1, 12e9, 150e3, 40),
			pass("tapswitch", 1, 11e9, 170e3, 48),
			pass("tapswitch", 2, 12e9, 172e3, 46),
			pass(baseSystem, 2, 13e9, 0, 42),
			pass("bridge", 2, 20e9, 200e3, 33),
		},
	}
	r.Systems[4].Results[2].Detail = map[string]float64{"cpu_others_pct": 40}
	r.Systems[2].Results[2].Detail = map[string]float64{"cpu_others_pct": 3}
	r.Ratios = computeRatios(metrics, r.Systems)
	r.AB = &abReport{
		Base: binaryInfo{Daemon: "/tmp/ab/base/tapswitchd", CLI: "/tmp/ab/base/tapswitch", Revision: "47029ce0e1d2c3b4a5968778695a4b3c2d1e0f00"},
		New:  binaryInfo{Daemon: "bin/tapswitchd", CLI: "bin/tapswitch", Revision: "47029ce0e1d2c3b4a5968778695a4b3c2d1e0f00", Modified: true},
		Rows: compareAB(metrics, r.Systems),
	}
	return r
}

func TestCompareAB(t *testing.T) {
	rows := abSample().AB.Rows
	tests := []struct {
		metric          string
		base, new       float64
		worsePct, drift float64
		spread          float64
		beyond          bool
		others          float64
	}{
		{metricTCP1.Key, 12.5e9, 11.5e9, (12.5/11.5 - 1) * 100, 25, (12.0/11 - 1) * 100, false, 0},
		// base's failed pass leaves its other one, and no spread of its own.
		{metricUDP64.Key, 150e3, 171e3, -(171.0/150 - 1) * 100, (200.0/180 - 1) * 100, (172.0/170 - 1) * 100, true, 0},
		// Lower is better: new's longer round trip is the worse one.
		{metricRTTAvg.Key, 41, 47, (47.0/41 - 1) * 100, 10, (42.0/40 - 1) * 100, true, 40},
	}
	if len(rows) != len(tests) {
		t.Fatalf("compareAB gave %d rows, want %d", len(rows), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			row := rows[i]
			if row.Metric != tt.metric || !near(row.Base, tt.base) || !near(row.New, tt.new) || !near(row.NewOverBase, tt.new/tt.base) {
				t.Errorf("compareAB row %d = %s base %v new %v new/base %v; want %s %v %v %v",
					i, row.Metric, row.Base, row.New, row.NewOverBase, tt.metric, tt.base, tt.new, tt.new/tt.base)
			}
			if !near(row.WorsePct, tt.worsePct) {
				t.Errorf("WorsePct = %v, want %v", row.WorsePct, tt.worsePct)
			}
			if row.BridgeDriftPct == nil || !near(*row.BridgeDriftPct, tt.drift) {
				t.Errorf("BridgeDriftPct = %v, want %v", row.BridgeDriftPct, tt.drift)
			}
			if row.RepeatSpreadPct == nil || !near(*row.RepeatSpreadPct, tt.spread) {
				t.Errorf("RepeatSpreadPct = %v, want %v", row.RepeatSpreadPct, tt.spread)
			}
			if row.BeyondDrift != tt.beyond {
				t.Errorf("BeyondDrift = %v, want %v", row.BeyondDrift, tt.beyond)
			}
			if row.OthersPct != tt.others {
				t.Errorf("OthersPct = %v, want %v", row.OthersPct, tt.others)
			}
		})
	}
	if got := rows[1].BasePasses; !slices.Equal(got, []float64{150e3, 0}) {
		t.Errorf("UDP BasePasses = %v, want [150000 0]", got)
	}
}

func TestCompareABWithoutDrift(t *testing.T) {
	passes := []passResult{
		{System: "bridge", Pass: 1, Results: []measurement{ok(metricTCP1.Key, unitBits, 16e9)}},
		{System: baseSystem, Pass: 1, Results: []measurement{ok(metricTCP1.Key, unitBits, 10e9)}},
		{System: "tapswitch", Pass: 1, Results: []measurement{{Metric: metricTCP1.Key, Unit: unitBits, Error: "boom"}}},
	}
	rows := compareAB([]metric{metricTCP1}, passes)
	if len(rows) != 1 {
		t.Fatalf("compareAB gave %d rows, want 1", len(rows))
	}
	if r := rows[0]; r.BridgeDriftPct != nil || r.NewOverBase != 0 || r.BeyondDrift || r.verdict() != "-" {
		t.Errorf("compareAB with one bridge pass and new failed = %+v, verdict %q; want no drift, no ratio, -", r, r.verdict())
	}
}

// Two bridge passes can agree by chance, as they did to 0.05% on a busy
// machine where the same build's passes differed by 17%: the builds' own
// spread then sets the bar.
func TestCompareABRepeatSpread(t *testing.T) {
	tcp := func(system string, pass int, v float64) passResult {
		return passResult{System: system, Pass: pass, Results: []measurement{ok(metricTCP1.Key, unitBits, v)}}
	}
	passes := []passResult{
		tcp("bridge", 1, 10e9), tcp(baseSystem, 1, 9e9), tcp("tapswitch", 1, 10.5e9),
		tcp("tapswitch", 2, 10.5e9), tcp(baseSystem, 2, 11e9), tcp("bridge", 2, 10e9),
	}
	row := compareAB([]metric{metricTCP1}, passes)[0]
	if d, _ := row.drift(); !near(d, (11.0/9-1)*100) || row.BeyondDrift {
		t.Errorf("compareAB: drift %v, beyond %v; want base's spread %v, within", d, row.BeyondDrift, (11.0/9-1)*100)
	}
	if got, want := row.verdict(), "5.0% better, within drift"; got != want {
		t.Errorf("verdict = %q, want %q", got, want)
	}
}

// The p99 round trip has no CPU figures of its own: they are on the
// average's, from the same sockperf run.
func TestOthersPctRTT(t *testing.T) {
	passes := []passResult{{System: "tapswitch", Pass: 1, Results: []measurement{
		{Metric: metricRTTAvg.Key, Value: 30, Unit: unitMicros, Detail: map[string]float64{"cpu_others_pct": 12}},
		ok(metricRTTP99.Key, unitMicros, 50)}}}
	if got := othersPct(passes, metricRTTP99.Key, baseSystem, "tapswitch"); got != 12 {
		t.Errorf("othersPct(p99) = %v, want the average's 12", got)
	}
	if got := othersPct(passes, metricRTTP99.Key, baseSystem); got != 0 {
		t.Errorf("othersPct(p99) of base only = %v, want 0", got)
	}
}

func TestABVerdict(t *testing.T) {
	drift := func(d float64) *float64 { return &d }
	tests := []struct {
		name string
		row  abRow
		want string
	}{
		{"worse within", abRow{NewOverBase: 0.95, WorsePct: 5.3, BridgeDriftPct: drift(8)}, "5.3% worse, within drift"},
		{"worse beyond", abRow{NewOverBase: 0.8, WorsePct: 25, BridgeDriftPct: drift(8), BeyondDrift: true}, "WORSE beyond drift: 25.0% worse"},
		{"better beyond", abRow{NewOverBase: 1.3, WorsePct: -30, BridgeDriftPct: drift(8), BeyondDrift: true}, "better beyond drift: 30.0% better"},
		{"better within", abRow{NewOverBase: 1.01, WorsePct: -1, BridgeDriftPct: drift(8)}, "1.0% better, within drift"},
		{"same", abRow{NewOverBase: 1, WorsePct: 0.01, BridgeDriftPct: drift(0)}, "the same, within drift"},
		{"no drift", abRow{NewOverBase: 0.9, WorsePct: 11.1}, "11.1% worse, no drift figure"},
		{"spread only", abRow{NewOverBase: 0.9, WorsePct: 11.1, RepeatSpreadPct: drift(20)}, "11.1% worse, within drift"},
		{"no ratio", abRow{}, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.row.verdict(); got != tt.want {
				t.Errorf("verdict(%+v) = %q, want %q", tt.row, got, tt.want)
			}
		})
	}
}

func TestWriteTableAB(t *testing.T) {
	var b bytes.Buffer
	if err := abSample().writeTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `date:     2025-01-02 03:04:05 UTC
machine:  2 CPUs (Test CPU), Linux 6.1.0, load average 0.25
duration: 3 s per test, 1m1s in all; systems in run order: bridge, tapswitch-base, tapswitch, tapswitch, tapswitch-base, bridge

test                bridge        bridge (pass 2)  tapswitch-base (mean of 2)  tapswitch-base/bridge    tapswitch (mean of 2)  tapswitch/bridge
TCP 1 stream        16.00 Gbit/s  20.00 Gbit/s     12.50 Gbit/s                0.69x                    11.50 Gbit/s           0.64x
UDP 64 B delivered  180.0 kpps    200.0 kpps       150.0 kpps                  0.79x                    171.0 kpps             0.90x
UDP RTT avg         30.0 us       33.0 us          41.0 us                     1.30x (lower is better)  47.0 us                1.49x (lower is better)

A/B: new is tapswitch, base is tapswitch-base; their passes ran in the order base, new, new, base
base: /tmp/ab/base/tapswitchd (revision 47029ce0e1d2)
new:  bin/tapswitchd (revision 47029ce0e1d2 with uncommitted changes)
test                base          base (pass 2)  new           new (pass 2)  new/base                 bridge drift  repeat spread  others  verdict
TCP 1 stream        12.00 Gbit/s  13.00 Gbit/s   11.00 Gbit/s  12.00 Gbit/s  0.92x                    25.0%         9.1%           -       8.7% worse, within drift
UDP 64 B delivered  150.0 kpps    -              170.0 kpps    172.0 kpps    1.14x                    11.1%         1.2%           -       better beyond drift: 14.0% better
UDP RTT avg         40.0 us       42.0 us        48.0 us       46.0 us       1.15x (lower is better)  10.0%         5.0%           40%     WORSE beyond drift: 14.6% worse
new/base: the mean of new's passes over the mean of base's; worse and better: the larger mean over the smaller, minus 1.
bridge drift: the bridge's passes, the larger over the smaller, minus 1; repeat spread: the same for each build's own passes, the larger of the two.
within drift: new and base differ by no more than the larger of the two, which is no evidence of a change.
others: the most CPU other processes took in a pass of either build, % of one CPU.
Other processes took over 10% of a CPU during UDP RTT avg: a burst lowers whichever pass it lands on, which interleaving does not cancel; see the CPU table and run again on a quiet machine before trusting those rows.

tapswitch-base: UDP 64 B delivered: iperf3: boom
`
	if got := b.String(); got != want {
		t.Errorf("writeTable:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteJSONAB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.json")
	if err := abSample().writeJSON(path); err != nil {
		t.Fatalf("writeJSON: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("results do not decode: %v", err)
	}
	var order []string
	for _, p := range back.Systems {
		order = append(order, p.title())
	}
	want := []string{"bridge", baseSystem, "tapswitch", "tapswitch (pass 2)", baseSystem + " (pass 2)", "bridge (pass 2)"}
	if !slices.Equal(order, want) {
		t.Errorf("JSON passes = %q, want %q", order, want)
	}
	if back.AB == nil || len(back.AB.Rows) != 3 || back.AB.Base.Daemon != "/tmp/ab/base/tapswitchd" || !back.AB.New.Modified {
		t.Fatalf("JSON ab = %+v, want both builds and 3 rows", back.AB)
	}
	if r := back.AB.Rows[2]; r.Metric != metricRTTAvg.Key || !r.LowerIsBetter || !r.BeyondDrift || r.BridgeDriftPct == nil {
		t.Errorf("JSON ab RTT row = %+v", r)
	}
	for _, sys := range []string{"tapswitch", baseSystem} {
		if _, found := findRatio(back.Ratios, metricTCP1.Key, sys); !found {
			t.Errorf("JSON has no TCP ratio for %s", sys)
		}
	}
}

func TestComputeRatiosOnePerSystem(t *testing.T) {
	got := computeRatios(abSample().Metrics, abSample().Systems)
	// Three metrics, two systems: each system's passes give one ratio.
	if len(got) != 6 {
		t.Fatalf("computeRatios = %d ratios, want 6: %+v", len(got), got)
	}
	if r, _ := findRatio(got, metricTCP1.Key, "tapswitch"); !near(r.Value, 11.5/18) {
		t.Errorf("tapswitch TCP ratio = %v, want mean 11.5 over bridge mean 18 = %v", r.Value, 11.5/18)
	}
}

func TestBinaryInfo(t *testing.T) {
	tests := []struct {
		name string
		b    binaryInfo
		want string
	}{
		{"revision", binaryInfo{Daemon: "bin/tapswitchd", Revision: "0123456789abcdef0123"}, "bin/tapswitchd (revision 0123456789ab)"},
		{"modified", binaryInfo{Daemon: "d", Revision: "abc", Modified: true}, "d (revision abc with uncommitted changes)"},
		{"none", binaryInfo{Daemon: "d"}, "d (revision unknown)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}

	// Not a Go binary, or not there: the paths still name the build.
	notGo := filepath.Join(t.TempDir(), "tapswitchd")
	if err := os.WriteFile(notGo, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{notGo, filepath.Join(t.TempDir(), "missing")} {
		if got := readBinaryInfo(path, "cli"); got != (binaryInfo{Daemon: path, CLI: "cli"}) {
			t.Errorf("readBinaryInfo(%q) = %+v, want the paths only", path, got)
		}
	}
	// This test binary is a Go binary; go test stamps no revision, so
	// only check that reading it does not fail into nonsense.
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	if got := readBinaryInfo(exe, "cli"); got.Daemon != exe || strings.Contains(got.Revision, " ") {
		t.Errorf("readBinaryInfo(test binary) = %+v", got)
	}
}

// executables makes daemon and CLI files, executable ones unless noExec.
func executables(t *testing.T, noExec bool) (daemon, cli string) {
	t.Helper()
	dir := t.TempDir()
	mode := os.FileMode(0o755)
	if noExec {
		mode = 0o644
	}
	daemon, cli = filepath.Join(dir, "tapswitchd"), filepath.Join(dir, "tapswitch")
	for _, p := range []string{daemon, cli} {
		if err := os.WriteFile(p, nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	return daemon, cli
}

func TestChooseSystemsAB(t *testing.T) {
	d, c := executables(t, false)
	bd, bc := executables(t, false)
	nd, nc := executables(t, true)
	tests := []struct {
		name    string
		cfg     config
		want    []string
		wantErr string
	}{
		{"ab", config{tapswitchd: d, tapswitch: c, baseTapswitchd: bd, baseTapswitch: bc, only: []string{"bridge", "tapswitch"}},
			[]string{"bridge", baseSystem, "tapswitch"}, ""},
		{"base not executable", config{tapswitchd: d, tapswitch: c, baseTapswitchd: nd, baseTapswitch: nc, only: []string{"bridge", "tapswitch"}},
			nil, "tapswitch-base: " + nd + " is not an executable file"},
		// By default a missing tapswitch is skipped; not when it is one
		// side of an A/B.
		{"new missing", config{tapswitchd: nd, tapswitch: nc, baseTapswitchd: bd, baseTapswitch: bc},
			nil, "tapswitch: " + nd + " is not an executable file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := chooseSystems(&tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("chooseSystems() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("chooseSystems() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
