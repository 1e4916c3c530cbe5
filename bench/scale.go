package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/fdb"
)

// The -scale suite measures one daemon carrying many namespaces, for the
// figures the project states: attach and detach time, memory with a full
// forwarding table, aggregate throughput of several pairs at once, and
// whether a busy, crowded network slows the pair that talks.
const (
	// scaleNamespaces are made up front, untimed; attach and detach are
	// timed over all of them.
	scaleNamespaces = 100
	// scalePorts are attached for the memory and crowded-pair figures.
	scalePorts = 64
	// scalePairs run iperf3 at once for the aggregate figure, on
	// namespaces 0..2*scalePairs-1 (pair i is 2i → 2i+1) with tapswitch
	// and on the last 2*scalePairs with the bridge.
	scalePairs = 4
	// scaleFillIndex is the namespace whose port the fill frames come
	// from, and scaleIdleIndex one that takes no part in any test and
	// shows, in its counters, what was flooded.
	scaleFillIndex = scalePorts - 1
	scaleIdleIndex = scalePorts / 2
)

// Targets the project states; the report says whether each was met. They
// are not asserted: one noisy run must not fail a build.
const (
	attachTargetMs  = 20.0 // median
	detachTargetMs  = 20.0 // median
	memoryTargetMiB = 64.0 // VmRSS with scalePorts ports and a full table
	// crowdedMinRatio: the talking pair keeps at least this share of its
	// throughput when scalePorts are attached and the table is full.
	crowdedMinRatio = 0.90
	// floodedShare: an idle port that is sent more than this share of
	// the frames the receiving port got was flooded the pair's traffic.
	floodedShare = 0.01
)

const (
	// fillWindow bounds the fill frames in flight between the packet
	// socket and the daemon, well below the TAP's queue of 1000: a frame
	// the queue drops is a MAC never learned.
	fillWindow = 256
	// fillRounds bounds the resends when frames were lost anyway.
	fillRounds = 3
	// fillStall is how long the daemon's rx counter may stand still
	// before the frames it waits for are taken as lost.
	fillStall = 500 * time.Millisecond
)

// scaleStopGrace is the daemon's time to exit on SIGTERM with up to
// scaleNamespaces ports: it closes them one by one, at about the
// detach time each (measured: 2.4 s for 100 on a 2-core VM), and a
// busy machine makes that several times longer.
const scaleStopGrace = 30 * time.Second

// scaleResult is the "scale" section of the JSON.
type scaleResult struct {
	Namespaces int             `json:"namespaces"`
	Attach     *latencySummary `json:"attach_ms,omitempty"`
	Detach     *latencySummary `json:"detach_ms,omitempty"`
	// CLIAttachMs is one `tapswitch attach`, from starting the CLI to
	// its exit, for comparison with the API figure.
	CLIAttachMs float64 `json:"cli_attach_ms,omitempty"`
	// APIAttachMs is one API attach of the same namespace into the same
	// empty daemon right after, so the CLI's own cost reads off the two.
	APIAttachMs float64         `json:"cli_reference_api_attach_ms,omitempty"`
	Memory      *scaleMemory    `json:"memory,omitempty"`
	Aggregate   *scaleAggregate `json:"aggregate_tcp,omitempty"`
	Pair        *scalePair      `json:"talking_pair,omitempty"`
	// Errors are the steps that failed, each "step: error"; the steps
	// after a failed one still ran unless the failure left nothing to
	// measure.
	Errors []string `json:"errors,omitempty"`
}

type scaleMemory struct {
	Ports int `json:"ports"`
	// FillMACs distinct source addresses were sent, FillFrames frames in
	// all (more when lost frames were sent again).
	FillMACs   int `json:"fill_macs"`
	FillFrames int `json:"fill_frames"`
	// MACs is what the daemon reports learned; FDBEntries the length of
	// its fdb listing, taken after the memory figures.
	MACs       int `json:"macs"`
	MACLimit   int `json:"mac_limit"`
	FDBEntries int `json:"fdb_entries"`
	// RSSBeforeMiB is VmRSS with the ports attached and the table not
	// yet filled; RSSMiB and HWMMiB (VmHWM, the peak) are after.
	RSSBeforeMiB float64 `json:"vm_rss_before_fill_mib"`
	RSSMiB       float64 `json:"vm_rss_mib"`
	HWMMiB       float64 `json:"vm_hwm_mib"`
}

