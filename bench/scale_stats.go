package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// latencySummary condenses per-call times, in milliseconds.
type latencySummary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	Max    float64 `json:"max"`
	// Samples are every call's time, in call order, so a slow start or
	// a drift as ports pile up shows in the JSON.
	Samples []float64 `json:"samples"`
}

func summarize(samples []time.Duration) *latencySummary {
	s := &latencySummary{N: len(samples)}
	for _, d := range samples {
		s.Samples = append(s.Samples, math.Round(float64(d.Microseconds()))/1000)
	}
	sorted := slices.Sorted(slices.Values(s.Samples))
	s.Median = percentile(sorted, 50)
	s.P90 = percentile(sorted, 90)
	if len(sorted) > 0 {
		s.Max = sorted[len(sorted)-1]
	}
	return s
}

// percentile returns the p-th percentile of sorted values, interpolating
// linearly between the two nearest ranks (as numpy does by default), so
// the median of an even count is the mean of the middle two.
func percentile(sorted []float64, p float64) float64 {
	switch len(sorted) {
	case 0:
		return math.NaN()
	case 1:
		return sorted[0]
	}
	rank := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(rank))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	frac := rank - float64(lo)
	return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
}

// procStatusKB reads a "Name:  1234 kB" field of /proc/PID/status.
func procStatusKB(status []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected value %q", field, strings.TrimSpace(v))
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("%s not found", field)
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

// fillEtherType is IEEE 802 local experimental: no stack in the
// namespaces answers it, so the flooded fill frames cost the receivers
// nothing but a drop.
const fillEtherType = 0x88b5

// randomMACs returns n distinct locally administered unicast addresses,
// none of them in avoid (the ports' own addresses, as fdb keys).
func randomMACs(r *rand.Rand, n int, avoid map[uint64]bool) []net.HardwareAddr {
	seen := make(map[uint64]bool, n)
	out := make([]net.HardwareAddr, 0, n)
	for len(out) < n {
		v := r.Uint64() & (1<<48 - 1)
		// Top byte: clear the group bit, set the locally administered bit.
		v = v&^(1<<40) | 1<<41
		if seen[v] || avoid[v] {
			continue
		}
		seen[v] = true
		mac := make(net.HardwareAddr, 6)
		for i := range mac {
			mac[i] = byte(v >> (40 - 8*i))
		}
		out = append(out, mac)
	}
	return out
}

// macKey packs a MAC into the low 48 bits, first byte highest.
func macKey(mac net.HardwareAddr) uint64 {
	var v uint64
	for _, b := range mac {
		v = v<<8 | uint64(b)
	}
	return v
}

// fillFrame is a broadcast from src: a broadcast is flooded, never
// answered, and teaches the switch src like any other frame.
func fillFrame(src net.HardwareAddr) ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: layers.EthernetBroadcast, EthernetType: fillEtherType}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, gopacket.Payload("tapswitch bench fdb fill")); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
