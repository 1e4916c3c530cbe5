package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// pidForNames makes namespace and link names unique to this run, so two
// runs, or a run and a test suite, never collide.
var pidForNames = os.Getpid()

// allSystems is the run order: the kernel bridge first, as the yardstick.
var allSystems = []string{"bridge", "tapswitch", "ovs"}

type config struct {
	tapswitchd, tapswitch string
	seconds               int
	jsonPath              string
	only                  []string // nil: every system available
	demo, bracket         bool
	scale                 bool
	// profileDir is where -profile puts its perf data, "" without it.
	profileDir string
	// chartFrom is a results file to draw the chart of (-chart), ""
	// for a run.
	chartFrom string
	// docker is -docker: the comparison between two Docker containers,
	// on Docker's bridge driver and on tapswitch's, in rounds.
	docker bool
	rounds int
	// baseTapswitchd and baseTapswitch are the base build of an A/B run,
	// both "" without one.
	baseTapswitchd, baseTapswitch string
	// variants are the tapswitch systems of -variant, in the order given;
	// none without it.
	variants []variant
	// rows are the tests named by -rows, in run order; nil for all.
	rows []string
	// cluster is -cluster: the systems across two hosts over VXLAN
	// (see cluster.go).
	cluster bool
	// clusterStatic is -cluster-static: with -cluster, also the system
	// "tapswitch static", the daemons with static peers and no store.
	clusterStatic bool
	// etcd is -etcd, the etcd binary of -cluster's store ("" to look for
	// one); etcdBin the one found, set by chooseSystems.
	etcd, etcdBin string
}

var errInterrupted = errors.New("interrupted; everything created has been removed")

