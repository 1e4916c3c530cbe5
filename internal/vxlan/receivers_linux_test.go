package vxlan

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/device"
)

// listenN opens an endpoint with n receiving sockets on a free port of
// 127.0.0.2, taking 127.0.0.1 as a member, and closes it when t ends.
func listenN(t testing.TB, n int) *Endpoint {
	t.Helper()
	for range 20 {
		e, err := Listen(Config{Local: netip.MustParseAddr("127.0.0.2"), Port: 20000 + rand.IntN(10000), Receivers: n})
		if err != nil {
			continue
		}
		t.Cleanup(func() { e.Close() })
		e.SetMembers([]netip.Addr{netip.MustParseAddr("127.0.0.1")})
		return e
	}
	t.Fatal("no free UDP port on 127.0.0.2")
	return nil
}

// flowSender is one outer flow to an endpoint: a UDP socket on 127.0.0.1
// of its own (so a source port of its own), sending frames of source MAC
// 02:00:00:00:01:id numbered from 0.
type flowSender struct {
	c   *net.UDPConn
	id  byte
	seq uint32
}

func newFlowSenders(t testing.TB, e *Endpoint, n int) []*flowSender {
	t.Helper()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: e.cfg.Port}
	var fs []*flowSender
	for i := range n {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, to)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fs = append(fs, &flowSender{c: c, id: byte(i)})
	}
	return fs
}

func flowMAC(id byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 1, id} }

// send sends count frames on vni, each in a datagram of its own.
func (f *flowSender) send(t testing.TB, vni uint32, count int) {
	t.Helper()
	pkt := make([]byte, HeaderLen+60)
	putHeader(pkt, vni)
	frame := pkt[HeaderLen:]
	copy(frame, bcast)
	copy(frame[6:], flowMAC(f.id))
	binary.BigEndian.PutUint16(frame[12:], 0x88b5)
	for range count {
		binary.BigEndian.PutUint32(frame[14:], f.seq)
		f.seq++
		if _, err := f.c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
}

// frameOf returns the sender id and number of a frame flowSender sent.
func frameOf(f []byte) (id byte, seq uint32) { return f[11], binary.BigEndian.Uint32(f[14:]) }

// TestReceivers: datagrams of many outer flows are spread over the
// receiving sockets, every frame reaches the tunnel, each on the queue of
// the socket it came on, and a flow keeps to one queue, in order.
func TestReceivers(t *testing.T) {
	const receivers, flows, perFlow = 4, 32, 200
	e := listenN(t, receivers)
	if len(e.sock.rx) != receivers {
		t.Fatalf("%d receiving sockets, want %d", len(e.sock.rx), receivers)
	}
	tn := tunnel(t, e, 5, 1450)
	qs := tn.Queues()
	if len(qs) != receivers {
		t.Fatalf("%d queues, want %d", len(qs), receivers)
	}
	var cs []*collector
	for _, q := range qs {
		cs = append(cs, collect(t, q))
	}
	senders := newFlowSenders(t, e, flows)
	for range perFlow / 20 {
		for _, s := range senders {
			s.send(t, 5, 20)
		}
	}
	eventually(t, "every frame handed to the tunnel", func() bool { return tn.Stats().RxPackets+tn.Stats().Drops >= flows*perFlow })
	if s := tn.Stats(); s.RxPackets != flows*perFlow || s.Drops != 0 {
		t.Fatalf("tunnel: %+v, want %d frames and no drops", s, flows*perFlow)
	}
	queueOf := map[byte]int{}
	next := map[byte]uint32{}
	used := 0
	for qi, c := range cs {
		got := 0
		for {
			var f []byte
			select {
			case f = <-c.ch:
			default:
			}
			if f == nil {
				break
			}
			got++
			id, seq := frameOf(f)
			if q, ok := queueOf[id]; ok && q != qi {
				t.Fatalf("flow %d came on queues %d and %d", id, q, qi)
			}
			queueOf[id] = qi
			if seq != next[id] {
				t.Fatalf("flow %d: frame %d came after %d on queue %d", id, seq, next[id]-1, qi)
			}
			next[id]++
		}
		if got > 0 {
			used++
		}
		t.Logf("queue %d: %d frames", qi, got)
	}
	for _, s := range senders {
		if next[s.id] != perFlow {
			t.Fatalf("flow %d: %d frames read, want %d", s.id, next[s.id], perFlow)
		}
	}
	// The kernel hashes the 4-tuples over the sockets: 32 flows all on
	// one socket of 4 is a chance of 4^-31.
	if used < 2 {
		t.Fatalf("every flow came on one queue: the sockets do not share the datagrams")
	}
}

// TestReceiversPortTaken: an endpoint of several sockets does not share
// its port with a socket already on it.
func TestReceiversPortTaken(t *testing.T) {
	e := listenN(t, 2)
	if _, err := Listen(Config{Local: e.cfg.Local, Port: e.cfg.Port, Receivers: 2}); err == nil {
		t.Fatal("a second endpoint of two sockets opened on the port of one")
	}
	if _, err := Listen(Config{Local: e.cfg.Local, Port: e.cfg.Port, Receivers: 1}); err == nil {
		t.Fatal("a second endpoint of one socket opened on the port of one")
	}
	if _, err := Listen(Config{Local: e.cfg.Local, Port: e.cfg.Port + 1, Receivers: MaxReceivers + 1}); err == nil {
		t.Fatalf("an endpoint of %d sockets opened", MaxReceivers+1)
	}
}

// TestReceiversClose: Close ends the Reads blocked on every queue and
// every receiving goroutine, and lets go of every buffer, queued or not.
func TestReceiversClose(t *testing.T) {
	const receivers = 3
	e := listenN(t, receivers)
	queued := tunnel(t, e, 5, 1450)
	// Fewer frames than a queue may hold buffers: none is dropped.
	for _, s := range newFlowSenders(t, e, 16) {
		s.send(t, 5, 2)
	}
	eventually(t, "frames queued", func() bool { return queued.Stats().RxPackets == 32 })
	spread := 0
	for _, q := range queued.qs {
		if q.held.Load() > 0 {
			spread++
		}
	}
	if spread < 2 {
		t.Logf("the frames queued on %d queue", spread)
	}
	read := tunnel(t, e, 6, 1450)
	var wg sync.WaitGroup
	errs := make(chan error, receivers)
	for _, q := range read.Queues() {
		wg.Go(func() {
			bufs := [][]byte{make([]byte, device.Headroom+2000)}
			_, err := q.Read(bufs, make([]int, 1), device.Headroom)
			errs <- err
		})
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Read blocked at Close: %v, want os.ErrClosed", err)
		}
	}
	for i, free := range e.free {
		if len(free) != rxBufs-rxMsgs {
			t.Fatalf("receiver %d: %d buffers free after Close, want %d: a buffer leaked", i, len(free), rxBufs-rxMsgs)
		}
	}
}

