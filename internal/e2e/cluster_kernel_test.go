package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVXLANKernelPeer is wire compatibility: tapswitchd on h1 with a
// static peer (no store) and, on h2, the Linux kernel's vxlan device
// bridged to a container. ARP, ping and TCP go both ways; tshark decodes
// the underlay between them as well-formed VXLAN with the network's VNI.
func TestVXLANKernelPeer(t *testing.T) {
	requirePrivileged(t, "tshark", "ethtool")
	c := newCluster(t, clusterOptions{
		hosts:   2,
		noStore: true,
		args: func(i int) []string {
			return []string{"--vxlan-peer", ulPrefix + "2"}
		},
		noDaemon: func(i int) bool { return i == 2 },
	})
	h1, h2 := c.host(1), c.host(2)
	const (
		network = "kv"
		vni     = 4243
		subnet  = "10.241.3.0/24"
		twAddr  = "10.241.3.10"
		kcAddr  = "10.241.3.20"
	)
	h1.mustCLI(t, "network", "create", network, "--subnet", subnet, "--scope", "cluster", "--vni", strconv.Itoa(vni))
	if n := h1.network(t, network); n == nil || n.VNI != vni || n.MTU != overlayMTU {
		t.Fatalf("h1: network %s: %+v, want vni %d and mtu %d", network, n, vni, overlayMTU)
	}
	tw := c.container(t, h1, "tw", network, "--ip", twAddr+"/24")

	// h2 is the kernel: vx0 (no learning, everything to h1) in a bridge
	// with a veth to the container kc.
	kc := c.newContainerNetns(t, "kc")
	c.mustIP(t, h2.ns, "link", "add", "vx0", "mtu", strconv.Itoa(overlayMTU), "type", "vxlan", "id", strconv.Itoa(vni),
		"dstport", "4789", "local", h2.vtep, "nolearning")
	if out, err := nsRun(h2.ns, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", h1.vtep); err != nil {
		t.Fatalf("bridge fdb append in %s: %v\n%s", h2.ns, err, out)
	}
	c.mustIP(t, h2.ns, "link", "add", "br0", "type", "bridge")
	c.mustIP(t, h2.ns, "link", "add", "kc0", "mtu", strconv.Itoa(overlayMTU), "type", "veth", "peer", "name", "eth0", "netns", kc)
	for _, l := range []string{"vx0", "kc0"} {
		c.mustIP(t, h2.ns, "link", "set", l, "master", "br0", "up")
	}
	c.mustIP(t, h2.ns, "link", "set", "br0", "up")
	c.mustIP(t, kc, "addr", "add", kcAddr+"/24", "dev", "eth0")
	c.mustIP(t, kc, "link", "set", "eth0", "up")
	// Over a veth, the kernel hands the next hop packets whose inner
	// checksums are still to be filled (CHECKSUM_PARTIAL), which a NIC
	// would fill on the wire; a socket in user space, tapswitchd's, gets
	// the bytes as they are. h2's underlay link fills them in software,
	// as a NIC would.
	if out, err := nsRun(h2.ns, "ethtool", "-K", ulIfname, "tx", "off"); err != nil {
		t.Fatalf("ethtool -K %s tx off in %s: %v\n%s", ulIfname, h2.ns, err, out)
	}

	t.Run("ARP, ping and TCP both ways", func(t *testing.T) {
		mustPing(t, kc, twAddr)
		mustPing(t, tw, kcAddr)
		for _, p := range []struct{ ns, mac, ip string }{{kc, linkMAC(t, tw, "eth0").String(), twAddr}, {tw, linkMAC(t, kc, "eth0").String(), kcAddr}} {
			out, err := nsRun(p.ns, "ip", "neigh", "show", p.ip)
			if err != nil || !strings.Contains(out, p.mac) {
				t.Errorf("ip neigh show %s in %s: %q (%v), want %s: ARP resolved across", p.ip, p.ns, out, err, p.mac)
			}
		}
		c.iperfServer(t, kc, kcAddr, 5201)
		c.iperfServer(t, tw, twAddr, 5201)
		for _, p := range []struct{ from, to, desc string }{{tw, kcAddr, "tapswitch -> kernel"}, {kc, twAddr, "kernel -> tapswitch"}} {
			r := c.iperf(t, p.from, p.to, 5201, "-t", "2")
			t.Logf("iperf3 -t 2 %s: %d bytes at %.2f Gbit/s, %d retransmits", p.desc, r.End.SumReceived.Bytes, r.gbps(), r.End.SumSent.Retransmits)
		}
	})

	t.Run("tshark decodes the underlay as VXLAN", func(t *testing.T) {
		// The capture should show what is on the wire, one packet per
		// datagram: h1's underlay link segments tapswitchd's UDP GSO
		// sends in software (its UDP segmentation offload off), as a NIC
		// would in hardware; h2's does all its work in software already.
		if out, err := nsRun(h1.ns, "ethtool", "-K", ulIfname, "tx-udp-segmentation", "off"); err != nil {
			t.Fatalf("ethtool -K %s tx-udp-segmentation off in %s: %v\n%s", ulIfname, h1.ns, err, out)
		}
		for _, ns := range []string{tw, kc} {
			nsRun(ns, "ip", "neigh", "flush", "all")
		}
		file := filepath.Join(c.dir, "vxlan.pcapng")
		// h1's port on the underlay bridge sees both directions.
		capture := c.startTshark(t, ulNetns, h1.ns+"-ul", file, "udp port 4789")
		mustPing(t, kc, twAddr)
		mustPing(t, tw, kcAddr)
		c.iperf(t, tw, kcAddr, 5201, "-t", "1", "-b", "10M")
		c.iperf(t, kc, twAddr, 5201, "-t", "1", "-b", "10M")
		capture.stop(t)

		fields := []string{"frame.number", "frame.len", "ip.src", "ip.dst", "udp.srcport", "udp.dstport", "vxlan.flags", "vxlan.vni",
			"eth.src", "eth.dst", "tcp.srcport", "tcp.dstport", "_ws.col.Protocol", "_ws.col.Info"}
		idx := make(map[string]int, len(fields))
		for i, f := range fields {
			idx[f] = i
		}
		decoded := tsharkDecode(t, file, nil, fields...)
		if len(decoded) == 0 {
			t.Fatal("tshark: nothing captured on the underlay")
		}
		col := func(r []string, f string) string { return r[idx[f]] }
		seen := map[string]int{}
		// The source port tapswitchd (h1) chose for each inner TCP flow.
		flowPorts := map[string]map[string]bool{}
		maxLen := 0
		for _, r := range decoded {
			if col(r, "vxlan.vni") != strconv.Itoa(vni) || col(r, "vxlan.flags") != "0x0800" {
				t.Errorf("packet %s: vxlan.vni %q flags %q, want %d and 0x0800 (the I flag)", col(r, "frame.number"), col(r, "vxlan.vni"), col(r, "vxlan.flags"), vni)
			}
			if col(r, "udp.dstport") != "4789" {
				t.Errorf("packet %s: udp.dstport %s, want 4789", col(r, "frame.number"), col(r, "udp.dstport"))
			}
			// ip.src and ip.dst hold the outer and then the inner
			// addresses; the outer ones are the hosts'.
			outerSrc, _, _ := strings.Cut(col(r, "ip.src"), ",")
			outerDst, _, _ := strings.Cut(col(r, "ip.dst"), ",")
			seen[outerSrc+" -> "+outerDst]++
			seen[col(r, "_ws.col.Protocol")]++
			if n, _ := strconv.Atoi(col(r, "frame.len")); n > maxLen {
				maxLen = n
			}
			if outerSrc == h1.vtep && col(r, "tcp.srcport") != "" {
				flow := col(r, "tcp.srcport") + "->" + col(r, "tcp.dstport")
				if flowPorts[flow] == nil {
					flowPorts[flow] = map[string]bool{}
				}
				flowPorts[flow][col(r, "udp.srcport")] = true
			}
		}
		for _, want := range []string{h1.vtep + " -> " + h2.vtep, h2.vtep + " -> " + h1.vtep, "ARP", "ICMP", "TCP"} {
			if seen[want] == 0 {
				t.Errorf("capture: no %s packet; saw %v", want, seen)
			}
		}
		// Every datagram fits the underlay: Ethernet header + ulMTU.
		if maxLen > ulMTU+14 {
			t.Errorf("capture: a frame of %d bytes on an underlay of MTU %d", maxLen, ulMTU)
		}
		// RFC 7348's source port: one per inner flow, so that the
		// underlay keeps a flow on one path.
		for flow, ports := range flowPorts {
			if len(ports) != 1 {
				t.Errorf("inner TCP flow %s from h1: outer source ports %v, want one", flow, ports)
			}
		}

		// The whole capture is too long for the log: every ARP and ICMP
		// packet, the first TCP ones and the first full-sized ones.
		var sb strings.Builder
		fmt.Fprintf(&sb, "tshark -r vxlan.pcapng -d udp.port==4789,vxlan -T fields -e %s\n", strings.Join(fields, " -e "))
		tcp, full := 0, 0
		for _, r := range decoded {
			if col(r, "_ws.col.Protocol") == "TCP" {
				tcp++
				isFull := col(r, "frame.len") == strconv.Itoa(maxLen)
				if isFull {
					full++
				}
				if tcp > 10 && (!isFull || full > 4) {
					continue
				}
			}
			sb.WriteString(strings.Join(r, "  "))
			sb.WriteByte('\n')
		}
		fmt.Fprintf(&sb, "(%d packets: %v; largest frame %d bytes; outer source ports of h1's inner TCP flows: %v)\n", len(decoded), seen, maxLen, flowPorts)
		if bad := tsharkDecode(t, file, []string{"-Y", "_ws.malformed || (udp.port == 4789 && !vxlan)"}, "frame.number", "_ws.expert.message"); len(bad) > 0 {
			t.Errorf("tshark -Y _ws.malformed finds %d malformed packets, first: %v", len(bad), bad[0])
		}
		expert := tsharkDecode(t, file, []string{"-Y", "_ws.expert"}, "frame.number", "_ws.expert.message")
		fmt.Fprintf(&sb, "tshark -Y _ws.malformed: nothing; expert notes on %d packets (TCP analysis), e.g. %v\n", len(expert), firstRow(expert))
		t.Logf("decoded capture of the underlay:\n%s", sb.String())
	})
}

