package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/privtest"
)

func TestParsePerfReportTestdata(t *testing.T) {
	tests := []struct {
		name string
		file string
		// entries is how many lines the file has; first, last and odd
		// are three of them.
		entries          int
		first, last, odd perfEntry
	}{
		// perf report --no-children --sort comm,dso,sym --stdio -g none
		// --percentage relative of a second of a mostly idle machine.
		{"comm,dso,sym", "perf-report.txt", 32,
			perfEntry{96.64, "swapper", "[kernel.kallsyms]", 'k', "pv_native_safe_halt"},
			perfEntry{0.10, "swapper", "[kernel.kallsyms]", 'k', "tlb_remove_table_rcu"},
			// A shared object with a space in its name.
			perfEntry{0.10, "memfd:sealed-91", "memfd:sealed-91173221a7ea (deleted)", '.', "0x00000000000c3055"}},
		// The same samples with -n, a Samples column before the command,
		// and --sort comm,dso,sym,cpu, a CPU column after the symbol.
		{"extra columns", "perf-report-extra-columns.txt", 33,
			perfEntry{96.64, "swapper", "[kernel.kallsyms]", 'k', "pv_native_safe_halt"},
			perfEntry{0.10, "swapper", "[kernel.kallsyms]", 'k', "tlb_remove_table_rcu"},
			perfEntry{0.10, "memfd:sealed-91", "memfd:sealed-91173221a7ea (deleted)", '.', "0x00000000000c3055"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parsePerfReport(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("parsePerfReport(%s): %v", tt.file, err)
			}
			if r.event != "cpu-clock" || r.eventCount != 1014014013 || r.skipped != 0 || len(r.entries) != tt.entries {
				t.Fatalf("parsePerfReport(%s) = event %q, count %v, %d skipped, %d entries; want cpu-clock, 1014014013, 0, %d",
					tt.file, r.event, r.eventCount, r.skipped, len(r.entries), tt.entries)
			}
			if got := r.entries[0]; got != tt.first {
				t.Errorf("first entry = %v, want %v", got, tt.first)
			}
			if got := r.entries[len(r.entries)-1]; got != tt.last {
				t.Errorf("last entry = %v, want %v", got, tt.last)
			}
			found := false
			for _, e := range r.entries {
				found = found || e == tt.odd
			}
			if !found {
				t.Errorf("no entry %v", tt.odd)
			}
		})
	}
}