type scaleAggregate struct {
	Pairs     int          `json:"pairs"`
	Bridge    *measurement `json:"bridge,omitempty"`
	Tapswitch *measurement `json:"tapswitch,omitempty"`
	Ratio     float64      `json:"ratio,omitempty"`
}

type scalePair struct {
	// Few has only the pair attached; Many has scalePorts attached and
	// the table filled. With -bracket, FewAgain is Few measured once
	// more after Many, and Ratio divides by the mean of the two.
	Few      *measurement `json:"two_ports,omitempty"`
	Many     *measurement `json:"many_ports,omitempty"`
	FewAgain *measurement `json:"two_ports_again,omitempty"`
	Ratio    float64      `json:"ratio,omitempty"`
	// What the idle port was sent during Many, next to what the
	// receiving port was sent: flooding shows as the two being alike.
	IdlePort       string `json:"idle_port,omitempty"`
	IdleTxFrames   uint64 `json:"idle_tx_frames"`
	IdleDrops      uint64 `json:"idle_drops"`
	ReceiverFrames uint64 `json:"receiver_tx_frames"`
}

// runScaleMain is main for -scale.
func runScaleMain(cfg *config) error {
	if err := errors.Join(executable(cfg.tapswitchd), executable(cfg.tapswitch)); err != nil {
		return fmt.Errorf("tapswitch: %v; build it with `make build` (or go build -o bin/ ./cmd/...), or point -tapswitchd and -tapswitch at the binaries", err)
	}
	// As in runMain: the first signal cancels, teardown runs to the end.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep := &report{
		Date:           time.Now().UTC(),
		Machine:        readMachine(),
		SecondsPerTest: cfg.seconds,
		Tools:          toolVersions(ctx, cfg, []string{"tapswitch"}),
		Scale:          &scaleResult{Namespaces: scaleNamespaces},
	}
	start := time.Now()
	runScale(ctx, cfg, rep.Scale)
	rep.ElapsedSeconds = time.Since(start).Seconds()
	if ctx.Err() != nil {
		return errInterrupted
	}
	for _, n := range []string{busyNote(rep.Machine), rep.Scale.Pair.driftNote()} {
		if n != "" {
			rep.Notes = append(rep.Notes, n)
		}
	}
	fmt.Println()
	if err := rep.writeScaleTable(os.Stdout); err != nil {
		return err
	}
	if cfg.jsonPath != "" {
		if err := rep.writeJSON(cfg.jsonPath); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
		fmt.Printf("\nresults: %s\n", cfg.jsonPath)
	}
	if n := len(rep.Scale.Errors); n > 0 {
		return fmt.Errorf("scale suite: %d steps failed", n)
	}
	return nil
}

// scaleRun is the state the steps of one scale run share.
type scaleRun struct {
	seconds int
	bracket bool
	fl      *fleet
	sw      *tapswitchSystem
	client  *api.Client
	pid     int // the daemon's, for /proc
	res     *scaleResult
	// ports maps the index of each attached namespace to its port name.
	ports map[int]string
}

// scaleStep is one part of the suite.
type scaleStep struct {
	name string
	run  func(context.Context) error
	// fatal: the later steps need what this one sets up.
	fatal bool
}

