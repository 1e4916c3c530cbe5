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

func TestParseVariant(t *testing.T) {
	tests := []struct {
		in      string
		want    variant
		wantErr string
	}{
		{"before=--batch 1 --coalesce=false --busy-poll off", variant{Name: "before", System: "tapswitch before",
			Args: []string{"--batch", "1", "--coalesce=false", "--busy-poll", "off"}}, ""},
		{"+batch= --coalesce=false ", variant{Name: "+batch", System: "tapswitch +batch", Args: []string{"--coalesce=false"}}, ""},
		// The defaults: no flags at all.
		{"all=", variant{Name: "all", System: "tapswitch all"}, ""},
		{"q1", variant{}, "want NAME=ARGS"},
		{"=--queues 1", variant{}, "NAME must be"},
		{"two words=--queues 1", variant{}, "NAME must be"},
		{"a/b=--queues 1", variant{}, "NAME must be"},
		{"s=--socket /tmp/x.sock", variant{}, "--socket is the benchmark's own"},
		{"s=--state-dir=/tmp/x", variant{}, "--state-dir is the benchmark's own"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseVariant(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseVariant(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Name != tt.want.Name || got.System != tt.want.System || !slices.Equal(got.Args, tt.want.Args) {
				t.Errorf("parseVariant(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseFlagsVariants(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(*config) bool
		wantErr string
	}{
		{"two", []string{"-variant", "q1=--queues 1", "-variant", "default="}, func(c *config) bool {
			return len(c.variants) == 2 && c.variants[0].System == "tapswitch q1" && c.variants[1].System == "tapswitch default" &&
				c.bracket // the drift the variants are judged by
		}, ""},
		{"with -only", []string{"-variant", "a=", "-only", "bridge,tapswitch"}, func(c *config) bool { return c.bracket }, ""},
		{"rows", []string{"-rows", "udp64,rtt-loaded"}, func(c *config) bool {
			return slices.Equal(c.rows, []string{"udp64", "rtt-loaded"})
		}, ""},
		{"twice", []string{"-variant", "a=--queues 1", "-variant", "a=--queues 2"}, nil, "-variant a given twice"},
		{"without tapswitch", []string{"-variant", "a=", "-only", "bridge,ovs"}, nil, "needs tapswitch among -only"},
		{"without bridge", []string{"-variant", "a=", "-only", "tapswitch"}, nil, "needs the bridge among -only"},
		{"with A/B", []string{"-variant", "a=", "-base-tapswitchd", "x", "-base-tapswitch", "y"}, nil, "not with -base-tapswitch"},
		{"with -scale", []string{"-variant", "a=", "-scale"}, nil, "not with -scale"},
		{"with -demo", []string{"-variant", "a=", "-demo"}, nil, "not with -demo"},
		{"rows with -scale", []string{"-rows", "tcp1", "-scale"}, nil, "-rows selects the comparison's tests"},
		{"unknown row", []string{"-rows", "tcp2"}, nil, `unknown test "tcp2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			if !tt.check(cfg) {
				t.Errorf("parseFlags(%q) = %+v", tt.args, cfg)
			}
		})
	}
}

// helpText is the start of tapswitchd --help's flag list, as pflag
// prints it.
const helpText = `Usage:
  tapswitchd [flags]

Flags:
      --fdb-limit int                      most MAC addresses learned per network (default 8192)
  -h, --help                               help for tapswitchd
      --queues int                         queues per TAP, each read by its own loop (1 to 16) (default 2)
      --remove-on-exit                     on SIGINT or SIGTERM, detach every port
      --tap-napi                           IFF_NAPI on TAPs; see --queues
  -v, --version                            version for tapswitchd
`

func TestParseHelpFlags(t *testing.T) {
	got := parseHelpFlags(helpText)
	for _, f := range []string{"fdb-limit", "help", "queues", "remove-on-exit", "tap-napi", "version"} {
		if !got[f] {
			t.Errorf("parseHelpFlags: no --%s in %v", f, got)
		}
	}
	// A flag named in another's description is not a flag of its own
	// line, and words of the usage are none.
	if len(got) != 6 {
		t.Errorf("parseHelpFlags = %v, want the 6 flags", got)
	}
}

func TestCheckVariantFlags(t *testing.T) {
	known := parseHelpFlags(helpText)
	ok := []variant{{Name: "q1", Args: []string{"--queues", "1"}}, {Name: "napi", Args: []string{"--tap-napi", "--queues=4"}}, {Name: "all"}}
	if err := checkVariantFlags(ok, known, "bin/tapswitchd"); err != nil {
		t.Errorf("checkVariantFlags(%v) = %v, want nil", ok, err)
	}
	bad := append(ok, variant{Name: "before", Args: []string{"--batch", "1", "--coalesce=false"}})
	err := checkVariantFlags(bad, known, "bin/tapswitchd")
	if want := "-variant before: bin/tapswitchd has no flag --batch"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("checkVariantFlags with --batch = %v, want %q", err, want)
	}
}

// TestChooseSystemsVariants checks that the variants take the plain
// tapswitch's place, after the daemon's --help has been read.
func TestChooseSystemsVariants(t *testing.T) {
	dir := t.TempDir()
	daemon := filepath.Join(dir, "tapswitchd")
	script := "#!/bin/sh\ncat <<'EOF'\n" + helpText + "EOF\n"
	if err := os.WriteFile(daemon, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, cli := executables(t, false)
	cfg := &config{tapswitchd: daemon, tapswitch: cli, only: []string{"bridge", "tapswitch"}}
	for _, v := range []string{"q1=--queues 1", "napi=--tap-napi"} {
		if err := cfg.addVariant(v); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := chooseSystems(cfg)
	if want := []string{"bridge", "tapswitch q1", "tapswitch napi"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("chooseSystems() = %q, %v; want %q", got, err, want)
	}
	if s, ok := newSystem(cfg, "tapswitch q1").(*tapswitchSystem); !ok || !slices.Equal(s.extraArgs, []string{"--queues", "1"}) || s.name() != "tapswitch q1" {
		t.Errorf("newSystem(tapswitch q1) = %+v, want a tapswitch system with --queues 1", s)
	}

	if err := cfg.addVariant("before=--batch 1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := chooseSystems(cfg); err == nil || !strings.Contains(err.Error(), "has no flag --batch") {
		t.Errorf("chooseSystems() with --batch = %v, want an error naming it", err)
	}
}

func TestRunOrderVariants(t *testing.T) {
	tests := []struct {
		name    string
		systems []string
		want    []string
	}{
		{"one", []string{"bridge", "tapswitch a"}, []string{"bridge", "tapswitch a", "tapswitch a", "bridge"}},
		{"three with ovs", []string{"bridge", "tapswitch a", "tapswitch b", "tapswitch c", "ovs"},
			[]string{"bridge", "tapswitch a", "tapswitch b", "tapswitch c", "ovs", "tapswitch c", "tapswitch b", "tapswitch a", "bridge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runOrder(tt.systems, true); !slices.Equal(got, tt.want) {
				t.Errorf("runOrder(%q) = %q, want %q", tt.systems, got, tt.want)
			}
		})
	}
}

// variantSample is a run of three variants and Open vSwitch, mirrored:
// TCP and the round trip measured, with b 20% faster than a on TCP
// (beyond a bridge drift of 5%), c's round trip 10% longer (within the
// repeat spread of a's passes, 12%), and b's second TCP test failed.
func variantSample() *report {
	metrics := []metric{metricTCP1, metricRTTAvg}
	pass := func(system string, n int, tcp, rtt float64) passResult {
		p := passResult{System: system, Pass: n, Results: []measurement{ok(metricTCP1.Key, unitBits, tcp), ok(metricRTTAvg.Key, unitMicros, rtt)}}
		if tcp == 0 {
			p.Results[0] = measurement{Metric: metricTCP1.Key, Unit: unitBits, Error: "iperf3: boom"}
		}
		return p
	}
	variants := []variant{
		{Name: "a", System: "tapswitch a", Args: []string{"--queues", "1"}},
		{Name: "b", System: "tapswitch b", Args: []string{"--queues", "2"}},
		{Name: "c", System: "tapswitch c"},
	}
	r := &report{
		Date:           time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine:        machineInfo{NProc: 2, Kernel: "6.1.0", CPU: "Test CPU", Load: 0.25},
		SecondsPerTest: 3,
		ElapsedSeconds: 100,
		Metrics:        metrics,
		Systems: []passResult{
			pass("bridge", 1, 20e9, 30),
			pass("tapswitch a", 1, 10e9, 50),
			pass("tapswitch b", 1, 12e9, 40),
			pass("tapswitch c", 1, 11e9, 55),
			pass("ovs", 1, 8e9, 60),
			pass("tapswitch c", 2, 11e9, 55),
			pass("tapswitch b", 2, 0, 40),
			pass("tapswitch a", 2, 10e9, 56),
			pass("bridge", 2, 21e9, 30),
		},
	}
	r.Ratios = computeRatios(metrics, r.Systems)
	r.Variants = &variantReport{Variants: variants, First: variants[0].System, Rows: compareVariants(metrics, r.Systems, variants)}
	return r
}

func TestCompareVariants(t *testing.T) {
	rows := variantSample().Variants.Rows
	tests := []struct {
		system, metric string
		newOverBase    float64
		beyond         bool
		verdict        string
	}{
		{"tapswitch b", metricTCP1.Key, 1.2, true, "better beyond drift: 20.0% better"},
		{"tapswitch c", metricTCP1.Key, 1.1, true, "better beyond drift: 10.0% better"},
		{"tapswitch b", metricRTTAvg.Key, 40 / 53.0, true, "better beyond drift: 32.5% better"},
		// a's own passes differ by 12%: c's 4% longer round trip is no
		// evidence.
		{"tapswitch c", metricRTTAvg.Key, 55 / 53.0, false, "3.8% worse, within drift"},
	}
	if len(rows) != len(tests) {
		t.Fatalf("compareVariants gave %d rows, want %d: %+v", len(rows), len(tests), rows)
	}
	for i, tt := range tests {
		row := rows[i]
		if row.System != tt.system || row.Metric != tt.metric || !near(row.NewOverBase, tt.newOverBase) || row.BeyondDrift != tt.beyond {
			t.Errorf("row %d = %s %s %v beyond %v; want %s %s %v beyond %v",
				i, row.System, row.Metric, row.NewOverBase, row.BeyondDrift, tt.system, tt.metric, tt.newOverBase, tt.beyond)
		}
		if got := row.verdict(); got != tt.verdict {
			t.Errorf("row %d (%s %s) verdict = %q, want %q", i, row.System, row.Metric, got, tt.verdict)
		}
	}
	if got := rows[0].NewPasses; !slices.Equal(got, []float64{12e9, 0}) {
		t.Errorf("b's TCP passes = %v, want [12e9 0] (the second failed)", got)
	}
	if compareVariants([]metric{metricTCP1}, nil, []variant{{System: "tapswitch a"}}) != nil {
		t.Error("compareVariants of one variant: want no rows")
	}
}

func TestComputeRatiosToOVS(t *testing.T) {
	r := variantSample()
	tests := []struct {
		metric, system, yardstick string
		want                      float64
		found                     bool
	}{
		{metricTCP1.Key, "tapswitch a", baseline, 10 / 20.5, true},
		{metricTCP1.Key, "tapswitch a", peer, 10 / 8.0, true},
		{metricTCP1.Key, "tapswitch b", peer, 12 / 8.0, true}, // its good pass alone
		{metricRTTAvg.Key, "tapswitch c", peer, 55 / 60.0, true},
		{metricTCP1.Key, "ovs", baseline, 8 / 20.5, true},
		{metricTCP1.Key, "ovs", peer, 0, false},    // no ratio to itself
		{metricTCP1.Key, "bridge", peer, 0, false}, // the yardstick of all
	}
	for _, tt := range tests {
		got, found := findRatioTo(r.Ratios, tt.metric, tt.system, tt.yardstick)
		if found != tt.found || (found && !near(got.Value, tt.want)) {
			t.Errorf("ratio(%s, %s, to %s) = %v, %v; want %v, %v", tt.metric, tt.system, tt.yardstick, got.Value, found, tt.want, tt.found)
		}
	}
}

func TestWriteTableVariants(t *testing.T) {
	var b bytes.Buffer
	if err := variantSample().writeTable(&b); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		// The values, each variant by its name, then the ratios of every
		// system to the bridge and of every variant to Open vSwitch.
		"test          bridge        bridge (pass 2)  a             b             c             ovs\n" +
			"TCP 1 stream  20.00 Gbit/s  21.00 Gbit/s     10.00 Gbit/s  12.00 Gbit/s  11.00 Gbit/s  8.00 Gbit/s\n",
		"ratios                         a/bridge  b/bridge  c/bridge  ovs/bridge  a/ovs  b/ovs  c/ovs\n" +
			"TCP 1 stream                   0.49x     0.59x     0.54x     0.39x       1.25x  1.50x  1.38x\n" +
			"UDP RTT avg (lower is better)  1.77x     1.33x     1.83x     2.00x       0.88x  0.67x  0.92x\n",
		// The variants' flags, and each against the first.
		"variants: tapswitchd started with\n  a: --queues 1\n  b: --queues 2\n  c: (its defaults)\n",
		"against a (the first variant); each ran twice, passes mirrored about the middle of the run",
		"test          variant  a             variant       variant/a                bridge drift  repeat spread  others  verdict",
		"TCP 1 stream  b        10.00 Gbit/s  12.00 Gbit/s  1.20x                    5.0%          0.0%           -       better beyond drift: 20.0% better",
		"UDP RTT avg   c        53.0 us       55.0 us       1.04x (lower is better)  0.0%          12.0%          -       3.8% worse, within drift",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("writeTable has no %q:\n%s", want, got)
		}
	}
}

func TestWriteJSONVariants(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.json")
	if err := variantSample().writeJSON(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	vr := back.Variants
	if vr == nil || vr.First != "tapswitch a" || len(vr.Variants) != 3 || !slices.Equal(vr.Variants[0].Args, []string{"--queues", "1"}) {
		t.Fatalf("JSON variants = %+v", vr)
	}
	if len(vr.Rows) != 4 || vr.Rows[0].System != "tapswitch b" || !near(vr.Rows[0].NewOverBase, 1.2) {
		t.Errorf("JSON variant rows = %+v", vr.Rows)
	}
	if !strings.Contains(string(data), `"baseline": "ovs"`) {
		t.Error("JSON has no ratio to ovs")
	}
}

func TestChartVariants(t *testing.T) {
	var b bytes.Buffer
	r := variantSample()
	if err := r.writeChart(&b); err != nil {
		t.Fatal(err)
	}
	colors := map[string]string{}
	var texts []string
	for _, e := range parseSVG(t, b.Bytes()) {
		switch {
		case e.name == "rect" && e.attrs["class"] == "bar":
			colors[e.attrs["data-system"]] = e.attrs["fill"]
		case e.name == "text":
			texts = append(texts, e.text)
		}
	}
	// Every variant a colour of its own, none the colour of another
	// system.
	seen := map[string]string{}
	for sys, c := range colors {
		if other, dup := seen[c]; dup {
			t.Errorf("%s and %s share the colour %s", sys, other, c)
		}
		seen[c] = sys
	}
	if len(colors) != 5 {
		t.Errorf("bars of %d systems, want 5: %v", len(colors), colors)
	}
	all := strings.Join(texts, "\n")
	for _, w := range []string{"tapswitch a", "10.00 Gbit/s, 0.49× bridge, 1.25× ovs (mean of 2 passes)", "8.00 Gbit/s, 0.39× bridge"} {
		if !strings.Contains(all, w) {
			t.Errorf("chart has no text %q; its texts:\n%s", w, all)
		}
	}
	if strings.Contains(all, "× ovs (mean of 1") || strings.Contains(all, "8.00 Gbit/s, 0.39× bridge, 1.00× ovs") {
		t.Error("Open vSwitch's bar has a ratio to itself")
	}
}

func TestProfilerNamesVariants(t *testing.T) {
	p := (&profiler{dir: "/tmp/x"}).forPass("tapswitch +batch", 2)
	r := p.recording(t.Context(), metricUDP64.Key, 3, 0)
	if want := "/tmp/x/tapswitch-+batch-pass2-udp_64b_delivered.data"; r.path != want {
		t.Errorf("profile of tapswitch +batch's second pass: %s, want %s", r.path, want)
	}
}

// TestOthersPctSecondRows checks that a row filled by the same tool run
// as another reads the other processes' CPU from the row that carries
// the CPU figures.
func TestOthersPctSecondRows(t *testing.T) {
	busy := map[string]float64{"cpu_others_pct": 30}
	passes := []passResult{{System: "tapswitch a", Pass: 1, Results: []measurement{
		{Metric: metricUDP1400.Key, Value: 1, Unit: unitPackets, Detail: busy}, ok(metricUDP1400Bits.Key, unitBits, 8),
		{Metric: metricRTTLoadedAvg.Key, Value: 1, Unit: unitMicros, Detail: busy}, ok(metricRTTLoadedP99.Key, unitMicros, 2),
	}}}
	for _, key := range []string{metricUDP1400Bits.Key, metricRTTLoadedP99.Key} {
		if got := othersPct(passes, key, "tapswitch a"); got != 30 {
			t.Errorf("othersPct(%s) = %v, want 30, from the row with the CPU figures", key, got)
		}
	}
}

// TestWriteTableRatioToOVS checks the one-table layout of a run without
// variants: tapswitch's ratio to Open vSwitch beside its ratio to the
// bridge, and none for Open vSwitch itself.
func TestWriteTableRatioToOVS(t *testing.T) {
	metrics := []metric{metricTCP1, metricRTTAvg}
	r := &report{
		Date:    time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine: machineInfo{NProc: 2, Kernel: "6.1.0"},
		Metrics: metrics,
		Systems: []passResult{
			{System: "bridge", Pass: 1, Results: []measurement{ok(metricTCP1.Key, unitBits, 20e9), ok(metricRTTAvg.Key, unitMicros, 30)}},
			{System: "tapswitch", Pass: 1, Results: []measurement{ok(metricTCP1.Key, unitBits, 18e9), ok(metricRTTAvg.Key, unitMicros, 45)}},
			{System: "ovs", Pass: 1, Results: []measurement{ok(metricTCP1.Key, unitBits, 15e9), ok(metricRTTAvg.Key, unitMicros, 60)}},
		},
	}
	r.Ratios = computeRatios(metrics, r.Systems)
	var b bytes.Buffer
	if err := r.writeTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `test          bridge        tapswitch     tapswitch/bridge         tapswitch/ovs            ovs           ovs/bridge
TCP 1 stream  20.00 Gbit/s  18.00 Gbit/s  0.90x                    1.20x                    15.00 Gbit/s  0.75x
UDP RTT avg   30.0 us       45.0 us       1.50x (lower is better)  0.75x (lower is better)  60.0 us       2.00x (lower is better)
`
	if got := b.String(); !strings.Contains(got, want) {
		t.Errorf("writeTable:\n%s\nwant within it:\n%s", got, want)
	}
}