func main() {
	err := runMain()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	}
	switch {
	case errors.Is(err, errInterrupted):
		os.Exit(130) // as a shell reports death by SIGINT
	case err != nil:
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench [flags]\n\n"+
			"Measures tapswitch side by side with the Linux bridge (and Open vSwitch\n"+
			"when installed) between two network namespaces. Needs root.\n\n"+
			"A/B of two builds: -base-tapswitchd and -base-tapswitch add the system\n"+
			"tapswitch-base, run in the same session as tapswitch, passes in the order\n"+
			"bridge, tapswitch-base, tapswitch, [ovs,] tapswitch, tapswitch-base, bridge,\n"+
			"and a table of new/base per test beside the bridge's drift between its two\n"+
			"passes and each build's own. make bench-ab BASE=<git revision> builds\n"+
			"the base from git; see go doc ./bench.\n\n"+
			"Variants: each -variant NAME=ARGS adds the system \"tapswitch NAME\", the same\n"+
			"build started with the extra tapswitchd flags ARGS (none: its defaults), in\n"+
			"place of the plain tapswitch; passes bridge, v1 ... vn, [ovs,] vn ... v1, bridge,\n"+
			"and a table of every variant against the first. make bench-parts runs the\n"+
			"dataplane's parts this way.\n\n")
		fs.PrintDefaults()
	}
	cfg := &config{}
	var only, rows string
	var profile bool
	fs.StringVar(&cfg.tapswitchd, "tapswitchd", "./bin/tapswitchd", "daemon binary `path`")
	fs.StringVar(&cfg.tapswitch, "tapswitch", "./bin/tapswitch", "CLI binary `path`")
	fs.StringVar(&cfg.baseTapswitchd, "base-tapswitchd", "", "A/B: daemon binary `path` of the base build, which -tapswitchd is compared with (implies -bracket)")
	fs.StringVar(&cfg.baseTapswitch, "base-tapswitch", "", "A/B: CLI binary `path` of the base build; goes with -base-tapswitchd")
	fs.IntVar(&cfg.seconds, "t", 5, "duration of each test in `seconds` (3 with -demo unless given)")
	fs.StringVar(&cfg.jsonPath, "json", "", "write results as JSON to `file` (default bench/results/<UTC time>.json; none with -demo)")
	fs.StringVar(&only, "only", "", "comma-separated `systems` to run: bridge,tapswitch,ovs (default: all available)")
	fs.StringVar(&rows, "rows", "", "comma-separated `tests` to run: "+strings.Join(testNames(), ",")+" (default: all)")
	fs.Func("variant", "`NAME=ARGS`: a tapswitch system started with the extra tapswitchd flags ARGS, labelled \"tapswitch NAME\" (repeatable; replaces the plain tapswitch; implies -bracket)", cfg.addVariant)
	fs.BoolVar(&cfg.demo, "demo", false, "short run: TCP single stream on bridge and tapswitch, with tapswitch's ports and fdb")
	fs.BoolVar(&cfg.bracket, "bracket", false, "run the bridge again after the others, to show how much the machine drifted (with -scale: the 2-port pair again after the 64-port one)")
	fs.BoolVar(&cfg.scale, "scale", false, "instead of the comparison, the scale suite: attach/detach time over 100 namespaces, memory with 64 ports and a full table, 4 pairs at once, a pair among 64 ports")
	fs.BoolVar(&profile, "profile", false, "also record a system-wide perf profile of each throughput test, kept beside the JSON in <name>-perf/, and add where the CPU went by kind of work (needs perf: apt-get install -y linux-perf)")
	fs.BoolVar(&verbose, "v", false, "print every command run")
	fs.BoolVar(&cfg.docker, "docker", false, "instead of the namespaces, two Docker containers on a network of Docker's bridge driver next to two on a tapswitch network, of one private dockerd (needs docker.io, and tapswitchd with its Docker driver unless -only bridge)")
	fs.IntVar(&cfg.rounds, "rounds", 3, "with -docker: rounds of passes, each running bridge then tapswitch")
	fs.BoolVar(&cfg.cluster, "cluster", false, "instead of two namespaces on one switch, two containers on two hosts (namespaces on an underlay bridge) across VXLAN: the kernel's vxlan device and bridge (column bridge, the yardstick), tapswitchd on each host in a cluster on one etcd (needs etcd: make etcd), and Open vSwitch's userspace datapath with a vxlan port; rows tcp1,tcp4,udp64 unless -rows names others; implies -bracket")
	fs.BoolVar(&cfg.clusterStatic, "cluster-static", false, "with -cluster, also the system \"tapswitch static\": tapswitchd on each host with --vxlan-peer of the other and no store")
	fs.StringVar(&cfg.etcd, "etcd", "", "with -cluster, the etcd `binary` of tapswitch's store (default: $"+etcdEnvBinary+", else etcd in $GOBIN, $(go env GOPATH)/bin or PATH)")
	fs.StringVar(&cfg.chartFrom, "chart", "", "run nothing: draw the chart of the comparison in results `file` (bench/results/*.json) beside it, as a run does")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.scale {
		for _, f := range []string{"demo", "only", "profile"} {
			if set[f] {
				return nil, fmt.Errorf("-scale runs on its own: drop -%s", f)
			}
		}
	}
	if rows != "" {
		if cfg.demo || cfg.scale || cfg.docker {
			return nil, errors.New("-rows selects the comparison's tests: drop it with -demo, -scale and -docker")
		}
		var err error
		if cfg.rows, err = parseRows(rows); err != nil {
			return nil, err
		}
	}
	if cfg.ab() {
		if err := checkAB(cfg, set); err != nil {
			return nil, err
		}
	} else if cfg.baseTapswitch != "" {
		return nil, errors.New("-base-tapswitch goes with -base-tapswitchd: give both")
	}
	if cfg.demo && !set["t"] {
		cfg.seconds = 3
	}
	if cfg.seconds < 1 {
		return nil, fmt.Errorf("-t %d: want at least 1 second", cfg.seconds)
	}
	if only != "" {
		var err error
		if cfg.only, err = parseOnly(only); err != nil {
			return nil, err
		}
	} else if cfg.demo {
		cfg.only = []string{"bridge", "tapswitch"}
	}
	if cfg.cluster {
		if err := checkClusterFlags(cfg, set); err != nil {
			return nil, err
		}
	} else {
		for _, f := range []string{"cluster-static", "etcd"} {
			if set[f] {
				return nil, fmt.Errorf("-%s goes with -cluster", f)
			}
		}
	}
	if err := checkVariants(cfg, set); err != nil {
		return nil, err
	}
	if cfg.docker {
		if err := checkDockerFlags(cfg, set); err != nil {
			return nil, err
		}
	} else if set["rounds"] {
		return nil, errors.New("-rounds goes with -docker")
	}
	if cfg.bracket && cfg.only != nil && !slices.Contains(cfg.only, baseline) {
		if cfg.ab() {
			return nil, errors.New("A/B needs the bridge among -only: its two passes are the drift a difference is judged by")
		}
		return nil, errors.New("-bracket needs the bridge among -only")
	}
	if cfg.ab() && cfg.only != nil && !slices.Contains(cfg.only, "tapswitch") {
		return nil, errors.New("A/B compares -base-tapswitchd with -tapswitchd: add tapswitch to -only")
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	if cfg.jsonPath == "" && !cfg.demo {
		name := stamp + ".json"
		if cfg.docker {
			name = "docker-" + name
		}
		if cfg.cluster {
			name = "cluster-" + name
		}
		cfg.jsonPath = filepath.Join("bench", "results", name)
	}
	if profile {
		cfg.profileDir = profileDir(cfg.jsonPath, stamp)
	}
	return cfg, nil
}

