package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/device/devicetest"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	ipA  = net.IP{10, 180, 0, 2}
	ipB  = net.IP{10, 180, 0, 3}
)

// rig is a switch with ports a and b in network n, on in-memory devices
// that take super-frames (as TAPs do).
type rig struct {
	sw   *vswitch.Switch
	net  *vswitch.Network
	port map[string]*vswitch.Port
	dev  map[string]*devicetest.Device
}

func newRig(t testing.TB) *rig {
	t.Helper()
	sw := vswitch.New(vswitch.Config{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(sw.Close)
	n, err := sw.CreateNetwork("n")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{sw: sw, net: n, port: map[string]*vswitch.Port{}, dev: map[string]*devicetest.Device{}}
	for _, name := range []string{"a", "b"} {
		d := devicetest.New(devicetest.Config{Caps: device.Caps{MTU: 1500, GSO: device.GSOSetTCP, Csum: true}})
		p, err := sw.AddPort("n", name, d, vswitch.PortInfo{NoSecurity: true})
		if err != nil {
			t.Fatal(err)
		}
		r.port[name], r.dev[name] = p, d
	}
	return r
}

// send has port from send frame (no virtio header: one of zeros).
func (r *rig) send(t testing.TB, from string, hdr []byte, frame []byte) {
	t.Helper()
	if hdr == nil {
		hdr = make([]byte, device.VnetHdrLen)
	}
	if err := r.dev[from].Send(0, append(append([]byte{}, hdr...), frame...)); err != nil {
		t.Fatal(err)
	}
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ping is an ICMP echo request from src to dst, or its reply.
func ping(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst net.IP, reply bool, seq uint16) []byte {
	typ := layers.ICMPv4TypeEchoRequest
	if reply {
		typ = layers.ICMPv4TypeEchoReply
	}
	return serialize(t,
		&layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src, DstIP: dst},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(uint8(typ), 0), Id: 7, Seq: seq},
		gopacket.Payload(make([]byte, 56)))
}

// tcpSuper is a TCP super-frame of payload bytes from a to b with
// segment size mss, checksum left to fill in, and its virtio header.
func tcpSuper(t testing.TB, payload, mss int) (hdr, frame []byte) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ipA, DstIP: ipB, Id: 100}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 1000, Ack: 1, ACK: true, PSH: true, Window: 500}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	data := make([]byte, payload)
	for i := range data {
		data[i] = byte(i)
	}
	frame = serialize(t, &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}, ip, tcp, gopacket.Payload(data))
	// The kernel leaves the pseudo-header sum in the checksum field.
	frame[14+20+16], frame[14+20+17] = 0, 0
	h := device.VnetHdr{Flags: device.VnetFlagNeedsCsum, GSOType: device.GSOTCPv4, HdrLen: 54, GSOSize: uint16(mss), CsumStart: 34, CsumOffset: 16}
	hdr = make([]byte, device.VnetHdrLen)
	h.Put(hdr)
	return hdr, frame
}

type packet struct {
	data  []byte
	ci    gopacket.CaptureInfo
	iface string
	dir   pcapgo.NgEpbFlag
	notes []string
}

// readAll reads back a pcapng stream.
func readAll(t testing.TB, b []byte) []packet {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{})
	if err != nil {
		t.Fatalf("NewNgReader() = %v", err)
	}
	var out []packet
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("ReadPacketDataWithOptions() = %v after %d packets", err, len(out))
		}
		in, _ := r.Interface(ci.InterfaceIndex)
		p := packet{data: data, ci: ci, iface: in.Name, notes: opts.Comments}
		if opts.Flags != nil {
			p.dir = opts.Flags.Direction
		}
		out = append(out, p)
	}
}

// capture runs a session of cfg over the frames send sends, until count
// packets are written.
func capture(t *testing.T, r *rig, port *vswitch.Port, filter string, count uint64, send func()) ([]packet, Stats) {
	t.Helper()
	var f *Filter
	cfg := vswitch.ObserverConfig{Port: port}
	if filter != "" {
		needCompiler(t)
		var err error
		if f, err = Compile(filter); err != nil {
			t.Fatalf("Compile(%q) = %v", filter, err)
		}
		cfg.Match = f.Match
	}
	obs, err := r.net.Observe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wcfg := WriterConfig{Port: port, Network: "n", Filter: f, Count: count}
	if port == nil {
		wcfg.Ports = r.net.Ports()
	}
	s := NewSession(obs, wcfg, func() error { return nil }, nil)
	var buf bytes.Buffer
	done := make(chan Stats)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		st, err := s.Run(ctx, &buf, nil)
		if err != nil {
			t.Errorf("Run() = %v", err)
		}
		done <- st
	}()
	send()
	st := <-done
	if st.End != EndCount {
		t.Fatalf("capture ended with %q, want the count reached; stats %+v", st.End, st)
	}
	return readAll(t, buf.Bytes()), st
}