// runScale runs every step, recording failures in res.Errors, and tears
// everything down whatever happened: the daemon first, so that it lets go
// of its TAPs before their namespaces go.
func runScale(ctx context.Context, cfg *config, res *scaleResult) {
	fail := func(step string, err error) {
		res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", step, err))
		logf("scale: %s: %v", step, err)
	}
	fl := newFleet(pidForNames, scaleNamespaces)
	defer func() {
		if err := fl.destroy(); err != nil {
			fail("teardown", err)
		}
	}()
	logf("scale: creating %d namespaces", scaleNamespaces)
	if err := fl.create(ctx); err != nil {
		fail("setup", err)
		return
	}
	sw := newTapswitchSystem("tapswitch", cfg.tapswitchd, cfg.tapswitch)
	sw.stopGrace = scaleStopGrace
	defer func() {
		if err := sw.teardown(); err != nil {
			fail("teardown", err)
		}
	}()
	if err := sw.start(ctx); err != nil {
		fail("setup", err)
		return
	}
	s := &scaleRun{seconds: cfg.seconds, bracket: cfg.bracket, fl: fl, sw: sw, client: api.NewClient(sw.socket), res: res, ports: map[int]string{}}
	// Version also opens the connection the timed calls then reuse.
	v, err := s.client.Version(ctx)
	if err != nil {
		fail("setup", err)
		return
	}
	s.pid = v.Pid

	res.Aggregate = &scaleAggregate{Pairs: scalePairs}
	res.Pair = &scalePair{}
	steps := []scaleStep{
		{"attach/detach", s.attachDetach, true},
		{"aggregate TCP, bridge", s.aggregateBridge, false},
		{"aggregate TCP, tapswitch", s.aggregateTapswitch, false},
		{"TCP pair, 2 ports", func(ctx context.Context) error { return s.pairFew(ctx, &res.Pair.Few) }, false},
		{"memory", s.memory, true},
		{"TCP pair, many ports", s.pairMany, false},
	}
	if s.bracket {
		steps = append(steps, scaleStep{"TCP pair, 2 ports again", func(ctx context.Context) error { return s.pairFew(ctx, &res.Pair.FewAgain) }, false})
	}
	prog := newProgress(os.Stderr, len(steps), time.Duration(cfg.seconds)*time.Second+stepOverhead)
	defer prog.done("scale ended")
	for i, st := range steps {
		if i > 0 {
			if sleep(ctx, pause) != nil {
				return
			}
		}
		prog.step("scale: %s (step %d of %d)", st.name, i+1, len(steps))
		err := st.run(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fail(st.name, sw.withDaemonLog(err))
			if st.fatal {
				return
			}
		}
	}
	res.Pair.Ratio = res.Pair.ratio()
}

// ratio is Many over Few, or over the mean of Few and FewAgain when both
// were measured; 0 when there is nothing to divide.
func (p *scalePair) ratio() float64 {
	var sum float64
	var n int
	for _, m := range []*measurement{p.Few, p.FewAgain} {
		if m != nil && m.ok() && m.Value > 0 {
			sum += m.Value
			n++
		}
	}
	if n == 0 || p.Many == nil || !p.Many.ok() {
		return 0
	}
	return p.Many.Value / (sum / float64(n))
}

// attachDetach times an attach of every namespace through the API, then
// a detach of each, then one attach through the CLI.
func (s *scaleRun) attachDetach(ctx context.Context) error {
	var attach, detach []time.Duration
	for i, ns := range s.fl.names {
		start := time.Now()
		p, err := s.client.Attach(ctx, api.AttachRequest{Netns: ns, IPs: []string{scaleAddr(i)}})
		took := time.Since(start)
		if err != nil {
			return fmt.Errorf("attach %s: %w", ns, err)
		}
		attach = append(attach, took)
		s.ports[i] = p.Name
	}
	for i := range s.fl.names {
		start := time.Now()
		err := s.client.Detach(ctx, s.ports[i])
		took := time.Since(start)
		if err != nil {
			return fmt.Errorf("detach %s: %w", s.ports[i], err)
		}
		detach = append(detach, took)
		delete(s.ports, i)
	}
	s.res.Attach, s.res.Detach = summarize(attach), summarize(detach)
	logf("scale: attach median %.1f ms, detach median %.1f ms", s.res.Attach.Median, s.res.Detach.Median)

	start := time.Now()
	_, err := s.sw.cli(ctx, "attach", s.fl.names[0], "--ip", scaleAddr(0))
	took := time.Since(start)
	if err != nil {
		return err
	}
	s.res.CLIAttachMs = float64(took.Microseconds()) / 1000
	// The CLI's port goes by whatever name the daemon gave it, so it is
	// found in the listing, the only port there.
	ps, err := s.client.Ports(ctx)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if err := s.client.Detach(ctx, p.Name); err != nil {
			return fmt.Errorf("detach %s: %w", p.Name, err)
		}
	}
	start = time.Now()
	p, err := s.client.Attach(ctx, api.AttachRequest{Netns: s.fl.names[0], IPs: []string{scaleAddr(0)}})
	took = time.Since(start)
	if err != nil {
		return fmt.Errorf("attach %s: %w", s.fl.names[0], err)
	}
	s.res.APIAttachMs = float64(took.Microseconds()) / 1000
	return s.client.Detach(ctx, p.Name)
}

