package main

import (
	"bytes"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapswitch/tapswitch/api"
)

func TestPercentile(t *testing.T) {
	tests := []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"median odd", []float64{1, 2, 3, 4, 5}, 50, 3},
		// An even count's median is the mean of the middle two.
		{"median even", []float64{1, 2, 3, 4}, 50, 2.5},
		{"p90 of 1..10", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9.1},
		{"p0 is the min", []float64{3, 7}, 0, 3},
		{"p100 is the max", []float64{3, 7}, 100, 7},
		{"one value", []float64{42}, 90, 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); !near(got, tt.want) {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
	if got := percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("percentile(nil, 50) = %v, want NaN", got)
	}
}

func TestSummarize(t *testing.T) {
	// Call order, not sorted: the samples keep it, the figures do not.
	var in []time.Duration
	for _, ms := range []float64{9, 1, 8, 2, 7, 3, 6, 4, 5, 10.5} {
		in = append(in, time.Duration(ms*float64(time.Millisecond)))
	}
	got := summarize(in)
	if got.N != 10 || !near(got.Median, 5.5) || !near(got.P90, 9.15) || !near(got.Max, 10.5) {
		t.Errorf("summarize = n %d, median %v, p90 %v, max %v; want 10, 5.5, 9.15, 10.5", got.N, got.Median, got.P90, got.Max)
	}
	if got.Samples[0] != 9 || got.Samples[9] != 10.5 {
		t.Errorf("summarize samples = %v, want them in call order", got.Samples)
	}
}

func TestProcStatusKB(t *testing.T) {
	status := readTestdata(t, "proc-status.txt")
	for _, tt := range []struct {
		field string
		want  int64
	}{{"VmRSS", 37304}, {"VmHWM", 37328}} {
		got, err := procStatusKB(status, tt.field)
		if err != nil || got != tt.want {
			t.Errorf("procStatusKB(%s) = %v, %v; want %v", tt.field, got, err, tt.want)
		}
	}
	// VmRSSX must not match VmRSS, nor a field without kB pass as one.
	for _, tt := range []struct{ status, field, wantErr string }{
		{"VmRSSX:\t 1 kB\n", "VmRSS", "not found"},
		{"Threads:\t12\n", "Threads", "unexpected value"},
	} {
		if _, err := procStatusKB([]byte(tt.status), tt.field); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("procStatusKB(%q, %s) error = %v, want %q", tt.status, tt.field, err, tt.wantErr)
		}
	}
}

func TestScaleAddr(t *testing.T) {
	tests := []struct {
		i    int
		want string
	}{
		{0, "10.91.0.1/16"},
		{99, "10.91.0.100/16"},
		{253, "10.91.0.254/16"},
		{254, "10.91.1.1/16"},
	}
	for _, tt := range tests {
		if got := scaleAddr(tt.i); got != tt.want {
			t.Errorf("scaleAddr(%d) = %s, want %s", tt.i, got, tt.want)
		}
	}
	seen := map[string]bool{}
	for i := range scaleNamespaces {
		a := scaleAddr(i)
		if seen[a] {
			t.Fatalf("scaleAddr(%d) = %s, given twice", i, a)
		}
		seen[a] = true
	}
}

func TestRandomMACs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	// The first address this seed yields is taken, so it must be skipped.
	first := randomMACs(rand.New(rand.NewPCG(1, 2)), 1, nil)[0]
	macs := randomMACs(r, 8191, map[uint64]bool{macKey(first): true})
	if len(macs) != 8191 {
		t.Fatalf("randomMACs gave %d addresses, want 8191", len(macs))
	}
	seen := map[string]bool{}
	for _, m := range macs {
		switch {
		case len(m) != 6:
			t.Fatalf("MAC %v: %d bytes", m, len(m))
		case m[0]&1 != 0:
			t.Fatalf("MAC %v is multicast", m)
		case m[0]&2 == 0:
			t.Fatalf("MAC %v is not locally administered", m)
		case seen[m.String()]:
			t.Fatalf("MAC %v given twice", m)
		case m.String() == first.String():
			t.Fatalf("MAC %v was to be avoided", m)
		}
		seen[m.String()] = true
	}
}

func TestMACKey(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:01:ff")
	if got := macKey(mac); got != 0x02_00_00_00_01_ff {
		t.Errorf("macKey(%v) = %#x, want 0x0200000001ff", mac, got)
	}
}

func TestFillFrame(t *testing.T) {
	src, _ := net.ParseMAC("02:12:34:56:78:9a")
	b, err := fillFrame(src)
	if err != nil {
		t.Fatal(err)
	}
	// 60 bytes: the shortest Ethernet frame without its FCS.
	if len(b) != 60 {
		t.Errorf("fillFrame is %d bytes, want 60", len(b))
	}
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	if eth.SrcMAC.String() != src.String() || eth.DstMAC.String() != "ff:ff:ff:ff:ff:ff" || eth.EthernetType != fillEtherType {
		t.Errorf("fillFrame = %v > %v type %#04x, want %v > broadcast type %#04x", eth.SrcMAC, eth.DstMAC, uint16(eth.EthernetType), src, fillEtherType)
	}
}

