package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

func TestParseIperfTCP(t *testing.T) {
	tests := []struct {
		name        string
		file        string
		want        float64
		retransmits float64
	}{
		// Values as iperf3 3.12 printed them in end.sum_received and
		// end.sum_sent of the sample.
		{"one stream", "iperf3-tcp-1stream.json", 14871366567.6485, 1782},
		{"four streams", "iperf3-tcp-4streams.json", 28878677088.321575, 2984},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, detail, err := parseIperfTCP(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("parseIperfTCP(%s) error: %v", tt.file, err)
			}
			if !near(got, tt.want) {
				t.Errorf("parseIperfTCP(%s) = %v, want %v", tt.file, got, tt.want)
			}
			if detail["retransmits"] != tt.retransmits {
				t.Errorf("parseIperfTCP(%s) retransmits = %v, want %v", tt.file, detail["retransmits"], tt.retransmits)
			}
		})
	}
}

func TestParseIperfUDP(t *testing.T) {
	got, detail, err := parseIperfUDP(readTestdata(t, "iperf3-udp-64b.json"))
	if err != nil {
		t.Fatalf("parseIperfUDP error: %v", err)
	}
	// The server saw sequence numbers up to 383812 with 4683 gaps over
	// 2.00022 s; the client sent 383820, which must not count.
	want := (383812.0 - 4683) / 2.00022
	if !near(got, want) {
		t.Errorf("parseIperfUDP = %v, want %v", got, want)
	}
	// Cross-check against the bytes the server received: 64 per packet.
	if d := detail["delivered_packets"]; d != 24264256/64 {
		t.Errorf("delivered_packets = %v, want %v", d, 24264256/64)
	}
	if s := detail["sent_packets"]; s != 383820 {
		t.Errorf("sent_packets = %v, want 383820", s)
	}
}

func TestParseIperfUDPWithoutSumReceived(t *testing.T) {
	// Older iperf3 versions report UDP in end.sum only.
	data := []byte(`{"end":{"sum":{"seconds":2,"packets":1000,"lost_packets":200}}}`)
	got, _, err := parseIperfUDP(data)
	if err != nil {
		t.Fatalf("parseIperfUDP error: %v", err)
	}
	if got != 400 {
		t.Errorf("parseIperfUDP = %v, want 400", got)
	}
}

func TestParseIperfErrors(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		wantErr string
		is      error
	}{
		{"refused", readTestdata(t, "iperf3-error-refused.json"), "unable to connect to server: Connection refused", nil},
		{"not json", []byte("iperf3: error - unable to connect"), "decode iperf3 -J output", nil},
		{"empty", nil, "decode iperf3 -J output", nil},
		{"no summary", []byte(`{"start":{},"end":{}}`), "", errNoSummary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, parse := range []func([]byte) (float64, map[string]float64, error){parseIperfTCP, parseIperfUDP} {
				_, _, err := parse(tt.data)
				if err == nil {
					t.Fatalf("parse(%q) = nil error, want one", tt.data)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("parse(%q) error = %v, want %v", tt.data, err, tt.is)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parse(%q) error = %q, want it to contain %q", tt.data, err, tt.wantErr)
				}
			}
		})
	}
}

func TestProcNetHasSocket(t *testing.T) {
	tcp := readTestdata(t, "proc-net-tcp.txt")
	udp := readTestdata(t, "proc-net-udp.txt")
	tests := []struct {
		name  string
		table []byte
		port  int
		state string
		want  bool
	}{
		{"iperf3 listening", tcp, iperfPort, tcpListen, true},
		{"other port", tcp, 5202, tcpListen, false},
		{"wrong state", tcp, iperfPort, udpUnconnected, false},
		{"sockperf bound", udp, sockperfPort, udpUnconnected, true},
		{"udp other port", udp, iperfPort, udpUnconnected, false},
		{"empty", nil, iperfPort, tcpListen, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := procNetHasSocket(tt.table, tt.port, tt.state); got != tt.want {
				t.Errorf("procNetHasSocket(port %d, state %s) = %v, want %v", tt.port, tt.state, got, tt.want)
			}
		})
	}
}
