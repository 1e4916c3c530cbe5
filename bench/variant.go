package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Variants (-variant NAME=ARGS, repeatable): one tapswitch system per
// variant, the same build started with extra daemon flags, in place of
// the plain tapswitch system. Their passes run mirrored, v1 ... vn
// after the bridge and vn ... v1 before its second pass, as an A/B run's
// two builds do, so a drift of the machine that is linear in time
// cancels out of each variant's mean; a table holds every variant
// against the first, beside the bridge's drift and each variant's own
// spread between its passes.

// variant is one -variant.
type variant struct {
	Name string `json:"name"`
	// System is how the report names it: "tapswitch NAME".
	System string `json:"system"`
	// Args are the extra tapswitchd flags, ARGS split at spaces; none
	// for the daemon's defaults.
	Args []string `json:"args"`
}

// variantPrefix starts every variant's system name.
const variantPrefix = "tapswitch "

func isVariantSystem(system string) bool { return strings.HasPrefix(system, variantPrefix) }

// variantName is what a variant may be called: short, and safe in a
// file name (the profiles are named after the system).
var variantName = regexp.MustCompile(`^[A-Za-z0-9+._-]{1,24}$`)

// benchOwnedFlags are the daemon flags the benchmark sets itself (see
// tapswitchSystem.start), which a variant may not give.
var benchOwnedFlags = []string{"socket", "state-dir", "log-level", "remove-on-exit"}

// parseVariant reads one -variant NAME=ARGS.
func parseVariant(s string) (variant, error) {
	name, args, ok := strings.Cut(s, "=")
	if !ok {
		return variant{}, fmt.Errorf("-variant %q: want NAME=ARGS, such as 'q1=--queues 1' (ARGS may be empty: the defaults)", s)
	}
	name = strings.TrimSpace(name)
	if !variantName.MatchString(name) {
		return variant{}, fmt.Errorf("-variant %q: NAME must be 1 to 24 letters, digits and + . _ -", s)
	}
	v := variant{Name: name, System: variantPrefix + name, Args: strings.Fields(args)}
	for _, a := range v.Args {
		if f, ok := longFlag(a); ok && slices.Contains(benchOwnedFlags, f) {
			return variant{}, fmt.Errorf("-variant %s: --%s is the benchmark's own; leave it out", name, f)
		}
	}
	return v, nil
}

// longFlag returns the name of a --flag or --flag=value argument.
func longFlag(arg string) (string, bool) {
	if !strings.HasPrefix(arg, "--") || len(arg) == 2 {
		return "", false
	}
	name, _, _ := strings.Cut(arg[2:], "=")
	return name, true
}

// addVariant is -variant's flag.Func: it parses s and adds it to cfg,
// refusing a second variant of the same name.
func (c *config) addVariant(s string) error {
	v, err := parseVariant(s)
	if err != nil {
		return err
	}
	if _, dup := c.variant(v.System); dup {
		return fmt.Errorf("-variant %s given twice", v.Name)
	}
	c.variants = append(c.variants, v)
	return nil
}

// variant returns the variant whose system is system.
func (c *config) variant(system string) (variant, bool) {
	for _, v := range c.variants {
		if v.System == system {
			return v, true
		}
	}
	return variant{}, false
}

// checkVariants checks -variant against the other flags.
func checkVariants(cfg *config, set map[string]bool) error {
	if len(cfg.variants) == 0 {
		return nil
	}
	for _, f := range []string{"scale", "demo", "docker", "base-tapswitchd", "base-tapswitch"} {
		if set[f] {
			return fmt.Errorf("-variant compares tapswitch with itself in the namespaces' comparison, not with -%s: drop one", f)
		}
	}
	if cfg.only != nil && !slices.Contains(cfg.only, "tapswitch") {
		return errors.New("-variant needs tapswitch among -only: the variants are its systems")
	}
	if cfg.only != nil && !slices.Contains(cfg.only, baseline) {
		return errors.New("-variant needs the bridge among -only: its two passes are the drift the variants are judged by")
	}
	// The bridge's second pass gives the drift the variants are judged by.
	cfg.bracket = true
	return nil
}