// Learn both MACs first, so pings go unicast.
func (r *rig) learn(t *testing.T) {
	r.send(t, "a", nil, ping(t, macA, layers.EthernetBroadcast, ipA, ipB, false, 0))
	r.send(t, "b", nil, ping(t, macB, layers.EthernetBroadcast, ipB, ipA, false, 0))
	if _, err := r.dev["a"].Wait(1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := r.dev["b"].Wait(1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestCapturePortBothDirections(t *testing.T) {
	r := newRig(t)
	r.learn(t)
	pkts, st := capture(t, r, r.port["a"], "", 4, func() {
		for i := range uint16(2) {
			r.send(t, "a", nil, ping(t, macA, macB, ipA, ipB, false, i+1))
			r.send(t, "b", nil, ping(t, macB, macA, ipB, ipA, true, i+1))
		}
	})
	if len(pkts) != 4 || st.Packets != 4 || st.Lost != 0 {
		t.Fatalf("got %d packets (stats %+v), want 4, none lost", len(pkts), st)
	}
	// a and b are read by loops of their own: the order of a request
	// and a reply sent at once is theirs.
	dirs := map[pcapgo.NgEpbFlag]int{}
	for i, p := range pkts {
		dirs[p.dir]++
		icmp, _ := gopacket.NewPacket(p.data, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if icmp == nil || p.iface != "a" {
			t.Fatalf("packet %d on interface %q is not an ICMP echo", i, p.iface)
		}
		want, note := pcapgo.NgEpbFlagDirectionInbound, "to b"
		if icmp.TypeCode.Type() == layers.ICMPv4TypeEchoReply {
			want, note = pcapgo.NgEpbFlagDirectionOutbound, "from b"
		}
		if p.dir != want || len(p.notes) != 1 || p.notes[0] != note {
			t.Errorf("packet %d (%v) direction %v, comments %q; want %v, [%s]", i, icmp.TypeCode, p.dir, p.notes, want, note)
		}
	}
	if dirs[pcapgo.NgEpbFlagDirectionInbound] != 2 || dirs[pcapgo.NgEpbFlagDirectionOutbound] != 2 {
		t.Errorf("directions %v, want 2 inbound and 2 outbound", dirs)
	}
}

func TestCaptureNetworkFloodedOnce(t *testing.T) {
	r := newRig(t)
	pkts, _ := capture(t, r, nil, "", 2, func() {
		r.send(t, "a", nil, ping(t, macA, layers.EthernetBroadcast, ipA, ipB, false, 1))
		if _, err := r.dev["b"].Wait(1, 5*time.Second); err != nil {
			t.Error(err)
		}
		r.send(t, "b", nil, ping(t, macB, macA, ipB, ipA, true, 1))
	})
	if pkts[0].iface != "a" || pkts[0].dir != pcapgo.NgEpbFlagDirectionInbound || len(pkts[0].notes) != 1 || pkts[0].notes[0] != "flooded" {
		t.Errorf("flooded frame on %q (%v) %q, want once, on a, inbound, [flooded]", pkts[0].iface, pkts[0].dir, pkts[0].notes)
	}
	if pkts[1].iface != "b" || pkts[1].notes[0] != "to a" {
		t.Errorf("reply on %q %q, want on b, [to a]", pkts[1].iface, pkts[1].notes)
	}
}

// A super-frame is written as its segments, each a valid TCP segment of
// at most the segment size, with checksums that verify.
func TestCaptureSegmentsSuperFrames(t *testing.T) {
	r := newRig(t)
	r.learn(t)
	const payload, mss = 20000, 1448
	want := (payload + mss - 1) / mss
	pkts, st := capture(t, r, nil, "tcp port 5201", uint64(want), func() {
		r.send(t, "a", nil, ping(t, macA, macB, ipA, ipB, false, 1)) // filtered out
		hdr, f := tcpSuper(t, payload, mss)
		r.send(t, "a", hdr, f)
	})
	if st.Frames != 1 {
		t.Errorf("the capture was offered %d frames, want 1: the filter runs before the copy", st.Frames)
	}
	var seq uint32 = 1000
	total := 0
	for i, p := range pkts {
		pk := gopacket.NewPacket(p.data, layers.LayerTypeEthernet, gopacket.Default)
		if el := pk.ErrorLayer(); el != nil {
			t.Fatalf("segment %d does not decode: %v", i, el.Error())
		}
		ip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil {
			t.Fatalf("segment %d is not TCP/IPv4", i)
		}
		if len(p.data) > 14+1500 || int(ip.Length) != len(p.data)-14 || p.ci.Length != len(p.data) {
			t.Errorf("segment %d: %d bytes, IP length %d, recorded length %d", i, len(p.data), ip.Length, p.ci.Length)
		}
		if tcp.Seq != seq {
			t.Errorf("segment %d: seq %d, want %d", i, tcp.Seq, seq)
		}
		if !checksumOK(p.data[14:34], p.data[34:]) {
			t.Errorf("segment %d: IPv4 or TCP checksum does not verify", i)
		}
		seq += uint32(len(tcp.Payload))
		total += len(tcp.Payload)
	}
	if len(pkts) != want || total != payload {
		t.Fatalf("%d segments with %d bytes, want %d with %d", len(pkts), total, want, payload)
	}
}

// checksumOK verifies an IPv4 header's checksum and its TCP segment's.
func checksumOK(ip, tcp []byte) bool {
	sum := func(b []byte, s uint32) uint32 {
		for len(b) >= 2 {
			s += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			s += uint32(b[0]) << 8
		}
		return s
	}
	fold := func(s uint32) uint16 {
		for s > 0xffff {
			s = s>>16 + s&0xffff
		}
		return uint16(s)
	}
	pseudo := sum(ip[12:20], 0) + 6 + uint32(len(tcp))
	return fold(sum(ip, 0)) == 0xffff && fold(sum(tcp, pseudo)) == 0xffff
}

func TestCaptureCountMidSuperFrameAndSnap(t *testing.T) {
	r := newRig(t)
	r.learn(t)
	var buf bytes.Buffer
	obs, _ := r.net.Observe(vswitch.ObserverConfig{})
	s := NewSession(obs, WriterConfig{Network: "n", Count: 3, SnapLen: 100, Ports: r.net.Ports()}, func() error { return nil }, nil)
	hdr, f := tcpSuper(t, 20000, 1448)
	r.send(t, "a", hdr, f)
	st, err := s.Run(context.Background(), &buf, nil)
	if err != nil || st.End != EndCount || st.Packets != 3 {
		t.Fatalf("Run() = %+v, %v; want 3 packets, the count reached", st, err)
	}
	for i, p := range readAll(t, buf.Bytes()) {
		if len(p.data) != 100 || p.ci.Length != 14+20+20+1448 {
			t.Errorf("packet %d: %d of %d bytes, want 100 of 1502", i, len(p.data), p.ci.Length)
		}
	}
}

func TestCaptureEndsWhenSourceGoes(t *testing.T) {
	r := newRig(t)
	obs, _ := r.net.Observe(vswitch.ObserverConfig{Port: r.port["a"]})
	gone := make(chan struct{})
	alive := func() error {
		select {
		case <-gone:
			return errors.New("port a was detached")
		default:
			return nil
		}
	}
	s := NewSession(obs, WriterConfig{Port: r.port["a"]}, alive, nil)
	close(gone)
	st, err := s.Run(context.Background(), io.Discard, nil)
	if err != nil || st.End != EndGone || st.Gone != "port a was detached" {
		t.Fatalf("Run() = %+v, %v; want the end source_gone", st, err)
	}
}

// A reader that does not keep up loses frames, counted; the switch
// forwards every one.
func TestCaptureSlowReaderLoses(t *testing.T) {
	r := newRig(t)
	r.learn(t)
	obs, _ := r.net.Observe(vswitch.ObserverConfig{Records: 4})
	stuck := make(chan struct{})
	s := NewSession(obs, WriterConfig{Network: "n", Ports: r.net.Ports()}, func() error { return nil }, nil)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Stats)
	go func() {
		st, _ := s.Run(ctx, pw, nil)
		pw.Close()
		done <- st
	}()
	// Read the header, then stop reading.
	go func() {
		b := make([]byte, 1)
		pr.Read(b)
		<-stuck
		io.Copy(io.Discard, pr)
	}()
	const n = 50
	for i := range uint16(n) {
		r.send(t, "a", nil, ping(t, macA, macB, ipA, ipB, false, i))
	}
	if _, err := r.dev["b"].Wait(n+1, 5*time.Second); err != nil {
		t.Fatalf("b got fewer than %d frames: %v", n, err)
	}
	cancel()
	close(stuck)
	st := <-done
	if st.Lost == 0 || st.Frames != n {
		t.Fatalf("stats %+v; want %d frames offered, some lost", st, n)
	}
}

// A port the file does not list yet (attached after the capture began)
// gets its interface with its first packet.
func TestCaptureAddsInterfaceOnFirstPacket(t *testing.T) {
	r := newRig(t)
	obs, err := r.net.Observe(vswitch.ObserverConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	s := NewSession(obs, WriterConfig{Network: "n", Ports: []*vswitch.Port{r.port["a"]}, Count: 2}, func() error { return nil }, nil)
	r.send(t, "a", nil, ping(t, macA, layers.EthernetBroadcast, ipA, ipB, false, 1))
	if _, err := r.dev["b"].Wait(1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.send(t, "b", nil, ping(t, macB, macA, ipB, ipA, true, 1))
	if st, err := s.Run(context.Background(), &buf, nil); err != nil || st.Packets != 2 {
		t.Fatalf("Run() = %+v, %v; want 2 packets", st, err)
	}
	pkts := readAll(t, buf.Bytes())
	if pkts[0].iface != "a" || pkts[1].iface != "b" {
		t.Fatalf("packets on %q and %q, want a then b", pkts[0].iface, pkts[1].iface)
	}
}
