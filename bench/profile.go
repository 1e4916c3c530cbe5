package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Where the CPU went by kind of work (-profile): during each throughput
// test, over the same window cpu.go reads /proc in, perf samples every
// CPU (perf record -a); perf report then sorts the samples by command
// and function, and kindOf sorts the functions into kinds of work
// (copy, wake-up and scheduling, allocation, ...). Each kind becomes CPU
// time per unit of the test's traffic, like cpu.go's busy per unit:
//
//	CPU-seconds per second of a kind = its share of the samples
//	                                   × the CPU time they stand for / window
//
// The CPU time the samples stand for is perf's event count: cpu-clock
// counts nanoseconds, one sampling period per sample. It is not the
// number of CPUs times the window: on a 2-CPU cloud VM, an
// idle CPU took some 16 samples a second instead of 999, so shares of the
// samples overstate busy work as much as idle is undersampled, while
// busy CPUs are sampled in full (prof_cpus says how many CPUs' worth the
// samples cover).

// perfFreq is the sampling frequency, per CPU: just off the kernel's
// 1000 Hz and 250 Hz ticks, so that samples do not fall in step with the
// work the tick does.
const perfFreq = 999

// perfEvent is the event sampled: the software clock, the only one a VM
// without a virtual PMU offers, and the one whose count is time.
const perfEvent = "cpu-clock"

// perfStopGrace is how long perf record may take to write its data
// after SIGINT before it is killed, with its sleep.
const perfStopGrace = 10 * time.Second

// perfFinishTimeout bounds how long perf record may run past its
// window once the client has exited: it reads its own data back to
// collect build IDs, which takes well under a second for a few seconds'
// samples.
const perfFinishTimeout = 30 * time.Second

// profPerGB is the unit of the TCP rows' profile figures, the suffix of
// prof_<kind>_<unit>: CPU-milliseconds per GB (1e9 bytes) received. The
// UDP 64 B row's are per frame delivered (perDeliveredFrame), where
// cpu.go's table has them per frame sent.
const profPerGB = "ms_per_gb"

// Processes whose share of the samples the profile reports, as
// prof_comm_<name>_pct.
const (
	procIperf  = "iperf3"
	procSwitch = "switch"
	procOthers = "others"
)

// A profiler records a perf profile of each throughput test, one data
// file per test, into a directory beside the JSON results.
type profiler struct {
	dir string
	// name starts each data file's name: the system, and its pass
	// after the first. Empty until forPass.
	name string
}

// newProfiler returns the profiler for -profile writing into dir, or
// nil, having said why, when perf is missing or dir cannot be made: a
// run goes on without profiles rather than fail.
func newProfiler(dir string) *profiler {
	if _, err := exec.LookPath("perf"); err != nil {
		logf("-profile: perf not found, so no profiles this run; install it with: apt-get install -y linux-perf (Debian)")
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		logf("-profile: %v; no profiles this run", err)
		return nil
	}
	logf("profiles go to %s", dir)
	return &profiler{dir: dir}
}

// forPass returns the profiler for one pass of system; nil for nil.
func (p *profiler) forPass(system string, pass int) *profiler {
	if p == nil {
		return nil
	}
	name := fileSafe(system)
	if pass > 1 {
		name = fmt.Sprintf("%s-pass%d", name, pass)
	}
	return &profiler{dir: p.dir, name: name}
}

// recording returns a recording of the test whose metric is key,
// seconds long, with the switch's process at switchPID (0 for none);
// nil for nil, which records nothing.
func (p *profiler) recording(ctx context.Context, key string, seconds, switchPID int) *perfRecording {
	if p == nil {
		return nil
	}
	return &perfRecording{
		ctx:       ctx,
		path:      filepath.Join(p.dir, p.name+"-"+key+".data"),
		seconds:   seconds,
		switchPID: switchPID,
	}
}

// A perfRecording is one test's profile. Its watch method runs
// alongside the client (see runCmd) and records; figures, once the run
// has returned, summarises. Neither ever fails the test.
type perfRecording struct {
	ctx       context.Context
	path      string // the data file
	seconds   int    // the client's planned run time
	switchPID int
	// pid is perf record's, once started, and its process group's.
	pid int
	// window is how long perf recorded, set once it has recorded a
	// whole window; 0 before and on failure.
	window time.Duration
	// switchComms are the names of the switch's threads, which perf
	// reports samples by: tapswitchd's are all "tapswitchd", while
	// ovs-vswitchd names its own (handler1, revalidator2, urcu3, ...).
	switchComms map[string]bool
}

