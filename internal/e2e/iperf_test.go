package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// iperfResult is the part of iperf3 -J output the test reads.
type iperfResult struct {
	End struct {
		SumSent struct {
			Bytes uint64 `json:"bytes"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         uint64  `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// TestIperf3 moves more than 1 GiB over TCP between two namespaces. The
// rate is logged, not asserted: speed is for benchmarks.
func TestIperf3(t *testing.T) {
	e := newEnv(t, "iperf3", "ss")
	nsA, nsB := e.newNetns("a"), e.newNetns("b")
	const ipA, ipB = "10.77.3.1/24", "10.77.3.2/24"
	e.attach(nsA, "--ip", ipA)
	portB := e.attach(nsB, "--ip", ipB)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The server writes to a file, which can be read while it still runs.
	logPath := filepath.Join(e.dir, "iperf3-server.log")
	serverLog, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer serverLog.Close()
	serverOut := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	server := exec.CommandContext(ctx, "ip", "netns", "exec", nsB, "iperf3", "-s", "-1", "-B", addr(ipB))
	server.Stdout = serverLog
	server.Stderr = serverLog
	srv, err := startProc(server)
	if err != nil {
		t.Fatalf("iperf3 -s in %s: %v", nsB, err)
	}
	e.procs = append(e.procs, srv)

	// A probe connection would use up the one test of iperf3 -s -1, so
	// readiness is read off the listening sockets instead.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := nsRun(nsB, "ss", "-H", "-l", "-t", "-n", "sport", "=", ":5201")
		if err == nil && strings.TrimSpace(out) != "" {
			break
		}
		select {
		case <-srv.done:
			t.Fatalf("iperf3 -s in %s exited: %v\n%s", nsB, srv.err, serverOut())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("iperf3 -s in %s: not listening on :5201 after 10s: %v\n%s", nsB, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The server takes its byte count when the client says it is done,
	// before the last few MiB in flight are read: iperf3 reports
	// sum_received a little short of sum_sent even over loopback. Sending
	// 1100 MiB leaves ample room for that and still checks that 1 GiB
	// arrived.
	const (
		send = 1100 << 20
		want = 1 << 30
	)
	client := exec.CommandContext(ctx, "ip", "netns", "exec", nsA, "iperf3", "-c", addr(ipB), "-n", "1100M", "-J")
	var stderr bytes.Buffer
	client.Stderr = &stderr
	out, err := client.Output()
	if err != nil {
		t.Fatalf("iperf3 -c %s -n 1100M from %s: %v\n%s%s", addr(ipB), nsA, err, out, stderr.String())
	}
	var res iperfResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("iperf3 -c %s -J from %s: %v\n%s", addr(ipB), nsA, err, out)
	}
	if res.Error != "" {
		t.Fatalf("iperf3 -c %s from %s: %s", addr(ipB), nsA, res.Error)
	}
	got := res.End.SumReceived
	if sent := res.End.SumSent.Bytes; sent < send {
		t.Errorf("iperf3 -c %s -n 1100M from %s: sent %d bytes, want >= %d", addr(ipB), nsA, sent, send)
	}
	if got.Bytes < want {
		t.Errorf("iperf3 -c %s -n 1100M from %s: received %d bytes, want >= %d", addr(ipB), nsA, got.Bytes, want)
	}
	t.Logf("iperf3 %s -> %s: %d bytes in %.2fs, %.2f Gbit/s", nsA, nsB, got.Bytes, got.Seconds, got.BitsPerSecond/1e9)

	// The switch's own count of what it wrote to the receiver's TAP, which
	// may be published a moment late.
	deadline = time.Now().Add(5 * time.Second)
	for {
		p := findPort(e.ports(), portB)
		if p == nil {
			t.Fatalf("tapswitch ports: no port %q", portB)
		}
		if p.Stats.TxBytes >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("tapswitch ports: port %s tx_bytes %d after iperf3, want >= %d", portB, p.Stats.TxBytes, want)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	if err := srv.wait(10 * time.Second); err != nil {
		t.Errorf("iperf3 -s -1 in %s: %v\n%s", nsB, err, serverOut())
	}
}