// tsharkProc is a capture running in the background.
type tsharkProc struct {
	p      *proc
	stderr *syncBuffer
}

// startTshark captures on ifname inside ns into file with the capture
// filter, and waits until tshark says the capture started.
func (c *clusterEnv) startTshark(t *testing.T, ns, ifname, file, filter string) *tsharkProc {
	t.Helper()
	stderr := new(syncBuffer)
	cmd := exec.Command("ip", "netns", "exec", ns, "tshark", "-i", ifname, "-f", filter, "-w", file)
	cmd.Stderr = stderr
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("tshark -i %s in %s: %v", ifname, ns, err)
	}
	c.procs = append(c.procs, p)
	deadline := time.Now().Add(20 * time.Second)
	// "Capturing on" comes before the capture starts; this after.
	for !strings.Contains(stderr.String(), "Capture started") {
		select {
		case <-p.done:
			t.Fatalf("tshark -i %s in %s exited: %v\n%s", ifname, ns, p.err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tshark -i %s in %s: not capturing after 20s\n%s", ifname, ns, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &tsharkProc{p: p, stderr: stderr}
}

// stop ends the capture as Ctrl-C would and waits for the file.
func (tp *tsharkProc) stop(t *testing.T) {
	t.Helper()
	// A moment for the last packets to be written.
	time.Sleep(500 * time.Millisecond)
	tp.p.cmd.Process.Signal(syscall.SIGINT)
	if err := tp.p.wait(20 * time.Second); err != nil {
		t.Fatalf("tshark after SIGINT: %v\n%s", err, tp.stderr.String())
	}
}

// tsharkDecode reads file decoding UDP port 4789 as VXLAN, with the extra
// args (a display filter), and returns the fields of each packet.
func tsharkDecode(t *testing.T, file string, extra []string, fields ...string) [][]string {
	t.Helper()
	args := append([]string{"-r", file, "-d", "udp.port==4789,vxlan", "-T", "fields", "-E", "separator=|"}, extra...)
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command("tshark", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "|"))
		}
	}
	return rows
}

// firstRow is rows[0], or nil.
func firstRow(rows [][]string) []string {
	if len(rows) == 0 {
		return nil
	}
	return rows[0]
}
