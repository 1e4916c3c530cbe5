package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// sockperfPort is sockperf's own default.
const sockperfPort = 11111

// sockperf has no machine-readable summary, so its text is read with
// patterns anchored on the labels it prints. It colours some lines even
// into a pipe, hence the escape stripping.
var (
	ansiEscape      = regexp.MustCompile("\x1b\\[[0-9;]*m")
	sockperfAvgRTT  = regexp.MustCompile(`avg-rtt=([0-9.]+)`)
	sockperfHalfRTT = regexp.MustCompile(`avg-latency=([0-9.]+)`)
	sockperfP50     = regexp.MustCompile(`percentile 50\.000 =\s*([0-9.]+)`)
	sockperfP99     = regexp.MustCompile(`percentile 99\.000 =\s*([0-9.]+)`)
	sockperfMax     = regexp.MustCompile(`<MAX> observation =\s*([0-9.]+)`)
	sockperfCount   = regexp.MustCompile(`Total ([0-9]+) observations`)
	sockperfDropped = regexp.MustCompile(`# dropped messages = ([0-9]+)`)
	sockperfValid   = regexp.MustCompile(`\[Valid Duration\] RunTime=([0-9.]+) sec`)
)

type sockperfResult struct {
	AvgUs, P50Us, P99Us, MaxUs float64
	Observations, Dropped      float64
	// ValidSeconds is the part of the run the observations come from,
	// without the warm-up and the drain at the end.
	ValidSeconds float64
}

// parseSockperf reads the output of `sockperf ping-pong --full-rtt`.
// Times are in microseconds, sockperf's only unit.
func parseSockperf(out string) (sockperfResult, error) {
	out = ansiEscape.ReplaceAllString(out, "")
	var r sockperfResult
	if sockperfAvgRTT.FindStringSubmatch(out) == nil && sockperfHalfRTT.FindStringSubmatch(out) != nil {
		// Without --full-rtt sockperf halves every figure.
		return r, fmt.Errorf("sockperf reported one-way latency; want round trip (--full-rtt)")
	}
	fields := []struct {
		label    string
		re       *regexp.Regexp
		dst      *float64
		required bool
	}{
		{"avg-rtt", sockperfAvgRTT, &r.AvgUs, true},
		{"percentile 99.000", sockperfP99, &r.P99Us, true},
		{"percentile 50.000", sockperfP50, &r.P50Us, false},
		{"<MAX> observation", sockperfMax, &r.MaxUs, false},
		{"observations", sockperfCount, &r.Observations, false},
		{"dropped messages", sockperfDropped, &r.Dropped, false},
		{"valid duration", sockperfValid, &r.ValidSeconds, false},
	}
	for _, f := range fields {
		m := f.re.FindStringSubmatch(out)
		if m == nil {
			if f.required {
				return r, fmt.Errorf("sockperf output has no %s: %s", f.label, lastLine(out))
			}
			continue
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return r, fmt.Errorf("sockperf output: %q: %w", m[0], err)
		}
		*f.dst = v
	}
	return r, nil
}

// runSockperf measures UDP round trips from a to b, one message in
// flight at a time, so the figure is the switch's latency rather than
// its queueing. It returns sockperf's report, with where the CPU went
// meanwhile (nil when that could not be measured; see cpuWatch).
func runSockperf(ctx context.Context, tb *testbed, seconds int) (string, map[string]float64, error) {
	port := strconv.Itoa(sockperfPort)
	name, args := inNetns(tb.enterB, "sockperf", "server", "-i", tb.serverAddr, "-p", port)
	srv, err := startProc(name, args...)
	if err != nil {
		return "", nil, err
	}
	defer srv.stop(2 * time.Second)
	if err := waitListening(ctx, srv, "udp", sockperfPort, 5*time.Second); err != nil {
		return "", nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+30*time.Second)
	defer cancel()
	name, args = inNetns(tb.enterA, "sockperf", "ping-pong", "-i", tb.serverAddr, "-p", port, "-t", strconv.Itoa(seconds), "--full-rtt")
	cmd := command(cctx, name, args...)
	// sockperf splits its report between stdout and stderr. One writer
	// for both keeps the order and gets one copying goroutine.
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cpu := newCPUWatch(seconds, "sockperf", srv.pid(), tb.switchPID, tb.moreSwitchPIDs...)
	if err := runCmd(cmd, cpu.watch); err != nil {
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		return "", nil, fmt.Errorf("sockperf ping-pong: %w: %s", err, ansiEscape.ReplaceAllString(out.String(), ""))
	}
	return out.String(), cpu.figures, nil
}

// lastLine is where sockperf says why it produced no statistics.
func lastLine(out string) string {
	out = strings.TrimSpace(out)
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if out == "" {
		return "(no output)"
	}
	return out
}
