package segment

import (
	"encoding/binary"
	"testing"

	"github.com/tapswitch/tapswitch/device"
)

// Bits of FuzzCoalesceRoundTrip's caps argument.
const (
	fuzzCapsNoUSO   = 1 << 0
	fuzzCapsNoTCPv4 = 1 << 1
	fuzzCapsNoTCPv6 = 1 << 2
	fuzzCapsNoCsum  = 1 << 3
)

// fuzzFlows are the flows FuzzCoalesceRoundTrip's frames belong to: each
// kind twice (two source ports), one of each tagged.
var fuzzFlows = []frameSpec{
	specUDP4, specUDP6, specTCP4, specTCP6,
	{udp: true, tags: []uint16{etherTypeVLAN}},
	{udp: true, v6: true},
	{tcpOpts: 12, flags: flagsACK, tags: []uint16{etherTypeVLAN}},
	{v6: true, tcpOpts: 12, flags: flagsACK},
}

// FuzzCoalesceRoundTrip coalesces sequences of frames built from the
// fuzz bytes, mostly valid TCP and UDP frames of a few flows, each
// either as its flow would send it next or changed in one way (another
// size, checksum form, flag, header field, a bad checksum, bytes laid
// over it), and raw frames. checkCoalesce checks the result: every frame
// comes out once, as it was or, cut from a super-frame by a Splitter,
// exactly as it was with its partial checksum completed; each flow in
// order; every super-frame one the kernel takes.
func FuzzCoalesceRoundTrip(f *testing.F) {
	f.Add(uint8(0), uint8(100), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(0), uint8(64), []byte{0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3})
	f.Add(uint8(0), uint8(200), []byte{2, 2, 2, 2 | 8<<3, 2, 2, 2 | 9<<3, 2, 2})
	f.Add(uint8(0), uint8(200), []byte{3, 3, 3 | 10<<3, 3, 3, 3 | 12<<3, 3, 3 | 13<<3, 3})
	f.Add(uint8(0), uint8(50), []byte{4, 4, 5, 5, 4 | 16<<3, 4, 6, 6, 7, 7, 6 | 20<<3, 6})
	f.Add(uint8(fuzzCapsNoUSO), uint8(10), []byte{0, 0, 31 << 3, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0})
	f.Add(uint8(0), uint8(255), []byte{0, 0, 30 << 3, 7, 1, 2, 3, 4, 5, 6, 7, 0, 0, 17 << 3, 0})
	f.Fuzz(func(t *testing.T, capBits, size uint8, data []byte) {
		caps := device.Caps{GSO: device.GSOSetUDPL4 | device.GSOSetTCP, Csum: capBits&fuzzCapsNoCsum == 0}
		if capBits&fuzzCapsNoUSO != 0 {
			caps.GSO &^= device.GSOSetUDPL4
		}
		if capBits&fuzzCapsNoTCPv4 != 0 {
			caps.GSO &^= device.GSOSetTCPv4
		}
		if capBits&fuzzCapsNoTCPv6 != 0 {
			caps.GSO &^= device.GSOSetTCPv6
		}
		frames := fuzzFrames(t, int(size), data)
		var c Coalescer
		checkCoalesce(t, &c, toBufs(frames...), caps)
	})
}

// fuzzFrames builds the frames data describes. Each frame takes one byte:
// its flow (low 3 bits) and what is done to it (the rest); some take
// more bytes. size is the payload every flow's frames have unless
// changed (1 to 256 bytes; for TCP times 6).
func fuzzFrames(tb testing.TB, size int, data []byte) []built {
	type state struct {
		id  uint16
		seq uint32
	}
	var flows [8]state
	for i := range flows {
		flows[i] = state{id: testID, seq: testSeq}
	}
	var out []built
	for len(data) > 0 && len(out) < 200 {
		op := data[0]
		data = data[1:]
		fl, change := int(op&7), op>>3
		// arg is the next byte, for the changes that take one.
		arg := 0
		if change >= 16 && len(data) > 0 {
			arg, data = int(data[0]), data[1:]
		}
		sp := fuzzFlows[fl]
		st := &flows[fl]
		n := size + 1
		if !sp.udp {
			n *= 6
		}
		switch change {
		case 16: // another size
			n = arg * 6
		case 17: // one byte shorter
			n = max(n-1, 0)
		case 18: // longer
			n += 1 + arg
		}
		sp.payload = n
		b := buildFrame(tb, sp)
		for j := range b.payload {
			b.payload[j] = uint8(len(out)*13 + j)
		}
		binary.BigEndian.PutUint16(b.frame[b.l4:], uint16(40000+fl/4))
		if !sp.udp {
			binary.BigEndian.PutUint32(b.frame[b.l4+4:], st.seq)
		}
		if !sp.v6 {
			binary.BigEndian.PutUint16(b.frame[b.l3+4:], st.id)
		}
		st.id++
		st.seq += uint32(n)
		fixIPv4(b)

		switch change {
		case 8:
			b = withCsum(b, csumValid)
		case 9:
			b = withCsum(b, csumNone)
		case 10: // a bad checksum, no flag
			b = withCsum(b, csumNone)
			b.frame[len(b.frame)-1]++
		case 11: // a wrong seed
			b.frame[b.hdrEnd-1]++
		case 19, 20, 21, 22, 23: // TCP flags, or a UDP ID jump
			if sp.udp {
				st.id += uint16(arg)
				b = edit(b, func(f []byte, b built) {
					if !b.spec.v6 {
						binary.BigEndian.PutUint16(f[b.l3+4:], st.id-1)
					}
				})
			} else {
				b = edit(b, func(f []byte, b built) { f[b.l4+tcpFlagsOff] = uint8(arg) })
			}
		case 24: // a TCP sequence number jump
			if !sp.udp {
				st.seq += uint32(arg)
				b = edit(b, func(f []byte, b built) { binary.BigEndian.PutUint32(f[b.l4+4:], st.seq-uint32(n)) })
			}
		case 25: // a header field
			b = edit(b, func(f []byte, b built) { f[arg%b.hdrEnd] ^= 1 << (arg % 7) })
		case 26: // no IPv4 checksum update after a change
			b = edit(b, func(f []byte, b built) {})
			b.frame[arg%b.hdrEnd] ^= 0x10
		case 27: // a virtio net header field
			hb := make([]byte, device.VnetHdrLen)
			b.h.Put(hb)
			hb[arg%device.VnetHdrLen] ^= uint8(arg)
			b.h, _ = device.ParseVnetHdr(append(hb, b.frame...))
			if b.h.Flags&device.VnetFlagDataValid != 0 {
				b.h.Flags &^= device.VnetFlagDataValid // an honest header
			}
		case 28, 29, 30: // bytes laid over the frame
			k := min(len(data), 1+arg%16)
			b = edit(b, func(f []byte, b built) {
				pos := arg % len(f)
				for j := range k {
					if pos+j < len(f) {
						f[pos+j] ^= data[j]
					}
				}
			})
			data = data[k:]
			// The flag is a promise the bytes keep only if the
			// checksum is checked: not for a frame changed after.
			b.h.Flags &^= device.VnetFlagDataValid
		case 31: // a raw frame
			k := min(len(data), arg)
			raw := append([]byte(nil), data[:k]...)
			data = data[k:]
			var h device.VnetHdr
			if len(raw) >= device.VnetHdrLen {
				h, _ = device.ParseVnetHdr(raw)
				raw = raw[device.VnetHdrLen:]
			}
			h.Flags &^= device.VnetFlagDataValid
			b = built{h: h, frame: raw}
		}
		out = append(out, b)
	}
	return out
}
