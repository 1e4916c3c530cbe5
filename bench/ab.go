package main

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// baseSystem is the second build of tapswitch in an A/B run (-base-tapswitchd
// and -base-tapswitch): the one before the change, which "tapswitch", the
// build under test, is held against.
const baseSystem = "tapswitch-base"

// runOrder is the order of the passes over systems, which are in the order
// chooseSystems gives them. The two builds of an A/B run go base, new at
// the start and new, base at the end (ABBA), so that a drift of the
// machine that is linear in time cancels out of the mean of each build's
// two passes, and neither build always runs right after the bridge, or
// last; variants (-variant) likewise, v1 ... vn, then vn ... v1. With
// bracket the bridge runs again at the very end, which both sets the
// ratios' yardstick and measures how far the machine drifted.
func runOrder(systems []string, bracket bool) []string {
	runs := slices.Clone(systems)
	var compared []string
	if slices.Contains(systems, baseSystem) && slices.Contains(systems, "tapswitch") {
		compared = []string{baseSystem, "tapswitch"}
	}
	for _, s := range systems {
		if isVariantSystem(s) {
			compared = append(compared, s)
		}
	}
	for i := len(compared) - 1; i >= 0; i-- {
		runs = append(runs, compared[i])
	}
	if bracket && slices.Contains(systems, baseline) && len(systems) > 1 {
		runs = append(runs, baseline)
	}
	return runs
}

// abReport is the comparison of the two builds, in the JSON under "ab";
// each build's own passes are among the report's systems.
type abReport struct {
	Base binaryInfo `json:"base"`
	New  binaryInfo `json:"new"`
	Rows []abRow    `json:"rows"`
}

// binaryInfo names one build of the daemon: where it was, and the
// revision its build information carries (go build stamps it in a git
// checkout, a worktree included).
type binaryInfo struct {
	Daemon string `json:"tapswitchd"`
	CLI    string `json:"tapswitch"`
	// Revision is the full commit hash, "" when the binary carries none
	// (built outside git, or with -buildvcs=false).
	Revision string `json:"revision,omitempty"`
	// Modified is whether the work tree had uncommitted changes.
	Modified bool   `json:"modified,omitempty"`
	Time     string `json:"revision_time,omitempty"`
}

// readBinaryInfo reads the build information of the daemon at daemon. A
// binary without any leaves the revision empty: the paths still say
// which build was which.
func readBinaryInfo(daemon, cli string) binaryInfo {
	b := binaryInfo{Daemon: daemon, CLI: cli}
	bi, err := buildinfo.ReadFile(daemon)
	if err != nil {
		return b
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		case "vcs.time":
			b.Time = s.Value
		}
	}
	return b
}

// String is the build as the A/B table's heading names it.
func (b binaryInfo) String() string {
	rev := "revision unknown"
	if b.Revision != "" {
		rev = "revision " + b.Revision[:min(12, len(b.Revision))]
		if b.Modified {
			rev += " with uncommitted changes"
		}
	}
	return fmt.Sprintf("%s (%s)", b.Daemon, rev)
}

// abRow compares the two builds on one metric.
type abRow struct {
	Metric        string `json:"metric"`
	LowerIsBetter bool   `json:"lower_is_better"`
	// BasePasses and NewPasses are each pass's value in run order, 0 for
	// a pass that failed the test.
	BasePasses []float64 `json:"base_passes"`
	NewPasses  []float64 `json:"new_passes"`
	// Base and New are the means of the good passes; NewOverBase their
	// ratio, 0 when either build has no good pass.
	Base        float64 `json:"base"`
	New         float64 `json:"new"`
	NewOverBase float64 `json:"new_over_base,omitempty"`
	// WorsePct is how much worse new is than base, the larger over the
	// smaller minus one as BridgeDriftPct has it, in percent; negative
	// when new is better.
	WorsePct float64 `json:"worse_pct"`
	// BridgeDriftPct is how far the bridge's passes differ, the larger
	// over the smaller minus one, in percent; nil without two good
	// bridge passes.
	BridgeDriftPct *float64 `json:"bridge_drift_pct,omitempty"`
	// RepeatSpreadPct is the same for each build's own passes, the larger
	// of the two builds' figures: the same binary measured twice. Two
	// passes of the bridge can agree by chance; this is a second look at
	// the noise, on the system under test.
	RepeatSpreadPct *float64 `json:"repeat_spread_pct,omitempty"`
	// BeyondDrift is whether new and base differ, whichever way, by more
	// than the larger of BridgeDriftPct and RepeatSpreadPct.
	BeyondDrift bool `json:"beyond_drift"`
	// OthersPct is the most CPU, in percent of one CPU, that other
	// processes took during this test in any pass of either build
	// (cpu_others_pct); 0 when not measured.
	OthersPct float64 `json:"others_max_pct,omitempty"`
}

