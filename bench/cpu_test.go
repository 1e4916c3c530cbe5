package main

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want procCPU
	}{
		// utime 1234 and stime 567 ticks, fields 14 and 15.
		{"iperf3", readTestdata(t, "proc-pid-stat-iperf3.txt"), procCPU{comm: "iperf3", state: 'S', ticks: 1801, start: 1375735}},
		// The comm ends at the last ')', whatever it holds.
		{"comm with spaces and parentheses", readTestdata(t, "proc-pid-stat-comm-spaces.txt"), procCPU{comm: "my (odd) prog", state: 'R', ticks: 10, start: 1375999}},
		{"comm like the fields after it", []byte("7 (x) Z 1 (y) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21"), procCPU{comm: "x) Z 1 (y", state: 'R', ticks: 11 + 12, start: 19}},
		// flags 0x208040: PF_KTHREAD among them.
		{"kernel thread", []byte("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 24 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"),
			procCPU{comm: "kthreadd", state: 'S', kthread: true, start: 24}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat(tt.data)
			if err != nil || got != tt.want {
				t.Errorf("parseProcStat(%q) = %+v, %v; want %+v", tt.data, got, err, tt.want)
			}
		})
	}
}

func TestParseProcStatErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"no comm", "12 iperf3 S 1 2 3"},
		{"truncated", "12 (iperf3) S 1 2 3 4 5 6 7 8 9 10"},
		{"utime not a number", "12 (iperf3) S 1 2 3 4 5 6 7 8 9 10 x 12 13 14 15 16 17 18 19"},
		{"no state", "12 (iperf3) 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := parseProcStat([]byte(tt.data)); err == nil {
				t.Errorf("parseProcStat(%q) = %+v, nil error; want an error", tt.data, got)
			}
		})
	}
}

func TestParseProcStatCPU(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want machineCPU
		cpus int
	}{
		{"linux 6", readTestdata(t, "proc-stat.txt"), machineCPU{user: 683355, system: 512648, idle: 1412959, iowait: 8379, softirq: 81047, steal: 4694}, 2},
		// Before 2.6 the line stopped at idle; guest fields are not read.
		{"old kernel", []byte("cpu  10 20 30 40\ncpu0 10 20 30 40\n"), machineCPU{user: 10, nice: 20, system: 30, idle: 40}, 1},
		{"guest", []byte("cpu  1 2 3 4 5 6 7 8 900 900\ncpu0 0\ncpu1 0\ncpu2 0\n"), machineCPU{1, 2, 3, 4, 5, 6, 7, 8}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cpus, err := parseProcStatCPU(tt.data)
			if err != nil || got != tt.want || cpus != tt.cpus {
				t.Errorf("parseProcStatCPU = %+v, %d, %v; want %+v, %d", got, cpus, err, tt.want, tt.cpus)
			}
		})
	}
}

func TestParseProcStatCPUErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"no cpu line", "cpu0 1 2 3 4\nintr 5\n"},
		{"no per-cpu lines", "cpu  1 2 3 4 5\n"},
		{"short", "cpu  1 2\ncpu0 1 2\n"},
		{"not a number", "cpu  1 2 x 4 5\ncpu0 1 2 3 4 5\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _, err := parseProcStatCPU([]byte(tt.data)); err == nil {
				t.Errorf("parseProcStatCPU(%q) = %+v, nil error; want an error", tt.data, got)
			}
		})
	}
}

