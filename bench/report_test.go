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