// othersBusyPct is the share of one CPU that other processes may take
// during a build's test before the A/B table warns: on two CPUs every
// switch here competes with iperf3 for them, so a neighbour's compile
// or test run lowers whichever pass it lands on, and interleaving cannot
// cancel a burst the way it cancels a steady drift.
const othersBusyPct = 10

// cpuDetailOf names, for a metric whose measurement carries no CPU
// figures, the metric filled by the same tool run that carries them: the
// p99 round trip comes from the sockperf run whose CPU figures are on
// the average's.
var cpuDetailOf = map[string]string{
	metricRTTP99.Key:       metricRTTAvg.Key,
	metricRTTLoadedP99.Key: metricRTTLoadedAvg.Key,
	metricUDP1400Bits.Key:  metricUDP1400.Key,
}

// passValues is system's value for key in each of its passes, in run
// order, 0 for a pass without a good one, and the mean of the good ones
// (0 without any).
func passValues(passes []passResult, system, key string) (vals []float64, mean float64) {
	var sum float64
	var n int
	for i := range passes {
		if passes[i].System != system {
			continue
		}
		m, ok := passes[i].value(key)
		if !ok || !m.ok() {
			vals = append(vals, 0)
			continue
		}
		vals = append(vals, m.Value)
		sum += m.Value
		n++
	}
	if n == 0 {
		return vals, 0
	}
	return vals, sum / float64(n)
}

// spreadPct is how far the good (non-zero) values differ: the largest
// over the smallest minus one, in percent; false for fewer than two.
func spreadPct(vals []float64) (float64, bool) {
	var good []float64
	for _, v := range vals {
		if v > 0 {
			good = append(good, v)
		}
	}
	if len(good) < 2 {
		return 0, false
	}
	return (slices.Max(good)/slices.Min(good) - 1) * 100, true
}

// othersPct is the most CPU other processes took during the test of key
// in any pass of systems.
func othersPct(passes []passResult, key string, systems ...string) float64 {
	if k, ok := cpuDetailOf[key]; ok {
		key = k
	}
	var most float64
	for i := range passes {
		if !slices.Contains(systems, passes[i].System) {
			continue
		}
		if m, ok := passes[i].value(key); ok {
			most = max(most, m.Detail["cpu_others_pct"])
		}
	}
	return most
}

// compareAB holds the new build against the base build on each metric.
func compareAB(metrics []metric, passes []passResult) []abRow {
	var rows []abRow
	for _, mt := range metrics {
		rows = append(rows, compareSystems(mt, passes, baseSystem, "tapswitch"))
	}
	return rows
}

// compareSystems holds system newSys against baseSys on one metric: two
// builds of an A/B run, or two variants.
func compareSystems(mt metric, passes []passResult, baseSys, newSys string) abRow {
	row := abRow{Metric: mt.Key, LowerIsBetter: mt.LowerIsBetter}
	row.BasePasses, row.Base = passValues(passes, baseSys, mt.Key)
	row.NewPasses, row.New = passValues(passes, newSys, mt.Key)
	bridge, _ := passValues(passes, baseline, mt.Key)
	if d, ok := spreadPct(bridge); ok {
		row.BridgeDriftPct = &d
	}
	bs, bok := spreadPct(row.BasePasses)
	ns, nok := spreadPct(row.NewPasses)
	if bok || nok {
		sp := max(bs, ns)
		row.RepeatSpreadPct = &sp
	}
	row.OthersPct = othersPct(passes, mt.Key, baseSys, newSys)
	if row.Base > 0 && row.New > 0 {
		row.NewOverBase = row.New / row.Base
		better, worse := row.New, row.Base
		if mt.LowerIsBetter {
			better, worse = worse, better
		}
		if better >= worse {
			row.WorsePct = -(better/worse - 1) * 100
		} else {
			row.WorsePct = (worse/better - 1) * 100
		}
		if d, ok := row.drift(); ok {
			row.BeyondDrift = math.Abs(row.WorsePct) > d
		}
	}
	return row
}