// attachRange attaches namespaces lo..hi-1 that are not attached yet.
func (s *scaleRun) attachRange(ctx context.Context, lo, hi int) error {
	for i := lo; i < hi; i++ {
		if _, ok := s.ports[i]; ok {
			continue
		}
		req := api.AttachRequest{Netns: s.fl.names[i], IPs: []string{scaleAddr(i)}}
		if i == scaleFillIndex {
			// The fill port plays a namespace that bridges a whole
			// network of its own: port security off, and a MAC limit
			// as large as the network's table.
			off := false
			req.PortPolicy = api.PortPolicy{PortSecurity: &off, MACLimit: fdb.DefaultLimit}
		}
		p, err := s.client.Attach(ctx, req)
		if err != nil {
			return fmt.Errorf("attach %s: %w", s.fl.names[i], err)
		}
		s.ports[i] = p.Name
	}
	return nil
}

// detachRange detaches namespaces lo..hi-1 that are attached.
func (s *scaleRun) detachRange(ctx context.Context, lo, hi int) error {
	for i := lo; i < hi; i++ {
		name, ok := s.ports[i]
		if !ok {
			continue
		}
		if err := s.client.Detach(ctx, name); err != nil {
			return fmt.Errorf("detach %s: %w", name, err)
		}
		delete(s.ports, i)
	}
	return nil
}

// nsPair is one iperf3 path: client namespace to the server's address.
type nsPair struct {
	client, server, serverAddr string
}

// pairs returns scalePairs pairs on namespaces first, first+1, ...
func (s *scaleRun) pairs(first int) []nsPair {
	var out []nsPair
	for k := range scalePairs {
		a, b := first+2*k, first+2*k+1
		out = append(out, nsPair{client: s.fl.names[a], server: s.fl.names[b], serverAddr: hostAddr(scaleAddr(b))})
	}
	return out
}

