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
