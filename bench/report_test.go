package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFormatValue(t *testing.T) {
	tests := []struct {
		unit string
		v    float64
		want string
	}{
		{unitBits, 16.5e9, "16.50 Gbit/s"},
		{unitBits, 1e9, "1.00 Gbit/s"},
		{unitBits, 328.94e6, "328.9 Mbit/s"},
		{unitBits, 12345, "12.3 kbit/s"},
		{unitPackets, 180000, "180.0 kpps"},
		{unitPackets, 1.25e6, "1.25 Mpps"},
		{unitMicros, 36.04, "36.0 us"},
		{"widgets", 3, "3 widgets"},
	}
	for _, tt := range tests {
		if got := formatValue(tt.unit, tt.v); got != tt.want {
			t.Errorf("formatValue(%q, %v) = %q, want %q", tt.unit, tt.v, got, tt.want)
		}
	}
}

func TestFormatRatio(t *testing.T) {
	tests := []struct {
		r             float64
		lowerIsBetter bool
		want          string
	}{
		{0.7333, false, "0.73x"},
		{1.2, true, "1.20x (lower is better)"},
		{8.149, false, "8.15x"},
	}
	for _, tt := range tests {
		if got := formatRatio(tt.r, tt.lowerIsBetter); got != tt.want {
			t.Errorf("formatRatio(%v, %v) = %q, want %q", tt.r, tt.lowerIsBetter, got, tt.want)
		}
	}
}

func ok(key, unit string, v float64) measurement {
	return measurement{Metric: key, Value: v, Unit: unit}
}

// sampleReport is a bracketed run with every kind of cell: values, a
// failed test, a system whose setup failed.
func sampleReport() *report {
	metrics := []metric{metricTCP1, metricUDP64, metricRTTAvg}
	r := &report{
		Date:           time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine:        machineInfo{NProc: 2, Kernel: "6.1.0", CPU: "Test CPU", Load: 0.25},
		SecondsPerTest: 5,
		ElapsedSeconds: 92.7,
		Metrics:        metrics,
		Systems: []passResult{
			{System: "bridge", Pass: 1, Results: []measurement{
				ok(metricTCP1.Key, unitBits, 16e9), ok(metricUDP64.Key, unitPackets, 180e3), ok(metricRTTAvg.Key, unitMicros, 30)}},
			{System: "tapswitch", Pass: 1, Results: []measurement{
				ok(metricTCP1.Key, unitBits, 12.6e9),
				{Metric: metricUDP64.Key, Unit: unitPackets, Error: "iperf3: boom"},
				ok(metricRTTAvg.Key, unitMicros, 42)}},
			{System: "ovs", Pass: 1, Error: "setup: ovs-vswitchd: exit status 1"},
			{System: "bridge", Pass: 2, Results: []measurement{
				ok(metricTCP1.Key, unitBits, 20e9), ok(metricUDP64.Key, unitPackets, 200e3), ok(metricRTTAvg.Key, unitMicros, 40)}},
		},
	}
	r.Ratios = computeRatios(metrics, r.Systems)
	return r
}

func TestComputeRatios(t *testing.T) {
	r := sampleReport()
	tests := []struct {
		metric, system string
		want           float64
		found          bool
	}{
		// Against the mean of both bridge passes: 18e9 and 35 us.
		{metricTCP1.Key, "tapswitch", 0.7, true},
		{metricRTTAvg.Key, "tapswitch", 1.2, true},
		{metricUDP64.Key, "tapswitch", 0, false}, // the test failed
		{metricTCP1.Key, "ovs", 0, false},        // setup failed
		{metricTCP1.Key, "bridge", 0, false},     // no ratio to itself
	}
	for _, tt := range tests {
		got, found := findRatio(r.Ratios, tt.metric, tt.system)
		if found != tt.found || (found && !near(got.Value, tt.want)) {
			t.Errorf("ratio(%s, %s) = %v, %v; want %v, %v", tt.metric, tt.system, got.Value, found, tt.want, tt.found)
		}
	}
	if got, _ := findRatio(r.Ratios, metricRTTAvg.Key, "tapswitch"); !got.LowerIsBetter {
		t.Errorf("ratio(%s).LowerIsBetter = false, want true", metricRTTAvg.Key)
	}
}

