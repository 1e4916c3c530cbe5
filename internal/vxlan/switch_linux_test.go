package vxlan

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// overlayHost is one host of an overlay test: a switch with a TAP in a
// container namespace and a tunnel port, as the daemon wires them.
type overlayHost struct {
	sw     *vswitch.Switch
	ep     *Endpoint
	tun    *Tunnel
	tap    *vswitch.Port
	vx     *vswitch.Port
	cns    string
	ipAddr netip.Addr
}

// overlay builds two hosts on an underlay, each with a switch whose
// network holds a TAP (MTU the overlay's, 1450) in a container namespace
// at 10.232.200.N/24 and the tunnel of VNI 500 to the other host.
func overlay(t *testing.T) [2]*overlayHost {
	t.Helper()
	hs := underlayNet(t, 2)
	var out [2]*overlayHost
	for i := range out {
		o := &overlayHost{ipAddr: netip.AddrFrom4([4]byte{10, 232, 200, byte(i + 1)})}
		out[i] = o
		o.cns = privtest.Netns(t, fmt.Sprintf("tsv%dc%d", os.Getpid()%100000, i+1))
		o.sw = vswitch.New(vswitch.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		t.Cleanup(o.sw.Close)
		if _, err := o.sw.CreateNetwork("n"); err != nil {
			t.Fatal(err)
		}
		o.ep = listenIn(t, hs[i])
		o.ep.SetMembers([]netip.Addr{hs[1-i].addr})
		// Both hosts are tapswitch: every datagram carries a checksum.
		o.ep.SetChecksummed([]netip.Addr{hs[1-i].addr})
		mtu := o.ep.OverlayMTU()
		pfx := netip.PrefixFrom(o.ipAddr, 24)
		dev, err := tap.Create(tap.Config{Netns: o.cns, Name: "eth0", MTU: mtu, Addrs: []netip.Prefix{pfx}})
		if err != nil {
			t.Fatal(err)
		}
		if o.tap, err = o.sw.AddPort("n", "tap", dev, vswitch.PortInfo{MAC: dev.MAC(), IPs: []netip.Prefix{pfx}, MTU: mtu}); err != nil {
			t.Fatal(err)
		}
		o.tun = tunnel(t, o.ep, 500, 0, hs[1-i].addr)
		if o.vx, err = o.sw.AddPort("n", "vx", o.tun, vswitch.PortInfo{NoSecurity: true, MACLimit: -1, MTU: mtu,
			Storm: vswitch.StormLimits{Broadcast: -1, Multicast: -1, UnknownUnicast: -1}}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// streamSize is how much TestSwitchTCPAcrossHosts sends; the variable
// TAPSWITCH_VXLAN_STREAM_MB sets it, for a longer run to profile.
func streamSize(t *testing.T) int {
	if s := os.Getenv("TAPSWITCH_VXLAN_STREAM_MB"); s != "" {
		mb, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("TAPSWITCH_VXLAN_STREAM_MB=%q: %v", s, err)
		}
		return mb << 20
	}
	return 64 << 20
}

// TestSwitchTCPAcrossHosts: a TCP stream between containers on two hosts,
// through each host's switch and the tunnel: it arrives intact; its
// super-frames were cut at the tunnel and sent with GSO, and the
// receiving switch coalesced the segments back into super-frames for the
// TAP. The rate is logged, not asserted.
func TestSwitchTCPAcrossHosts(t *testing.T) {
	hosts := overlay(t)
	size := streamSize(t)
	dst := netip.AddrPortFrom(hosts[1].ipAddr, 5201)
	var ln net.Listener
	if err := namespace.Do(hosts[1].cns, func() (err error) { ln, err = net.Listen("tcp4", dst.String()); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c)
		got <- [32]byte(h.Sum(nil))
	}()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7 >> 3)
	}
	var c net.Conn
	if err := namespace.Do(hosts[0].cns, func() (err error) { c, err = net.Dial("tcp4", dst.String()); return }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.Close()
	sum := <-got
	el := time.Since(start)
	if sum != sha256.Sum256(payload) {
		t.Fatal("the stream arrived changed")
	}
	a, b := hosts[0], hosts[1]
	t.Logf("%d MiB in %v (%.0f Mbit/s); GSO sends %d, GRO reads %d; tunnel A %+v; tunnel B %+v; TAP B %+v",
		size>>20, el.Round(time.Millisecond), float64(size)*8/el.Seconds()/1e6, a.ep.c.txGSO.Load(), b.ep.c.rxGRO.Load(), a.tun.Stats(), b.tun.Stats(), b.tap.Counters())
	if a.ep.c.txGSO.Load() == 0 {
		t.Fatal("no GSO send")
	}
	if s := a.ep.Stats(); s.TxErrors != 0 {
		t.Fatalf("send errors: %+v", s)
	}
	// The receiving tunnel merged the segments into super-frames as it
	// read them (the switch's coalescer merges what it did not): the
	// TAP's writes are a fraction of the segments.
	if c, rx := b.tap.Counters(), b.tun.Stats().RxPackets; c.TxFrames-c.TxCoalescedFrames+c.TxCoalescedWrites > rx/4 {
		t.Fatalf("%d segments reached the TAP in %d writes: few or none merged: %+v", rx, c.TxFrames-c.TxCoalescedFrames+c.TxCoalescedWrites, c)
	}
}