// ab reports whether the run compares two builds of tapswitch.
func (c *config) ab() bool { return c.baseTapswitchd != "" }

// checkAB checks the A/B flags against the others and turns on -bracket,
// whose second bridge pass gives the drift the builds are judged by.
func checkAB(cfg *config, set map[string]bool) error {
	if cfg.baseTapswitch == "" {
		return errors.New("-base-tapswitchd goes with -base-tapswitch: give both")
	}
	for _, f := range []string{"scale", "demo"} {
		if set[f] {
			return fmt.Errorf("-base-tapswitchd: A/B is for the comparison, not -%s: drop one", f)
		}
	}
	cfg.bracket = true
	return nil
}

// profileDir is where -profile keeps the perf data of a run whose JSON
// goes to jsonPath: beside it, named like it with -perf for .json, or
// under bench/results by the run's time when there is no JSON.
func profileDir(jsonPath, stamp string) string {
	if jsonPath == "" {
		return filepath.Join("bench", "results", stamp+"-perf")
	}
	return strings.TrimSuffix(jsonPath, ".json") + "-perf"
}

// parseOnly returns the systems named in list, in run order.
func parseOnly(list string) ([]string, error) {
	want := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allSystems, s) {
			return nil, fmt.Errorf("-only: unknown system %q (want some of %s)", s, strings.Join(allSystems, ","))
		}
		want[s] = true
	}
	if len(want) == 0 {
		return nil, errors.New("-only: no system named")
	}
	var out []string
	for _, s := range allSystems {
		if want[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// checkTools fails early, before anything is created, on what would
// otherwise fail halfway through a run.
func checkTools() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("needs Linux network namespaces; this is %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root to create network namespaces: run it with sudo")
	}
	for _, t := range []string{"ip", "iperf3", "ping"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found: apt-get install -y iproute2 iperf3 iputils-ping", t)
		}
	}
	return nil
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// chooseSystems decides what runs. A system named in -only must be
// usable; one merely available by default is skipped with a note saying
// how to add it.
func chooseSystems(cfg *config) (systems []string, notes []string, err error) {
	avail := map[string]error{
		"bridge": nil,
		"tapswitch": errors.Join(
			executable(cfg.tapswitchd),
			executable(cfg.tapswitch)),
		"ovs": ovsAvailable(),
	}
	howTo := map[string]string{
		"tapswitch": "build it with `make build` (or go build -o bin/ ./cmd/...), or point -tapswitchd and -tapswitch at the binaries",
		"ovs":       "apt-get install -y openvswitch-switch to add the ovs column",
	}
	explicit := cfg.only != nil
	candidates := cfg.only
	if !explicit {
		candidates = allSystems
	}
	for _, s := range candidates {
		if e := avail[s]; e != nil {
			if explicit || (s == "tapswitch" && cfg.ab()) {
				return nil, nil, fmt.Errorf("%s: %v; %s", s, e, howTo[s])
			}
			notes = append(notes, fmt.Sprintf("%s skipped: %v; %s", s, e, howTo[s]))
			continue
		}
		if s == "tapswitch" && cfg.ab() {
			if err := errors.Join(executable(cfg.baseTapswitchd), executable(cfg.baseTapswitch)); err != nil {
				return nil, nil, fmt.Errorf("%s: %v; point -base-tapswitchd and -base-tapswitch at the base build's binaries", baseSystem, err)
			}
			systems = append(systems, baseSystem)
		}
		if s == "tapswitch" && cfg.cluster {
			more, note, err := clusterTapswitchSystems(cfg, explicit, findEtcd)
			if err != nil {
				return nil, nil, err
			}
			if note != "" {
				notes = append(notes, note)
			}
			systems = append(systems, more...)
			continue
		}
		if s == "tapswitch" && len(cfg.variants) > 0 {
			vs, err := variantSystems(cfg)
			if err != nil {
				return nil, nil, err
			}
			systems = append(systems, vs...)
			continue
		}
		systems = append(systems, s)
	}
	return systems, notes, nil
}