func TestComputeRatiosWithoutBridge(t *testing.T) {
	passes := []passResult{{System: "tapswitch", Pass: 1, Results: []measurement{ok(metricTCP1.Key, unitBits, 1e9)}}}
	if got := computeRatios([]metric{metricTCP1}, passes); len(got) != 0 {
		t.Errorf("computeRatios without a bridge = %v, want none", got)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().writeTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `date:     2025-01-02 03:04:05 UTC
machine:  2 CPUs (Test CPU), Linux 6.1.0, load average 0.25
duration: 5 s per test, 1m32s in all; systems in run order: bridge, tapswitch, ovs, bridge

test                bridge        bridge (pass 2)  tapswitch     tapswitch/bridge         ovs  ovs/bridge
TCP 1 stream        16.00 Gbit/s  20.00 Gbit/s     12.60 Gbit/s  0.70x                    -    -
UDP 64 B delivered  180.0 kpps    200.0 kpps       error         -                        -    -
UDP RTT avg         30.0 us       40.0 us          42.0 us       1.20x (lower is better)  -    -

tapswitch: UDP 64 B delivered: iperf3: boom

ovs (pass 1) failed: setup: ovs-vswitchd: exit status 1
`
	if got := b.String(); got != want {
		t.Errorf("writeTable:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results", "run.json")
	if err := sampleReport().writeJSON(path); err != nil {
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
	if len(back.Systems) != 4 || back.Systems[3].Pass != 2 {
		t.Errorf("systems = %+v, want 4 passes, the last the bridge's second", back.Systems)
	}
	if m, _ := back.Systems[0].value(metricTCP1.Key); m.Unit != unitBits || m.Value != 16e9 {
		t.Errorf("bridge TCP 1 stream = %+v, want 16e9 %s", m, unitBits)
	}
	if r, found := findRatio(back.Ratios, metricTCP1.Key, "tapswitch"); !found || !near(r.Value, 0.7) {
		t.Errorf("tapswitch TCP ratio = %v, %v; want 0.7", r.Value, found)
	}
}

func TestDriftNotes(t *testing.T) {
	notes := driftNotes(sampleReport())
	// 16 vs 20 Gbit/s is 25% apart, 30 vs 40 us 33%; 180 vs 200 kpps 11%.
	if len(notes) != 2 || !strings.HasPrefix(notes[0], "TCP 1 stream: ") || !strings.HasPrefix(notes[1], "UDP RTT avg: ") {
		t.Errorf("driftNotes = %q, want notes for TCP 1 stream and UDP RTT avg", notes)
	}
}

func TestBusyNote(t *testing.T) {
	if n := busyNote(machineInfo{NProc: 2, Load: 0.9}); n != "" {
		t.Errorf("busyNote(load 0.9 on 2 CPUs) = %q, want none", n)
	}
	if n := busyNote(machineInfo{NProc: 2, Load: 3.5}); !strings.Contains(n, "load average 3.50 on 2 CPUs") {
		t.Errorf("busyNote(load 3.5 on 2 CPUs) = %q, want a warning", n)
	}
}

// cpuReport is sampleReport with CPU figures: the bridge has no switch
// process, tapswitch's UDP test failed, the second bridge pass has none.
func cpuReport() *report {
	r := sampleReport()
	r.Systems[2] = passResult{System: "ovs", Pass: 1} // measured nothing
	off := false
	r.Machine.IRQTimeAccounting = &off
	detail := func(sender, sw, receiver, softirq, idle, busy float64, perUnit map[string]float64) map[string]float64 {
		d := map[string]float64{"cpu_sender_pct": sender, "cpu_receiver_pct": receiver, "cpu_softirq_pct": softirq,
			"cpu_idle_pct": idle, "cpu_busy_pct": busy, "cpu_window_s": 3}
		if sw >= 0 {
			d["cpu_switch_pct"] = sw
		}
		for k, v := range perUnit {
			d[k] = v
		}
		return d
	}
	set := func(p *passResult, key string, d map[string]float64) {
		for i := range p.Results {
			if p.Results[i].Metric == key {
				p.Results[i].Detail = d
			}
		}
	}
	set(&r.Systems[0], metricTCP1.Key, detail(94.2, -1, 41.6, 48, 14.4, 185.6, map[string]float64{"cpu_busy_s_per_gb": 0.928, "cpu_others_pct": 0.4}))
	set(&r.Systems[0], metricUDP64.Key, detail(99, -1, 60, 70, 2, 198, map[string]float64{"cpu_busy_us_per_frame": 4.4}))
	set(&r.Systems[1], metricTCP1.Key, detail(66, 63, 28, 18, 25.3, 174.7, map[string]float64{"cpu_switch_s_per_gb": 0.4, "cpu_busy_s_per_gb": 1.109, "cpu_others_pct": 31}))
	d := detail(5, 7, 4, 3, 170, 30, map[string]float64{"cpu_switch_us_per_round_trip": 2.33, "cpu_busy_us_per_round_trip": 10.04})
	d["cpu_steal_pct"] = 0.4
	set(&r.Systems[1], metricRTTAvg.Key, d)
	return r
}

func TestWriteCPUTable(t *testing.T) {
	var b bytes.Buffer
	if err := cpuReport().writeCPUTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `
where the CPU went (% of one CPU over the middle of each test; 2 CPUs = 200%)
test                system           sender  switch  receiver  softirq  others  idle  steal  busy  switch per unit        busy per unit
TCP 1 stream        bridge           94      -       42        48       0       14    -      186   -                      0.93 CPU-s/GB
TCP 1 stream        tapswitch        66      63      28        18       31      25    -      175   0.40 CPU-s/GB          1.11 CPU-s/GB
TCP 1 stream        ovs              -       -       -         -        -       -     -      -     -                      -
TCP 1 stream        bridge (pass 2)  -       -       -         -        -       -     -      -     -                      -
UDP 64 B delivered  bridge           99      -       60        70       -       2     -      198   -                      4.40 CPU-us/frame sent
UDP 64 B delivered  tapswitch        -       -       -         -        -       -     -      -     -                      -
UDP 64 B delivered  ovs              -       -       -         -        -       -     -      -     -                      -
UDP 64 B delivered  bridge (pass 2)  -       -       -         -        -       -     -      -     -                      -
UDP RTT avg         bridge           -       -       -         -        -       -     -      -     -                      -
UDP RTT avg         tapswitch        5       7       4         3        -       170   0      30    2.3 CPU-us/round trip  10.0 CPU-us/round trip
UDP RTT avg         ovs              -       -       -         -        -       -     -      -     -                      -
UDP RTT avg         bridge (pass 2)  -       -       -         -        -       -     -      -     -                      -
busy: all CPU time but idle, iowait and steal; softirq: the whole machine's, irq included; per unit: CPU time over the rate of traffic (per GB received, per frame sent, per round trip).
others: every other user process, such as another benchmark; busy includes it, so busy per unit compares systems fairly only where others is near 0.
This kernel lacks CONFIG_IRQ_TIME_ACCOUNTING: softirq time also counts in the process it interrupted, so sender, switch and receiver include the softirq work done in their context and the columns overlap.
`
	if got := b.String(); got != want {
		t.Errorf("writeCPUTable:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteCPUTableWithoutFigures(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().writeCPUTable(&b); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Errorf("writeCPUTable with no CPU figures printed:\n%s\nwant nothing", b.String())
	}
}