// helpFlag matches a long flag at the start of a line of tapswitchd's
// --help: "      --queues int   queues per TAP ...".
var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)`)

// parseHelpFlags returns the long flags a --help output lists.
func parseHelpFlags(help string) map[string]bool {
	flags := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(help, -1) {
		flags[m[1]] = true
	}
	return flags
}

// checkVariantFlags fails on a variant flag the daemon at daemon does not
// have (known are its flags), before anything is set up: a daemon
// that refuses its flags would fail every pass of the variant.
func checkVariantFlags(variants []variant, known map[string]bool, daemon string) error {
	for _, v := range variants {
		for _, a := range v.Args {
			if f, ok := longFlag(a); ok && !known[f] {
				return fmt.Errorf("-variant %s: %s has no flag --%s; build one that has it, or drop the variant", v.Name, daemon, f)
			}
		}
	}
	return nil
}

// daemonFlags returns the long flags of the daemon at path, from its
// --help.
func daemonFlags(path string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s --help: %w", path, err)
	}
	flags := parseHelpFlags(string(out))
	if len(flags) == 0 {
		return nil, fmt.Errorf("%s --help lists no flags", path)
	}
	return flags, nil
}

// variantReport is every variant against the first, in the JSON under
// "variants"; each variant's passes are among the report's systems.
type variantReport struct {
	Variants []variant `json:"variants"`
	// First is the system every other is held against.
	First string       `json:"first"`
	Rows  []variantRow `json:"rows"`
}

// variantRow is one variant against the first on one metric, judged like
// an A/B run's new build against its base.
type variantRow struct {
	System string `json:"system"`
	abRow
}

// compareVariants holds each variant after the first against the first,
// metric by metric.
func compareVariants(metrics []metric, passes []passResult, variants []variant) []variantRow {
	if len(variants) < 2 {
		return nil
	}
	first := variants[0].System
	var rows []variantRow
	for _, mt := range metrics {
		for _, v := range variants[1:] {
			rows = append(rows, variantRow{System: v.System, abRow: compareSystems(mt, passes, first, v.System)})
		}
	}
	return rows
}

// writeVariantTable prints, under the main table, each variant against
// the first, test by test.
func (r *report) writeVariantTable(w io.Writer) error {
	vr := r.Variants
	if vr == nil {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "variants: tapswitchd started with")
	for _, v := range vr.Variants {
		args := strings.Join(v.Args, " ")
		if args == "" {
			args = "(its defaults)"
		}
		fmt.Fprintf(w, "  %s: %s\n", v.Name, args)
	}
	if len(vr.Rows) == 0 {
		return nil
	}
	firstName := strings.TrimPrefix(vr.First, variantPrefix)
	fmt.Fprintf(w, "\nagainst %s (the first variant); each ran twice, passes mirrored about the middle of the run\n", firstName)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "test\tvariant\t%s\tvariant\tvariant/%s\tbridge drift\trepeat spread\tothers\tverdict\n", firstName, firstName)
	var busy []string
	for i := range vr.Rows {
		row := &vr.Rows[i]
		mt := metricByKey(row.Metric)
		val := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return formatValue(mt.Unit, v)
		}
		ratio := "-"
		if row.NewOverBase > 0 {
			ratio = formatRatio(row.NewOverBase, row.LowerIsBetter)
		}
		others := "-"
		if row.OthersPct > 0 {
			others = fmt.Sprintf("%.0f%%", row.OthersPct)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mt.Label, strings.TrimPrefix(row.System, variantPrefix),
			val(row.Base), val(row.New), ratio, formatPct(row.BridgeDriftPct), formatPct(row.RepeatSpreadPct), others, row.verdict())
		if row.OthersPct > othersBusyPct && !slices.Contains(busy, mt.Label) {
			busy = append(busy, mt.Label)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s and variant: the mean of each one's passes; worse and better: the larger mean over the smaller, minus 1.\n", firstName)
	fmt.Fprintln(w, "bridge drift: the bridge's passes, the larger over the smaller, minus 1; repeat spread: the same for the two variants' own passes, the larger.")
	fmt.Fprintln(w, "within drift: the two differ by no more than the larger of the two, which is no evidence of a change.")
	if len(busy) > 0 {
		fmt.Fprintf(w, "Other processes took over %d%% of a CPU during %s: see the CPU table and run again on a quiet machine before trusting those rows.\n",
			othersBusyPct, strings.Join(busy, ", "))
	}
	return nil
}

// formatPct is a percentage to one decimal, "-" for none.
func formatPct(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *p)
}

// fileSafe turns a system's name into part of a file name:
// "tapswitch +batch" into "tapswitch-+batch".
func fileSafe(system string) string {
	return strings.ReplaceAll(system, " ", "-")
}

// writeVariantMainTables prints, for a run with variants, the main table
// in two narrower ones, which with several variants would otherwise run
// to hundreds of columns: each system's value (a variant by its name,
// the mean of its passes), then each system's ratios to the bridge and
// to Open vSwitch.
func (r *report) writeVariantMainTables(w io.Writer) error {
	short := func(sys string) string { return strings.TrimPrefix(sys, variantPrefix) }
	var others []string
	for _, sys := range systemsInOrder(r.Systems) {
		if sys != baseline {
			others = append(others, sys)
		}
	}
	fmt.Fprintln(w, "a variant is tapswitch started with the flags below, by its name; every system that ran twice is the mean of its passes")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "test")
	var bridgePasses []*passResult
	for i := range r.Systems {
		if p := &r.Systems[i]; p.System == baseline {
			bridgePasses = append(bridgePasses, p)
			fmt.Fprintf(tw, "\t%s", p.title())
		}
	}
	for _, sys := range others {
		fmt.Fprintf(tw, "\t%s", short(sys))
	}
	fmt.Fprintln(tw)
	for _, mt := range r.Metrics {
		fmt.Fprint(tw, mt.Label)
		for _, p := range bridgePasses {
			m, ok := p.value(mt.Key)
			switch {
			case !ok:
				fmt.Fprint(tw, "\t-")
			case !m.ok():
				fmt.Fprint(tw, "\terror")
			default:
				fmt.Fprintf(tw, "\t%s", formatValue(m.Unit, m.Value))
			}
		}
		for _, sys := range others {
			if _, v := passValues(r.Systems, sys, mt.Key); v != 0 {
				fmt.Fprintf(tw, "\t%s", formatValue(mt.Unit, v))
			} else {
				fmt.Fprint(tw, "\t-")
			}
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	type ratioCol struct{ sys, yardstick string }
	var cols []ratioCol
	for _, yardstick := range []string{baseline, peer} {
		for _, sys := range others {
			if sys != yardstick && slices.ContainsFunc(r.Ratios, func(rt ratio) bool { return rt.System == sys && rt.Baseline == yardstick }) {
				cols = append(cols, ratioCol{sys, yardstick})
			}
		}
	}
	if len(cols) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "ratios")
	for _, c := range cols {
		fmt.Fprintf(tw, "\t%s/%s", short(c.sys), c.yardstick)
	}
	fmt.Fprintln(tw)
	for _, mt := range r.Metrics {
		label := mt.Label
		if mt.LowerIsBetter {
			label += " (lower is better)"
		}
		fmt.Fprint(tw, label)
		for _, c := range cols {
			if rt, ok := findRatioTo(r.Ratios, mt.Key, c.sys, c.yardstick); ok {
				fmt.Fprintf(tw, "\t%.2fx", rt.Value)
			} else {
				fmt.Fprint(tw, "\t-")
			}
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
