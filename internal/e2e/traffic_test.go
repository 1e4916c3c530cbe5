package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// iperfServer is an iperf3 -s running inside a namespace for the rest of
// the test; it serves any number of clients, one at a time.
type iperfServer struct {
	ns, ip string
	log    string
}

// netnsFile is the namespace file of ns: ns itself when it is a path,
// else the file of the named namespace.
func netnsFile(ns string) string {
	if filepath.IsAbs(ns) {
		return ns
	}
	return nsPath(ns)
}

// startIperfServer starts iperf3 -s bound to ip inside ns (a name or a
// namespace file) on port 5201, with the extra args, and waits until it
// listens.
func (e *testEnv) startIperfServer(ns, ip string, args ...string) *iperfServer {
	e.t.Helper()
	s := &iperfServer{ns: ns, ip: ip, log: filepath.Join(e.dir, "iperf3-"+filepath.Base(ns)+".log")}
	f, err := os.Create(s.log)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("nsenter", append([]string{"--net=" + netnsFile(ns), "iperf3", "-s", "-B", ip}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	p, err := startProc(cmd)
	if err != nil {
		e.t.Fatalf("iperf3 -s in %s: %v", ns, err)
	}
	e.procs = append(e.procs, p)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.done:
			b, _ := os.ReadFile(s.log)
			e.t.Fatalf("iperf3 -s in %s exited: %v\n%s", ns, p.err, b)
		default:
		}
		// Asking the kernel, not connecting: a probe connection would
		// count as a test to the server.
		out, err := nsenter(netnsFile(ns), "ss", "-Htln", "sport", "= :5201")
		if err == nil && strings.Contains(out, "5201") {
			return s
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("iperf3 -s in %s: not listening on :5201 after 10s: %v\n%s", ns, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nsenter runs a command inside the network namespace file nsFile.
func nsenter(nsFile string, args ...string) (string, error) {
	return run("nsenter", append([]string{"--net=" + nsFile}, args...)...)
}

// iperfRun is what one iperf3 client run reported.
type iperfRun struct {
	End struct {
		SumSent struct {
			Bytes         uint64  `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int     `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         uint64  `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		// Sum is what a UDP test reports.
		Sum struct {
			Packets     uint64  `json:"packets"`
			LostPackets uint64  `json:"lost_packets"`
			Seconds     float64 `json:"seconds"`
		} `json:"sum"`
	} `json:"end"`
	// ServerOutput is what the receiving end counted, interval by
	// interval, with --get-server-output.
	ServerOutput struct {
		Intervals []struct {
			Sum struct {
				Start float64 `json:"start"`
				End   float64 `json:"end"`
				Bytes uint64  `json:"bytes"`
			} `json:"sum"`
		} `json:"intervals"`
	} `json:"server_output_json"`
	Error string `json:"error"`
}

// gbps is the rate the receiver saw, in Gbit/s.
func (r *iperfRun) gbps() float64 { return r.End.SumReceived.BitsPerSecond / 1e9 }

// gap is the longest time the receiver got nothing, to the resolution of
// the server's intervals, and the bytes received after it.
func (r *iperfRun) gap() (gap time.Duration, after uint64) {
	var run float64
	longest, end := 0.0, -1
	for i, iv := range r.ServerOutput.Intervals {
		if iv.Sum.Bytes == 0 {
			run += iv.Sum.End - iv.Sum.Start
			if run > longest {
				longest, end = run, i
			}
			continue
		}
		run = 0
	}
	for _, iv := range r.ServerOutput.Intervals[end+1:] {
		after += iv.Sum.Bytes
	}
	return time.Duration(longest * float64(time.Second)), after
}

// iperfClient is an iperf3 -c started in the background.
type iperfClient struct {
	desc   string
	p      *proc
	stdout *bytes.Buffer
	stderr *bytes.Buffer
}

// startIperf starts iperf3 -c s.ip -J from ns (a name or a namespace
// file) with the extra args.
func (e *testEnv) startIperf(ns string, s *iperfServer, args ...string) *iperfClient {
	e.t.Helper()
	c := &iperfClient{
		desc:   fmt.Sprintf("iperf3 -c %s %s from %s", s.ip, strings.Join(args, " "), ns),
		stdout: new(bytes.Buffer),
		stderr: new(bytes.Buffer),
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + netnsFile(ns), "iperf3", "-c", s.ip, "-J"}, args...)...)
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	p, err := startProc(cmd)
	if err != nil {
		e.t.Fatalf("%s: %v", c.desc, err)
	}
	e.procs = append(e.procs, p)
	c.p = p
	return c
}

// wait waits for the client and returns its report, or an error saying
// what went wrong: a non-zero exit or an error in the report.
func (c *iperfClient) wait(timeout time.Duration) (*iperfRun, error) {
	if err := c.p.wait(timeout); err != nil {
		c.p.kill()
		return nil, fmt.Errorf("%s: %v\n%s%s", c.desc, err, c.stdout, c.stderr)
	}
	var r iperfRun
	if err := json.Unmarshal(c.stdout.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", c.desc, err, c.stdout)
	}
	if r.Error != "" {
		return nil, fmt.Errorf("%s: %s", c.desc, r.Error)
	}
	return &r, nil
}

// result is wait, failing the test on an error.
func (c *iperfClient) result(t *testing.T, timeout time.Duration) *iperfRun {
	t.Helper()
	r, err := c.wait(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// iperf runs iperf3 -c to completion and fails the test unless it
// succeeds and moved data.
func (e *testEnv) iperf(ns string, s *iperfServer, args ...string) *iperfRun {
	e.t.Helper()
	c := e.startIperf(ns, s, args...)
	r := c.result(e.t, 3*time.Minute)
	if r.End.SumReceived.Bytes == 0 && r.End.Sum.Packets == 0 {
		e.t.Fatalf("%s: nothing arrived\n%s", c.desc, c.stdout)
	}
	return r
}

// sendRaw writes frame, a whole Ethernet frame, out of the socket's
// interface. A full transmit queue is waited out rather than counted.
func (pc *packetConn) sendRaw(frame []byte) error {
	for {
		err := unix.Sendto(pc.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: pc.ifindex})
		if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
			time.Sleep(50 * time.Microsecond)
			continue
		}
		return err
	}
}

// procStats are what /proc says of a process.
type procStats struct {
	fds      int
	rssBytes uint64
	threads  int
}

func (s procStats) String() string {
	return fmt.Sprintf("%d fds, %d threads, VmRSS %.1f MiB", s.fds, s.threads, float64(s.rssBytes)/(1<<20))
}

// daemonProcStats reads the running daemon's fd count, threads and
// resident memory from /proc.
func (e *testEnv) daemonProcStats() procStats {
	e.t.Helper()
	pid := e.daemon.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		e.t.Fatalf("open fds of tapswitchd: %v", err)
	}
	s := procStats{fds: len(fds)}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseUint(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rssBytes = n << 10
		case "Threads":
			s.threads = int(n)
		}
	}
	return s
}

// recv reads one frame into buf. ok is false when the read timed out or
// the frame was one the socket's own interface sent out.
func (pc *packetConn) recv(buf []byte) (n int, ok bool, err error) {
	n, from, err := unix.Recvfrom(pc.fd, buf, 0)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("recvfrom: %w", err)
	}
	ll, isLL := from.(*unix.SockaddrLinklayer)
	return n, isLL && ll.Pkttype != unix.PACKET_OUTGOING, nil
}