// TestReceiversStall: a queue nobody reads stalls its own receiving
// goroutine only: the flows of the other sockets keep coming, in order.
func TestReceiversStall(t *testing.T) {
	const receivers = 2
	e := listenN(t, receivers)
	// Which socket each flow lands on, from frames on a tunnel read on
	// every queue.
	probe := tunnel(t, e, 7, 1450)
	senders := newFlowSenders(t, e, 16)
	var onQueue [receivers][]*flowSender
	cs := []*collector{collect(t, probe.Queues()[0]), collect(t, probe.Queues()[1])}
	for _, s := range senders {
		s.send(t, 7, 1)
		var qi int
		select {
		case <-cs[0].ch:
			qi = 0
		case <-cs[1].ch:
			qi = 1
		case <-time.After(waitLimit):
			t.Fatalf("flow %d: the probe frame did not come", s.id)
		}
		onQueue[qi] = append(onQueue[qi], s)
		s.seq = 0
	}
	if len(onQueue[0]) == 0 || len(onQueue[1]) == 0 {
		t.Skipf("the kernel put all of %d flows on one socket", len(senders))
	}
	tn := tunnel(t, e, 5, 1450)
	live := collect(t, tn.Queues()[1])
	// Queue 0 is never read: its flows fill it, and its receiving
	// goroutine waits, then takes the queue for stalled.
	stalledFlow := onQueue[0][0]
	q0 := tn.qs[0]
	eventually(t, "queue 0 stalled", func() bool {
		stalledFlow.send(t, 5, 64)
		return q0.stalled.Load()
	})
	// Every frame of queue 1's flows comes, in order, while queue 0's
	// keep coming too.
	next := map[byte]uint32{}
	for range 5 {
		for _, s := range onQueue[1] {
			s.send(t, 5, 20)
		}
		stalledFlow.send(t, 5, 64)
		for range len(onQueue[1]) * 20 {
			id, seq := frameOf(live.next(t, "a frame of a live flow", nil))
			if seq != next[id] {
				t.Fatalf("flow %d: frame %d came after %d", id, seq, next[id]-1)
			}
			next[id]++
		}
	}
	if held := q0.held.Load(); held > maxHeld {
		t.Fatalf("the stalled queue holds %d buffers, more than %d", held, maxHeld)
	}
	if tn.Stats().Drops == 0 {
		t.Fatal("the stalled queue dropped nothing")
	}
	t.Logf("flows on queue 0: %d, on queue 1: %d; tunnel %+v", len(onQueue[0]), len(onQueue[1]), tn.Stats())
}
