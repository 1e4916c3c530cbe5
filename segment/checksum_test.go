package segment

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	random := make([]byte, 70000)
	for i := range random {
		random[i] = uint8(rng.Uint32())
	}
	tests := []struct {
		name    string
		b       []byte
		initial uint32
	}{
		{"empty", nil, 0},
		{"empty with initial", nil, 0x1_2345},
		{"one byte", []byte{0xab}, 0},
		{"rfc 1071 example", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0},
		{"all ones 64k", bytes.Repeat([]byte{0xff}, 65536), 0},
		{"all ones 64k odd", bytes.Repeat([]byte{0xff}, 65535), 0xffff_ffff},
		{"all zeros", make([]byte, 1500), 0},
		{"carries every word", bytes.Repeat([]byte{0xff, 0xfe}, 4000), 0xfffe},
	}
	for n := range 200 {
		tests = append(tests, struct {
			name    string
			b       []byte
			initial uint32
		}{"random", random[n : n+n*7], rng.Uint32()})
	}
	tests = append(tests, struct {
		name    string
		b       []byte
		initial uint32
	}{"random 70000", random, 0})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := checksum(tt.b, tt.initial), refSum(tt.b, tt.initial); got != want {
				t.Fatalf("checksum(%d bytes, %#x) = %#x, want %#x", len(tt.b), tt.initial, got, want)
			}
		})
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{64, 1500, 65536} {
		buf := make([]byte, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				checksum(buf, 0)
			}
		})
	}
}
