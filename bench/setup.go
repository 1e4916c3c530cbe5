package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The two ends of every test. The same /24 on every system keeps the only
// difference between runs the switch in the middle.
const (
	addrA = "10.90.0.1/24"
	addrB = "10.90.0.2/24"
)

// A system joins eth0 in two namespaces into one Ethernet segment.
type system interface {
	name() string
	// setup connects tb.nsA and tb.nsB, each with eth0 up and addressed.
	// teardown is called after setup whatever setup returned, so setup
	// only records what it created and need not undo a half-done job.
	setup(ctx context.Context, tb *testbed) error
	// teardown removes what setup created, except the namespaces.
	teardown() error
}

// A switchProcess forwards frames in a process of its own, whose CPU
// time the report shows next to the two ends'.
type switchProcess interface {
	// switchPID returns the forwarding process's pid, or 0 when there is
	// none (the kernel forwards) or it is not running.
	switchPID() int
}

// switchProcesses is a switchProcess that forwards in more than one
// process, such as one per host with -cluster.
type switchProcesses interface {
	// moreSwitchPIDs returns the processes beyond switchPID's, 0 for one
	// not running.
	moreSwitchPIDs() []int
}

var (
	_ switchProcess = (*bridgeSystem)(nil)
	_ switchProcess = (*tapswitchSystem)(nil)
	_ switchProcess = (*ovsSystem)(nil)
)

// A lister shows the switch's own view of the segment (ports, learned
// addresses) next to the numbers, for the demo.
type lister interface {
	listings() []listing
}

type listing struct {
	Title  string `json:"title"`
	Output string `json:"output"`
}

// testbed is the pair of namespaces one system is measured in.
type testbed struct {
	nsA, nsB string
	// enterA and enterB are the command prefixes that run a program in
	// A's and B's network namespace: ip netns exec for the namespaces
	// the testbed creates, nsenter for a container's (see docker.go).
	enterA, enterB []string
	// serverAddr is B's address, which the clients in A talk to.
	serverAddr string
	created    []string
	// switchPID is the system's forwarding process (see switchProcess),
	// set once it is up; 0 for none. moreSwitchPIDs are its further
	// ones, with -cluster the other host's (see switchProcesses).
	switchPID      int
	moreSwitchPIDs []int
	// profile records a perf profile of each throughput test; nil
	// without -profile, or without perf.
	profile *profiler
}

func newTestbed(pid int) *testbed {
	tb := &testbed{
		nsA:        fmt.Sprintf("tsb-%d-a", pid),
		nsB:        fmt.Sprintf("tsb-%d-b", pid),
		serverAddr: hostAddr(addrB),
	}
	tb.enterA, tb.enterB = netnsExec(tb.nsA), netnsExec(tb.nsB)
	return tb
}

// netnsExec is the command prefix that runs a program in the named
// network namespace ns.
func netnsExec(ns string) []string {
	return []string{"ip", "netns", "exec", ns}
}

// inNetns splits the command that runs args in the namespace enter
// enters into a name and arguments, as exec wants them.
func inNetns(enter []string, args ...string) (string, []string) {
	full := append(slices.Clone(enter), args...)
	return full[0], full[1:]
}

func hostAddr(cidr string) string {
	addr, _, _ := strings.Cut(cidr, "/")
	return addr
}

// create makes both namespaces with lo up: iperf3 and sockperf need
// loopback for nothing, but a namespace with lo down is not what
// containers look like.
func (tb *testbed) create(ctx context.Context) error {
	for _, ns := range []string{tb.nsA, tb.nsB} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			return fmt.Errorf("netns %q already exists: left over from an earlier run? remove it with: ip netns delete %s", ns, ns)
		}
		if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return err
		}
		tb.created = append(tb.created, ns)
		if _, err := run(ctx, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	return nil
}

// destroy deletes the namespaces; whatever links are still inside go
// with them.
func (tb *testbed) destroy() error {
	var errs []error
	for _, ns := range tb.created {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := run(ctx, "ip", "netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	tb.created = nil
	return errors.Join(errs...)
}

// configure renames, addresses and brings up the link a system put into ns.
func configure(ctx context.Context, ns, link, cidr string) error {
	if link != "eth0" {
		if _, err := run(ctx, "ip", "-n", ns, "link", "set", link, "name", "eth0"); err != nil {
			return err
		}
	}
	if _, err := run(ctx, "ip", "-n", ns, "addr", "add", cidr, "dev", "eth0"); err != nil {
		return err
	}
	_, err := run(ctx, "ip", "-n", ns, "link", "set", "eth0", "up")
	return err
}

// waitReachable pings b from a until it answers: the first frames also
// fill the switch's forwarding table and the ARP caches, which would
// otherwise be charged to the first test.
func (tb *testbed) waitReachable(ctx context.Context, timeout time.Duration) error {
	return waitPingIn(ctx, tb.enterA, tb.serverAddr, timeout)
}

// waitPing pings addr from ns until it answers or timeout passes.
func waitPing(ctx context.Context, ns, addr string, timeout time.Duration) error {
	return waitPingIn(ctx, netnsExec(ns), addr, timeout)
}

// waitPingIn pings addr from the namespace enter enters until it answers
// or timeout passes.
func waitPingIn(ctx context.Context, enter []string, addr string, timeout time.Duration) error {
	ns := strings.Join(enter, " ")
	deadline := time.Now().Add(timeout)
	for {
		name, args := inNetns(enter, "ping", "-c", "1", "-W", "1", addr)
		_, err := run(ctx, name, args...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s cannot reach %s within %v: %w", ns, addr, timeout, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitListening waits until the server p has a socket bound to port.
// It reads /proc/PID/net, which shows the sockets of the namespace p runs
// in, so no command has to enter the namespace to look.
func waitListening(ctx context.Context, p *proc, proto string, port int, timeout time.Duration) error {
	state := tcpListen
	if proto == "udp" {
		state = udpUnconnected
	}
	deadline := time.Now().Add(timeout)
	for {
		for _, file := range []string{proto, proto + "6"} {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", p.pid(), file))
			if err == nil && procNetHasSocket(data, port, state) {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("%s exited before listening: %v: %s", p.name, p.err, p.output.String())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s port %d after %v", p.name, proto, port, timeout)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// Socket states as /proc/net/{tcp,udp} print them (include/net/tcp_states.h).
const (
	tcpListen      = "0A"
	udpUnconnected = "07"
)

// procNetHasSocket reports whether a /proc/net/{tcp,udp}[6] table holds a
// socket in state bound to local port.
func procNetHasSocket(table []byte, port int, state string) bool {
	sc := bufio.NewScanner(bytes.NewReader(table))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] == "sl" {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err == nil && int(p) == port && f[3] == state {
			return true
		}
	}
	return false
}
