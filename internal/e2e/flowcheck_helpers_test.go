package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The helpers of the coalescing tests: the flowcheck program
// (testdata/flowcheck), which sends traffic whose every datagram or byte
// says what it must be, and checks it on arrival; and the counters the
// tests read around it.

// flowcheckTimeout bounds one run of flowcheck: a sender, or a receiver
// once its sender is done. A 64 MiB stream through a race-built daemon
// with segmentation off in the sender is the longest.
const flowcheckTimeout = 3 * time.Minute

// buildFlowcheck builds testdata/flowcheck into the test's directory and
// returns its path.
func (e *testEnv) buildFlowcheck() string {
	e.t.Helper()
	bin := filepath.Join(e.dir, "flowcheck")
	// go test runs in the package's directory, with the go command of
	// its own toolchain first in PATH.
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/flowcheck").CombinedOutput(); err != nil {
		e.t.Fatalf("go build ./testdata/flowcheck: %v\n%s", err, out)
	}
	return bin
}

// lockedBuffer is a bytes.Buffer a process writes to while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// flowReceiver is a flowcheck receiver running inside a namespace.
type flowReceiver struct {
	t              *testing.T
	args           []string
	p              *proc
	stdin          io.WriteCloser
	stdout, stderr *lockedBuffer
}

