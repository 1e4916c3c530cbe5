package vswitch_test

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/device/devicetest"
	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// A port that is not a TAP and takes no super-frames (an in-memory
// device with a 1500-byte MTU, as a tunnel would be) sits on a network
// next to two real TAPs. TCP between the TAPs moves as super-frames,
// whole; every frame the network floods reaches the in-memory port cut
// to its MTU, with every checksum valid. Frames to the receiving TAP are
// flooded now and then by forgetting its MAC while the stream runs.
func TestPortKindWithoutOffloads(t *testing.T) {
	privtest.Require(t, "create namespaces and TAP devices", "ip")
	const mtu = 1500
	sw := vswitch.New(vswitch.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer sw.Close()
	n, err := sw.CreateNetwork("n")
	if err != nil {
		t.Fatal(err)
	}
	var tapPorts [2]*vswitch.Port
	var nss [2]string
	for i := range 2 {
		nss[i] = privtest.Netns(t, fmt.Sprintf("tskind%d-%d", os.Getpid(), i))
		addr := netip.MustParsePrefix(fmt.Sprintf("10.96.0.%d/24", i+1))
		dev, err := tap.Create(tap.Config{Netns: nss[i], Name: "eth0", Addrs: []netip.Prefix{addr}})
		if err != nil {
			t.Fatalf("tap.Create in %s: %v", nss[i], err)
		}
		if tapPorts[i], err = sw.AddPort("n", fmt.Sprintf("tap%d", i), dev, vswitch.PortInfo{MAC: dev.MAC(), IPs: []netip.Prefix{addr}}); err != nil {
			t.Fatal(err)
		}
	}
	mem := devicetest.New(devicetest.Config{Caps: device.Caps{MTU: mtu}, Backlog: 1})
	memPort, err := sw.AddPort("n", "mem", mem, vswitch.PortInfo{NoSecurity: true})
	if err != nil {
		t.Fatal(err)
	}
	// The observer is read after the stream: it holds every frame's
	// headers (the IP length says the payload), so 4 MiB in all.
	obs, err := n.Observe(vswitch.ObserverConfig{Records: 1 << 14, Snap: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()

	// 64 MiB from the first namespace to the second, while the second's
	// MAC is forgotten every few milliseconds.
	const size = 64 << 20
	var ln net.Listener
	if err := namespace.Do(nss[1], func() (err error) { ln, err = net.Listen("tcp4", "10.96.0.2:5201"); return }); err != nil {
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
	stop := make(chan struct{})
	flushed := make(chan int)
	go func() {
		k := 0
		for {
			select {
			case <-stop:
				flushed <- k
				return
			case <-time.After(2 * time.Millisecond):
				k += n.FDB().FlushPort(tapPorts[1])
			}
		}
	}()
	var c net.Conn
	if err := namespace.Do(nss[0], func() (err error) { c, err = net.Dial("tcp4", "10.96.0.2:5201"); return }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.Close()
	sum := <-got
	close(stop)
	if k := <-flushed; k == 0 {
		t.Fatal("the receiver's MAC was never forgotten: nothing was flooded")
	}
	if sum != sha256.Sum256(payload) {
		t.Fatal("the stream arrived changed")
	}
	// Super-frames went to the receiving TAP whole.
	if c := tapPorts[1].Counters(); c.TxFrames == 0 || c.TxBytes/c.TxFrames <= mtu {
		t.Fatalf("receiving TAP got %d frames, %d bytes: want super-frames, more than %d bytes each on average", c.TxFrames, c.TxBytes, mtu)
	}

	// What the network flooded, as the observer saw it, and what the
	// in-memory port got.
	time.Sleep(100 * time.Millisecond)
	if _, lost := obs.Stats(); lost != 0 {
		t.Fatalf("observer lost %d frames; the comparison needs them all", lost)
	}
	var floodedPayload, superFrames, floodedFrames int
	for {
		var r *vswitch.Record
		select {
		case r = <-obs.C():
		default:
		}
		if r == nil {
			break
		}
		if r.Flooded() && r.In != memPort {
			floodedFrames++
			if r.Hdr.GSOType != device.GSONone {
				superFrames++
			}
			floodedPayload += tcpPayload(t, r.Frame)
		}
		obs.Release(r)
	}
	if superFrames == 0 {
		t.Fatalf("%d frames flooded, none a super-frame: nothing was segmented", floodedFrames)
	}
	var memPayload int
	frames := mem.Frames()
	for i, f := range frames {
		if f[0] != 0 || f[1] != 0 {
			t.Fatalf("in-memory frame %d has virtio header flags %#x, GSO type %d; want a plain frame", i, f[0], f[1])
		}
		e := f[device.VnetHdrLen:]
		if ipLen := len(e) - 14; ipLen > mtu {
			t.Fatalf("in-memory frame %d: %d-byte IP packet, over the port's MTU %d", i, ipLen, mtu)
		}
		if err := checksums(e); err != nil {
			t.Fatalf("in-memory frame %d: %v", i, err)
		}
		memPayload += tcpPayload(t, e)
	}
	if memPayload != floodedPayload {
		t.Fatalf("in-memory port got %d bytes of TCP payload in %d frames; the network flooded %d in %d frames (%d super-frames)",
			memPayload, len(frames), floodedPayload, floodedFrames, superFrames)
	}
	t.Logf("flooded %d frames (%d super-frames, %d bytes of TCP payload); the in-memory port got them as %d frames",
		floodedFrames, superFrames, floodedPayload, len(frames))
	if d := memPort.Counters().Drops; len(d) != 0 {
		t.Fatalf("in-memory port drops %v, want none", d)
	}
}

// tcpPayload is the TCP payload length of an Ethernet frame, 0 for other
// frames.
func tcpPayload(t *testing.T, f []byte) int {
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.NoCopy)
	ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok {
		return 0
	}
	tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		return 0
	}
	return int(ip.Length) - int(ip.IHL)*4 - int(tcp.DataOffset)*4
}

// checksums verifies the IPv4 header checksum and the TCP or UDP
// checksum of an Ethernet frame: each one's-complement sum, over the
// header or the pseudo-header and the segment, must come to 0xffff.
func checksums(f []byte) error {
	if len(f) < 14 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return nil
	}
	ip := f[14:]
	ihl := int(ip[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total > len(ip) || ihl < 20 || total < ihl {
		return fmt.Errorf("IPv4 length %d, header %d, in %d bytes", total, ihl, len(ip))
	}
	if s := fold(sum(0, ip[:ihl])); s != 0xffff {
		return fmt.Errorf("IPv4 header checksum does not verify (sum %#x)", s)
	}
	proto := ip[9]
	if proto != 6 && proto != 17 {
		return nil
	}
	l4 := ip[ihl:total]
	var pseudo [12]byte
	copy(pseudo[:8], ip[12:20])
	pseudo[9] = proto
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(l4)))
	if s := fold(sum(sum(0, pseudo[:]), l4)); s != 0xffff {
		return fmt.Errorf("IP protocol %d checksum does not verify (sum %#x)", proto, s)
	}
	return nil
}

func sum(acc uint32, b []byte) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}