// drift is what a difference is judged by: the larger of the bridge's
// drift and the builds' repeat spread, false when neither is known.
func (row *abRow) drift() (float64, bool) {
	var d float64
	var ok bool
	for _, p := range []*float64{row.BridgeDriftPct, row.RepeatSpreadPct} {
		if p != nil {
			d, ok = max(d, *p), true
		}
	}
	return d, ok
}

// verdict says, in words, whether new differs from base by more than the
// machine drifted. Worse beyond drift is in capitals, as the scale
// table's MISSED: it is the line someone has to act on.
func (row *abRow) verdict() string {
	if row.NewOverBase == 0 {
		return "-"
	}
	var change string
	switch w := row.WorsePct; {
	case w >= 0.05:
		change = fmt.Sprintf("%.1f%% worse", w)
	case w <= -0.05:
		change = fmt.Sprintf("%.1f%% better", -w)
	default:
		change = "the same"
	}
	_, known := row.drift()
	switch {
	case !known:
		return change + ", no drift figure"
	case !row.BeyondDrift:
		return change + ", within drift"
	case row.WorsePct > 0:
		return "WORSE beyond drift: " + change
	}
	return "better beyond drift: " + change
}

// writeABTable prints, under the main table, the two builds' passes side
// by side, new over base, and the bridge's drift to judge them by.
func (r *report) writeABTable(w io.Writer) error {
	ab := r.AB
	if ab == nil {
		return nil
	}
	// The passes go by their role, short, as new/base has them.
	var order, basePasses, newPasses []string
	for _, p := range r.Systems {
		var role string
		switch p.System {
		case baseSystem:
			role = "base"
		case "tapswitch":
			role = "new"
		default:
			continue
		}
		order = append(order, role)
		title := role
		if p.Pass > 1 {
			title = fmt.Sprintf("%s (pass %d)", role, p.Pass)
		}
		if role == "base" {
			basePasses = append(basePasses, title)
		} else {
			newPasses = append(newPasses, title)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "A/B: new is tapswitch, base is %s; their passes ran in the order %s\n", baseSystem, strings.Join(order, ", "))
	fmt.Fprintf(w, "base: %s\n", ab.Base)
	fmt.Fprintf(w, "new:  %s\n", ab.New)

	var busy []string
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "test\t%s\t%s\tnew/base\tbridge drift\trepeat spread\tothers\tverdict\n",
		strings.Join(basePasses, "\t"), strings.Join(newPasses, "\t"))
	for i := range ab.Rows {
		row := &ab.Rows[i]
		mt := metricByKey(row.Metric)
		fmt.Fprint(tw, mt.Label)
		for _, v := range append(slices.Clone(row.BasePasses), row.NewPasses...) {
			if v == 0 {
				fmt.Fprint(tw, "\t-")
				continue
			}
			fmt.Fprintf(tw, "\t%s", formatValue(mt.Unit, v))
		}
		ratio := "-"
		if row.NewOverBase > 0 {
			ratio = formatRatio(row.NewOverBase, row.LowerIsBetter)
		}
		pct := func(p *float64) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprintf("%.1f%%", *p)
		}
		others := "-"
		if row.OthersPct > 0 {
			others = fmt.Sprintf("%.0f%%", row.OthersPct)
		}
		fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\n", ratio, pct(row.BridgeDriftPct), pct(row.RepeatSpreadPct), others, row.verdict())
		if row.OthersPct > othersBusyPct {
			busy = append(busy, mt.Label)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "new/base: the mean of new's passes over the mean of base's; worse and better: the larger mean over the smaller, minus 1.")
	fmt.Fprintln(w, "bridge drift: the bridge's passes, the larger over the smaller, minus 1; repeat spread: the same for each build's own passes, the larger of the two.")
	fmt.Fprintln(w, "within drift: new and base differ by no more than the larger of the two, which is no evidence of a change.")
	fmt.Fprintln(w, "others: the most CPU other processes took in a pass of either build, % of one CPU.")
	if len(busy) > 0 {
		fmt.Fprintf(w, "Other processes took over %d%% of a CPU during %s: a burst lowers whichever pass it lands on, which interleaving does not cancel;"+
			" see the CPU table and run again on a quiet machine before trusting those rows.\n", othersBusyPct, strings.Join(busy, ", "))
	}
	return nil
}