// variantSystems are the systems of -variant, once the daemon is known
// to have their flags.
func variantSystems(cfg *config) ([]string, error) {
	known, err := daemonFlags(cfg.tapswitchd)
	if err != nil {
		return nil, err
	}
	if err := checkVariantFlags(cfg.variants, known, cfg.tapswitchd); err != nil {
		return nil, err
	}
	var systems []string
	for _, v := range cfg.variants {
		systems = append(systems, v.System)
	}
	return systems, nil
}

// clusterTapswitchSystems are tapswitch's systems of -cluster: tapswitch
// (or the variants) on a store, which needs etcd (found by find, with
// -etcd), and with -cluster-static "tapswitch static", which does not.
// Without etcd the store's systems are an error when -only named
// tapswitch or -etcd was given, else skipped with note saying how to get
// it.
func clusterTapswitchSystems(cfg *config, explicit bool, find func(string) (string, error)) (systems []string, note string, err error) {
	store := []string{"tapswitch"}
	if len(cfg.variants) > 0 {
		if store, err = variantSystems(cfg); err != nil {
			return nil, "", err
		}
	}
	bin, err := find(cfg.etcd)
	switch {
	case err == nil:
		cfg.etcdBin = bin
		systems = store
	case explicit || cfg.etcd != "" || cfg.ab():
		return nil, "", fmt.Errorf("tapswitch: its hosts form a cluster on etcd: %v; %s", err, etcdHowTo)
	default:
		note = fmt.Sprintf("%s skipped: its hosts form a cluster on etcd: %v; %s", strings.Join(store, ", "), err, etcdHowTo)
	}
	if cfg.clusterStatic {
		systems = append(systems, staticSystem)
	}
	return systems, note, nil
}

func newSystem(cfg *config, name string) system {
	if cfg.cluster {
		return newClusterSystem(cfg, name)
	}
	switch name {
	case "bridge":
		return newBridgeSystem(pidForNames)
	case "tapswitch":
		return newTapswitchSystem(name, cfg.tapswitchd, cfg.tapswitch)
	case baseSystem:
		return newTapswitchSystem(name, cfg.baseTapswitchd, cfg.baseTapswitch)
	case "ovs":
		return newOVSSystem(pidForNames)
	}
	if v, ok := cfg.variant(name); ok {
		s := newTapswitchSystem(name, cfg.tapswitchd, cfg.tapswitch)
		s.extraArgs = v.Args
		return s
	}
	panic("unknown system " + name)
}

