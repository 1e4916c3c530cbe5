package vxlan

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
)

// TestCompareKernelTCP measures one TCP stream between containers on two
// hosts through tapswitch (switch, tunnel) and through Linux (vxlan
// device and bridge) on the same underlay, in alternating rounds, and
// logs the ratio. It is a measurement, not a check: it runs only with
// TAPSWITCH_VXLAN_COMPARE=1 (under the shared measurement lock).
func TestCompareKernelTCP(t *testing.T) {
	if os.Getenv("TAPSWITCH_VXLAN_COMPARE") != "1" {
		t.Skip("a measurement: set TAPSWITCH_VXLAN_COMPARE=1")
	}
	privtest.Require(t, "create namespaces and vxlan devices", "ip", "bridge")
	hosts := overlay(t)
	// The kernel's path beside it: on each host a vxlan device (VNI 501,
	// port 4790, as the endpoint holds 4789) on a bridge with a veth to a
	// container namespace at 10.232.201.N/24.
	tag := fmt.Sprintf("tsv%d", os.Getpid()%100000)
	var kns [2]string
	for i := range 2 {
		h := filepath.Base(hostNS(t, hosts[i]))
		kns[i] = privtest.Netns(t, fmt.Sprintf("%sk%d", tag, i+1))
		kname := filepath.Base(kns[i])
		ipCmd(t, "-n", h, "link", "add", "vx1", "type", "vxlan", "id", "501", "dstport", "4790", "local", hosts[i].ep.cfg.Local.String(), "nolearning", "dev", "eth0")
		ipCmd(t, "-n", h, "link", "add", "brk", "type", "bridge")
		ipCmd(t, "-n", h, "link", "set", "vx1", "master", "brk", "up")
		ipCmd(t, "-n", h, "link", "add", "kv", "type", "veth", "peer", "name", "eth0", "netns", kname)
		ipCmd(t, "-n", h, "link", "set", "kv", "master", "brk", "mtu", "1450", "up")
		ipCmd(t, "-n", h, "link", "set", "brk", "up")
		ipCmd(t, "-n", kname, "link", "set", "eth0", "mtu", "1450")
		ipCmd(t, "-n", kname, "addr", "add", fmt.Sprintf("10.232.201.%d/24", i+1), "dev", "eth0")
		ipCmd(t, "-n", kname, "link", "set", "eth0", "up")
		other := hosts[1-i].ep.cfg.Local.String()
		if out, err := runIn("bridge", "-n", h, "fdb", "append", "00:00:00:00:00:00", "dev", "vx1", "dst", other); err != nil {
			t.Fatalf("bridge fdb: %v\n%s", err, out)
		}
	}
	const size = 512 << 20
	type path struct {
		name     string
		src, dst string
		to       netip.AddrPort
	}
	paths := []path{
		{"tapswitch", hosts[0].cns, hosts[1].cns, netip.AddrPortFrom(hosts[1].ipAddr, 5201)},
		{"kernel", kns[0], kns[1], netip.MustParseAddrPort("10.232.201.2:5201")},
	}
	// Both paths run in this process (the test's own sockets at both
	// ends; tapswitch's switches and tunnels too), so its CPU time per
	// byte is a second yardstick, steadier than the rate on a loaded
	// machine: it counts the work, not the wait for a CPU. (Softirq work
	// the kernel runs in its own threads is not in it, for either path.)
	rates, cpus := map[string][]float64{}, map[string][]float64{}
	for round := range 3 {
		for _, p := range paths {
			before := cpuTime(t)
			r := stream(t, p.src, p.dst, p.to, size)
			c := (cpuTime(t) - before).Seconds() / (float64(size) / 1e9)
			rates[p.name] = append(rates[p.name], r)
			cpus[p.name] = append(cpus[p.name], c)
			t.Logf("round %d %s: %.0f Mbit/s, %.2f CPU-s per GB", round, p.name, r/1e6, c)
		}
	}
	med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	t.Logf("one TCP stream, %d MiB a round, median of 3: tapswitch/kernel = %.2f; CPU per byte tapswitch/kernel = %.2f",
		size>>20, med(rates["tapswitch"])/med(rates["kernel"]), med(cpus["tapswitch"])/med(cpus["kernel"]))
	t.Logf("tunnel A %+v; tunnel B %+v; endpoint B %+v", hosts[0].tun.Stats(), hosts[1].tun.Stats(), hosts[1].ep.Stats())
}

// hostNS returns the namespace of the host an overlay host's endpoint is
// in.
func hostNS(t *testing.T, o *overlayHost) string {
	t.Helper()
	a := o.ep.cfg.Local.As4()
	return filepath.Join("/run/netns", fmt.Sprintf("tsv%dh%d", os.Getpid()%100000, a[3]))
}

func runIn(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// stream sends size bytes over TCP from namespace src to to, a listener
// in namespace dst, and returns the rate in bit/s.
func stream(t *testing.T, src, dst string, to netip.AddrPort, size int) float64 {
	t.Helper()
	var ln net.Listener
	if err := namespace.Do(dst, func() (err error) { ln, err = net.Listen("tcp4", to.String()); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		done <- n
	}()
	var c net.Conn
	if err := namespace.Do(src, func() (err error) { c, err = net.Dial("tcp4", to.String()); return }); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if n := <-done; n != int64(size) {
		t.Fatalf("received %d of %d bytes", n, size)
	}
	return float64(size) * 8 / time.Since(start).Seconds()
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
