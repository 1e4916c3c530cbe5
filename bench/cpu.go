package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Where the CPU went during a test, read from /proc at two instants in
// the middle of the client's run:
//
//	/proc/PID/stat  user+system time of the sender, the receiver and the
//	                switch's own process, every thread included, and of
//	                every other user process together
//	/proc/stat      the machine's irq+softirq, idle+iowait and steal time
//
// Every share is percent of one CPU, 200% in all on two, but the two
// sources need different denominators. A process's utime+stime add up
// to its scheduler runtime, which the kernel measures rather than
// samples, so they are divided by the window's wall time. /proc/stat is
// sampled by the tick, and a VM loses ticks when the host preempts a
// vCPU, more than it reports as steal (a tenth of them under full load on
// a 2-CPU cloud VM), so its kinds are fractions of the ticks counted,
// times the number of CPUs, and add up to 200%.

// Roles of the processes read; each names its Detail key,
// cpu_<role>_pct.
const (
	roleSender   = "sender"
	roleReceiver = "receiver"
	roleSwitch   = "switch"
)

// Units of the per-unit figures, the suffixes of cpu_switch_<unit> and
// cpu_busy_<unit>.
const (
	// perGB is CPU-seconds per GB (1e9 bytes) received: the TCP rows.
	perGB = "s_per_gb"
	// perFrame is CPU-microseconds per frame the sender sent, counting
	// those the path dropped, which cost the sender and maybe the switch
	// too: the UDP 64 B row.
	perFrame = "us_per_frame"
	// perDeliveredFrame is CPU-microseconds per frame that reached the
	// receiver, in the JSON only: with no rate limit a path that drops
	// much looks cheap per frame sent, and this is the other bound.
	perDeliveredFrame = "us_per_delivered_frame"
	// perRoundTrip is CPU-microseconds per round trip: the RTT row.
	perRoundTrip = "us_per_round_trip"
)

// procCPU is the part of /proc/PID/stat the split needs.
type procCPU struct {
	comm  string
	state byte // R, S, Z, ... as in proc(5)
	// ticks is utime plus stime, which the kernel sums over every thread,
	// live or exited.
	ticks uint64
	// kthread is set for kernel threads.
	kthread bool
	// start is when the process started, in ticks since boot: with the
	// pid, it tells a process from a later one that reused the pid.
	start uint64
}

// pfKthread is PF_KTHREAD of include/linux/sched.h, in the flags field.
const pfKthread = 0x00200000

// parseProcStat reads /proc/PID/stat: "PID (COMM) STATE ...", where COMM
// is whatever the program named itself, spaces and parentheses included,
// so it ends at the last ')'. flags is field 9, utime and stime fields 14
// and 15, starttime field 22.
func parseProcStat(data []byte) (procCPU, error) {
	s := strings.TrimSpace(string(data))
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procCPU{}, fmt.Errorf("/proc/PID/stat: no (comm) in %q", s)
	}
	// f[0] is field 3, the state, so field n is f[n-3].
	f := strings.Fields(s[end+1:])
	if len(f) < 20 || len(f[0]) != 1 || !isLetter(f[0][0]) {
		return procCPU{}, fmt.Errorf("/proc/PID/stat: too few fields after the comm in %q", s)
	}
	var flags, utime, stime, start uint64
	for _, fld := range []struct {
		name string
		n    int
		dst  *uint64
	}{{"flags", 9, &flags}, {"utime", 14, &utime}, {"stime", 15, &stime}, {"starttime", 22, &start}} {
		v, err := strconv.ParseUint(f[fld.n-3], 10, 64)
		if err != nil {
			return procCPU{}, fmt.Errorf("/proc/PID/stat: %s: %w", fld.name, err)
		}
		*fld.dst = v
	}
	return procCPU{comm: s[open+1 : end], state: f[0][0], ticks: utime + stime, kthread: flags&pfKthread != 0, start: start}, nil
}