func TestCPUSplit(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	a := cpuSample{
		at:      t0,
		machine: machineCPU{user: 1000, system: 1000, idle: 1000, iowait: 50, irq: 10, softirq: 100, steal: 5},
		cpus:    2,
		procs: map[string]procCPU{
			roleSender:   {comm: "iperf3", state: 'R', ticks: 500},
			roleReceiver: {comm: "iperf3", state: 'S', ticks: 300},
		},
	}
	// 100 ticks per CPU, 200 in all, so a tick is one percent of one CPU.
	b := cpuSample{
		at:      t0.Add(time.Second),
		machine: machineCPU{user: 1060, system: 1040, idle: 1060, iowait: 54, irq: 12, softirq: 130, steal: 9},
		cpus:    2,
		procs: map[string]procCPU{
			roleSender: {comm: "iperf3", state: 'R', ticks: 550},
			// Exited: its ticks stopped mid-window.
			roleReceiver: {comm: "iperf3", state: 'Z', ticks: 320},
			// Not in the first sample.
			roleSwitch: {comm: "tapswitchd", state: 'S', ticks: 80},
		},
	}
	got, err := cpuSplit(a, b, 100)
	if err != nil {
		t.Fatalf("cpuSplit error: %v", err)
	}
	want := map[string]float64{
		"cpu_window_s":    1,
		"cpu_sender_pct":  50,
		"cpu_user_pct":    60,
		"cpu_system_pct":  40,
		"cpu_softirq_pct": 32,
		"cpu_busy_pct":    132,
		"cpu_idle_pct":    64,
		"cpu_steal_pct":   4,
	}
	checkFigures(t, "cpuSplit", got, want)

	// No steal, no key; iowait going back counts as none.
	b.machine = machineCPU{user: 1100, system: 1050, idle: 1050, iowait: 40, softirq: 100, irq: 10, steal: 5}
	got, err = cpuSplit(a, b, 100)
	if err != nil {
		t.Fatalf("cpuSplit error: %v", err)
	}
	if _, ok := got["cpu_steal_pct"]; ok {
		t.Errorf("cpuSplit without steal = %v, want no cpu_steal_pct", got)
	}
	if got["cpu_idle_pct"] != 100*2*50.0/200 {
		t.Errorf("cpuSplit idle with iowait going back = %v, want 50", got["cpu_idle_pct"])
	}

	if got, err := cpuSplit(a, a, 100); err == nil {
		t.Errorf("cpuSplit(a, a) = %v, nil error; want an error: no time passed", got)
	}
}

// TestCPUSplitLostTicks is a VM under load: 180 of the 200 ticks a
// second on two CPUs counted, and a single-threaded sender busy all
// along. The sender is 100% of one CPU, not 111%; the machine's kinds
// still add up to 200%.
func TestCPUSplitLostTicks(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	a := cpuSample{at: t0, cpus: 2, procs: map[string]procCPU{roleSender: {comm: "iperf3", state: 'R', ticks: 1000}}}
	b := cpuSample{
		at:      t0.Add(2 * time.Second),
		machine: machineCPU{user: 40, system: 230, softirq: 60, idle: 30},
		cpus:    2,
		procs:   map[string]procCPU{roleSender: {comm: "iperf3", state: 'R', ticks: 1200}},
	}
	got, err := cpuSplit(a, b, 100)
	if err != nil {
		t.Fatalf("cpuSplit error: %v", err)
	}
	checkFigures(t, "cpuSplit", got, map[string]float64{
		"cpu_window_s":    2,
		"cpu_sender_pct":  100,
		"cpu_user_pct":    200 * 40.0 / 360,
		"cpu_system_pct":  200 * 230.0 / 360,
		"cpu_softirq_pct": 200 * 60.0 / 360,
		"cpu_busy_pct":    200 * 330.0 / 360,
		"cpu_idle_pct":    200 * 30.0 / 360,
	})
}

func TestCPUSplitOthers(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	machine := machineCPU{user: 100, idle: 100}
	a := cpuSample{at: t0, cpus: 2, others: map[procKey]uint64{
		{1, 100}: 500, // runs on
		{2, 100}: 10,  // exits in the window
		{3, 50}:  0,   // runs on; its pid is reused by nobody
		{5, 60}:  40,  // exits, and a new process gets its pid
	}}
	b := cpuSample{at: t0.Add(2 * time.Second), machine: machine, cpus: 2, others: map[procKey]uint64{
		{1, 100}: 560,
		{3, 50}:  5,
		{4, 950}: 30, // started in the window
		{5, 970}: 15,
	}}
	got, err := cpuSplit(a, b, 100)
	if err != nil {
		t.Fatalf("cpuSplit error: %v", err)
	}
	// 60+5+30+15 ticks over 2 s at 100 a second.
	if want := 55.0; !near(got["cpu_others_pct"], want) {
		t.Errorf("cpu_others_pct = %v, want %v", got["cpu_others_pct"], want)
	}
	a.others = nil
	if got, _ := cpuSplit(a, b, 100); got["cpu_others_pct"] != 0 {
		t.Errorf("cpu_others_pct without a first reading = %v, want none", got["cpu_others_pct"])
	}
}