// watcher returns the recording's watcher, nil for nil.
func (r *perfRecording) watcher() watcher {
	if r == nil {
		return nil
	}
	return r.watch
}

func (r *perfRecording) watch(pid int, exited <-chan struct{}) {
	if err := r.record(exited); err != nil {
		logf("  profile: %v", err)
	}
}

// record runs perf record over the middle of the client's run, from
// cpuMargin after it started to cpuMargin before its planned end, as
// cpuWatch measures. perf is stopped, and waited for, if the client
// exits before the window ends or the run is interrupted; its data is
// then incomplete and removed.
func (r *perfRecording) record(exited <-chan struct{}) error {
	margin := cpuMargin(r.seconds)
	window := time.Duration(r.seconds)*time.Second - 2*margin
	if !waitUntil(time.Now().Add(margin), exited) {
		return errClientExited
	}
	r.switchComms = threadComms(r.switchPID)
	// Not killed through ctx, which os/exec would do with SIGKILL and
	// leave perf's sleep behind: stop sends SIGINT, on which perf record
	// writes its data, ends its workload and exits.
	cmd := command(context.WithoutCancel(r.ctx), "perf", "record", "-a", "-g", "-e", perfEvent,
		"-F", strconv.Itoa(perfFreq), "-o", r.path, "--", "sleep", formatSeconds(window))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("perf record: %w", err)
	}
	r.pid = cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	discard := func(why error) error {
		stopPerf(cmd, done)
		os.Remove(r.path)
		return why
	}
	var finish <-chan time.Time
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("perf record: %w: %s", err, strings.TrimSpace(out.String()))
			}
			maps.Copy(r.switchComms, threadComms(r.switchPID))
			r.window = window
			return nil
		case <-exited:
			if time.Since(started) < window {
				return discard(errClientExited)
			}
			// The window is over and perf is writing its data.
			exited, finish = nil, time.After(perfFinishTimeout)
		case <-finish:
			return discard(fmt.Errorf("perf record still running %v after its window; stopped", perfFinishTimeout))
		case <-r.ctx.Done():
			return discard(r.ctx.Err())
		}
	}
}

// stopPerf asks perf record to stop with SIGINT and, if it has not
// within perfStopGrace, kills its process group (perf and its sleep);
// either way it returns once perf has exited. done delivers cmd.Wait's
// result.
func stopPerf(cmd *exec.Cmd, done <-chan error) {
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		debugf("perf record (pid %d): SIGINT: %v", cmd.Process.Pid, err)
	}
	select {
	case <-done:
		return
	case <-time.After(perfStopGrace):
	}
	logf("  profile: perf record (pid %d) still running %v after SIGINT; killed", cmd.Process.Pid, perfStopGrace)
	killGroup(cmd.Process.Pid)
	<-done
}

// formatSeconds is d in seconds as sleep(1) takes it, to the millisecond.
func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Round(time.Millisecond).Seconds(), 'f', -1, 64)
}