func isLetter(c byte) bool { return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' }

// machineCPU is the "cpu" line of /proc/stat: the time all CPUs spent so
// far, by kind, in USER_HZ ticks. guest and guest_nice are left out: the
// kernel counts them in user and nice as well.
type machineCPU struct {
	user, nice, system, idle, iowait, irq, softirq, steal uint64
}

func (m machineCPU) busy() uint64 { return m.user + m.nice + m.system + m.irq + m.softirq }

func (m machineCPU) total() uint64 { return m.busy() + m.idle + m.iowait + m.steal }

// since returns the time spent between earlier and m. A field that went
// back counts as none: iowait may, on tickless kernels.
func (m machineCPU) since(earlier machineCPU) machineCPU {
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return machineCPU{
		user:    sub(m.user, earlier.user),
		nice:    sub(m.nice, earlier.nice),
		system:  sub(m.system, earlier.system),
		idle:    sub(m.idle, earlier.idle),
		iowait:  sub(m.iowait, earlier.iowait),
		irq:     sub(m.irq, earlier.irq),
		softirq: sub(m.softirq, earlier.softirq),
		steal:   sub(m.steal, earlier.steal),
	}
}

// parseProcStatCPU reads the "cpu" line of /proc/stat and counts the
// per-CPU lines after it, which are the online CPUs the line sums.
func parseProcStatCPU(data []byte) (m machineCPU, cpus int, err error) {
	found := false
	// Not a bufio.Scanner: the intr line outgrows its 64 KiB on machines
	// with many interrupts.
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			cpus++
			continue
		}
		// Older kernels print fewer fields (steal came in 2.6.11); those
		// missing stay zero, but idle cannot be.
		if len(f) < 5 {
			return m, 0, fmt.Errorf("/proc/stat: short cpu line %q", strings.TrimSpace(line))
		}
		for i, dst := range []*uint64{&m.user, &m.nice, &m.system, &m.idle, &m.iowait, &m.irq, &m.softirq, &m.steal} {
			if i+1 >= len(f) {
				break
			}
			if *dst, err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return m, 0, fmt.Errorf("/proc/stat: cpu line: %w", err)
			}
		}
		found = true
	}
	if !found || cpus == 0 {
		return m, 0, errors.New("/proc/stat: no cpu lines")
	}
	return m, cpus, nil
}

// watched is a process whose CPU time a test reads.
type watched struct {
	role string
	pid  int
	// comm is what /proc/PID/stat must name the process, "" for any: a
	// pid that turns out to be a wrapper rather than the tool is left
	// out, not reported as the tool.
	comm string
}

// cpuSample is the counters at one instant.
type cpuSample struct {
	at      time.Time
	machine machineCPU
	cpus    int
	procs   map[string]procCPU // by role; only those read as expected
	// others is the ticks of every other user process.
	others map[procKey]uint64
}

// procKey tells processes apart across samples, where a pid may have
// been reused.
type procKey struct {
	pid   int
	start uint64 // starttime, in ticks since boot
}

// readCPU samples the machine and procs. A process that cannot be read,
// or is not the program expected, is left out and named in the error;
// only a failure to read the machine's counters leaves no sample.
func readCPU(procs []watched) (cpuSample, error) {
	s := cpuSample{procs: map[string]procCPU{}}
	var errs []error
	// The processes first and the machine last, at once: the few
	// microseconds between the reads are the error of the split.
	for _, w := range procs {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.pid))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (pid %d): %w", w.role, w.pid, err))
			continue
		}
		p, err := parseProcStat(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (pid %d): %w", w.role, w.pid, err))
			continue
		}
		if w.comm != "" && p.comm != w.comm {
			errs = append(errs, fmt.Errorf("%s (pid %d) runs %q, not %q", w.role, w.pid, p.comm, w.comm))
			continue
		}
		s.procs[w.role] = p
	}
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}, err
	}
	s.at = time.Now()
	if s.machine, s.cpus, err = parseProcStatCPU(data); err != nil {
		return cpuSample{}, err
	}
	skip := map[int]bool{}
	for _, w := range procs {
		skip[w.pid] = true
	}
	s.others = readOthers(skip)
	return s, errors.Join(errs...)
}

