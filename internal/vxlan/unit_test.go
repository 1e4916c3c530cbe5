package vxlan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/device"
)

func TestHeader(t *testing.T) {
	b := make([]byte, HeaderLen+ethHdrLen)
	putHeader(b, 0xabcdef)
	if want := []byte{0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0}; !bytes.Equal(b[:HeaderLen], want) {
		t.Fatalf("header %x, want %x (RFC 7348: I flag, reserved zero, VNI)", b[:HeaderLen], want)
	}
	vni, f, err := parse(b)
	if err != nil || vni != 0xabcdef || len(f) != ethHdrLen {
		t.Fatalf("parse: VNI %#x, %d bytes, %v", vni, len(f), err)
	}
	// Reserved bits are ignored on receipt.
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 42, 0xff})
	if vni, _, err := parse(b); err != nil || vni != 42 {
		t.Fatalf("reserved bits set: VNI %d, %v; want 42", vni, err)
	}
	b[0] = 0xf7
	if _, _, err := parse(b); !errors.Is(err, errNoVNI) {
		t.Fatalf("I flag clear: %v, want errNoVNI", err)
	}
	b[0] = flagI
	if _, _, err := parse(b[:HeaderLen+ethHdrLen-1]); !errors.Is(err, errShort) {
		t.Fatalf("no whole Ethernet header: %v, want errShort", err)
	}
}

// udpFrame builds a 64-byte IPv4 UDP frame of one flow.
func udpFrame(sport, dport uint16, fragOff uint16) []byte {
	f := make([]byte, 14+20+8+22)
	copy(f, macB)
	copy(f[6:], macA)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	f[14] = 0x45
	binary.BigEndian.PutUint16(f[20:], fragOff)
	f[23] = 17
	copy(f[26:], []byte{10, 232, 9, 1, 10, 232, 9, 2})
	binary.BigEndian.PutUint16(f[34:], sport)
	binary.BigEndian.PutUint16(f[36:], dport)
	return f
}

// TestFlowHashSpreads: flows spread evenly over the sending sockets (so
// over outer source ports), and a flow keeps its hash.
func TestFlowHashSpreads(t *testing.T) {
	const flows = 8000
	var per [txSockets]int
	for i := range flows {
		f := udpFrame(uint16(30000+i), 5201, 0)
		h := flowHash(f)
		if flowHash(bytes.Clone(f)) != h {
			t.Fatal("one flow hashed two ways")
		}
		per[(uint64(h)*txSockets)>>32]++
	}
	for i, n := range per {
		// Each socket's share is within a fifth of the mean, far
		// outside what a uniform hash strays by (a binomial's σ here is
		// about 30 of 1000).
		if n < flows/txSockets*4/5 || n > flows/txSockets*6/5 {
			t.Fatalf("socket %d got %d of %d flows: %v", i, n, flows, per)
		}
	}
	// The ports count: two flows that differ in them only differ.
	if flowHash(udpFrame(1, 2, 0)) == flowHash(udpFrame(1, 3, 0)) {
		t.Fatal("ports not hashed")
	}
	// Every fragment of a datagram hashes alike: no ports in it.
	if flowHash(udpFrame(1, 2, 0x2000)) != flowHash(udpFrame(9, 9, 0x0010)) {
		t.Fatal("fragments of one datagram hash apart")
	}
	// Not IP: the MAC addresses.
	if flowHash(ethFrame(macB, macA, 10, 0)) == flowHash(ethFrame(macA, macB, 10, 0)) {
		t.Fatal("MACs not hashed")
	}
}

func TestListenRefuses(t *testing.T) {
	for _, a := range []netip.Addr{{}, netip.IPv4Unspecified(), netip.IPv6Unspecified(), netip.MustParseAddr("224.0.0.1")} {
		if e, err := Listen(Config{Local: a}); err == nil {
			e.Close()
			t.Fatalf("Listen on %v succeeded: the socket must bind to the host's own address", a)
		}
	}
	if _, err := Listen(Config{Local: netip.MustParseAddr("127.0.0.1"), Port: 70000}); err == nil {
		t.Fatal("port 70000 taken")
	}
}