func TestClockTicks(t *testing.T) {
	// USER_HZ is 100 on every architecture Go runs Linux on.
	if got := clockTicks(); got != 100 {
		t.Errorf("clockTicks() = %v, want 100", got)
	}
}

func checkFigures(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || !near(g, v) {
			t.Errorf("%s[%s] = %v (present: %v), want %v", what, k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s has %s = %v, want none", what, k, got[k])
		}
	}
}

func TestAddCPUPerUnit(t *testing.T) {
	tests := []struct {
		name   string
		detail map[string]float64
		unit   string
		rate   float64
		scale  float64
		want   map[string]float64
	}{
		{
			// 10 Gbit/s is 1.25 GB/s.
			name:   "TCP",
			detail: map[string]float64{"cpu_busy_pct": 150, "cpu_switch_pct": 60},
			unit:   perGB, rate: 10e9 / 8 / 1e9, scale: 1,
			want: map[string]float64{"cpu_busy_pct": 150, "cpu_switch_pct": 60, "cpu_busy_s_per_gb": 1.2, "cpu_switch_s_per_gb": 0.48},
		},
		{
			name:   "UDP on the bridge",
			detail: map[string]float64{"cpu_busy_pct": 200},
			unit:   perFrame, rate: 500e3, scale: 1e6,
			want: map[string]float64{"cpu_busy_pct": 200, "cpu_busy_us_per_frame": 4},
		},
		{
			// The same UDP test per frame delivered: a third of those sent.
			name:   "UDP per frame delivered",
			detail: map[string]float64{"cpu_busy_pct": 190, "cpu_switch_pct": 69},
			unit:   perDeliveredFrame, rate: 97.1e3, scale: 1e6,
			want: map[string]float64{"cpu_busy_pct": 190, "cpu_switch_pct": 69,
				"cpu_busy_us_per_delivered_frame": 1.9 / 97.1e3 * 1e6, "cpu_switch_us_per_delivered_frame": 0.69 / 97.1e3 * 1e6},
		},
		{
			name:   "no rate",
			detail: map[string]float64{"cpu_busy_pct": 200},
			unit:   perFrame, rate: 0, scale: 1e6,
			want: map[string]float64{"cpu_busy_pct": 200},
		},
		{
			name:   "not measured",
			detail: map[string]float64{"seconds": 5},
			unit:   perGB, rate: 1, scale: 1,
			want: map[string]float64{"seconds": 5},
		},
		{name: "nil", unit: perGB, rate: 1, scale: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addCPUPerUnit(tt.detail, tt.unit, tt.rate, tt.scale)
			checkFigures(t, "detail", tt.detail, tt.want)
		})
	}
}

func TestUDPSentRate(t *testing.T) {
	_, detail, err := parseIperfUDP(readTestdata(t, "iperf3-udp-64b.json"))
	if err != nil {
		t.Fatalf("parseIperfUDP error: %v", err)
	}
	tests := []struct {
		name   string
		detail map[string]float64
		want   float64
	}{
		{"client's count", detail, detail["sent_packets_per_second"]},
		// Without sum_sent: the server's highest sequence number.
		{"server's count", map[string]float64{"delivered_packets": 800, "lost_packets": 200, "seconds": 2}, 500},
		{"nothing", map[string]float64{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := udpSentRate(tt.detail); !near(got, tt.want) || got == 0 && tt.want != 0 {
				t.Errorf("udpSentRate(%v) = %v, want %v", tt.detail, got, tt.want)
			}
		})
	}
}