// toolVersions records what produced the numbers, for the JSON.
func toolVersions(ctx context.Context, cfg *config, systems []string) map[string]string {
	v := map[string]string{}
	first := func(key, name string, args ...string) {
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err == nil {
			line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
			v[key] = ansiEscape.ReplaceAllString(line, "")
		}
	}
	first("iperf3", "iperf3", "--version")
	if _, err := exec.LookPath("sockperf"); err == nil {
		first("sockperf", "sockperf", "--version")
	}
	if slices.Contains(systems, "ovs") {
		first("ovs-vswitchd", "ovs-vswitchd", "--version")
	}
	if slices.Contains(systems, "tapswitch") || slices.ContainsFunc(systems, isVariantSystem) {
		first("tapswitchd", cfg.tapswitchd, "--version")
	}
	if slices.Contains(systems, baseSystem) {
		first("tapswitchd (base)", cfg.baseTapswitchd, "--version")
	}
	return v
}

func runMain() error {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.chartFrom != "" {
		return redrawChart(cfg.chartFrom)
	}
	if err := checkTools(); err != nil {
		return err
	}
	if cfg.scale {
		return runScaleMain(cfg)
	}
	if cfg.docker {
		return runDockerMain(cfg)
	}
	systems, notes, err := chooseSystems(cfg)
	if err != nil {
		return err
	}
	if len(systems) == 0 {
		return errors.New("no system to measure")
	}
	runs := runOrder(systems, cfg.bracket)
	rows := cfg.rows
	if cfg.cluster {
		runs = clusterRunOrder(systems, cfg.bracket)
		if rows == nil {
			rows = clusterTests
		}
	}

	if cfg.demo {
		rows = []string{testTCP1.name}
	}
	tests, metrics, tnotes, err := chooseTests(rows, exec.LookPath)
	if err != nil {
		return err
	}
	notes = append(notes, tnotes...)
	var prof *profiler
	if cfg.profileDir != "" {
		prof = newProfiler(cfg.profileDir)
	}
	if cfg.bracket && !slices.Contains(runs[len(systems):], baseline) {
		notes = append(notes, "-bracket ignored: it needs the bridge and another system")
	}
	if slices.Contains(runs[len(systems):], baseline) {
		notes = append(notes, "ratios are against the mean of the two bridge passes")
	}
	if slices.Contains(systems, baseSystem) {
		notes = append(notes, "tapswitch and tapswitch-base ran twice each: the main table shows the mean of their passes, the A/B table each pass")
	}
	if cfg.cluster {
		notes = append(notes, clusterNotes(runs)...)
	}
	if len(cfg.variants) > 0 && slices.ContainsFunc(systems, isVariantSystem) {
		notes = append(notes, "each tapswitch variant ran twice, passes mirrored about the middle of the run: the tables show the mean of its passes, the CPU table each pass")
	}
	if slices.ContainsFunc(tests, func(t test) bool { return t.name == testRTTLoaded.name }) {
		notes = append(notes, fmt.Sprintf("UDP RTT under load: sockperf ping-pong while iperf3 sends %d B datagrams at %d a second between the same namespaces (its own ports);"+
			" the CPU table counts that iperf3 among others", rttLoad.length, rttLoad.pps))
	}

	// The first signal cancels the run; teardown then proceeds under its
	// own timeouts, and signals stay caught until it is done, so a second
	// Ctrl-C cannot cut it short and leave namespaces behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep := &report{
		Date:           time.Now().UTC(),
		Machine:        readMachine(),
		SecondsPerTest: cfg.seconds,
		Tools:          toolVersions(ctx, cfg, systems),
		Metrics:        metrics,
	}
	if cfg.cluster {
		rep.Setting = clusterSetting
	}
	if prof != nil {
		rep.ProfileDir = prof.dir
	}
	start := time.Now()
	passes := map[string]int{}
	prog := newProgress(os.Stderr, len(runs)*len(tests), time.Duration(cfg.seconds)*time.Second+stepOverhead)
	for i, name := range runs {
		if i > 0 {
			if err := sleep(ctx, pause); err != nil {
				break
			}
		}
		passes[name]++
		label := fmt.Sprintf("pass %d of %d, %s", i+1, len(runs), name)
		if passes[name] > 1 {
			label += " again"
		}
		pr := runPass(ctx, newSystem(cfg, name), passes[name], tests, cfg.seconds, prof, prog, label)
		rep.Systems = append(rep.Systems, pr)
		if ctx.Err() != nil {
			break
		}
	}
	rep.ElapsedSeconds = time.Since(start).Seconds()
	if ctx.Err() != nil {
		return errInterrupted
	}
	prog.done("all passes ended")
	rep.Ratios = computeRatios(metrics, rep.Systems)
	if slices.Contains(systems, baseSystem) {
		rep.AB = &abReport{
			Base: readBinaryInfo(cfg.baseTapswitchd, cfg.baseTapswitch),
			New:  readBinaryInfo(cfg.tapswitchd, cfg.tapswitch),
			Rows: compareAB(metrics, rep.Systems),
		}
	}
	if len(cfg.variants) > 0 && slices.ContainsFunc(systems, isVariantSystem) {
		rep.Variants = &variantReport{
			Variants: cfg.variants,
			First:    cfg.variants[0].System,
			Rows:     compareVariants(metrics, rep.Systems, cfg.variants),
		}
	}
	if n := busyNote(rep.Machine); n != "" {
		notes = append(notes, n)
	}
	rep.Notes = append(notes, driftNotes(rep)...)
	rep.Notes = append(rep.Notes, loadNotes(rep)...)

	fmt.Println()
	if err := rep.writeTable(os.Stdout); err != nil {
		return err
	}
	if cfg.demo {
		printDemo(rep)
	}
	if cfg.jsonPath != "" {
		if err := rep.writeJSON(cfg.jsonPath); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
		fmt.Printf("\nresults: %s\n", cfg.jsonPath)
		if err := rep.writeChartFile(chartPath(cfg.jsonPath)); err != nil {
			return fmt.Errorf("write chart: %w", err)
		}
		fmt.Printf("chart: %s\n", chartPath(cfg.jsonPath))
	}
	if prof != nil {
		if cfg.jsonPath == "" {
			fmt.Println()
		}
		fmt.Printf("profiles: %s (perf report -i FILE)\n", prof.dir)
	}
	for _, p := range rep.Systems {
		if p.Error != "" {
			return fmt.Errorf("%s failed", p.System)
		}
		for _, m := range p.Results {
			if !m.ok() {
				return fmt.Errorf("%s: %s failed", p.System, metricByKey(m.Metric).Label)
			}
		}
	}
	return nil
}