// TestMemberFilter: packets from a VTEP that is not a member are dropped
// and counted, until it is one.
func TestMemberFilter(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	eb.SetMembers(nil)
	ta := tunnel(t, ea, 5, 1450, netip.MustParseAddr("127.0.0.2"))
	cb := collect(t, tunnel(t, eb, 5, 1450).Queues()[0])
	f := ethFrame(bcast, macA, 60, 1)
	write(t, ta, f, device.VnetHdr{})
	eventually(t, "a packet from a non-member counted", func() bool { return eb.Stats().DropNotMember == 1 })
	eb.SetMembers([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	g := ethFrame(bcast, macA, 60, 2)
	write(t, ta, g, device.VnetHdr{})
	if got := cb.next(t, "frame from a member", nil); !bytes.Equal(got, g) {
		t.Fatalf("read %x, want %x (the non-member's frame got through?)", got, g)
	}
	if s := eb.Stats(); s.RxPackets != 1 || s.DropNotMember != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestUnknownVNI(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	ta := tunnel(t, ea, 5, 1450, netip.MustParseAddr("127.0.0.2"))
	tb := tunnel(t, eb, 6, 1450)
	write(t, ta, ethFrame(bcast, macA, 60, 1), device.VnetHdr{})
	eventually(t, "a packet for VNI 5 counted at B, which has only 6", func() bool { return eb.Stats().DropUnknownVNI == 1 })
	if s := tb.Stats(); s.RxPackets != 0 {
		t.Fatalf("VNI 6 took a frame of VNI 5: %+v", s)
	}
}

// TestHostOnly: frames from or to a HostOnly MAC are not sent, and one
// arriving from one is dropped.
func TestHostOnly(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	gw := net.HardwareAddr{0x02, 0x42, 0, 0, 0, 1}
	ta, err := ea.Tunnel(9, TunnelOptions{MTU: 1450, HostOnly: []net.HardwareAddr{gw}})
	if err != nil {
		t.Fatal(err)
	}
	ta.SetVTEPs([]netip.Addr{netip.MustParseAddr("127.0.0.2")})
	tb, err := eb.Tunnel(9, TunnelOptions{MTU: 1450, HostOnly: []net.HardwareAddr{gw}})
	if err != nil {
		t.Fatal(err)
	}
	tb.SetVTEPs([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	cb := collect(t, tb.Queues()[0])
	write(t, ta, ethFrame(bcast, gw, 60, 1), device.VnetHdr{})
	write(t, ta, ethFrame(gw, macA, 60, 2), device.VnetHdr{})
	if s := ea.Stats(); s.DropHostOnly != 2 || s.TxPackets != 0 {
		t.Fatalf("A's stats %+v: both frames must stay home", s)
	}
	// From a tunnel without the option, a frame from the gateway MAC
	// arrives at B, which drops it.
	tx, err := ea.Tunnel(10, TunnelOptions{MTU: 1450})
	if err != nil {
		t.Fatal(err)
	}
	tx.Close()
	ta.hostOnly = nil
	write(t, ta, ethFrame(bcast, gw, 60, 3), device.VnetHdr{})
	eventually(t, "a frame from a HostOnly MAC dropped at B", func() bool { return eb.Stats().DropHostOnly == 1 })
	f := ethFrame(bcast, macA, 60, 4)
	write(t, ta, f, device.VnetHdr{})
	if got := cb.next(t, "a frame from another MAC", nil); !bytes.Equal(got, f) {
		t.Fatalf("read %x, want %x", got, f)
	}
}

// TestReplicationList: the list leaves out the endpoint's own address
// and duplicates; a flood goes once to each VTEP of it.
func TestReplicationList(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	ec, err := Listen(Config{Local: netip.MustParseAddr("127.0.0.3"), Port: eb.cfg.Port, Receivers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	ec.SetMembers([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	a, b, c := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	ta := tunnel(t, ea, 5, 1450, a, b, c, b)
	if got := *ta.vteps.Load(); len(got) != 2 || got[0].addr != b || got[1].addr != c {
		t.Fatalf("replication list %v, want [%v %v]", got, b, c)
	}
	cb, cc := collect(t, tunnel(t, eb, 5, 1450).Queues()[0]), collect(t, tunnel(t, ec, 5, 1450).Queues()[0])
	f := ethFrame(macB, macA, 60, 1) // unknown unicast
	write(t, ta, f, device.VnetHdr{})
	for _, col := range []*collector{cb, cc} {
		if got := col.next(t, "flooded frame", nil); !bytes.Equal(got, f) {
			t.Fatalf("read %x, want %x", got, f)
		}
	}
	if s := ta.Stats(); s.Floods != 2 || s.TxPackets != 2 {
		t.Fatalf("stats %+v: want 2 copies", s)
	}
	// A super-frame to an unknown MAC: its segments, gathered from
	// their headers and the frame's payload, go to both.
	payload := payloadOf(maxTCPPayload)
	sf, h := tcpSuperFrame(payload, 1448)
	write(t, ta, sf, h)
	mss := 1450 - 52
	for _, col := range []*collector{cb, cc} {
		var segs [][]byte
		for range (len(payload) + mss - 1) / mss {
			segs = append(segs, col.next(t, "segment of the flooded super-frame", ethType(0x0800)))
		}
		checkSuperFrame(t, segs, payload, 1450)
	}
	ta.SetVTEPs(nil)
	write(t, ta, f, device.VnetHdr{})
	if s := ta.Stats(); s.Drops != 1 || s.TxPackets != 2+2*47 {
		t.Fatalf("stats %+v: with no VTEP the frame is dropped", s)
	}
}

// TestRemotes: learning, static entries, aging and forgetting.
func TestRemotes(t *testing.T) {
	e, _ := pair(t, "127.0.0.1", "127.0.0.2")
	tn := tunnel(t, e, 1, 1450)
	v1, v2 := netip.MustParseAddr("10.232.0.1"), netip.MustParseAddr("10.232.0.2")
	e.mu.Lock()
	p1, p2 := e.peerLocked(v1), e.peerLocked(v2)
	e.mu.Unlock()
	now := time.Now()
	tn.learn(macKey(macA), p1, now.UnixNano())
	tn.learn(macKey(macA), p2, now.UnixNano()) // moved
	tn.SetRemote(macB, v1)
	tn.learn(macKey(macB), p2, now.UnixNano()) // static: stays
	rs := tn.Remotes()
	if len(rs) != 2 || rs[0].VTEP != v2 || rs[0].Static || rs[1].VTEP != v1 || !rs[1].Static {
		t.Fatalf("remotes %+v: want %v learned behind %v, %v static behind %v", rs, macA, v2, macB, v1)
	}
	tn.expire(now.Add(agingTime - time.Second))
	if len(tn.Remotes()) != 2 {
		t.Fatal("a learned MAC aged out early")
	}
	tn.expire(now.Add(agingTime + time.Second))
	if rs := tn.Remotes(); len(rs) != 1 || !rs[0].Static {
		t.Fatalf("after %v: %+v, want only the static entry", agingTime, rs)
	}
	tn.learn(macKey(macA), p1, now.UnixNano())
	tn.ForgetVTEP(v1)
	if rs := tn.Remotes(); len(rs) != 0 {
		t.Fatalf("after ForgetVTEP(%v): %+v", v1, rs)
	}
	tn.SetRemote(macB, v2)
	tn.ForgetRemote(macB)
	if rs := tn.Remotes(); len(rs) != 0 {
		t.Fatalf("after ForgetRemote: %+v", rs)
	}
	// The endpoint's own address is never a remote.
	tn.SetRemote(macB, netip.MustParseAddr("127.0.0.1"))
	if rs := tn.Remotes(); len(rs) != 0 {
		t.Fatalf("own address as a remote: %+v", rs)
	}
}

func TestTunnelClose(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	ta := tunnel(t, ea, 5, 1450, netip.MustParseAddr("127.0.0.2"))
	if _, err := ea.Tunnel(5, TunnelOptions{MTU: 1450}); err == nil {
		t.Fatal("VNI 5 opened twice")
	}
	if _, err := ea.Tunnel(1<<24, TunnelOptions{MTU: 1450}); err == nil {
		t.Fatal("VNI 2^24 opened")
	}
	tb := tunnel(t, eb, 5, 1450)
	// Frames wait in the tunnel's queue; Close lets go of them.
	for i := range 3 {
		write(t, ta, ethFrame(bcast, macA, 60, byte(i)), device.VnetHdr{})
	}
	eventually(t, "frames queued at B", func() bool { return tb.Stats().RxPackets == 3 })
	done := make(chan error)
	go func() {
		bufs := [][]byte{make([]byte, 2000)}
		_, err := tb.Queues()[0].Read(bufs, make([]int, 1), device.Headroom)
		for err == nil {
			_, err = tb.Queues()[0].Read(bufs, make([]int, 1), device.Headroom)
		}
		done <- err
	}()
	tb.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close: %v, want os.ErrClosed", err)
	}
	if _, err := tb.Queues()[0].Write([][]byte{buffer(ethFrame(bcast, macB, 60, 0), device.VnetHdr{})}, device.Headroom); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close: %v, want os.ErrClosed", err)
	}
	if len(eb.free[0]) != rxBufs-rxMsgs {
		t.Fatalf("%d receive buffers free after Close, want %d: a buffer leaked", len(eb.free[0]), rxBufs-rxMsgs)
	}
	tb2 := tunnel(t, eb, 5, 1450)
	ea.Close()
	if _, err := ta.Queues()[0].Read(make([][]byte, 1), nil, device.Headroom); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after the endpoint closed: %v", err)
	}
	_ = tb2
}

// TestStalledTunnel: a network whose tunnel nobody reads loses its own
// frames, and the other networks keep receiving: its queue does not take
// every receive buffer of the endpoint.
func TestStalledTunnel(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	b := netip.MustParseAddr("127.0.0.2")
	stalledA, liveA := tunnel(t, ea, 5, 1450, b), tunnel(t, ea, 6, 1450, b)
	stalled := tunnel(t, eb, 5, 1450)
	live := collect(t, tunnel(t, eb, 6, 1450).Queues()[0])
	burst := make([][]byte, 64)
	for i := range burst {
		burst[i] = buffer(ethFrame(bcast, macA, 1000+i, byte(i)), device.VnetHdr{})
	}
	for range 100 {
		stalledA.Queues()[0].Write(burst, device.Headroom)
	}
	f := ethFrame(bcast, macA, 100, 0x77)
	write(t, liveA, f, device.VnetHdr{})
	if got := live.next(t, "frame of the live network", nil); !bytes.Equal(got, f) {
		t.Fatalf("read %x, want %x", got, f)
	}
	if held := stalled.qs[0].held.Load(); held > maxHeld {
		t.Fatalf("the stalled tunnel holds %d buffers, more than %d", held, maxHeld)
	}
	t.Logf("stalled tunnel: %+v, holding %d buffers", stalled.Stats(), stalled.qs[0].held.Load())
}