// waitPairs pings across every pair, which also teaches the switch and
// the ARP caches the addresses before anything is timed.
func waitPairs(ctx context.Context, pairs []nsPair) error {
	for _, p := range pairs {
		if err := waitPing(ctx, p.client, p.serverAddr, 10*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func (s *scaleRun) aggregateBridge(ctx context.Context) (err error) {
	m := &measurement{Metric: "tcp_pairs_aggregate", Unit: unitBits}
	s.res.Aggregate.Bridge = m
	defer func() {
		if err != nil {
			m.Error = err.Error()
		}
	}()
	br := newBridge(fmt.Sprintf("tsb%ds", pidForNames))
	defer func() {
		if terr := br.teardown(); terr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", terr))
		}
	}()
	if err := br.create(ctx); err != nil {
		return err
	}
	first := scaleNamespaces - 2*scalePairs
	for k := range 2 * scalePairs {
		i := first + k
		if err := br.addEnd(ctx, s.fl.names[i], scaleAddr(i), strconv.Itoa(k)); err != nil {
			return err
		}
	}
	pairs := s.pairs(first)
	if err := waitPairs(ctx, pairs); err != nil {
		return err
	}
	if err := aggregateTCP(ctx, pairs, s.seconds, m); err != nil {
		return err
	}
	logf("scale: bridge, %d pairs: %s", scalePairs, formatValue(m.Unit, m.Value))
	return nil
}

func (s *scaleRun) aggregateTapswitch(ctx context.Context) (err error) {
	m := &measurement{Metric: "tcp_pairs_aggregate", Unit: unitBits}
	s.res.Aggregate.Tapswitch = m
	defer func() {
		if err != nil {
			m.Error = err.Error()
		}
	}()
	if err := s.attachRange(ctx, 0, 2*scalePairs); err != nil {
		return err
	}
	pairs := s.pairs(0)
	if err := waitPairs(ctx, pairs); err != nil {
		return err
	}
	if err := aggregateTCP(ctx, pairs, s.seconds, m); err != nil {
		return err
	}
	logf("scale: tapswitch, %d pairs: %s", scalePairs, formatValue(m.Unit, m.Value))
	if b := s.res.Aggregate.Bridge; b != nil && b.ok() && b.Value > 0 {
		s.res.Aggregate.Ratio = m.Value / b.Value
	}
	return nil
}

// aggregateTCP runs one iperf3 TCP test per pair, all at once, each with
// a server of its own on its own port, and fills m with the sum of what
// the servers received.
func aggregateTCP(ctx context.Context, pairs []nsPair, seconds int, m *measurement) error {
	var servers []*proc
	defer func() {
		for _, srv := range servers {
			srv.stop(2 * time.Second)
		}
	}()
	// Every server listens before any client starts, so the tests
	// overlap for all but the clients' start-up.
	for i, p := range pairs {
		srv, err := startIperfServer(ctx, netnsExec(p.server), p.serverAddr, iperfPort+i)
		if err != nil {
			return err
		}
		servers = append(servers, srv)
	}
	outs := make([][]byte, len(pairs))
	errs := make([]error, len(pairs))
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Go(func() {
			outs[i], errs[i] = runIperfClient(ctx, netnsExec(p.client), p.serverAddr, iperfPort+i, seconds, nil)
		})
	}
	wg.Wait()
	m.Value = 0
	m.Detail = map[string]float64{"retransmits": 0}
	for i := range pairs {
		if errs[i] != nil {
			return fmt.Errorf("pair %d: %w", i+1, errs[i])
		}
		v, d, err := parseIperfTCP(outs[i])
		if err != nil {
			return fmt.Errorf("pair %d: %w", i+1, err)
		}
		m.Value += v
		m.Detail[fmt.Sprintf("pair_%d_bits_per_second", i+1)] = v
		m.Detail["retransmits"] += d["retransmits"]
	}
	return nil
}

// tcpStream runs one single-stream iperf3 test across p into m.
func tcpStream(ctx context.Context, p nsPair, seconds int, m *measurement) error {
	srv, err := startIperfServer(ctx, netnsExec(p.server), p.serverAddr, iperfPort)
	if err != nil {
		return err
	}
	defer srv.stop(2 * time.Second)
	out, err := runIperfClient(ctx, netnsExec(p.client), p.serverAddr, iperfPort, seconds, nil)
	if err != nil {
		return err
	}
	m.Value, m.Detail, err = parseIperfTCP(out)
	return err
}

// pairFew measures the talking pair with nothing else attached, into
// *dst.
func (s *scaleRun) pairFew(ctx context.Context, dst **measurement) (err error) {
	m := &measurement{Metric: metricTCP1.Key, Unit: unitBits}
	*dst = m
	defer func() {
		if err != nil {
			m.Error = err.Error()
		}
	}()
	if err := s.detachRange(ctx, 2, scaleNamespaces); err != nil {
		return err
	}
	if err := s.attachRange(ctx, 0, 2); err != nil {
		return err
	}
	p := s.pairs(0)[0]
	if err := waitPairs(ctx, []nsPair{p}); err != nil {
		return err
	}
	if err := tcpStream(ctx, p, s.seconds, m); err != nil {
		return err
	}
	m.Detail["ports"] = float64(len(s.ports))
	logf("scale: pair with 2 ports: %s", formatValue(m.Unit, m.Value))
	return nil
}

// memory attaches scalePorts namespaces, fills the forwarding table from
// one of them and reads the daemon's memory. It leaves that state for
// pairMany.
func (s *scaleRun) memory(ctx context.Context) error {
	mem := &scaleMemory{}
	s.res.Memory = mem
	if err := s.attachRange(ctx, 0, scalePorts); err != nil {
		return err
	}
	mem.Ports = len(s.ports)
	rss, _, err := s.daemonMemory()
	if err != nil {
		return err
	}
	mem.RSSBeforeMiB = rss
	if err := s.fillFDB(ctx, mem); err != nil {
		return err
	}
	mem.RSSMiB, mem.HWMMiB, err = s.daemonMemory()
	if err != nil {
		return err
	}
	// Listed after the memory figures: encoding thousands of entries
	// takes memory of its own.
	fdb, err := s.client.FDB(ctx, api.DefaultNetwork)
	if err != nil {
		return err
	}
	mem.FDBEntries = len(fdb)
	logf("scale: %d ports, %d MACs: VmRSS %.1f MiB, VmHWM %.1f MiB", mem.Ports, mem.MACs, mem.RSSMiB, mem.HWMMiB)
	return nil
}

// daemonMemory returns the daemon's VmRSS and VmHWM in MiB.
func (s *scaleRun) daemonMemory() (rss, hwm float64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0, 0, err
	}
	r, err := procStatusKB(status, "VmRSS")
	if err != nil {
		return 0, 0, err
	}
	h, err := procStatusKB(status, "VmHWM")
	if err != nil {
		return 0, 0, err
	}
	return mib(r), mib(h), nil
}

