package vxlan

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
)

// host is a namespace standing for a host on the test underlay.
type host struct {
	ns   string // path of the namespace file
	addr netip.Addr
}

// underlayNet makes an underlay of n hosts: a namespace holding a bridge,
// and n host namespaces, host i at 10.232.0.(i+1)/24 on its eth0 (MTU
// 1500), joined to the bridge by a veth. Everything goes when t ends.
func underlayNet(t *testing.T, n int) []host {
	t.Helper()
	privtest.Require(t, "create network namespaces and veths", "ip")
	tag := fmt.Sprintf("tsv%d", os.Getpid()%100000)
	u := privtest.Netns(t, tag+"u")
	uname := tag + "u"
	ipCmd(t, "-n", uname, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", uname, "link", "set", "br0", "up")
	hosts := make([]host, n)
	for i := range hosts {
		name := fmt.Sprintf("%sh%d", tag, i+1)
		hosts[i] = host{ns: privtest.Netns(t, name), addr: netip.AddrFrom4([4]byte{10, 232, 0, byte(i + 1)})}
		port := fmt.Sprintf("p%d", i+1)
		ipCmd(t, "-n", uname, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name)
		ipCmd(t, "-n", uname, "link", "set", port, "master", "br0", "up")
		ipCmd(t, "-n", name, "addr", "add", hosts[i].addr.String()+"/24", "dev", "eth0")
		ipCmd(t, "-n", name, "link", "set", "eth0", "up")
		ipCmd(t, "-n", name, "link", "set", "lo", "up")
	}
	_ = u
	return hosts
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// listenIn opens an endpoint on h's address in h's namespace, with two
// receiving sockets: its tunnels' frames come on either queue, by flow.
func listenIn(t *testing.T, h host) *Endpoint {
	t.Helper()
	var e *Endpoint
	err := namespace.Do(h.ns, func() (err error) {
		e, err = Listen(Config{Local: h.addr, Receivers: 2})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// sendUDP sends payload from a socket of h (on h's address, a port the
// kernel picks) to the VXLAN port of to.
func sendUDP(t *testing.T, h host, to netip.Addr, payload []byte) {
	t.Helper()
	err := namespace.Do(h.ns, func() error {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.addr, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, DefaultPort)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// collector reads a queue in the background, for tests to wait on
// frames without blocking forever.
type collector struct {
	ch chan []byte
	// merged counts the super-frames read (each comes out of ch as its
	// segments); bad is the first frame read that was not well-formed.
	merged atomic.Int64
	bad    atomic.Pointer[error]
}

// collect reads the queues qs, of one tunnel, into one collector.
func collect(t testing.TB, qs ...device.Queue) *collector {
	c := &collector{ch: make(chan []byte, 4096)}
	var wg sync.WaitGroup
	for _, q := range qs {
		wg.Go(func() { c.read(q) })
	}
	go func() {
		wg.Wait()
		close(c.ch)
	}()
	return c
}

// read reads q until it fails.
func (c *collector) read(q device.Queue) {
	bufs := make([][]byte, q.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, device.Headroom+70000)
	}
	sizes := make([]int, len(bufs))
	for {
		n, err := q.Read(bufs, sizes, device.Headroom)
		if err != nil {
			return
		}
		for i := range n {
			frames, merged, err := unmerge(bufs[i], sizes[i])
			if err != nil {
				c.bad.CompareAndSwap(nil, &err)
				continue
			}
			if merged {
				c.merged.Add(1)
			}
			for _, f := range frames {
				c.ch <- f
			}
		}
	}
}

// waitLimit bounds every wait for a frame or a counter: far past what
// any of them takes, it only turns a lost frame into a failure rather
// than a hang.
const waitLimit = 20 * time.Second

// next returns the next frame that match accepts (nil: any), skipping
// others.
func (c *collector) next(t testing.TB, what string, match func([]byte) bool) []byte {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		if err := c.bad.Load(); err != nil {
			t.Fatalf("%s: %v", what, *err)
		}
		select {
		case f, ok := <-c.ch:
			if !ok {
				t.Fatalf("%s: the tunnel closed", what)
			}
			if match == nil || match(f) {
				return f
			}
		case <-deadline:
			t.Fatalf("%s: no such frame came", what)
		}
	}
}

// eventually waits until cond holds; see waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(waitLimit); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not so after %v", what, waitLimit)
		}
	}
}

// ethType matches frames of one EtherType.
func ethType(et uint16) func([]byte) bool {
	return func(f []byte) bool { return len(f) >= 14 && uint16(f[12])<<8|uint16(f[13]) == et }
}

func write(t testing.TB, tn *Tunnel, frame []byte, h device.VnetHdr) {
	t.Helper()
	if _, err := tn.Queues()[0].Write([][]byte{buffer(frame, h)}, device.Headroom); err != nil {
		t.Fatal(err)
	}
}

// TestNetnsFramesBothWays: two hosts over a veth underlay exchange frames
// both ways; the second direction goes by a learned MAC; a 64 KiB TCP
// super-frame is cut to the overlay MTU (underlay 1500 less 50), sent
// with GSO and arrives as segments the switch's coalescer merges back
// into the same bytes.
func TestNetnsFramesBothWays(t *testing.T) {
	hs := underlayNet(t, 2)
	ea, eb := listenIn(t, hs[0]), listenIn(t, hs[1])
	ea.SetMembers([]netip.Addr{hs[1].addr})
	eb.SetMembers([]netip.Addr{hs[0].addr})
	if got := ea.OverlayMTU(); got != 1450 {
		t.Fatalf("overlay MTU over a 1500-byte underlay: %d, want 1450", got)
	}
	ta := tunnel(t, ea, 100, 0, hs[1].addr)
	tb := tunnel(t, eb, 100, 0) // no replication list: B sends by what it learns
	if ta.MTU() != 1450 {
		t.Fatalf("tunnel MTU %d, want 1450", ta.MTU())
	}
	ca, cb := collect(t, ta.Queues()...), collect(t, tb.Queues()...)

	f := ethFrame(bcast, macA, 200, 1)
	write(t, ta, f, device.VnetHdr{})
	if got := cb.next(t, "broadcast A to B", nil); !bytes.Equal(got, f) {
		t.Fatalf("B read %x, want %x", got, f)
	}
	rs := tb.Remotes()
	if len(rs) != 1 || !bytes.Equal(rs[0].MAC, macA) || rs[0].VTEP != hs[0].addr || rs[0].Static {
		t.Fatalf("B's remotes after a frame from A: %+v, want %v learned behind %v", rs, macA, hs[0].addr)
	}
	g := ethFrame(macA, macB, 300, 2)
	write(t, tb, g, device.VnetHdr{})
	if got := ca.next(t, "unicast B to A by a learned MAC", nil); !bytes.Equal(got, g) {
		t.Fatalf("A read %x, want %x", got, g)
	}
	if s := tb.Stats(); s.TxPackets != 1 || s.Floods != 0 {
		t.Fatalf("B's tunnel stats %+v: want 1 frame sent and no flood", s)
	}

	ta.SetRemote(macB, hs[1].addr)
	payload := payloadOf(maxTCPPayload)
	sf, h := tcpSuperFrame(payload, 1448)
	write(t, ta, sf, h)
	mss := 1450 - 52
	var segs [][]byte
	for range (len(payload) + mss - 1) / mss {
		segs = append(segs, cb.next(t, "segment of the super-frame", ethType(0x0800)))
	}
	checkSuperFrame(t, segs, payload, 1450)
	if cb.merged.Load() == 0 {
		t.Fatal("B's tunnel read the segments one by one: none merged into a super-frame")
	}
	if ea.c.txGSO.Load() == 0 {
		t.Fatal("the super-frame's segments were not sent with UDP GSO")
	}
	t.Logf("GSO sends %d, GRO reads %d; A %+v; B %+v", ea.c.txGSO.Load(), eb.c.rxGRO.Load(), ea.Stats(), eb.Stats())
	ps := eb.Peers()
	if len(ps) != 1 || ps[0].VTEP != hs[0].addr || ps[0].RxPackets < 2 || ps[0].LastHeard.IsZero() {
		t.Fatalf("B's peers %+v: want A, heard from", ps)
	}
}

// TestNetnsFlooding: broadcast and unknown unicast go to every VTEP of
// the replication list, known unicast to its VTEP only.
func TestNetnsFlooding(t *testing.T) {
	hs := underlayNet(t, 3)
	es := []*Endpoint{listenIn(t, hs[0]), listenIn(t, hs[1]), listenIn(t, hs[2])}
	for _, e := range es {
		e.SetMembers([]netip.Addr{hs[0].addr, hs[1].addr, hs[2].addr})
	}
	// A's own address in its list is left out.
	ta := tunnel(t, es[0], 7, 0, hs[0].addr, hs[1].addr, hs[2].addr)
	cb := collect(t, tunnel(t, es[1], 7, 0).Queues()...)
	cc := collect(t, tunnel(t, es[2], 7, 0).Queues()...)

	for i, dst := range []net.HardwareAddr{bcast, {0x01, 0, 0x5e, 0, 0, 1}, macB} {
		f := ethFrame(dst, macA, 100, byte(i))
		write(t, ta, f, device.VnetHdr{})
		for j, c := range []*collector{cb, cc} {
			if got := c.next(t, fmt.Sprintf("flood of %v to host %d", dst, j+2), nil); !bytes.Equal(got, f) {
				t.Fatalf("host %d read %x, want %x", j+2, got, f)
			}
		}
	}
	if s := ta.Stats(); s.Floods != 6 || s.TxPackets != 6 {
		t.Fatalf("A's tunnel stats %+v: want 6 copies flooded", s)
	}
	ta.SetRemote(macB, hs[1].addr)
	f := ethFrame(macB, macA, 100, 9)
	write(t, ta, f, device.VnetHdr{})
	if got := cb.next(t, "known unicast to B", nil); !bytes.Equal(got, f) {
		t.Fatalf("B read %x, want %x", got, f)
	}
	if s := ta.Stats(); s.Floods != 6 || s.TxPackets != 7 {
		t.Fatalf("A's tunnel stats %+v: known unicast must go once, to B only", s)
	}
	if len(es[0].Peers()) != 2 {
		t.Fatalf("A's peers %+v: want B and C", es[0].Peers())
	}
}

// TestNetnsDrops: a packet from an address that is not a member, one for
// a VNI not open and one without the I flag are dropped and counted, and
// reach no tunnel.
func TestNetnsDrops(t *testing.T) {
	hs := underlayNet(t, 3)
	ea, eb := listenIn(t, hs[0]), listenIn(t, hs[1])
	ea.SetMembers([]netip.Addr{hs[1].addr})
	eb.SetMembers([]netip.Addr{hs[0].addr}) // host 3 is not a member
	ta := tunnel(t, ea, 100, 0, hs[1].addr)
	cb := collect(t, tunnel(t, eb, 100, 0).Queues()...)

	pkt := func(flags byte, vni uint32, f []byte) []byte {
		b := make([]byte, HeaderLen, HeaderLen+len(f))
		putHeader(b, vni)
		b[0] = flags
		return append(b, f...)
	}
	bad := ethFrame(bcast, macA, 64, 0xee)
	sendUDP(t, hs[2], hs[1].addr, pkt(flagI, 100, bad))
	eventually(t, "a packet from host 3 counted as from a non-member", func() bool { return eb.Stats().DropNotMember == 1 })
	sendUDP(t, hs[0], hs[1].addr, pkt(flagI, 999, bad))
	eventually(t, "a packet for VNI 999 counted", func() bool { return eb.Stats().DropUnknownVNI == 1 })
	sendUDP(t, hs[0], hs[1].addr, pkt(0, 100, bad))
	sendUDP(t, hs[0], hs[1].addr, []byte{flagI, 0, 0, 0, 0, 0, 100, 0, 1, 2})
	eventually(t, "packets without the I flag or too short counted", func() bool { return eb.Stats().DropMalformed == 2 })
	// Reserved bits set are ignored (RFC 7348 section 5).
	good := ethFrame(bcast, macA, 64, 1)
	sendUDP(t, hs[0], hs[1].addr, pkt(0xff, 100, good))
	if got := cb.next(t, "frame with reserved bits set", nil); !bytes.Equal(got, good) {
		t.Fatalf("B read %x, want %x: a dropped packet reached the tunnel", got, good)
	}
	f := ethFrame(bcast, macA, 64, 2)
	write(t, ta, f, device.VnetHdr{})
	if got := cb.next(t, "frame from A", nil); !bytes.Equal(got, f) {
		t.Fatalf("B read %x, want %x", got, f)
	}
	if s := eb.Stats(); s.RxPackets != 2 || s.DropNotMember != 1 || s.DropUnknownVNI != 1 || s.DropMalformed != 2 {
		t.Fatalf("B's stats %+v", s)
	}
}

// TestNetnsIPv6Underlay: the same over an IPv6 underlay: a frame each
// way, and a super-frame cut to the overlay MTU, 1500 less 70.
func TestNetnsIPv6Underlay(t *testing.T) {
	hs := underlayNet(t, 2)
	for i := range hs {
		hs[i].addr = netip.MustParseAddr(fmt.Sprintf("fd00:232::%d", i+1))
		ipCmd(t, "-n", filepath.Base(hs[i].ns), "addr", "add", hs[i].addr.String()+"/64", "dev", "eth0", "nodad")
	}
	ea, eb := listenIn(t, hs[0]), listenIn(t, hs[1])
	ea.SetMembers([]netip.Addr{hs[1].addr})
	eb.SetMembers([]netip.Addr{hs[0].addr})
	const mtu = 1500 - Overhead - 20
	if got := ea.OverlayMTU(); got != mtu {
		t.Fatalf("overlay MTU over a 1500-byte IPv6 underlay: %d, want %d", got, mtu)
	}
	ta := tunnel(t, ea, 100, 0, hs[1].addr)
	tb := tunnel(t, eb, 100, 0, hs[0].addr)
	ca, cb := collect(t, ta.Queues()...), collect(t, tb.Queues()...)
	f := ethFrame(bcast, macA, 200, 1)
	write(t, ta, f, device.VnetHdr{})
	if got := cb.next(t, "broadcast A to B", nil); !bytes.Equal(got, f) {
		t.Fatalf("B read %x, want %x", got, f)
	}
	g := ethFrame(macA, macB, 300, 2)
	write(t, tb, g, device.VnetHdr{})
	if got := ca.next(t, "unicast B to A", nil); !bytes.Equal(got, g) {
		t.Fatalf("A read %x, want %x", got, g)
	}
	ta.SetRemote(macB, hs[1].addr)
	payload := payloadOf(maxTCPPayload)
	sf, h := tcpSuperFrame(payload, 1448)
	write(t, ta, sf, h)
	mss := mtu - 52
	var segs [][]byte
	for range (len(payload) + mss - 1) / mss {
		segs = append(segs, cb.next(t, "segment of the super-frame", ethType(0x0800)))
	}
	checkSuperFrame(t, segs, payload, mtu)
	if ea.c.txGSO.Load() == 0 || ea.Stats().TxErrors != 0 {
		t.Fatalf("GSO sends %d, stats %+v", ea.c.txGSO.Load(), ea.Stats())
	}
}