// readOthers returns the CPU time so far of every user process but
// those in skip. Kernel threads are left out: ksoftirqd, kworkers and
// the like mostly work for the traffic under test, and busy has them.
// A process that exits meanwhile is skipped.
func readOthers(skip map[int]bool) map[procKey]uint64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := map[procKey]uint64{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if p, err := parseProcStat(data); err == nil && !p.kthread {
			out[procKey{pid, p.start}] = p.ticks
		}
	}
	return out
}

// cpuSplit turns two samples into the Detail figures, percent of one CPU
// over the window between them; hz is USER_HZ, the unit of the processes'
// times:
//
//	cpu_sender_pct, cpu_receiver_pct, cpu_switch_pct  each process
//	cpu_others_pct                                    all other user processes
//	cpu_user_pct, cpu_system_pct, cpu_softirq_pct     the machine, by kind
//	cpu_busy_pct                                      their sum
//	cpu_idle_pct, cpu_steal_pct                       the rest; steal if any
//	cpu_window_s                                      the window, seconds
//
// A process is in only if both samples read it and it had not exited by
// the second. Among the others, one that started in the window counts
// whole and one that exited in it not at all, so cpu_others_pct is a
// lower bound.
func cpuSplit(a, b cpuSample, hz float64) (map[string]float64, error) {
	d := b.machine.since(a.machine)
	total := d.total()
	window := b.at.Sub(a.at).Seconds()
	if total == 0 || b.cpus == 0 || window <= 0 || hz <= 0 {
		return nil, errors.New("no CPU time passed between the samples")
	}
	pct := func(ticks uint64) float64 { return 100 * float64(b.cpus) * float64(ticks) / float64(total) }
	out := map[string]float64{
		"cpu_window_s":    window,
		"cpu_user_pct":    pct(d.user + d.nice),
		"cpu_system_pct":  pct(d.system),
		"cpu_softirq_pct": pct(d.irq + d.softirq),
		"cpu_busy_pct":    pct(d.busy()),
		"cpu_idle_pct":    pct(d.idle + d.iowait),
	}
	if d.steal > 0 {
		out["cpu_steal_pct"] = pct(d.steal)
	}
	for key, pb := range b.procs {
		pa, ok := a.procs[key]
		if !ok || pb.state == 'Z' || pb.ticks < pa.ticks {
			continue
		}
		role, _, _ := strings.Cut(key, roleInstance)
		out["cpu_"+role+"_pct"] += 100 * float64(pb.ticks-pa.ticks) / hz / window
	}
	if a.others != nil && b.others != nil {
		var ticks uint64
		for k, tb := range b.others {
			ta := a.others[k] // 0 for a process started in the window
			if tb > ta {
				ticks += tb - ta
			}
		}
		out["cpu_others_pct"] = 100 * float64(ticks) / hz / window
	}
	return out, nil
}

// addCPUPerUnit adds cpu_switch_<unit> and cpu_busy_<unit> to detail: the
// CPUs the switch's process and the whole machine kept busy over the
// traffic's rate, in units per second, times scale (1e6 for
// microseconds). Without a rate or a share nothing is added.
func addCPUPerUnit(detail map[string]float64, unit string, rate, scale float64) {
	if rate <= 0 {
		return
	}
	for _, who := range []string{roleSwitch, "busy"} {
		if p, ok := detail["cpu_"+who+"_pct"]; ok {
			detail["cpu_"+who+"_"+unit] = p / 100 / rate * scale
		}
	}
}

// cpuMargin is how much of each end of a client's run the window leaves
// out: the start-up before the test's own clock starts (exec, connect,
// parameter exchange) and the wind-down. A fifth of a short run at most,
// so that a window remains.
func cpuMargin(seconds int) time.Duration {
	return min(time.Second, time.Duration(seconds)*time.Second/5)
}

var errClientExited = errors.New("the client exited before the window ended")

// cpuWatch measures where the CPU went during one client's run. Its watch
// method runs alongside the client (see runCmd); figures and err hold the
// outcome once the run has returned. A failure leaves figures, or some of
// them, out and never fails the test.
type cpuWatch struct {
	seconds int                // the client's planned run time
	client  string             // the client's comm once `ip netns exec` has exec'd it
	others  []watched          // the server and, if any, the switch
	figures map[string]float64 // nil when not measured
	err     error              // why figures, or some of them, are missing
}

