package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/namespace"
)

// testEtherType is an EtherType no stack in the namespaces answers to
// (IEEE 802 local experimental), so test frames only reach the sockets.
const testEtherType = layers.EthernetType(0x88b5)

// packetConn is an AF_PACKET socket bound to one interface inside a
// namespace. It sees every frame the interface sends and receives.
type packetConn struct {
	ns      string
	fd      int
	ifindex int
	mac     net.HardwareAddr
}

// htons returns v in network byte order, as AF_PACKET wants protocols.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

// openPacketConn opens a packet socket on ifname inside ns; it is closed
// when the test ends.
func openPacketConn(t *testing.T, ns, ifname string) *packetConn {
	t.Helper()
	pc := &packetConn{ns: ns, fd: -1}
	err := namespace.Do(nsPath(ns), func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		// A short receive timeout lets reads check their deadline.
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return fmt.Errorf("set SO_RCVTIMEO: %w", err)
		}
		pc.fd, pc.ifindex, pc.mac = fd, ifi.Index, ifi.HardwareAddr
		return nil
	})
	if err != nil {
		t.Fatalf("open packet socket on %s in %s: %v", ifname, ns, err)
	}
	t.Cleanup(func() { unix.Close(pc.fd) })
	return pc
}

// send writes one frame of testEtherType from the socket's interface to
// dst, carrying payload.
func (pc *packetConn) send(dst net.HardwareAddr, payload string) error {
	eth := &layers.Ethernet{SrcMAC: pc.mac, DstMAC: dst, EthernetType: testEtherType}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, gopacket.Payload(payload)); err != nil {
		return err
	}
	return unix.Sendto(pc.fd, buf.Bytes(), 0, &unix.SockaddrLinklayer{Ifindex: pc.ifindex})
}

// arrival is one test frame a packetConn received.
type arrival struct {
	src, dst net.HardwareAddr
	pkttype  uint8
}

// collect reads frames until every marker in want has arrived or timeout
// passes, and returns the markers that arrived. Only frames coming in to
// the interface count: the socket's own outgoing frames
// (PACKET_OUTGOING) are skipped.
func (pc *packetConn) collect(timeout time.Duration, want ...string) (map[string]arrival, error) {
	got := make(map[string]arrival)
	buf := make([]byte, 1<<16)
	deadline := time.Now().Add(timeout)
	for len(got) < len(want) && time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(pc.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return got, fmt.Errorf("recvfrom: %w", err)
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		var eth layers.Ethernet
		if eth.DecodeFromBytes(buf[:n], gopacket.NilDecodeFeedback) != nil || eth.EthernetType != testEtherType {
			continue
		}
		for _, m := range want {
			if bytes.HasPrefix(eth.Payload, []byte(m)) {
				got[m] = arrival{
					src:     append(net.HardwareAddr(nil), eth.SrcMAC...),
					dst:     append(net.HardwareAddr(nil), eth.DstMAC...),
					pkttype: ll.Pkttype,
				}
			}
		}
	}
	return got, nil
}

// TestFlooding checks that frames to an unknown MAC and to broadcast
// reach every other port of the network but not the sender, and that a
// frame to a learned MAC reaches only its port.
func TestFlooding(t *testing.T) {
	e := newEnv(t)
	roles := []string{"a", "b", "c", "d"}
	ns := make(map[string]string)
	port := make(map[string]string)
	for i, r := range roles {
		ns[r] = e.newNetns(r)
		port[r] = e.attach(ns[r], "--ip", fmt.Sprintf("10.77.4.%d/24", i+1))
	}
	pc := make(map[string]*packetConn)
	for _, r := range roles {
		pc[r] = openPacketConn(t, ns[r], "eth0")
	}

	// Markers are unique per run and end in '/', so none is a prefix of
	// another and stray frames from earlier runs cannot match.
	token := fmt.Sprintf("tapswitch-e2e/%016x/", rand.Uint64())
	unknownMark := token + "unknown-unicast/"
	broadcastMark := token + "broadcast/"
	learnMark := token + "learn/"
	unicastMark := token + "unicast/"
	unknownMAC := net.HardwareAddr{0x02, 0xde, 0xad, 0xbe, 0xef, 0x01}
	broadcastMAC := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

	if err := pc["a"].send(unknownMAC, unknownMark); err != nil {
		t.Fatalf("send to %s from %s: %v", unknownMAC, ns["a"], err)
	}
	if err := pc["a"].send(broadcastMAC, broadcastMark); err != nil {
		t.Fatalf("send to %s from %s: %v", broadcastMAC, ns["a"], err)
	}
	flooded := []struct {
		mark string
		dst  net.HardwareAddr
	}{
		{unknownMark, unknownMAC},
		{broadcastMark, broadcastMAC},
	}
	for _, r := range roles[1:] {
		t.Run("flood to "+r, func(t *testing.T) {
			got, err := pc[r].collect(3*time.Second, unknownMark, broadcastMark)
			if err != nil {
				t.Fatalf("receive in %s: %v", ns[r], err)
			}
			for _, f := range flooded {
				a, ok := got[f.mark]
				if !ok {
					t.Errorf("receive in %s: frame to %s from %s never arrived", ns[r], f.dst, ns["a"])
					continue
				}
				if !bytes.Equal(a.dst, f.dst) || !bytes.Equal(a.src, pc["a"].mac) {
					t.Errorf("receive in %s: frame %s -> %s, want %s -> %s", ns[r], a.src, a.dst, pc["a"].mac, f.dst)
				}
			}
		})
	}
	t.Run("no echo to sender", func(t *testing.T) {
		got, err := pc["a"].collect(300*time.Millisecond, unknownMark, broadcastMark)
		if err != nil {
			t.Fatalf("receive in %s: %v", ns["a"], err)
		}
		for m, a := range got {
			t.Errorf("receive in %s: own frame %q came back in (packet type %d)", ns["a"], m, a.pkttype)
		}
	})
	e.waitFDB(pc["a"].mac, port["a"])
	if p := fdbPort(e.fdb(), unknownMAC); p != "" {
		t.Errorf("tapswitch fdb: destination-only MAC %s learned on port %q", unknownMAC, p)
	}

	// b speaks once so the switch learns where its MAC lives.
	if err := pc["b"].send(broadcastMAC, learnMark); err != nil {
		t.Fatalf("send to %s from %s: %v", broadcastMAC, ns["b"], err)
	}
	e.waitFDB(pc["b"].mac, port["b"])
	if err := pc["a"].send(pc["b"].mac, unicastMark); err != nil {
		t.Fatalf("send to %s from %s: %v", pc["b"].mac, ns["a"], err)
	}
	t.Run("unicast to b", func(t *testing.T) {
		got, err := pc["b"].collect(3*time.Second, unicastMark)
		if err != nil {
			t.Fatalf("receive in %s: %v", ns["b"], err)
		}
		if _, ok := got[unicastMark]; !ok {
			t.Errorf("receive in %s: frame to its MAC %s from %s never arrived", ns["b"], pc["b"].mac, ns["a"])
		}
	})
	for _, r := range []string{"c", "d"} {
		t.Run("no unicast to "+r, func(t *testing.T) {
			// b already has it, so a copy bound for r would be here by now.
			got, err := pc[r].collect(300*time.Millisecond, unicastMark)
			if err != nil {
				t.Fatalf("receive in %s: %v", ns[r], err)
			}
			if _, ok := got[unicastMark]; ok {
				t.Errorf("receive in %s: got the frame from %s to %s (port %s), want it only on %s", ns[r], ns["a"], pc["b"].mac, port["b"], port["b"])
			}
		})
	}
}