// defaultNetwork returns the daemon's view of the network every port
// here joins.
func (s *scaleRun) defaultNetwork(ctx context.Context) (api.Network, error) {
	nets, err := s.client.Networks(ctx)
	if err != nil {
		return api.Network{}, err
	}
	for _, n := range nets {
		if n.Name == api.DefaultNetwork {
			return n, nil
		}
	}
	return api.Network{}, fmt.Errorf("tapswitchd lists no network %q", api.DefaultNetwork)
}

// fillFDB sends broadcasts from the fill port's namespace, each from a
// MAC of its own, until the table holds its limit: the limit less one
// MAC, the port's own being learned already. It paces the frames by the
// port's rx counter, since the daemon floods each to every other port.
func (s *scaleRun) fillFDB(ctx context.Context, mem *scaleMemory) error {
	n, err := s.defaultNetwork(ctx)
	if err != nil {
		return err
	}
	mem.MACLimit = n.MACLimit
	ports, err := s.client.Ports(ctx)
	if err != nil {
		return err
	}
	avoid := map[uint64]bool{}
	for _, p := range ports {
		if mac, err := net.ParseMAC(p.MAC); err == nil {
			avoid[macKey(mac)] = true
		}
	}
	macs := randomMACs(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), n.MACLimit-1, avoid)
	mem.FillMACs = len(macs)
	frames := make([][]byte, len(macs))
	for i, mac := range macs {
		if frames[i], err = fillFrame(mac); err != nil {
			return err
		}
	}

	fillPort := s.ports[scaleFillIndex]
	ps, err := openPacketSender(netnsPath(s.fl.names[scaleFillIndex]), "eth0")
	if err != nil {
		return err
	}
	defer ps.close()
	rx0, err := s.rxFrames(ctx, fillPort)
	if err != nil {
		return err
	}
	sent := 0
	for round := 1; round <= fillRounds; round++ {
		for _, f := range frames {
			if err := ps.send(f); err != nil {
				return err
			}
			sent++
			if sent%fillWindow == 0 {
				if _, err := s.waitRx(ctx, fillPort, rx0+uint64(sent-fillWindow)); err != nil {
					return err
				}
			}
		}
		rx, err := s.waitRx(ctx, fillPort, rx0+uint64(sent))
		if err != nil {
			return err
		}
		if n, err = s.defaultNetwork(ctx); err != nil {
			return err
		}
		mem.MACs, mem.FillFrames = n.MACs, sent
		// Frames the daemon read are learned or refused by the limit;
		// sending again helps only when some never reached it.
		if n.MACs >= n.MACLimit || rx-rx0 >= uint64(sent) {
			break
		}
		logf("scale: fill round %d: %d of %d frames reached the daemon, %d MACs learned; sending again",
			round, rx-rx0, sent, n.MACs)
	}
	return nil
}