// threadComms returns the names of pid's threads; none for pid 0 or a
// process gone.
func threadComms(pid int) map[string]bool {
	comms := map[string]bool{}
	if pid == 0 {
		return comms
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", pid))
	for _, t := range tasks {
		if b, err := os.ReadFile(t); err == nil {
			if c := strings.TrimSpace(string(b)); c != "" {
				comms[c] = true
			}
		}
	}
	return comms
}

// figures summarises the recording into Detail figures, with per-unit
// ones in unit over rate units of traffic per second times scale (1e3
// for milliseconds per GB, 1e6 for microseconds per frame). It returns
// nil, having logged why, when there is no profile or no summary.
func (r *perfRecording) figures(unit string, rate, scale float64) map[string]float64 {
	if r == nil || r.window == 0 {
		return nil
	}
	out, err := run(r.ctx, "perf", "report", "-i", r.path, "--no-children", "--sort", "comm,dso,sym",
		"--stdio", "-g", "none", "--percentage", "relative")
	if err != nil {
		logf("  profile: %v", err)
		return nil
	}
	rep, err := parsePerfReport([]byte(out))
	if err != nil {
		logf("  profile: %s: %v", r.path, err)
		return nil
	}
	if rep.skipped > 0 {
		logf("  profile: %s: %d lines of perf report not understood, left out", r.path, rep.skipped)
	}
	s, err := summarisePerf(rep, r.window, r.switchComms)
	if err != nil {
		logf("  profile: %s: %v", r.path, err)
		return nil
	}
	return s.figures(unit, rate, scale)
}

// A perfSummary is a profile's samples by kind of work and by process.
type perfSummary struct {
	window time.Duration
	// cpus is the CPU time the samples stand for per second of the
	// window: the number of CPUs when every CPU was sampled throughout.
	cpus float64
	// kinds are fractions of all samples by kind key (see kindOf).
	kinds map[string]float64
	// procs are fractions of the samples not idle by process: procIperf,
	// procSwitch (when the switch has a process) and procOthers.
	procs map[string]float64
	// swapperBusy is the fraction of all samples that hit the idle task
	// outside the idle functions (see idleComm).
	swapperBusy float64
	// switchCopy is the fraction of all samples that hit the kernel's
	// copy functions in the switch's threads: the copies of frames
	// between the kernel and the switch (its reads and writes of TAPs
	// and sockets), which a path inside the kernel does not make.
	switchCopy float64
}

// summarisePerf sums a report of window up by kind and process; the
// switch's threads are called switchComms, none for a switch without a
// process.
func summarisePerf(rep perfReport, window time.Duration, switchComms map[string]bool) (perfSummary, error) {
	if rep.event != "" && rep.event != perfEvent {
		return perfSummary{}, fmt.Errorf("perf report: event %q, want %q", rep.event, perfEvent)
	}
	if rep.eventCount <= 0 {
		return perfSummary{}, errors.New("perf report: no event count")
	}
	if window <= 0 {
		return perfSummary{}, errors.New("no window")
	}
	var total float64
	for _, e := range rep.entries {
		total += e.percent
	}
	if total <= 0 {
		return perfSummary{}, errNoPerfEntries
	}
	s := perfSummary{
		window: window,
		cpus:   rep.eventCount / 1e9 / window.Seconds(),
		kinds:  map[string]float64{},
		procs:  map[string]float64{procIperf: 0, procOthers: 0},
	}
	if len(switchComms) > 0 {
		s.procs[procSwitch] = 0
	}
	// The percentages are each rounded to 0.01 and sum to about 100, a
	// few hundredths off with thousands of lines; each entry's share of
	// their sum keeps the kinds adding up to all samples.
	for _, e := range rep.entries {
		f := e.percent / total
		kind := kindOf(e)
		s.kinds[kind] += f
		switch {
		case isIdleComm(e.comm):
			if e.space != 'k' || kernelKindOf(e.symbol) != kindIdle {
				s.swapperBusy += f
			}
		case kind == kindIdle:
		case e.comm == procIperf:
			s.procs[procIperf] += f
		case switchComms[e.comm]:
			s.procs[procSwitch] += f
			if kind == kindCopy {
				s.switchCopy += f
			}
		default:
			s.procs[procOthers] += f
		}
	}
	return s, nil
}

// figures returns the summary's Detail figures:
//
//	prof_<kind>_<unit>      CPU time of each kind of busy work per unit of
//	                        traffic (see profKinds), rate units per second,
//	                        times scale
//	prof_busy_<unit>        their sum: everything but idle
//	prof_switch_copy_<unit> the part of copy in the switch's threads (with
//	                        a switch process only)
//	prof_idle_pct           idle, % of one CPU
//	prof_comm_<proc>_pct    busy work by process, % of one CPU
//	prof_swapper_busy_pct   the idle task's work outside the idle functions,
//	                        counted idle, % of one CPU
//	prof_cpus               CPUs' worth of time the samples stand for
//	prof_window_s           the window, seconds
//
// Without a rate, the per-unit figures are left out.
func (s perfSummary) figures(unit string, rate, scale float64) map[string]float64 {
	pct := func(f float64) float64 { return 100 * f * s.cpus }
	d := map[string]float64{
		"prof_window_s":         s.window.Seconds(),
		"prof_cpus":             s.cpus,
		"prof_idle_pct":         pct(s.kinds[kindIdle]),
		"prof_swapper_busy_pct": pct(s.swapperBusy),
	}
	for p, f := range s.procs {
		d["prof_comm_"+p+"_pct"] = pct(f)
	}
	if rate > 0 {
		var busy float64
		for _, k := range profKinds {
			v := s.kinds[k.key] * s.cpus / rate * scale
			d["prof_"+k.key+"_"+unit] = v
			busy += v
		}
		d["prof_busy_"+unit] = busy
		if _, ok := s.procs[procSwitch]; ok {
			d["prof_switch_copy_"+unit] = s.switchCopy * s.cpus / rate * scale
		}
	}
	return d
}