func TestPortDelta(t *testing.T) {
	before := []api.Port{{Name: "idle", Stats: api.PortCounters{TxFrames: 10, Drops: map[string]uint64{"tx_error": 1}}}}
	after := []api.Port{{Name: "idle", Stats: api.PortCounters{TxFrames: 15, Drops: map[string]uint64{"tx_error": 4, "runt": 2}}}}
	d, err := portDelta(before, after, "idle")
	if err != nil {
		t.Fatal(err)
	}
	if d.TxFrames != 5 || d.Drops["tx_error"] != 3 || d.Drops["runt"] != 2 || sumDrops(d.Drops) != 5 {
		t.Errorf("portDelta = %+v, want tx 5, drops tx_error 3 runt 2", d)
	}
	if _, err := portDelta(before, after, "gone"); err == nil {
		t.Error("portDelta of an unlisted port: no error")
	}
}

func bits(v float64) *measurement {
	return &measurement{Metric: metricTCP1.Key, Value: v, Unit: unitBits}
}

func TestScalePairRatio(t *testing.T) {
	tests := []struct {
		name string
		p    scalePair
		want float64
	}{
		{"one 2-port run", scalePair{Few: bits(10e9), Many: bits(9e9)}, 0.9},
		{"bracketed", scalePair{Few: bits(10e9), Many: bits(9e9), FewAgain: bits(8e9)}, 1},
		{"2-port run failed", scalePair{Few: &measurement{Error: "boom"}, Many: bits(9e9)}, 0},
		{"many failed", scalePair{Few: bits(10e9), Many: &measurement{Error: "boom"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.ratio(); !near(got, tt.want) {
				t.Errorf("ratio = %v, want %v", got, tt.want)
			}
		})
	}
}

// sampleScale is a full scale run: one target missed, one met, and a
// failed bridge run.
func sampleScale() *scaleResult {
	return &scaleResult{
		Namespaces:  100,
		Attach:      &latencySummary{N: 100, Median: 8.04, P90: 12.5, Max: 40},
		Detach:      &latencySummary{N: 100, Median: 23.9, P90: 46.6, Max: 230.6},
		CLIAttachMs: 9.2,
		APIAttachMs: 4.1,
		Memory:      &scaleMemory{Ports: 64, FillMACs: 8191, FillFrames: 8191, MACs: 8192, MACLimit: 8192, RSSBeforeMiB: 26.5, RSSMiB: 36.45, HWMMiB: 36.5},
		Aggregate:   &scaleAggregate{Pairs: 4, Bridge: &measurement{Error: "iperf3: boom"}, Tapswitch: bits(10.83e9)},
		Pair: &scalePair{Few: bits(11.17e9), Many: bits(8.97e9), Ratio: 8.97 / 11.17,
			IdlePort: "ns-32", IdleTxFrames: 79, ReceiverFrames: 87636},
		Errors: []string{"aggregate TCP, bridge: iperf3: boom"},
	}
}

func TestWriteScaleTable(t *testing.T) {
	r := &report{
		Date:           time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine:        machineInfo{NProc: 2, Kernel: "6.1.0", CPU: "Test CPU", Load: 0.25},
		SecondsPerTest: 5,
		ElapsedSeconds: 37.4,
		Scale:          sampleScale(),
		Notes:          []string{"a note"},
	}
	var b bytes.Buffer
	if err := r.writeScaleTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `date:     2025-01-02 03:04:05 UTC
machine:  2 CPUs (Test CPU), Linux 6.1.0, load average 0.25
duration: 5 s per iperf3 run, 37s in all; scale suite: 100 namespaces, one tapswitchd

measurement                           value                                                 target                result
attach, API call (n=100)              median 8.0 ms, p90 12.5 ms, max 40.0 ms               median < 20 ms        met
detach, API call (n=100)              median 23.9 ms, p90 46.6 ms, max 230.6 ms             median < 20 ms        MISSED
attach, CLI end to end (n=1)          9.2 ms (API, same state: 4.1 ms)                                            for reference
daemon memory, 64 ports, table empty  VmRSS 26.5 MiB
daemon memory, 64 ports, 8192 MACs    VmRSS 36.5 MiB (VmHWM 36.5 MiB)                       VmRSS < 64 MiB        met
learned MACs (API)                    8192 of limit 8192; 8191 sources sent in 8191 frames  table full (8192)     met
TCP, 4 pairs at once, bridge          error
TCP, 4 pairs at once, tapswitch       10.83 Gbit/s
TCP 1 stream, 2 ports                 11.17 Gbit/s
TCP 1 stream, 64 ports, 8192 MACs     8.97 Gbit/s
  many ports/2 ports                  0.80x                                                 >= 0.90x              MISSED
  idle port ns-32 meanwhile           tx 79 frames, drops 0 (receiver: tx 87636)            unicast once learned  not flooded

failed: aggregate TCP, bridge: iperf3: boom

note: a note
`
	if got := b.String(); got != want {
		t.Errorf("writeScaleTable:\n%s\nwant:\n%s", got, want)
	}
}

func TestScaleRowsFlooded(t *testing.T) {
	s := sampleScale()
	s.Pair.IdleTxFrames = s.Pair.ReceiverFrames
	rows := s.rows()
	if last := rows[len(rows)-1]; last.result != "FLOODED" {
		t.Errorf("idle port sent as much as the receiver: result %q, want FLOODED", last.result)
	}
}

func TestScaleDriftNote(t *testing.T) {
	p := &scalePair{Few: bits(10e9), FewAgain: bits(7e9)}
	if n := p.driftNote(); !strings.Contains(n, "differ by 43%") {
		t.Errorf("driftNote(10 vs 7 Gbit/s) = %q, want a 43%% warning", n)
	}
	p.FewAgain = bits(9e9)
	if n := p.driftNote(); n != "" {
		t.Errorf("driftNote(10 vs 9 Gbit/s) = %q, want none", n)
	}
}