// rxFrames returns the frames the daemon has read from port.
func (s *scaleRun) rxFrames(ctx context.Context, port string) (uint64, error) {
	ps, err := s.client.Ports(ctx)
	if err != nil {
		return 0, err
	}
	for _, p := range ps {
		if p.Name == port {
			return p.Stats.RxFrames, nil
		}
	}
	return 0, fmt.Errorf("port %s not listed", port)
}

// waitRx waits until port's rx counter reaches want, or stands still for
// fillStall (the frames it waits for were lost), and returns it.
func (s *scaleRun) waitRx(ctx context.Context, port string, want uint64) (uint64, error) {
	last, lastChange := uint64(0), time.Now()
	for {
		rx, err := s.rxFrames(ctx, port)
		if err != nil || rx >= want {
			return rx, err
		}
		if rx != last {
			last, lastChange = rx, time.Now()
		} else if time.Since(lastChange) > fillStall {
			return rx, nil
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			return rx, err
		}
	}
}

// pairMany measures the talking pair again with scalePorts attached and
// the table full, and reads an idle port's counters around it.
func (s *scaleRun) pairMany(ctx context.Context) (err error) {
	m := &measurement{Metric: metricTCP1.Key, Unit: unitBits}
	pr := s.res.Pair
	pr.Many = m
	defer func() {
		if err != nil {
			m.Error = err.Error()
		}
	}()
	p := s.pairs(0)[0]
	if err := waitPairs(ctx, []nsPair{p}); err != nil {
		return err
	}
	idle, receiver := s.ports[scaleIdleIndex], s.ports[1]
	pr.IdlePort = idle
	before, err := s.client.Ports(ctx)
	if err != nil {
		return err
	}
	if err := tcpStream(ctx, p, s.seconds, m); err != nil {
		return err
	}
	after, err := s.client.Ports(ctx)
	if err != nil {
		return err
	}
	m.Detail["ports"] = float64(len(s.ports))
	if s.res.Memory != nil {
		m.Detail["macs"] = float64(s.res.Memory.MACs)
	}
	dIdle, err := portDelta(before, after, idle)
	if err != nil {
		return err
	}
	dRecv, err := portDelta(before, after, receiver)
	if err != nil {
		return err
	}
	pr.IdleTxFrames, pr.IdleDrops, pr.ReceiverFrames = dIdle.TxFrames, sumDrops(dIdle.Drops), dRecv.TxFrames
	logf("scale: pair with %d ports: %s; idle port sent %d frames", len(s.ports), formatValue(m.Unit, m.Value), pr.IdleTxFrames)
	return nil
}

// portDelta returns name's counters in after less those in before.
func portDelta(before, after []api.Port, name string) (api.PortCounters, error) {
	find := func(ps []api.Port) (api.PortCounters, bool) {
		for _, p := range ps {
			if p.Name == name {
				return p.Stats, true
			}
		}
		return api.PortCounters{}, false
	}
	b, okB := find(before)
	a, okA := find(after)
	if !okA || !okB {
		return api.PortCounters{}, fmt.Errorf("port %s not listed", name)
	}
	d := api.PortCounters{
		RxFrames: a.RxFrames - b.RxFrames,
		RxBytes:  a.RxBytes - b.RxBytes,
		TxFrames: a.TxFrames - b.TxFrames,
		TxBytes:  a.TxBytes - b.TxBytes,
	}
	for reason, n := range a.Drops {
		if n > b.Drops[reason] {
			if d.Drops == nil {
				d.Drops = map[string]uint64{}
			}
			d.Drops[reason] = n - b.Drops[reason]
		}
	}
	return d, nil
}

func sumDrops(drops map[string]uint64) uint64 {
	var n uint64
	for _, v := range drops {
		n += v
	}
	return n
}
