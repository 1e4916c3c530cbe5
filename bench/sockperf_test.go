package main

import (
	"strings"
	"testing"
)

func TestParseSockperf(t *testing.T) {
	out := string(readTestdata(t, "sockperf-pp-full-rtt.txt"))
	got, err := parseSockperf(out)
	if err != nil {
		t.Fatalf("parseSockperf error: %v", err)
	}
	want := sockperfResult{AvgUs: 66.630, P50Us: 66.207, P99Us: 101.759, MaxUs: 3048.590, Observations: 23248, Dropped: 0, ValidSeconds: 1.550}
	if got != want {
		t.Errorf("parseSockperf = %+v, want %+v", got, want)
	}
}

func TestParseSockperfErrors(t *testing.T) {
	full := string(readTestdata(t, "sockperf-pp-full-rtt.txt"))
	tests := []struct {
		name    string
		out     string
		wantErr string
	}{
		{"one-way latency", string(readTestdata(t, "sockperf-pp-half-rtt.txt")), "--full-rtt"},
		{"no percentiles", full[:strings.Index(full, "---> <MAX>")], "percentile 99"},
		{"server down", "sockperf: No messages were received from the server. Is the server down?\n", "avg-rtt"},
		{"empty", "", "avg-rtt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseSockperf(tt.out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseSockperf error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}
