package vxlan

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/device"
)

// TestPartialToChecksummed: a super-frame cut for checksummed VTEPs only
// (tapswitch hosts) leaves each segment's TCP checksum at the
// pseudo-header seed; for any other VTEP, or a flood that reaches one,
// every segment's checksum is filled in. The datagrams are read off the
// wire by a plain socket, one at a time.
func TestPartialToChecksummed(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	port := eb.cfg.Port
	eb.Close() // its address and port are the plain socket's now
	var c *net.UDPConn
	var err error
	for range 50 {
		if c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: port}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A third VTEP, never listening: a flood to both must be filled in.
	third := netip.MustParseAddr("127.0.0.3")
	ta := tunnel(t, ea, 42, 1450, netip.MustParseAddr("127.0.0.2"))
	const size = 1398
	payload := payloadOf(10 * size)
	for _, cs := range []struct {
		name    string
		sums    []netip.Addr
		vteps   []netip.Addr
		partial bool
	}{
		{"checksummed", []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil, true},
		{"not checksummed", nil, nil, false},
		{"flood reaching a VTEP not checksummed", []netip.Addr{netip.MustParseAddr("127.0.0.2")}, []netip.Addr{netip.MustParseAddr("127.0.0.2"), third}, false},
	} {
		t.Run(cs.name, func(t *testing.T) {
			ea.SetChecksummed(cs.sums)
			if cs.vteps != nil {
				ta.SetVTEPs(cs.vteps)
				defer ta.SetVTEPs([]netip.Addr{netip.MustParseAddr("127.0.0.2")})
			}
			f, h := tcpSuperFrame(payload, size)
			// Then one frame with its checksum left to fill, without GSO
			// (as a TAP hands over an ACK), and one with GSO that makes
			// a single segment.
			small, _ := tcpSuperFrame(payload[:100], size)
			one, oneH := tcpSuperFrame(payload[:300], size)
			smallH := device.VnetHdr{Flags: device.VnetFlagNeedsCsum, CsumStart: 34, CsumOffset: 16}
			if _, err := ta.Queues()[0].Write([][]byte{buffer(f, h), buffer(small, smallH), buffer(one, oneH)}, device.Headroom); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 65536)
			got := 0
			for got < 12 {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("after %d datagrams: %v", got, err)
				}
				inner := buf[HeaderLen:n]
				ip, tcp := inner[14:34], inner[34:]
				pseudo := sum(ip[12:20], 6+uint32(len(tcp)))
				field := binary.BigEndian.Uint16(tcp[16:])
				verifies := fold(sum(tcp, pseudo)) == 0xffff
				if cs.partial {
					if field != fold(pseudo) {
						t.Fatalf("segment %d: TCP checksum %#04x, want the seed %#04x", got, field, fold(pseudo))
					}
				} else if !verifies {
					t.Fatalf("segment %d: TCP checksum %#04x does not verify", got, field)
				}
				got++
			}
		})
	}
}

// TestChecksummedPeerReseeds: a TCP frame alone from a checksummed VTEP
// comes out as a frame with the checksum left to fill (NeedsCsum and the
// seed), whatever its sender put there; from any other member, as sent,
// with no flag.
func TestChecksummedPeerReseeds(t *testing.T) {
	ea, eb := pair(t, "127.0.0.1", "127.0.0.2")
	ta := tunnel(t, ea, 42, 1450, netip.MustParseAddr("127.0.0.2"))
	tb := tunnel(t, eb, 42, 1450)
	f := tcpSegments(1, 200)[0]
	seed := fold(sum(f[26:34], 6+uint32(len(f)-34)))
	for _, c := range []struct {
		sums bool
		want device.VnetHdr
	}{
		{false, device.VnetHdr{}},
		{true, device.VnetHdr{Flags: device.VnetFlagNeedsCsum, CsumStart: 34, CsumOffset: 16}},
	} {
		var sums []netip.Addr
		if c.sums {
			sums = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		}
		eb.SetChecksummed(sums)
		if _, err := ta.Queues()[0].Write([][]byte{buffer(f, device.VnetHdr{})}, device.Headroom); err != nil {
			t.Fatal(err)
		}
		hs, fs := readOne(t, tb.Queues()[0])
		if len(fs) != 1 || hs[0] != c.want {
			t.Fatalf("checksummed %v: %d frames, header %+v, want one with %+v", c.sums, len(fs), hs, c.want)
		}
		field := binary.BigEndian.Uint16(fs[0][34+16:])
		if wantField := binary.BigEndian.Uint16(f[34+16:]); c.sums {
			if field != seed {
				t.Fatalf("checksummed: TCP checksum %#04x, want the seed %#04x", field, seed)
			}
		} else if field != wantField {
			t.Fatalf("not checksummed: TCP checksum %#04x, want it as sent, %#04x", field, wantField)
		}
	}
}