func TestCPUMargin(t *testing.T) {
	tests := []struct {
		seconds int
		want    time.Duration
	}{
		{1, 200 * time.Millisecond},
		{3, 600 * time.Millisecond},
		{5, time.Second},
		{60, time.Second},
	}
	for _, tt := range tests {
		if got := cpuMargin(tt.seconds); got != tt.want {
			t.Errorf("cpuMargin(%d) = %v, want %v", tt.seconds, got, tt.want)
		}
	}
}

func TestIRQTimeAccounting(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   bool
	}{
		{"set", "CONFIG_TICK_CPU_ACCOUNTING=y\nCONFIG_IRQ_TIME_ACCOUNTING=y\n", true},
		{"not set", "CONFIG_TICK_CPU_ACCOUNTING=y\n# CONFIG_IRQ_TIME_ACCOUNTING is not set\nCONFIG_HAVE_IRQ_TIME_ACCOUNTING=y\n", false},
		{"absent", "CONFIG_HAVE_IRQ_TIME_ACCOUNTING=y\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := irqTimeAccounting([]byte(tt.config)); got != tt.want {
				t.Errorf("irqTimeAccounting(%q) = %v, want %v", tt.config, got, tt.want)
			}
		})
	}
}

// TestCPUWatch runs the watch alongside a real child, sleep, which
// stands in for the client: an idle one, so the test costs no CPU.
func TestCPUWatch(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep")
	}
	// The test binary stands in for the switch, and for a server that is
	// not the program expected: it must be left out, not misreported.
	w := newCPUWatch(1, "sleep", os.Getpid(), os.Getpid())
	w.others[0].comm = "iperf3"
	if err := runCmd(exec.Command("sleep", "1"), w.watch); err != nil {
		t.Fatalf("sleep 1: %v", err)
	}
	for _, k := range []string{"cpu_sender_pct", "cpu_switch_pct", "cpu_others_pct", "cpu_busy_pct", "cpu_idle_pct", "cpu_softirq_pct"} {
		if _, ok := w.figures[k]; !ok {
			t.Errorf("figures = %v, want %s", w.figures, k)
		}
	}
	if _, ok := w.figures["cpu_receiver_pct"]; ok {
		t.Errorf("figures = %v, want no cpu_receiver_pct: the receiver is not iperf3", w.figures)
	}
	if w.err == nil || !strings.Contains(w.err.Error(), `receiver (pid`) {
		t.Errorf("err = %v, want one naming the receiver", w.err)
	}
	if s := w.figures["cpu_window_s"]; s < 0.5 || s > 0.7 {
		t.Errorf("cpu_window_s = %v, want 0.6: a second less a fifth at each end", s)
	}
	if p := w.figures["cpu_sender_pct"]; p > 5 {
		t.Errorf("cpu_sender_pct = %v for sleep, want about 0", p)
	}
}

func TestCPUWatchClientExited(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if _, err := exec.LookPath("true"); err != nil {
		t.Skip("no true")
	}
	w := newCPUWatch(5, "true", os.Getpid(), 0)
	start := time.Now()
	if err := runCmd(exec.Command("true"), w.watch); err != nil {
		t.Fatalf("true: %v", err)
	}
	if w.figures != nil || !errors.Is(w.err, errClientExited) {
		t.Errorf("watch of a client gone at once = %v, %v; want nil, %v", w.figures, w.err, errClientExited)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("runCmd took %v after the client exited, want no wait for the window", d)
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add(readTestdata(f, "proc-pid-stat-iperf3.txt"))
	f.Add(readTestdata(f, "proc-pid-stat-comm-spaces.txt"))
	f.Add([]byte("1 ()) ( R"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseProcStat(data)
		if err == nil && strings.Count(string(data), ")") == 0 {
			t.Errorf("parseProcStat(%q) = %+v without a ')'", data, p)
		}
	})
}

func FuzzParseProcStatCPU(f *testing.F) {
	f.Add(readTestdata(f, "proc-stat.txt"))
	f.Add([]byte("cpu  1 2 3 4\ncpu0 1 2 3 4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, cpus, err := parseProcStatCPU(data); err == nil && cpus == 0 {
			t.Errorf("parseProcStatCPU(%q) = 0 CPUs, nil error", data)
		}
	})
}