// driftTolerance is how far the two bridge passes may differ before the
// report warns that the machine was not steady; the peers measured
// swings of this order between passes on small VMs.
const driftTolerance = 0.2

func driftNotes(rep *report) []string {
	var notes []string
	for _, mt := range rep.Metrics {
		var vals []float64
		for i := range rep.Systems {
			if p := &rep.Systems[i]; p.System == baseline {
				if m, ok := p.value(mt.Key); ok && m.ok() {
					vals = append(vals, m.Value)
				}
			}
		}
		if len(vals) < 2 {
			continue
		}
		lo, hi := slices.Min(vals), slices.Max(vals)
		if lo > 0 && hi/lo-1 > driftTolerance {
			notes = append(notes, fmt.Sprintf("%s: the bridge passes differ by %.0f%%; the machine was not steady, treat the ratios with care",
				mt.Label, (hi/lo-1)*100))
		}
	}
	return notes
}

// printDemo adds, after the table, the one comparison the demo is about
// and the switch's own view of the two ports it connected.
func printDemo(rep *report) {
	fmt.Println()
	if r, ok := findRatio(rep.Ratios, metricTCP1.Key, "tapswitch"); ok {
		fmt.Printf("tapswitch carries %.0f%% of the bridge's TCP single-stream throughput (%s).\n",
			r.Value*100, formatRatio(r.Value, false))
	}
	for _, p := range rep.Systems {
		for _, l := range p.Listings {
			fmt.Printf("\n%s:\n%s\n", l.Title, strings.TrimRight(l.Output, "\n"))
		}
	}
}
