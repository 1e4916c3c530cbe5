package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// baseline is the system every other one is divided by.
const baseline = "bridge"

// peer is the second yardstick: Open vSwitch, the closest existing
// switch of the same kind (userspace, TAPs), which every tapswitch
// system is also divided by when it ran.
const peer = "ovs"

type report struct {
	Date           time.Time         `json:"date"`
	Machine        machineInfo       `json:"machine"`
	SecondsPerTest int               `json:"seconds_per_test"`
	ElapsedSeconds float64           `json:"elapsed_seconds"`
	Tools          map[string]string `json:"tools,omitempty"`
	// Setting says where the systems were measured when it is not
	// between two bare namespaces, as with -docker.
	Setting string `json:"setting,omitempty"`
	// Metrics and Systems are empty with -scale, which fills Scale.
	Metrics []metric `json:"metrics,omitempty"`
	// Systems is in run order; with -bracket the bridge appears twice,
	// and in an A/B run tapswitch and tapswitch-base twice each.
	Systems []passResult `json:"systems,omitempty"`
	Ratios  []ratio      `json:"ratios"`
	Scale   *scaleResult `json:"scale,omitempty"`
	// AB compares the two builds of an A/B run (-base-tapswitchd).
	AB *abReport `json:"ab,omitempty"`
	// Variants compares the variants of a run with -variant.
	Variants *variantReport `json:"variants,omitempty"`
	// ProfileDir holds the perf data of each profiled test (-profile),
	// <system>-<metric key>.data.
	ProfileDir string   `json:"profile_dir,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

type machineInfo struct {
	NProc  int    `json:"nproc"`
	Kernel string `json:"kernel"`
	CPU    string `json:"cpu,omitempty"`
	// Load is the 1-minute load average when the run started.
	Load float64 `json:"load_average"`
	// IRQTimeAccounting is whether the kernel accounts IRQ time apart
	// from the task it interrupts (CONFIG_IRQ_TIME_ACCOUNTING), which
	// decides whether the CPU table's columns overlap; nil when its
	// config could not be read.
	IRQTimeAccounting *bool `json:"irq_time_accounting,omitempty"`
}

// ratio is System's value over Baseline's for one metric: the bridge's,
// or Open vSwitch's (peer). With -bracket the bridge figure is the mean
// of its two passes, which halves the drift between them; a system that
// ran twice (A/B, variants) is likewise the mean of its passes.
type ratio struct {
	Metric        string  `json:"metric"`
	System        string  `json:"system"`
	Baseline      string  `json:"baseline"`
	Value         float64 `json:"value"`
	LowerIsBetter bool    `json:"lower_is_better"`
}

func readMachine() machineInfo {
	m := machineInfo{NProc: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.IRQTimeAccounting = readIRQTimeAccounting(m.Kernel)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.Load, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// busyLoad is the load average per CPU above which the report warns:
// every switch here competes for the same CPUs as iperf3 itself, so
// other work on the machine lowers and scatters all the figures.
const busyLoad = 0.5

func busyNote(m machineInfo) string {
	if m.NProc == 0 || m.Load <= busyLoad*float64(m.NProc) {
		return ""
	}
	return fmt.Sprintf("the machine was busy when the run started (load average %.2f on %d CPUs); figures are lower and noisier than on an idle machine", m.Load, m.NProc)
}

// baselineValue is the mean of the bridge's good values for key.
func baselineValue(passes []passResult, key string) (float64, bool) {
	_, mean := passValues(passes, baseline, key)
	return mean, mean != 0
}

// systemsInOrder is each system once, in the order of its first pass.
func systemsInOrder(passes []passResult) []string {
	var out []string
	for _, p := range passes {
		if !slices.Contains(out, p.System) {
			out = append(out, p.System)
		}
	}
	return out
}

// computeRatios divides each system's value by the bridge's, the mean of
// its good passes by the mean of the bridge's when either ran more than
// once, and then each system but the bridge and Open vSwitch by Open
// vSwitch's likewise.
func computeRatios(metrics []metric, passes []passResult) []ratio {
	var out []ratio
	for _, yardstick := range []string{baseline, peer} {
		for _, mt := range metrics {
			_, base := passValues(passes, yardstick, mt.Key)
			if base == 0 {
				continue
			}
			for _, sys := range systemsInOrder(passes) {
				if sys == baseline || sys == yardstick {
					continue
				}
				if _, v := passValues(passes, sys, mt.Key); v != 0 {
					out = append(out, ratio{Metric: mt.Key, System: sys, Baseline: yardstick, Value: v / base, LowerIsBetter: mt.LowerIsBetter})
				}
			}
		}
	}
	return out
}

// findRatio returns system's ratio to the bridge for metricKey.
func findRatio(ratios []ratio, metricKey, system string) (ratio, bool) {
	return findRatioTo(ratios, metricKey, system, baseline)
}

// findRatioTo returns system's ratio to yardstick for metricKey.
func findRatioTo(ratios []ratio, metricKey, system, yardstick string) (ratio, bool) {
	for _, r := range ratios {
		if r.Metric == metricKey && r.System == system && r.Baseline == yardstick {
			return r, true
		}
	}
	return ratio{}, false
}

// formatValue scales a raw value into the unit a reader expects for it.
func formatValue(unit string, v float64) string {
	switch unit {
	case unitBits:
		switch {
		case v >= 1e9:
			return fmt.Sprintf("%.2f Gbit/s", v/1e9)
		case v >= 1e6:
			return fmt.Sprintf("%.1f Mbit/s", v/1e6)
		default:
			return fmt.Sprintf("%.1f kbit/s", v/1e3)
		}
	case unitPackets:
		if v >= 1e6 {
			return fmt.Sprintf("%.2f Mpps", v/1e6)
		}
		return fmt.Sprintf("%.1f kpps", v/1e3)
	case unitMicros:
		return fmt.Sprintf("%.1f us", v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

// formatRatio marks the rows where a ratio above 1 is the bad news.
func formatRatio(r float64, lowerIsBetter bool) string {
	s := fmt.Sprintf("%.2fx", r)
	if lowerIsBetter {
		s += " (lower is better)"
	}
	return s
}

// column is one column of the table: a system's pass or a ratio.
type column struct {
	title string
	cell  func(mt metric) string
}

// columns puts the bridge passes first, side by side so their drift is
// plain, then each other system followed by its ratio to the bridge and,
// when Open vSwitch ran, to Open vSwitch. A system that ran more than
// once (A/B, variants) shows the mean of its passes; the A/B table shows
// each.
func (r *report) columns() []column {
	var cols []column
	valueCol := func(p *passResult, title string) column {
		return column{title: title, cell: func(mt metric) string {
			m, ok := p.value(mt.Key)
			switch {
			case !ok:
				return "-"
			case !m.ok():
				return "error"
			}
			return formatValue(m.Unit, m.Value)
		}}
	}
	for i := range r.Systems {
		if p := &r.Systems[i]; p.System == baseline {
			cols = append(cols, valueCol(p, p.title()))
		}
	}
	for _, sys := range systemsInOrder(r.Systems) {
		if sys == baseline {
			continue
		}
		var passes []*passResult
		for i := range r.Systems {
			if r.Systems[i].System == sys {
				passes = append(passes, &r.Systems[i])
			}
		}
		if len(passes) == 1 {
			cols = append(cols, valueCol(passes[0], sys))
		} else {
			cols = append(cols, column{title: fmt.Sprintf("%s (mean of %d)", sys, len(passes)), cell: func(mt metric) string {
				if _, v := passValues(r.Systems, sys, mt.Key); v != 0 {
					return formatValue(mt.Unit, v)
				}
				return "-"
			}})
		}
		for _, yardstick := range []string{baseline, peer} {
			// A ratio column to Open vSwitch only when it measured
			// something: a failed pass would fill it with dashes.
			if sys == yardstick || !r.hasSystem(yardstick) || (yardstick == peer && !slices.ContainsFunc(r.Ratios, func(rt ratio) bool { return rt.Baseline == peer })) {
				continue
			}
			cols = append(cols, column{title: sys + "/" + yardstick, cell: func(mt metric) string {
				if rt, ok := findRatioTo(r.Ratios, mt.Key, sys, yardstick); ok {
					return formatRatio(rt.Value, rt.LowerIsBetter)
				}
				return "-"
			}})
		}
	}
	return cols
}

// title names a pass in a table: the system, and which pass when it ran
// more than once.
func (p *passResult) title() string {
	if p.Pass > 1 {
		return fmt.Sprintf("%s (pass %d)", p.System, p.Pass)
	}
	return p.System
}

func (r *report) hasBaseline() bool { return r.hasSystem(baseline) }

// hasSystem reports whether system ran in some pass.
func (r *report) hasSystem(system string) bool {
	for _, p := range r.Systems {
		if p.System == system {
			return true
		}
	}
	return false
}

// writeMachine prints when and where the figures were taken.
func (r *report) writeMachine(w io.Writer) {
	fmt.Fprintf(w, "date:     %s\n", r.Date.UTC().Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(w, "machine:  %d CPUs", r.Machine.NProc)
	if r.Machine.CPU != "" {
		fmt.Fprintf(w, " (%s)", r.Machine.CPU)
	}
	fmt.Fprintf(w, ", Linux %s, load average %.2f\n", r.Machine.Kernel, r.Machine.Load)
}

// writeTable prints the human-readable report.
func (r *report) writeTable(w io.Writer) error {
	var order []string
	for _, p := range r.Systems {
		order = append(order, p.System)
	}
	r.writeMachine(w)
	if r.Setting != "" {
		fmt.Fprintf(w, "setting:  %s\n", r.Setting)
	}
	fmt.Fprintf(w, "duration: %d s per test, %s in all; systems in run order: %s\n\n",
		r.SecondsPerTest, (time.Duration(r.ElapsedSeconds) * time.Second).String(), strings.Join(order, ", "))

	if r.Variants != nil {
		if err := r.writeVariantMainTables(w); err != nil {
			return err
		}
	} else if err := r.writeMainTable(w); err != nil {
		return err
	}
	if err := r.writeABTable(w); err != nil {
		return err
	}
	if err := r.writeVariantTable(w); err != nil {
		return err
	}
	return r.writeRest(w)
}

// writeMainTable prints each system's values with its ratios beside
// them: the bridge's passes, then each system, its ratio to the bridge
// and, for a tapswitch system, to Open vSwitch.
func (r *report) writeMainTable(w io.Writer) error {
	cols := r.columns()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "test")
	for _, c := range cols {
		fmt.Fprintf(tw, "\t%s", c.title)
	}
	fmt.Fprintln(tw)
	for _, mt := range r.Metrics {
		fmt.Fprint(tw, mt.Label)
		for _, c := range cols {
			fmt.Fprintf(tw, "\t%s", c.cell(mt))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// writeRest prints what follows the comparison's tables: where the CPU
// went, the profile, failures and notes.
func (r *report) writeRest(w io.Writer) error {
	if err := r.writeCPUTable(w); err != nil {
		return err
	}
	if err := r.writeProfileTable(w); err != nil {
		return err
	}
	for _, p := range r.Systems {
		if p.Error != "" {
			fmt.Fprintf(w, "\n%s (pass %d) failed: %s\n", p.System, p.Pass, p.Error)
		}
		// One failed tool run fails every row it fills; say it once.
		seen := map[string]bool{}
		for _, m := range p.Results {
			if !m.ok() && !seen[m.Error] {
				seen[m.Error] = true
				fmt.Fprintf(w, "\n%s: %s: %s\n", p.System, metricByKey(m.Metric).Label, m.Error)
			}
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
	}
	return nil
}

// cpuShares are the CPU table's percentage columns, by role or kind.
var cpuShares = []string{roleSender, roleSwitch, roleReceiver, "softirq", "others", "idle", "steal", "busy"}

// writeCPUTable prints, under the main table, where the CPU went in each
// test that measured it: one row per test and pass, in run order. steal
// gets a column only when some test saw any.
func (r *report) writeCPUTable(w io.Writer) error {
	measured := func(mt metric, p *passResult) (map[string]float64, bool) {
		m, ok := p.value(mt.Key)
		if !ok || !m.ok() {
			return nil, false
		}
		_, ok = m.Detail["cpu_busy_pct"]
		return m.Detail, ok
	}
	var metrics []metric
	steal := false
	for _, mt := range r.Metrics {
		found := false
		for i := range r.Systems {
			if d, ok := measured(mt, &r.Systems[i]); ok {
				found = true
				_, s := d["cpu_steal_pct"]
				steal = steal || s
			}
		}
		if found {
			metrics = append(metrics, mt)
		}
	}
	if len(metrics) == 0 {
		return nil
	}
	var shares []string
	for _, s := range cpuShares {
		if s != "steal" || steal {
			shares = append(shares, s)
		}
	}

	fmt.Fprintln(w)
	fmt.Fprint(w, "where the CPU went (% of one CPU over the middle of each test")
	if n := r.Machine.NProc; n > 0 {
		fmt.Fprintf(w, "; %d CPUs = %d%%", n, 100*n)
	}
	fmt.Fprintln(w, ")")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "test\tsystem\t%s\tswitch per unit\tbusy per unit\n", strings.Join(shares, "\t"))
	for _, mt := range metrics {
		for i := range r.Systems {
			p := &r.Systems[i]
			title := p.title()
			d, _ := measured(mt, p)
			fmt.Fprintf(tw, "%s\t%s", mt.Label, title)
			for _, s := range shares {
				fmt.Fprintf(tw, "\t%s", formatShare(d, "cpu_"+s+"_pct"))
			}
			fmt.Fprintf(tw, "\t%s\t%s\n", formatPerUnit(d, roleSwitch), formatPerUnit(d, "busy"))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "busy: all CPU time but idle, iowait and steal; softirq: the whole machine's, irq included;"+
		" per unit: CPU time over the rate of traffic (per GB received, per frame sent, per round trip).")
	fmt.Fprintln(w, "others: every other user process, such as another benchmark; busy includes it, so busy per unit"+
		" compares systems fairly only where others is near 0.")
	switch a := r.Machine.IRQTimeAccounting; {
	case a == nil:
		fmt.Fprintln(w, "Unless the kernel has CONFIG_IRQ_TIME_ACCOUNTING, softirq time also counts in the process it interrupted, so the columns may overlap.")
	case !*a:
		fmt.Fprintln(w, "This kernel lacks CONFIG_IRQ_TIME_ACCOUNTING: softirq time also counts in the process it interrupted,"+
			" so sender, switch and receiver include the softirq work done in their context and the columns overlap.")
	}
	return nil
}

// formatShare is a percentage of one CPU, "-" when not measured.
func formatShare(detail map[string]float64, key string) string {
	v, ok := detail[key]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

// formatPerUnit is who's (the switch's or the busy machine's) CPU time
// per unit of traffic, in whichever unit the test has.
func formatPerUnit(detail map[string]float64, who string) string {
	for _, u := range []struct{ unit, format string }{
		{perGB, "%.2f CPU-s/GB"},
		{perFrame, "%.2f CPU-us/frame sent"},
		{perRoundTrip, "%.1f CPU-us/round trip"},
	} {
		if v, ok := detail["cpu_"+who+"_"+u.unit]; ok {
			return fmt.Sprintf(u.format, v)
		}
	}
	return "-"
}

// profUnits are the units of the profile's per-unit figures, with how
// the table prints them.
var profUnits = []struct{ unit, format, suffix string }{
	{profPerGB, "%.0f", " ms/GB"},
	{perDeliveredFrame, "%.2f", " us/frame"},
}

// writeProfileTable prints, under the CPU table, where the CPU went by
// kind of work in each test profiled (-profile): one row per test and
// pass, in run order.
func (r *report) writeProfileTable(w io.Writer) error {
	profiled := func(mt metric, p *passResult) (map[string]float64, int) {
		m, ok := p.value(mt.Key)
		if !ok || !m.ok() {
			return nil, -1
		}
		for i, u := range profUnits {
			if _, ok := m.Detail["prof_busy_"+u.unit]; ok {
				return m.Detail, i
			}
		}
		return nil, -1
	}
	var metrics []metric
	for _, mt := range r.Metrics {
		for i := range r.Systems {
			if _, u := profiled(mt, &r.Systems[i]); u >= 0 {
				metrics = append(metrics, mt)
				break
			}
		}
	}
	if len(metrics) == 0 {
		return nil
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "where the CPU went by kind of work (perf -a over the same window; CPU per GB received or per frame delivered)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "test\tsystem\tbusy")
	for _, k := range profKinds {
		fmt.Fprintf(tw, "\t%s", k.title)
	}
	fmt.Fprint(tw, "\tswitch copy\t")
	for _, p := range []string{procIperf, procSwitch, procOthers, kindIdle} {
		fmt.Fprintf(tw, "\t%s %%", p)
	}
	fmt.Fprintln(tw)
	for _, mt := range metrics {
		for i := range r.Systems {
			p := &r.Systems[i]
			title := p.title()
			fmt.Fprintf(tw, "%s\t%s", mt.Label, title)
			d, u := profiled(mt, p)
			if u < 0 {
				fmt.Fprint(tw, strings.Repeat("\t-", 2+len(profKinds)), "\t", strings.Repeat("\t-", 4), "\n")
				continue
			}
			unit := profUnits[u]
			fmt.Fprintf(tw, "\t"+unit.format+"%s", d["prof_busy_"+unit.unit], unit.suffix)
			for _, k := range profKinds {
				// A kind with no sample at all, as tap on the bridge.
				if v := d["prof_"+k.key+"_"+unit.unit]; v > 0 {
					fmt.Fprintf(tw, "\t"+unit.format, v)
				} else {
					fmt.Fprint(tw, "\t-")
				}
			}
			if v, ok := d["prof_switch_copy_"+unit.unit]; ok {
				fmt.Fprintf(tw, "\t"+unit.format, v)
			} else {
				fmt.Fprint(tw, "\t-")
			}
			fmt.Fprint(tw, "\t")
			for _, key := range []string{"prof_comm_" + procIperf + "_pct", "prof_comm_" + procSwitch + "_pct", "prof_comm_" + procOthers + "_pct", "prof_idle_pct"} {
				fmt.Fprintf(tw, "\t%s", formatShare(d, key))
			}
			fmt.Fprintln(tw)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "busy: every sample but the idle task's and the idle loop's; kinds by the kernel function sampled (see go doc ./bench):"+
		" stack+other is the rest of the kernel, the network stack mostly; user is all user-space code.")
	fmt.Fprintln(w, "switch copy: the part of copy in the switch's own threads, its reads and writes of frames from and to TAPs and sockets,"+
		" which a path inside the kernel does not make.")
	fmt.Fprintln(w, "iperf3 % to idle %: the samples by thread, % of one CPU; switch is the switch's own threads,"+
		" others everything else busy, ksoftirqd and kworkers among them.")
	return r.writeCopyCeiling(w)
}

// writeCopyCeiling prints, for each TCP test the bridge and a switch
// were profiled in, the fastest the switch could go if its path cost the
// bridge's work per GB (both TCP stacks, iperf3's copies, the links)
// plus its own copies and nothing else, with every CPU busy: the
// machine's CPUs over bridge busy + switch copy. Those copies are no
// choice of a switch in user space (see go doc ./bench), so the bound
// holds for any such switch on this machine; over the bridge's rate, it
// is the most of the bridge's rate the switch can reach. A bound at or
// above the bridge's rate says nothing.
func (r *report) writeCopyCeiling(w io.Writer) error {
	type row struct {
		test, system             string
		busy, copy, most, bridge float64
	}
	cpus := float64(r.Machine.NProc)
	var rows []row
	for _, mt := range r.Metrics {
		var busy, rate, n float64
		for i := range r.Systems {
			p := &r.Systems[i]
			m, ok := p.value(mt.Key)
			b, profiled := m.Detail["prof_busy_"+profPerGB]
			if p.System != baseline || !ok || !m.ok() || !profiled || m.Value <= 0 {
				continue
			}
			busy += b
			rate += m.Value
			n++
		}
		if n == 0 || busy <= 0 || cpus <= 0 {
			continue
		}
		busy, rate = busy/n, rate/n
		for i := range r.Systems {
			p := &r.Systems[i]
			m, ok := p.value(mt.Key)
			c, hasCopy := m.Detail["prof_switch_copy_"+profPerGB]
			if p.System == baseline || !ok || !m.ok() || !hasCopy {
				continue
			}
			// CPU-seconds per second over CPU-milliseconds per GB:
			// GB per second, in bits per second like the rates.
			most := cpus * 1e3 / (busy + c) * 8e9
			rows = append(rows, row{mt.Label, p.title(), busy, c, most, rate})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "copy ceiling (the fastest a switch could go if its path cost the bridge's work plus its own copies and nothing else)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "test\tsystem\tbridge busy\tswitch copy\tat most\tbridge\tat most/bridge")
	for _, x := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.0f ms/GB\t%.0f ms/GB\t%.2f Gbit/s\t%.2f Gbit/s\t%.2fx\n",
			x.test, x.system, x.busy, x.copy, x.most/1e9, x.bridge/1e9, x.most/x.bridge)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "at most: %d CPUs / (bridge busy + switch copy), every CPU busy; bridge busy and bridge are the means of the bridge's profiled passes."+
		" Under 1x, the switch cannot reach the bridge's rate on this machine whatever else it does.\n", r.Machine.NProc)
	return nil
}

// writeJSON writes the report to path, creating its directory.
func (r *report) writeJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
