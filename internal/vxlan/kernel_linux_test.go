package vxlan

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
)

// packetSock is an AF_PACKET socket on one link of a namespace: it sees
// the frames the link receives and sends frames out of it as they are.
type packetSock struct {
	fd      int
	ifindex int
}

func openPacket(t *testing.T, h host, ifname string) *packetSock {
	t.Helper()
	p := &packetSock{fd: -1}
	err := namespace.Do(h.ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		p.ifindex = ifi.Index
		proto := int(htons(unix.ETH_P_ALL))
		if p.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		tv := unix.Timeval{Usec: 100000}
		if err := unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(p.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if p.fd >= 0 {
		t.Cleanup(func() { unix.Close(p.fd) })
	}
	if err != nil {
		t.Fatalf("packet socket on %s: %v", ifname, err)
	}
	return p
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// recv returns the next frame the link received (not one it sent) that
// match accepts.
func (p *packetSock) recv(t *testing.T, what string, match func([]byte) bool) []byte {
	t.Helper()
	buf := make([]byte, 70000)
	for end := time.Now().Add(waitLimit); time.Now().Before(end); {
		n, from, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if match(buf[:n]) {
			return bytes.Clone(buf[:n])
		}
	}
	t.Fatalf("%s: no such frame came", what)
	return nil
}

func (p *packetSock) send(t *testing.T, frame []byte) {
	t.Helper()
	sa := &unix.SockaddrLinklayer{Ifindex: p.ifindex, Halen: 6}
	copy(sa.Addr[:], frame[:6])
	if err := unix.Sendto(p.fd, frame, 0, sa); err != nil {
		t.Fatal(err)
	}
}

// capture runs tshark on a link of a namespace, writing a capture file,
// until stop.
type capture struct {
	cmd  *exec.Cmd
	file string
}

// The capture also takes UDP to port 9 (discard), which marks where it
// begins and ends: tshark says it is capturing a little before it is, and
// loses what it has not written when it is stopped.
func startCapture(t *testing.T, h host, to netip.Addr, ifname, filter string) *capture {
	t.Helper()
	c := &capture{file: filepath.Join(t.TempDir(), "underlay.pcapng")}
	c.cmd = exec.Command("ip", "netns", "exec", filepath.Base(h.ns), "tshark", "-i", ifname, "-f", filter+" or udp dst port 9", "-w", c.file)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	started := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Capturing on") {
				started <- true
			}
		}
		close(started)
	}()
	select {
	case ok := <-started:
		if !ok {
			t.Fatal("tshark ended before capturing")
		}
	case <-time.After(waitLimit):
		t.Fatal("tshark did not start capturing")
	}
	c.mark(t, h, to)
	return c
}

// mark sends UDP to port 9 of to from h until the capture file holds one
// more such datagram than before.
func (c *capture) mark(t *testing.T, h host, to netip.Addr) {
	t.Helper()
	count := func() int {
		out, _ := exec.Command("tshark", "-r", c.file, "-Y", "udp.dstport == 9").Output()
		return strings.Count(string(out), "\n")
	}
	before := count()
	eventually(t, "a marker in the capture", func() bool {
		namespace.Do(h.ns, func() error {
			u, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, 9)))
			if err == nil {
				u.Write([]byte("mark"))
				u.Close()
			}
			return err
		})
		time.Sleep(20 * time.Millisecond)
		return count() > before
	})
}

// stop marks the end of the capture, then ends it (SIGINT, as a user
// would) and waits for tshark to exit.
func (c *capture) stop(t *testing.T, h host, to netip.Addr) {
	t.Helper()
	c.mark(t, h, to)
	c.cmd.Process.Signal(os.Interrupt)
	c.cmd.Wait()
}