// startFlowReceiver starts flowcheck with args (udp-recv or tcp-recv ...)
// inside ns and waits until it says it is ready. It is killed when the
// test ends if it is still running.
func (e *testEnv) startFlowReceiver(bin, ns string, args ...string) *flowReceiver {
	e.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	r := &flowReceiver{t: e.t, args: args, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	r.stdin = stdin
	p, err := startProc(cmd)
	if err != nil {
		e.t.Fatalf("flowcheck %s in %s: %v", strings.Join(args, " "), ns, err)
	}
	e.procs = append(e.procs, p)
	r.p = p
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasPrefix(r.stdout.String(), "ready\n") {
		select {
		case <-p.done:
			e.t.Fatalf("flowcheck %s in %s exited before it was ready: %v\n%s", strings.Join(args, " "), ns, p.err, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("flowcheck %s in %s: not ready after 10s\n%s", strings.Join(args, " "), ns, r.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

// finish tells the receiver its sender is done (by closing its standard
// input), waits for it to exit and decodes what it printed into v.
func (r *flowReceiver) finish(v any) {
	r.t.Helper()
	r.stdin.Close()
	if err := r.p.wait(flowcheckTimeout); err != nil {
		r.p.kill()
		r.t.Fatalf("flowcheck %s: %v\n%s", strings.Join(r.args, " "), err, r.stderr)
	}
	out := strings.TrimPrefix(r.stdout.String(), "ready\n")
	if err := json.Unmarshal([]byte(out), v); err != nil {
		r.t.Fatalf("flowcheck %s printed %q: %v\n%s", strings.Join(r.args, " "), out, err, r.stderr)
	}
}

// runFlowSender runs flowcheck with args inside ns to its end and decodes
// what it printed into v.
func (e *testEnv) runFlowSender(bin, ns string, v any, args ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), flowcheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("flowcheck %s in %s: %v\n%s", strings.Join(args, " "), ns, err, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		e.t.Fatalf("flowcheck %s in %s printed %q: %v", strings.Join(args, " "), ns, out, err)
	}
}

// udpFlowResult is what flowcheck udp-recv found in one flow (see
// flowResult in testdata/flowcheck).
type udpFlowResult struct {
	Flow       int    `json:"flow"`
	Port       int    `json:"port"`
	Expected   int    `json:"expected"`
	Received   int    `json:"received"`
	Good       int    `json:"good"`
	Longer     int    `json:"longer"`
	Shorter    int    `json:"shorter"`
	Corrupt    int    `json:"corrupt"`
	BadHeader  int    `json:"bad_header"`
	OutOfOrder int    `json:"out_of_order"`
	FirstError string `json:"first_error"`
}

type udpRecvResult struct {
	Flows  []udpFlowResult `json:"flows"`
	Rcvbuf int             `json:"rcvbuf"`
}

type flowSendResult struct {
	Sent    int     `json:"sent"`
	Seconds float64 `json:"seconds"`
}

type tcpRecvResult struct {
	Bytes         uint64  `json:"bytes"`
	Mismatches    uint64  `json:"mismatches"`
	FirstMismatch int64   `json:"first_mismatch"`
	Seconds       float64 `json:"seconds"`
	Error         string  `json:"error"`
}

// txCoalesced are a port's coalescing counters: frames that left inside
// a super-frame the switch made, and such super-frames written.
type txCoalesced struct {
	frames, writes uint64
}

// coalesced reads port name's coalescing counters from tapswitch ports
// -o json.
func (e *testEnv) coalesced(name string) txCoalesced {
	e.t.Helper()
	p := findPort(e.ports(), name)
	if p == nil {
		e.t.Fatalf("tapswitch ports -o json: no port %s", name)
	}
	return txCoalesced{frames: p.Stats.TxCoalescedFrames, writes: p.Stats.TxCoalescedWrites}
}

// udpMIB reads the UDP counters of namespace ns: those of /proc/net/snmp
// for IPv4 (InDatagrams, InCsumErrors, RcvbufErrors, ...) or of
// /proc/net/snmp6 for IPv6, under the same names without "Udp6".
func udpMIB(t *testing.T, ns string, v6 bool) map[string]uint64 {
	t.Helper()
	if v6 {
		return snmp(t, ns, "Udp6")
	}
	return snmp(t, ns, "Udp")
}

// snmp reads one table of counters of namespace ns: Udp6 (and the rest
// of IPv6's) from /proc/net/snmp6, others (Udp, Tcp, which counts both
// families) from /proc/net/snmp; names without the table's prefix.
func snmp(t *testing.T, ns, table string) map[string]uint64 {
	t.Helper()
	file := "/proc/net/snmp"
	v6 := strings.HasSuffix(table, "6")
	if v6 {
		file = "/proc/net/snmp6"
	}
	out, err := nsRun(ns, "cat", file)
	if err != nil {
		t.Fatalf("cat %s in %s: %v\n%s", file, ns, err, out)
	}
	m := map[string]uint64{}
	lines := strings.Split(out, "\n")
	if v6 {
		// One counter a line: Udp6InDatagrams 12.
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) == 2 && strings.HasPrefix(f[0], table) {
				m[strings.TrimPrefix(f[0], table)], _ = strconv.ParseUint(f[1], 10, 64)
			}
		}
	} else {
		// Two lines start with "Udp:": the names, then the values.
		var names []string
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) == 0 || f[0] != table+":" {
				continue
			}
			if names == nil {
				names = f[1:]
				continue
			}
			for i, v := range f[1:] {
				if i < len(names) {
					m[names[i]], _ = strconv.ParseUint(v, 10, 64)
				}
			}
			break
		}
	}
	if len(m) == 0 {
		t.Fatalf("no %s counters in %s of %s:\n%s", table, file, ns, out)
	}
	return m
}

// mibDelta is after minus before for every counter of after.
func mibDelta(before, after map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

func (r udpFlowResult) String() string {
	return fmt.Sprintf("flow %d (port %d): %d of %d received, %d good, %d longer, %d shorter, %d corrupt, %d bad header, %d out of order; first error: %q",
		r.Flow, r.Port, r.Received, r.Expected, r.Good, r.Longer, r.Shorter, r.Corrupt, r.BadHeader, r.OutOfOrder, r.FirstError)
}

// txDropped is the count of frames ifname in ns dropped on transmit: for
// a TAP, frames its reader (the switch) had not taken when its queue was
// full.
func txDropped(t *testing.T, ns, ifname string) uint64 {
	t.Helper()
	out, err := nsRun(ns, "ip", "-j", "-s", "link", "show", "dev", ifname)
	if err != nil {
		t.Fatalf("ip -j -s link show dev %s in %s: %v\n%s", ifname, ns, err, out)
	}
	var links []struct {
		Stats64 struct {
			Tx struct {
				Dropped uint64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j -s link show dev %s in %s: %v\n%s", ifname, ns, err, out)
	}
	return links[0].Stats64.Tx.Dropped
}

// waitTxFrames waits up to 10s until port name's tx_frames reach want,
// and returns them: frames a sender has handed its TAP are then past the
// switch. It does not fail: frames dropped on the way never come, and
// what the test then checks says so.
func (e *testEnv) waitTxFrames(name string, want uint64) uint64 {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := findPort(e.ports(), name).Stats.TxFrames
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}