// newCPUWatch watches a client of tool running for seconds, the tool's
// server at serverPID and, when not 0, the switch's process, and the
// switch's further processes, more (one per host with -cluster), whose
// time the switch's share sums.
func newCPUWatch(seconds int, tool string, serverPID, switchPID int, more ...int) *cpuWatch {
	w := &cpuWatch{seconds: seconds, client: tool, others: []watched{{roleReceiver, serverPID, tool}}}
	if switchPID != 0 {
		// Our own child or read from its pid file and checked by name:
		// see the systems' switchPID.
		w.others = append(w.others, watched{roleSwitch, switchPID, ""})
	}
	for i, pid := range more {
		if pid != 0 {
			w.others = append(w.others, watched{roleSwitch + roleInstance + strconv.Itoa(i+2), pid, ""})
		}
	}
	return w
}

// roleInstance separates a role from the number of one of several
// processes in it: "switch/2" is the switch's second process, which
// counts in cpu_switch_pct.
const roleInstance = "/"

func (w *cpuWatch) watch(pid int, exited <-chan struct{}) {
	w.figures, w.err = w.measure(pid, exited)
	if w.err != nil {
		logf("  CPU split: %v", w.err)
	}
}

// measure samples cpuMargin after the client started and cpuMargin
// before its planned end. `ip netns exec` execs the tool in place of
// itself, so pid is the tool's by then; the comm check catches an ip that
// forks instead.
func (w *cpuWatch) measure(pid int, exited <-chan struct{}) (map[string]float64, error) {
	start := time.Now()
	margin := cpuMargin(w.seconds)
	end := start.Add(time.Duration(w.seconds)*time.Second - margin)
	procs := append([]watched{{roleSender, pid, w.client}}, w.others...)
	if !waitUntil(start.Add(margin), exited) {
		return nil, errClientExited
	}
	a, errA := readCPU(procs)
	if a.cpus == 0 {
		return nil, errA
	}
	if !waitUntil(end, exited) {
		return nil, errClientExited
	}
	b, errB := readCPU(procs)
	if b.cpus == 0 {
		return nil, errB
	}
	// The window must lie within the test: a client that had already
	// exited, even if not yet reaped, leaves idle time in it.
	select {
	case <-exited:
		return nil, errClientExited
	default:
	}
	if p, ok := b.procs[roleSender]; ok && p.state == 'Z' {
		return nil, errClientExited
	}
	figures, err := cpuSplit(a, b, clockTicks())
	if err != nil {
		return nil, err
	}
	// Both samples usually fail alike; say it once.
	if errA != nil && errB != nil && errA.Error() == errB.Error() {
		errB = nil
	}
	return figures, errors.Join(errA, errB)
}

// waitUntil sleeps until t and reports true, or false as soon as exited
// is closed.
func waitUntil(t time.Time, exited <-chan struct{}) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-exited:
		return false
	case <-timer.C:
		return true
	}
}

// readIRQTimeAccounting reports whether the running kernel was built to
// account IRQ time apart from the task it interrupts, from
// /proc/config.gz or /boot/config-RELEASE; nil when neither is readable.
func readIRQTimeAccounting(release string) *bool {
	var config []byte
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			config, _ = io.ReadAll(zr)
		}
	}
	if len(config) == 0 && release != "" {
		config, _ = os.ReadFile("/boot/config-" + release)
	}
	if len(config) == 0 {
		return nil
	}
	on := irqTimeAccounting(config)
	return &on
}

// irqTimeAccounting reports whether a kernel config sets
// CONFIG_IRQ_TIME_ACCOUNTING. Without it, a tick that lands in softirq
// counts as softirq in /proc/stat and as system time of whatever task it
// interrupted, so the per-process shares include softirq work.
func irqTimeAccounting(config []byte) bool {
	for line := range bytes.Lines(config) {
		if string(bytes.TrimSpace(line)) == "CONFIG_IRQ_TIME_ACCOUNTING=y" {
			return true
		}
	}
	return false
}
