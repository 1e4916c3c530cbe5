package device

import (
	"errors"
	"testing"
)

func TestParseVnetHdr(t *testing.T) {
	frame := make([]byte, 100)
	tests := []struct {
		name    string
		hdr     VnetHdr
		frame   int
		wantErr error
	}{
		{"plain", VnetHdr{}, 60, nil},
		{"tcp4 gso with csum", VnetHdr{Flags: VnetFlagNeedsCsum, GSOType: GSOTCPv4, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}, 100, nil},
		{"ecn bit", VnetHdr{GSOType: GSOTCPv6 | GSOECN, GSOSize: 1428}, 100, nil},
		{"udp l4", VnetHdr{GSOType: GSOUDPL4, GSOSize: 1400}, 100, nil},
		{"unknown gso", VnetHdr{GSOType: 9, GSOSize: 10}, 100, ErrBadGSOType},
		{"gso without size", VnetHdr{GSOType: GSOTCPv4}, 100, ErrBadGSO},
		{"csum past end", VnetHdr{Flags: VnetFlagNeedsCsum, CsumStart: 90, CsumOffset: 16}, 100, ErrBadCsum},
		{"csum field straddles end", VnetHdr{Flags: VnetFlagNeedsCsum, CsumStart: 97, CsumOffset: 2}, 100, ErrBadCsum},
		{"ecn bit alone", VnetHdr{GSOType: GSOECN, GSOSize: 1400}, 100, ErrBadGSOType},
		{"header length past end", VnetHdr{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 101}, 100, ErrBadHdrLen},
		{"header length at end", VnetHdr{GSOType: GSOTCPv4, GSOSize: 1448, HdrLen: 100}, 100, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := make([]byte, VnetHdrLen+tt.frame)
			copy(b[VnetHdrLen:], frame)
			tt.hdr.Put(b)
			got, err := ParseVnetHdr(b)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseVnetHdr(%+v) error = %v, want %v", tt.hdr, err, tt.wantErr)
			}
			if err == nil && got != tt.hdr {
				t.Fatalf("ParseVnetHdr() = %+v, want %+v", got, tt.hdr)
			}
		})
	}
	if _, err := ParseVnetHdr(make([]byte, VnetHdrLen-1)); !errors.Is(err, ErrShortHeader) {
		t.Fatalf("ParseVnetHdr(9 bytes) = %v, want ErrShortHeader", err)
	}
}

func FuzzParseVnetHdr(f *testing.F) {
	f.Add([]byte{1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseVnetHdr(b)
		if err != nil {
			return
		}
		// An accepted header round-trips and its offsets lie in the frame.
		out := make([]byte, VnetHdrLen)
		h.Put(out)
		if string(out) != string(b[:VnetHdrLen]) {
			t.Fatalf("Put(ParseVnetHdr(%x)) = %x", b[:VnetHdrLen], out)
		}
		if h.Flags&VnetFlagNeedsCsum != 0 && int(h.CsumStart)+int(h.CsumOffset)+2 > len(b)-VnetHdrLen {
			t.Fatalf("accepted checksum offsets %d+%d past a %d-byte frame", h.CsumStart, h.CsumOffset, len(b)-VnetHdrLen)
		}
	})
}
