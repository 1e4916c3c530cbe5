package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// iperfPort is iperf3's own default; each namespace pair is fresh, so
// nothing else can hold it.
const iperfPort = 5201

// iperfReport is the part of `iperf3 -J` output the benchmark reads.
// In iperf3 3.x the client's report carries the server's view of the test
// in end.sum_received, which is what reached the other side.
type iperfReport struct {
	Start struct {
		Version string `json:"version"`
	} `json:"start"`
	End struct {
		SumSent     *iperfSum `json:"sum_sent"`
		SumReceived *iperfSum `json:"sum_received"`
		// Sum is the UDP summary: the client's sent packet count next to
		// the server's lost count. Only older iperf3 versions need it.
		Sum *iperfSum `json:"sum"`
	} `json:"end"`
	// Error is set when the test failed; iperf3 3.12 still exits 0 then.
	Error string `json:"error"`
}

type iperfSum struct {
	Seconds       float64 `json:"seconds"`
	Bytes         float64 `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Retransmits   float64 `json:"retransmits"`
	Packets       float64 `json:"packets"`
	LostPackets   float64 `json:"lost_packets"`
	LostPercent   float64 `json:"lost_percent"`
}

var errNoSummary = errors.New("iperf3 report has no end summary")

func decodeIperf(data []byte) (*iperfReport, error) {
	var r iperfReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode iperf3 -J output: %w", err)
	}
	if r.Error != "" {
		return nil, fmt.Errorf("iperf3: %s", r.Error)
	}
	return &r, nil
}

// parseIperfTCP returns the received throughput in bit/s.
func parseIperfTCP(data []byte) (float64, map[string]float64, error) {
	r, err := decodeIperf(data)
	if err != nil {
		return 0, nil, err
	}
	rx, tx := r.End.SumReceived, r.End.SumSent
	if rx == nil || rx.Seconds <= 0 {
		return 0, nil, errNoSummary
	}
	detail := map[string]float64{"received_bytes": rx.Bytes, "seconds": rx.Seconds}
	if tx != nil {
		detail["sent_bits_per_second"] = tx.BitsPerSecond
		detail["retransmits"] = tx.Retransmits
	}
	return rx.BitsPerSecond, detail, nil
}

// parseIperfUDP returns the packets per second that reached the server.
// The sender's rate is not the figure: with -b 0 the client sends as fast
// as it can and the switch drops what it cannot carry.
func parseIperfUDP(data []byte) (float64, map[string]float64, error) {
	r, err := decodeIperf(data)
	if err != nil {
		return 0, nil, err
	}
	// sum_received is the server's own account (packets = highest sequence
	// number seen, lost = gaps below it); older versions only have sum.
	rx := r.End.SumReceived
	if rx == nil || rx.Packets == 0 {
		rx = r.End.Sum
	}
	if rx == nil || rx.Seconds <= 0 {
		return 0, nil, errNoSummary
	}
	delivered := rx.Packets - rx.LostPackets
	detail := map[string]float64{
		"delivered_packets": delivered,
		"lost_packets":      rx.LostPackets,
		"lost_percent":      rx.LostPercent,
		"seconds":           rx.Seconds,
	}
	if tx := r.End.SumSent; tx != nil && tx.Seconds > 0 {
		detail["sent_packets"] = tx.Packets
		detail["sent_packets_per_second"] = tx.Packets / tx.Seconds
	}
	return delivered / rx.Seconds, detail, nil
}

// runIperf runs one iperf3 test from a to b and returns the client's -J
// report, with where the CPU went meanwhile (nil when that could not be
// measured; see cpuWatch). also, when not nil, watches the client too.
func runIperf(ctx context.Context, tb *testbed, seconds int, also watcher, extra ...string) ([]byte, map[string]float64, error) {
	srv, err := startIperfServer(ctx, tb.enterB, tb.serverAddr, iperfPort)
	if err != nil {
		return nil, nil, err
	}
	defer srv.stop(2 * time.Second)
	cpu := newCPUWatch(seconds, "iperf3", srv.pid(), tb.switchPID, tb.moreSwitchPIDs...)
	out, err := runIperfClient(ctx, tb.enterA, tb.serverAddr, iperfPort, seconds, watchAll(cpu.watch, also), extra...)
	if err != nil {
		return nil, nil, err
	}
	srv.wait(5 * time.Second)
	return out, cpu.figures, nil
}

// startIperfServer starts an iperf3 server in the namespace enter enters
// (see testbed), on addr and port, and
// returns once it listens. The server serves exactly one test (-1), so a
// stray client from an earlier test cannot be measured by accident. The
// caller stops it.
func startIperfServer(ctx context.Context, enter []string, addr string, port int) (*proc, error) {
	name, args := inNetns(enter, "iperf3", "-s", "-1", "-B", addr, "-p", strconv.Itoa(port))
	srv, err := startProc(name, args...)
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, srv, "tcp", port, 5*time.Second); err != nil {
		srv.stop(2 * time.Second)
		return nil, err
	}
	return srv, nil
}

// runIperfClient runs the client side of one test from the namespace
// enter enters to the server
// on addr and port, with watch (when not nil) alongside, and returns its
// -J report.
func runIperfClient(ctx context.Context, enter []string, addr string, port, seconds int, watch watcher, extra ...string) ([]byte, error) {
	// Generous: a slow switch still ends on time, a wedged one does not.
	cctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+30*time.Second)
	defer cancel()
	name, args := inNetns(enter, append([]string{"iperf3", "-c", addr, "-p", strconv.Itoa(port), "-t", strconv.Itoa(seconds), "-J"}, extra...)...)
	out, err := runWatched(cctx, "", watch, name, args...)
	if err != nil {
		// The reason is in the JSON on stdout, not on stderr.
		if _, jerr := decodeIperf([]byte(out)); jerr != nil {
			return nil, fmt.Errorf("%w (%v)", jerr, err)
		}
		return nil, err
	}
	return []byte(out), nil
}
