package vxlan

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

func TestLoopbackFrames(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	ta := tunnel(t, ea, 42, 1450, netip.MustParseAddr("127.0.0.2"))
	tb := tunnel(t, eb, 42, 1450, netip.MustParseAddr("127.0.0.1"))
	f := ethFrame(bcast, macA, 100, 1)
	if _, err := ta.Queues()[0].Write([][]byte{buffer(f, device.VnetHdr{})}, device.Headroom); err != nil {
		t.Fatal(err)
	}
	got := readFrames(t, tb.Queues()[0], 1)
	if !bytes.Equal(got[0], f) {
		t.Fatalf("got %x want %x", got[0], f)
	}
	t.Log(ea.Stats(), eb.Stats(), eb.Peers(), tb.Remotes())
}

func TestLoopbackSuperFrame(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	const mtu = 1450
	ta := tunnel(t, ea, 42, mtu)
	tb := tunnel(t, eb, 42, mtu)
	ta.SetRemote(macB, netip.MustParseAddr("127.0.0.2"))
	payload := payloadOf(maxTCPPayload)
	f, h := tcpSuperFrame(payload, 1448)
	if _, err := ta.Queues()[0].Write([][]byte{buffer(f, h)}, device.Headroom); err != nil {
		t.Fatal(err)
	}
	mss := mtu - 52
	got := readFrames(t, tb.Queues()[0], (len(payload)+mss-1)/mss)
	checkSuperFrame(t, got, payload, mtu)
	t.Log(ea.Stats(), eb.Stats(), ea.c.txGSO.Load(), eb.c.rxGRO.Load())
}