// decode reads the capture with tshark, UDP port 4789 decoded as VXLAN,
// and returns one line of the fields per packet.
func (c *capture) decode(t *testing.T, args ...string) []string {
	t.Helper()
	args = append([]string{"-r", c.file, "-d", "udp.port==4789,vxlan"}, args...)
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", strings.Join(args, " "), err)
	}
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestKernelVXLAN: an endpoint and a Linux vxlan device (VNI 4242, port
// 4789, no learning, everything sent to the endpoint) on two hosts
// exchange ARP, ping and raw frames, byte for byte both ways; the
// kernel takes the segments of a super-frame the endpoint cut (it
// answers them with a reset, which it sends only for a segment whose
// checksums are right); tshark decodes the underlay as VXLAN of VNI 4242
// in both directions.
func TestKernelVXLAN(t *testing.T) {
	privtest.Require(t, "create network namespaces and a vxlan device", "ip", "bridge", "tshark")
	hs := underlayNet(t, 2)
	kname := filepath.Base(hs[1].ns)
	macK := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}
	ipCmd(t, "-n", kname, "link", "add", "vx0", "address", macK.String(), "type", "vxlan", "id", "4242", "dstport", "4789",
		"local", hs[1].addr.String(), "nolearning", "dev", "eth0")
	ipCmd(t, "-n", kname, "link", "set", "vx0", "addrgenmode", "none")
	ipCmd(t, "-n", kname, "addr", "add", "10.232.100.2/24", "dev", "vx0")
	ipCmd(t, "-n", kname, "link", "set", "vx0", "up")
	if out, err := exec.Command("bridge", "-n", kname, "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", hs[0].addr.String()).CombinedOutput(); err != nil {
		t.Fatalf("bridge fdb append: %v\n%s", err, out)
	}
	kernel := openPacket(t, hs[1], "vx0")

	capt := startCapture(t, hs[0], hs[1].addr, "eth0", "udp port 4789")
	e := listenIn(t, hs[0])
	e.SetMembers([]netip.Addr{hs[1].addr})
	tn := tunnel(t, e, 4242, 0, hs[1].addr)
	c := collect(t, tn.Queues()...)
	ourIP, kIP := netip.MustParseAddr("10.232.100.1"), netip.MustParseAddr("10.232.100.2")

	// ARP: the kernel receives our request as sent, and answers.
	req := arpFrame(1, macA, ourIP, bcast, kIP)
	write(t, tn, req, device.VnetHdr{})
	if got := kernel.recv(t, "our ARP request at vx0", ethType(0x0806)); !bytes.Equal(got, req) {
		t.Fatalf("vx0 received %x, want the request as sent, %x", got, req)
	}
	rep := c.next(t, "ARP reply from the kernel", ethType(0x0806))
	if want := arpFrame(2, macK, kIP, macA, ourIP); !bytes.Equal(rep[:len(want)], want) {
		t.Fatalf("ARP reply %x, want %x", rep, want)
	}

	// Ping.
	ping := icmpEcho(macK, macA, ourIP, kIP, 8, 0x4242, 1, []byte("tapswitch vxlan wire check"))
	write(t, tn, ping, device.VnetHdr{})
	pong := c.next(t, "echo reply from the kernel", func(f []byte) bool { return ethType(0x0800)(f) && len(f) > 34 && f[23] == 1 })
	if want := icmpEcho(macA, macK, kIP, ourIP, 0, 0x4242, 1, []byte("tapswitch vxlan wire check")); !bytes.Equal(pong[34:], want[34:]) {
		t.Fatalf("echo reply %x, want ICMP %x", pong[34:], want[34:])
	}

	// Raw frames, byte for byte, the kernel's way to us.
	raw := ethFrame(macA, macK, 500, 0x42)
	kernel.send(t, raw)
	if got := c.next(t, "frame the kernel sent", ethType(0x88b5)); !bytes.Equal(got, raw) {
		t.Fatalf("read %x, want the frame vx0 sent, %x", got, raw)
	}

	// A super-frame, cut here: the kernel takes its segments.
	payload := payloadOf(maxTCPPayload)
	sf, h := tcpSuperFrame(payload, 1448)
	copy(sf[0:6], macK)
	copy(sf[26:34], []byte{10, 232, 100, 1, 10, 232, 100, 2})
	fixIPv4(sf)
	write(t, tn, sf, h)
	var got []byte
	for len(got) < len(payload) {
		f := kernel.recv(t, "segment of the super-frame at vx0", func(f []byte) bool {
			return ethType(0x0800)(f) && len(f) > 66 && f[23] == 6 && binary.BigEndian.Uint16(f[36:]) == 5201
		})
		got = append(got, f[66:]...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("vx0 received %d bytes of payload, not those sent", len(got))
	}
	c.next(t, "reset from the kernel for the segments", func(f []byte) bool {
		return ethType(0x0800)(f) && len(f) >= 54 && f[23] == 6 && binary.BigEndian.Uint16(f[34:]) == 5201 && f[47]&0x04 != 0
	})

	capt.stop(t, hs[0], hs[1].addr)
	lines := capt.decode(t, "-Y", "vxlan", "-T", "fields", "-E", "separator=,", "-E", "occurrence=f", "-e", "ip.src", "-e", "udp.srcport", "-e", "vxlan.flags", "-e", "vxlan.vni")
	from := map[string]int{}
	for _, l := range lines {
		f := strings.Split(l, ",")
		if len(f) != 4 || f[3] != "4242" {
			t.Fatalf("tshark decoded %q: want a VXLAN packet of VNI 4242", l)
		}
		from[f[0]]++
		if f[0] == hs[0].addr.String() {
			if p, _ := strconv.Atoi(f[1]); p < 1024 {
				t.Fatalf("source port %d: want one of the ephemeral range", p)
			}
		}
	}
	if from[hs[0].addr.String()] < 4 || from[hs[1].addr.String()] < 4 {
		t.Fatalf("tshark saw VXLAN packets from %v: want both directions", from)
	}
	if bad := capt.decode(t, "-Y", "_ws.malformed || _ws.expert.severity >= error"); len(bad) != 0 {
		t.Fatalf("tshark finds malformed packets:\n%s", strings.Join(bad, "\n"))
	}
	summary := capt.decode(t, "-Y", "vxlan", "-T", "fields", "-E", "occurrence=f", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.srcport",
		"-e", "udp.dstport", "-e", "vxlan.vni", "-e", "_ws.col.Info")
	t.Logf("tshark -d udp.port==4789,vxlan, the underlay (outer source, destination, ports, VNI, inner packet):\n%s\n(%d VXLAN packets: %v)",
		strings.Join(summary, "\n"), len(lines), from)
}

// arpFrame builds an ARP request (op 1) or reply (op 2).
func arpFrame(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	f := make([]byte, 42)
	dst := tha
	if op == 1 {
		dst, tha = bcast, make(net.HardwareAddr, 6)
	}
	copy(f, dst)
	copy(f[6:], sha)
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	copy(f[14:], []byte{0, 1, 8, 0, 6, 4, 0, byte(op)})
	copy(f[22:], sha)
	copy(f[28:], spa.AsSlice())
	copy(f[32:], tha)
	copy(f[38:], tpa.AsSlice())
	return f
}

// icmpEcho builds an ICMP echo request (typ 8) or reply (0).
func icmpEcho(dst, src net.HardwareAddr, sip, dip netip.Addr, typ byte, id, seq uint16, data []byte) []byte {
	f := make([]byte, 42+len(data))
	copy(f, dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(28+len(data)))
	ip[6], ip[8], ip[9] = 0x40, 64, 1
	copy(ip[12:], sip.AsSlice())
	copy(ip[16:], dip.AsSlice())
	fixIPv4(f)
	ic := f[34:]
	ic[0] = typ
	binary.BigEndian.PutUint16(ic[4:], id)
	binary.BigEndian.PutUint16(ic[6:], seq)
	copy(ic[8:], data)
	binary.BigEndian.PutUint16(ic[2:], ^fold(sum(ic, 0)))
	return f
}

// fixIPv4 fills in the IPv4 header checksum of an Ethernet frame.
func fixIPv4(f []byte) {
	ip := f[14:34]
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip, 0)))
}