func TestParsePerfReport(t *testing.T) {
	const header = "# Samples: 6K of event 'cpu-clock'\n" +
		"# Event count (approx.): 3003003000\n" +
		"#\n" +
		"# Overhead  Command      Shared Object      Symbol\n" +
		"# ........  ...........  .................  ....................................\n" +
		"#\n"
	tests := []struct {
		name    string
		report  string
		want    []perfEntry
		skipped int
	}{
		{"symbol with spaces", header +
			"    12.34%  iperf3       [kernel.kallsyms]  [k] _copy_to_iter\n" +
			"     1.00%  handler1     libstdc++.so.6     [.] std::vector<int, std::allocator<int> >::size() const\n",
			[]perfEntry{
				{12.34, "iperf3", "[kernel.kallsyms]", 'k', "_copy_to_iter"},
				{1.00, "handler1", "libstdc++.so.6", '.', "std::vector<int, std::allocator<int> >::size() const"},
			}, 0},
		// An entry wider than its column shifts the rest of its line:
		// split at runs of spaces instead.
		{"entry wider than its column", header +
			"     1.00%  iperf3       /usr/lib/x86_64-linux-gnu/libc.so.6  [.] __memmove_avx_unaligned_erms\n",
			[]perfEntry{{1.00, "iperf3", "/usr/lib/x86_64-linux-gnu/libc.so.6", '.', "__memmove_avx_unaligned_erms"}}, 0},
		{"command with spaces", header +
			"     2.50%  Web Content  libxul.so          [.] js::RunScript(JSContext*, js::RunState&)\n",
			[]perfEntry{{2.5, "Web Content", "libxul.so", '.', "js::RunScript(JSContext*, js::RunState&)"}}, 0},
		{"trailing column without a header", header +
			"    12.34%  iperf3       [kernel.kallsyms]  [k] _copy_to_iter                         001\n",
			[]perfEntry{{12.34, "iperf3", "[kernel.kallsyms]", 'k', "_copy_to_iter"}}, 0},
		{"no header", "    12.34%  iperf3  [kernel.kallsyms]  [k] _copy_to_iter  001\n" +
			"     0.50%  iperf3  [kernel.kallsyms]  [k] do one thing\n",
			[]perfEntry{
				{12.34, "iperf3", "[kernel.kallsyms]", 'k', "_copy_to_iter"},
				{0.5, "iperf3", "[kernel.kallsyms]", 'k', "do one thing"},
			}, 0},
		{"not entries", header +
			"    12.34%  iperf3       [kernel.kallsyms]  [k] _copy_to_iter\n" +
			"       NaN%  iperf3       [kernel.kallsyms]  [k] x\n" +
			"    -1.00%  iperf3       [kernel.kallsyms]  [k] x\n" +
			"     1.00   iperf3       [kernel.kallsyms]  [k] x\n" +
			"     1.00%  iperf3       [kernel.kallsyms]  x\n" +
			"Warning: something\n" +
			"\n",
			[]perfEntry{{12.34, "iperf3", "[kernel.kallsyms]", 'k', "_copy_to_iter"}}, 5},
		{"CRLF", strings.ReplaceAll(header+"    12.34%  iperf3       [kernel.kallsyms]  [k] _copy_to_iter\n", "\n", "\r\n"),
			[]perfEntry{{12.34, "iperf3", "[kernel.kallsyms]", 'k', "_copy_to_iter"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parsePerfReport([]byte(tt.report))
			if err != nil {
				t.Fatalf("parsePerfReport: %v", err)
			}
			if len(r.entries) != len(tt.want) || r.skipped != tt.skipped {
				t.Fatalf("parsePerfReport = %v, %d skipped; want %v, %d skipped", r.entries, r.skipped, tt.want, tt.skipped)
			}
			for i := range tt.want {
				if r.entries[i] != tt.want[i] {
					t.Errorf("entry %d = %v, want %v", i, r.entries[i], tt.want[i])
				}
			}
		})
	}
}

func TestParsePerfReportErrors(t *testing.T) {
	for _, report := range []string{"", "# only\n# comments\n", "perf: failed to open perf.data\n"} {
		if r, err := parsePerfReport([]byte(report)); !errors.Is(err, errNoPerfEntries) {
			t.Errorf("parsePerfReport(%q) = %v, %v; want %v", report, r.entries, err, errNoPerfEntries)
		}
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		comm   string
		space  byte
		symbol string
		want   string
	}{
		{"swapper", 'k', "pv_native_safe_halt", kindIdle},
		// The idle task's interrupts count as idle too.
		{"swapper", 'k', "__netif_receive_skb_core", kindIdle},
		{"iperf3", 'k', "_copy_to_iter", "copy"},
		{"iperf3", 'k', "rep_movs_alternative", "copy"},
		{"tapswitchd", 'k', "__check_object_size", "copy"},
		{"tapswitchd", 'k', "finish_task_switch.isra.0", "sched"},
		{"tapswitchd", 'k', "_raw_spin_unlock_irqrestore", "sched"},
		{"iperf3", 'k', "kmem_cache_alloc_node_noprof", "alloc"},
		{"iperf3", 'k', "skb_release_data", "alloc"},
		{"tapswitchd", 'k', "entry_SYSCALL_64", "syscall"},
		{"tapswitchd", 'k', "srso_alias_safe_ret", "syscall"},
		{"tapswitchd", 'k', "tun_get_user", "tap"},
		{"iperf3", 'k', "tcp_ack", kindStack},
		// First match wins: tun_ would be tap, but sched comes first.
		{"tapswitchd", 'k', "tun_sched_thing", "sched"},
		{"tapswitchd", '.', "runtime.memmove", kindUser},
		{"ovs-vswitchd", '.', "dp_netdev_input__", kindUser},
		{"qemu", 'g', "copy_to_iter", kindStack},
	}
	for _, tt := range tests {
		e := perfEntry{percent: 1, comm: tt.comm, dso: "x", space: tt.space, symbol: tt.symbol}
		if got := kindOf(e); got != tt.want {
			t.Errorf("kindOf(%v) = %q, want %q", e, got, tt.want)
		}
	}
}

func TestSummarisePerf(t *testing.T) {
	rep := perfReport{
		event: "cpu-clock",
		// 4 s of CPU time in a 2 s window: two CPUs sampled throughout.
		eventCount: 4e9,
		entries: []perfEntry{
			{40, "swapper", "[kernel.kallsyms]", 'k', "pv_native_safe_halt"},
			{10, "swapper", "[kernel.kallsyms]", 'k', "net_rx_action"},
			{20, "iperf3", "[kernel.kallsyms]", 'k', "_copy_to_iter"},
			{6, "tapswitchd", "[kernel.kallsyms]", 'k', "tun_get_user"},
			{4, "tapswitchd", "[kernel.kallsyms]", 'k', "_copy_from_iter"},
			{10, "tapswitchd", "tapswitchd", '.', "runtime.memmove"},
			{5, "ksoftirqd/0", "[kernel.kallsyms]", 'k', "tcp_v4_rcv"},
			// The percentages sum to 100 only nearly.
			{5.5, "iperf3", "[kernel.kallsyms]", 'k', "schedule"},
		},
	}
	s, err := summarisePerf(rep, 2*time.Second, map[string]bool{"tapswitchd": true})
	if err != nil {
		t.Fatal(err)
	}
	// 1 GB/s received: per GB is per second.
	got := s.figures(profPerGB, 1, 1e3)
	f := func(pct float64) float64 { return pct / 100.5 * 2 }
	want := map[string]float64{
		"prof_window_s":         2,
		"prof_cpus":             2,
		"prof_idle_pct":         100 * f(50),
		"prof_swapper_busy_pct": 100 * f(10),
		"prof_comm_iperf3_pct":  100 * f(25.5),
		"prof_comm_switch_pct":  100 * f(20),
		"prof_comm_others_pct":  100 * f(5),
		"prof_copy_ms_per_gb":   1e3 * f(24),
		// The switch's own copies: not iperf3's, nor its user space's.
		"prof_switch_copy_ms_per_gb": 1e3 * f(4),
		"prof_sched_ms_per_gb":       1e3 * f(5.5),
		"prof_alloc_ms_per_gb":       0,
		"prof_syscall_ms_per_gb":     0,
		"prof_tap_ms_per_gb":         1e3 * f(6),
		"prof_stack_ms_per_gb":       1e3 * f(5),
		"prof_user_ms_per_gb":        1e3 * f(10),
		"prof_busy_ms_per_gb":        1e3 * f(50.5),
	}
	if len(got) != len(want) {
		t.Errorf("figures = %v, want %v", got, want)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !near(g, w) {
			t.Errorf("figures[%s] = %v, want %v", k, g, w)
		}
	}

	// No switch process, no rate: no switch share, no per-unit figures.
	s, err = summarisePerf(rep, 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	got = s.figures(perDeliveredFrame, 0, 1e6)
	if _, ok := got["prof_comm_switch_pct"]; ok {
		t.Errorf("figures without a switch process have prof_comm_switch_pct")
	}
	if _, ok := got["prof_switch_copy_"+perDeliveredFrame]; ok {
		t.Errorf("figures without a switch process have prof_switch_copy_%s", perDeliveredFrame)
	}
	if _, ok := got["prof_busy_"+perDeliveredFrame]; ok {
		t.Errorf("figures without a rate have prof_busy_%s", perDeliveredFrame)
	}
	if g, w := got["prof_comm_others_pct"], 100*f(25); !near(g, w) {
		t.Errorf("figures without a switch process: others = %v, want %v", g, w)
	}
}

func TestSummarisePerfErrors(t *testing.T) {
	entries := []perfEntry{{100, "iperf3", "[kernel.kallsyms]", 'k', "tcp_ack"}}
	tests := []struct {
		name   string
		rep    perfReport
		window time.Duration
	}{
		{"no event count", perfReport{entries: entries}, time.Second},
		{"other event", perfReport{event: "cycles", eventCount: 1e9, entries: entries}, time.Second},
		{"no window", perfReport{eventCount: 1e9, entries: entries}, 0},
		{"no samples", perfReport{eventCount: 1e9, entries: []perfEntry{{0, "iperf3", "x", 'k', "y"}}}, time.Second},
	}
	for _, tt := range tests {
		if s, err := summarisePerf(tt.rep, tt.window, nil); err == nil {
			t.Errorf("%s: summarisePerf = %+v, nil error; want an error", tt.name, s)
		}
	}
}

func TestSummarisePerfTestdata(t *testing.T) {
	rep, err := parsePerfReport(readTestdata(t, "perf-report.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// perf slept 1 s; the samples stand for 1.014 CPUs' time, on two
	// CPUs, one of them idle and hardly sampled.
	s, err := summarisePerf(rep, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range s.kinds {
		sum += f
	}
	if !near(sum, 1) || !near(s.cpus, 1.014014013) {
		t.Errorf("summarisePerf: kinds sum to %v, cpus %v; want 1, 1.014014013", sum, s.cpus)
	}
	if idle := s.kinds[kindIdle]; idle < 0.96 || idle > 0.98 {
		t.Errorf("summarisePerf: idle %v, want 0.9684 (all of swapper)", idle)
	}
}

func TestProfileDir(t *testing.T) {
	tests := []struct{ json, want string }{
		{"bench/results/20250102T030405Z.json", "bench/results/20250102T030405Z-perf"},
		{"/tmp/run.json", "/tmp/run-perf"},
		{"/tmp/run", "/tmp/run-perf"},
		{"", "bench/results/20250102T030405Z-perf"},
	}
	for _, tt := range tests {
		if got := profileDir(tt.json, "20250102T030405Z"); got != tt.want {
			t.Errorf("profileDir(%q) = %q, want %q", tt.json, got, tt.want)
		}
	}
}

func TestProfilerNil(t *testing.T) {
	var p *profiler
	r := p.forPass("bridge", 1).recording(t.Context(), metricTCP1.Key, 5, 0)
	if r != nil || r.watcher() != nil || r.figures(profPerGB, 1, 1e3) != nil {
		t.Errorf("a nil profiler's recording = %v, want nil with no watcher and no figures", r)
	}
}

func TestProfilerNames(t *testing.T) {
	p := &profiler{dir: "results/x-perf"}
	for _, tt := range []struct {
		system string
		pass   int
		want   string
	}{
		{"tapswitch", 1, "results/x-perf/tapswitch-tcp_1_stream.data"},
		{"bridge", 2, "results/x-perf/bridge-pass2-tcp_1_stream.data"},
	} {
		if got := p.forPass(tt.system, tt.pass).recording(t.Context(), metricTCP1.Key, 5, 0).path; got != tt.want {
			t.Errorf("data file of %s pass %d = %q, want %q", tt.system, tt.pass, got, tt.want)
		}
	}
}

func TestFormatSeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{3 * time.Second, "3"}, {2400 * time.Millisecond, "2.4"}, {time.Second / 3, "0.333"}} {
		if got := formatSeconds(tt.d); got != tt.want {
			t.Errorf("formatSeconds(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestPerfRecordingClientExited runs perf record for real, as root, with
// a client that exits in the middle of the window: perf must be stopped,
// its sleep with it, and the incomplete data removed.
func TestPerfRecordingClientExited(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("perf is Linux's")
	}
	privtest.Require(t, "record a system-wide profile", "perf")
	// 5 s: the window is from 1 s to 4 s; the client is gone at 2 s.
	p := (&profiler{dir: t.TempDir()}).forPass("bridge", 1)
	r := p.recording(t.Context(), metricTCP1.Key, 5, os.Getpid())
	var pgid int
	watch := func(pid int, exited <-chan struct{}) {
		r.watch(pid, exited)
		pgid = r.pid
	}
	start := time.Now()
	if err := runCmd(exec.Command("sleep", "2"), watch); err != nil {
		t.Fatalf("sleep 2: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second+perfStopGrace/2 {
		t.Errorf("runCmd took %v, want perf stopped soon after the client exited at 2 s", d)
	}
	if r.window != 0 || r.figures(profPerGB, 1, 1e3) != nil {
		t.Errorf("recording of a client gone in its window: window %v, want 0 and no figures", r.window)
	}
	if _, err := os.Stat(r.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("incomplete %s: stat = %v, want it removed", r.path, err)
	}
	if pgid == 0 {
		t.Fatal("perf record did not start")
	}
	// perf led its own process group; nothing of it may be left.
	if err := unix.Kill(-pgid, 0); !errors.Is(err, unix.ESRCH) {
		t.Errorf("perf's process group %d: kill 0 = %v, want ESRCH: perf or its sleep left behind", pgid, err)
	}
	if !r.switchComms[readComm(t, os.Getpid())] {
		t.Errorf("switchComms = %v, want this process's threads' names", r.switchComms)
	}
}

func readComm(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// profReport is sampleReport with profile figures for the bridge's and
// tapswitch's TCP 1 stream and the bridge's UDP 64 B.
func profReport() *report {
	r := sampleReport()
	set := func(p *passResult, key string, d map[string]float64) {
		for i := range p.Results {
			if p.Results[i].Metric == key {
				p.Results[i].Detail = d
			}
		}
	}
	set(&r.Systems[0], metricTCP1.Key, map[string]float64{
		"prof_busy_ms_per_gb": 499, "prof_copy_ms_per_gb": 146, "prof_sched_ms_per_gb": 78, "prof_alloc_ms_per_gb": 28,
		"prof_syscall_ms_per_gb": 12, "prof_tap_ms_per_gb": 0, "prof_stack_ms_per_gb": 228, "prof_user_ms_per_gb": 7,
		"prof_comm_iperf3_pct": 150, "prof_comm_others_pct": 36, "prof_idle_pct": 14})
	set(&r.Systems[1], metricTCP1.Key, map[string]float64{
		"prof_busy_ms_per_gb": 968.4, "prof_copy_ms_per_gb": 311, "prof_sched_ms_per_gb": 194, "prof_alloc_ms_per_gb": 61,
		"prof_syscall_ms_per_gb": 43, "prof_tap_ms_per_gb": 29, "prof_stack_ms_per_gb": 296, "prof_user_ms_per_gb": 34.4,
		"prof_switch_copy_ms_per_gb": 251,
		"prof_comm_iperf3_pct":       101, "prof_comm_switch_pct": 79.6, "prof_comm_others_pct": 3, "prof_idle_pct": 16})
	set(&r.Systems[0], metricUDP64.Key, map[string]float64{
		"prof_busy_us_per_delivered_frame": 4.123, "prof_copy_us_per_delivered_frame": 0.5, "prof_sched_us_per_delivered_frame": 1,
		"prof_alloc_us_per_delivered_frame": 0.75, "prof_syscall_us_per_delivered_frame": 0.25, "prof_tap_us_per_delivered_frame": 0,
		"prof_stack_us_per_delivered_frame": 1.5, "prof_user_us_per_delivered_frame": 0.123,
		"prof_comm_iperf3_pct": 190, "prof_comm_others_pct": 5, "prof_idle_pct": 5})
	return r
}

func TestWriteProfileTable(t *testing.T) {
	var b bytes.Buffer
	if err := profReport().writeProfileTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `
where the CPU went by kind of work (perf -a over the same window; CPU per GB received or per frame delivered)
test                system           busy           copy  wake+sched  alloc  syscall  tap  stack+other  user  switch copy    iperf3 %  switch %  others %  idle %
TCP 1 stream        bridge           499 ms/GB      146   78          28     12       -    228          7     -              150       -         36        14
TCP 1 stream        tapswitch        968 ms/GB      311   194         61     43       29   296          34    251            101       80        3         16
TCP 1 stream        ovs              -              -     -           -      -        -    -            -     -              -         -         -         -
TCP 1 stream        bridge (pass 2)  -              -     -           -      -        -    -            -     -              -         -         -         -
UDP 64 B delivered  bridge           4.12 us/frame  0.50  1.00        0.75   0.25     -    1.50         0.12  -              190       -         5         5
UDP 64 B delivered  tapswitch        -              -     -           -      -        -    -            -     -              -         -         -         -
UDP 64 B delivered  ovs              -              -     -           -      -        -    -            -     -              -         -         -         -
UDP 64 B delivered  bridge (pass 2)  -              -     -           -      -        -    -            -     -              -         -         -         -
busy: every sample but the idle task's and the idle loop's; kinds by the kernel function sampled (see go doc ./bench): stack+other is the rest of the kernel, the network stack mostly; user is all user-space code.
switch copy: the part of copy in the switch's own threads, its reads and writes of frames from and to TAPs and sockets, which a path inside the kernel does not make.
iperf3 % to idle %: the samples by thread, % of one CPU; switch is the switch's own threads, others everything else busy, ksoftirqd and kworkers among them.
` + profCeiling
	if got := b.String(); got != want {
		t.Errorf("writeProfileTable:\n%s\nwant:\n%s", got, want)
	}
}

// profCeiling is the copy ceiling of profReport.
const profCeiling = `
copy ceiling (the fastest a switch could go if its path cost the bridge's work plus its own copies and nothing else)
test          system     bridge busy  switch copy  at most       bridge        at most/bridge
TCP 1 stream  tapswitch  499 ms/GB    251 ms/GB    21.33 Gbit/s  16.00 Gbit/s  1.33x
at most: 2 CPUs / (bridge busy + switch copy), every CPU busy; bridge busy and bridge are the means of the bridge's profiled passes. Under 1x, the switch cannot reach the bridge's rate on this machine whatever else it does.
`

func TestWriteCopyCeiling(t *testing.T) {
	// 2 CPUs / (499 + 251 ms/GB) = 2.667 GB/s, 21.33 Gbit/s, against the
	// bridge's 16 (its only profiled pass).
	r := profReport()
	var b bytes.Buffer
	if err := r.writeCopyCeiling(&b); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), profCeiling; got != want {
		t.Errorf("writeCopyCeiling:\n%s\nwant:\n%s", got, want)
	}

	// One CPU, and the bridge's second pass profiled too: the means of
	// 499 and 501 ms/GB, 16 and 20 Gbit/s; 1 CPU / 751 ms/GB is 10.65
	// Gbit/s.
	r.Machine.NProc = 1
	for i := range r.Systems {
		if r.Systems[i].System == baseline && r.Systems[i].Pass == 2 {
			for j := range r.Systems[i].Results {
				if r.Systems[i].Results[j].Metric == metricTCP1.Key {
					r.Systems[i].Results[j].Detail = map[string]float64{"prof_busy_ms_per_gb": 501}
				}
			}
		}
	}
	b.Reset()
	if err := r.writeCopyCeiling(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "TCP 1 stream  tapswitch  500 ms/GB    251 ms/GB    10.65 Gbit/s  18.00 Gbit/s  0.59x") {
		t.Errorf("writeCopyCeiling with 1 CPU and both bridge passes:\n%s", b.String())
	}

	// Without the switch's copies, no ceiling.
	r = cpuReport()
	b.Reset()
	if err := r.writeCopyCeiling(&b); err != nil || b.Len() != 0 {
		t.Errorf("writeCopyCeiling without profiles = %q, %v; want nothing", b.String(), err)
	}
}

func TestWriteProfileTableWithoutFigures(t *testing.T) {
	var b bytes.Buffer
	if err := cpuReport().writeProfileTable(&b); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Errorf("writeProfileTable with no profile figures printed:\n%s\nwant nothing", b.String())
	}
}

func FuzzParsePerfReport(f *testing.F) {
	f.Add(readTestdata(f, "perf-report.txt"))
	f.Add(readTestdata(f, "perf-report-extra-columns.txt"))
	f.Add([]byte("# Overhead  Command  Shared Object  Symbol\n# ........  .......  .............  ......\n  1.00%  a  b  [k] c\n"))
	f.Add([]byte("# a\n# .\n   1%  x  y  [.] z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parsePerfReport(data)
		if err != nil {
			if len(r.entries) != 0 {
				t.Errorf("parsePerfReport(%q) = %d entries and error %v", data, len(r.entries), err)
			}
			return
		}
		for _, e := range r.entries {
			if e.percent < 0 || math.IsNaN(e.percent) || math.IsInf(e.percent, 0) || e.comm == "" || e.symbol == "" {
				t.Errorf("parsePerfReport(%q): entry %v", data, e)
			}
			kindOf(e)
		}
		if s, err := summarisePerf(r, time.Second, map[string]bool{"a": true}); err == nil {
			var sum float64
			for _, v := range s.kinds {
				sum += v
			}
			if math.Abs(sum-1) > 1e-6 {
				t.Errorf("parsePerfReport(%q): kinds sum to %v, want 1", data, sum)
			}
		}
	})
}
