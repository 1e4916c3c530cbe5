package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseRows(t *testing.T) {
	tests := []struct {
		list    string
		want    []string
		wantErr string
	}{
		{"tcp1", []string{"tcp1"}, ""},
		// Run order is fixed whatever order the list gives.
		{"rtt-loaded, udp64,tcp1-notso", []string{"tcp1-notso", "udp64", "rtt-loaded"}, ""},
		{"udp64,udp64", []string{"udp64"}, ""},
		{"udp64,udp128", nil, `unknown test "udp128"`},
		{" , ", nil, "no test named"},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			got, err := parseRows(tt.list)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseRows(%q) error = %v, want %q", tt.list, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("parseRows(%q) = %q, %v; want %q", tt.list, got, err, tt.want)
			}
		})
	}
}

// TestAllTests checks that every test has a name of its own and that its
// rows are the known metrics, in allMetrics' order.
func TestAllTests(t *testing.T) {
	var names []string
	var metrics []metric
	for _, tt := range allTests {
		if tt.name == "" || slices.Contains(names, tt.name) {
			t.Errorf("test with rows %v: name %q empty or not unique", tt.metrics, tt.name)
		}
		names = append(names, tt.name)
		metrics = append(metrics, tt.metrics...)
	}
	if !slices.Equal(metrics, allMetrics) {
		t.Errorf("the tests' rows = %v, want allMetrics %v", metrics, allMetrics)
	}
	for _, m := range allMetrics {
		if got := metricByKey(m.Key); got != m {
			t.Errorf("metricByKey(%q) = %v, want %v", m.Key, got, m)
		}
	}
}

func TestChooseTests(t *testing.T) {
	have := func(missing ...string) func(string) (string, error) {
		return func(tool string) (string, error) {
			if slices.Contains(missing, tool) {
				return "", errors.New("not found")
			}
			return "/usr/bin/" + tool, nil
		}
	}
	names := func(ts []test) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.name)
		}
		return out
	}
	t.Run("all", func(t *testing.T) {
		tests, metrics, notes, err := chooseTests(nil, have())
		if err != nil || len(notes) != 0 {
			t.Fatalf("chooseTests(nil) = notes %q, error %v; want none", notes, err)
		}
		if !slices.Equal(names(tests), testNames()) || !slices.Equal(metrics, allMetrics) {
			t.Errorf("chooseTests(nil) = %q, %v; want every test and row", names(tests), metrics)
		}
	})
	t.Run("no sockperf, no ethtool", func(t *testing.T) {
		tests, _, notes, err := chooseTests(nil, have("sockperf", "ethtool"))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"tcp1", "tcp4", "udp64", "udp64x8", "udp1400"}; !slices.Equal(names(tests), want) {
			t.Errorf("tests = %q, want %q", names(tests), want)
		}
		want := []string{
			"ethtool not found: tests tcp1-notso skipped; apt-get install -y ethtool to add them",
			"sockperf not found: tests rtt, rtt-loaded skipped; apt-get install -y sockperf to add them",
		}
		if !slices.Equal(notes, want) {
			t.Errorf("notes = %q, want %q", notes, want)
		}
	})
	t.Run("selected", func(t *testing.T) {
		tests, metrics, _, err := chooseTests([]string{"udp1400", "rtt-loaded"}, have())
		if err != nil {
			t.Fatal(err)
		}
		if want := []metric{metricUDP1400, metricUDP1400Bits, metricRTTLoadedAvg, metricRTTLoadedP99}; len(tests) != 2 || !slices.Equal(metrics, want) {
			t.Errorf("chooseTests = %q, %v; want udp1400, rtt-loaded with %v", names(tests), metrics, want)
		}
	})
	t.Run("selected, tool missing", func(t *testing.T) {
		_, _, _, err := chooseTests([]string{"tcp1-notso"}, have("ethtool"))
		if err == nil || !strings.Contains(err.Error(), "-rows tcp1-notso needs ethtool") {
			t.Errorf("chooseTests(tcp1-notso) without ethtool: error = %v, want one naming ethtool", err)
		}
	})
}

func TestParseEthtoolFeatures(t *testing.T) {
	// As ethtool 6.1 prints it for a TAP, cut short.
	out := `Features for eth0:
rx-checksumming: off [fixed]
tx-checksumming: on
	tx-checksum-ipv4: off [fixed]
	tx-checksum-ip-generic: on
scatter-gather: on
tcp-segmentation-offload: on
	tx-tcp-segmentation: on
	tx-tcp-ecn-segmentation: off [requested on]
generic-segmentation-offload: off [requested on]
large-receive-offload: off [fixed]
tx-udp-segmentation: on
hsr-fwd-offload: off [fixed]
`
	got := parseEthtoolFeatures(out)
	want := map[string]ethFeature{
		"rx-checksumming":              {on: false, fixed: true},
		"tx-checksumming":              {on: true},
		"tx-checksum-ipv4":             {on: false, fixed: true},
		"tx-checksum-ip-generic":       {on: true},
		"scatter-gather":               {on: true},
		"tcp-segmentation-offload":     {on: true},
		"tx-tcp-segmentation":          {on: true},
		"tx-tcp-ecn-segmentation":      {on: false},
		"generic-segmentation-offload": {on: false},
		"large-receive-offload":        {on: false, fixed: true},
		"tx-udp-segmentation":          {on: true},
		"hsr-fwd-offload":              {on: false, fixed: true},
	}
	if len(got) != len(want) {
		t.Errorf("parseEthtoolFeatures: %d features, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("feature %s = %+v (present %v), want %+v", k, g, ok, w)
		}
	}
	if _, ok := got["Features for eth0"]; ok {
		t.Error("the heading was read as a feature")
	}
}

func TestLoadNotes(t *testing.T) {
	load := func(delivered float64) map[string]float64 {
		return map[string]float64{"load_offered_pps": 20000, "load_delivered_pps": delivered}
	}
	rep := &report{Systems: []passResult{
		{System: "bridge", Pass: 1, Results: []measurement{{Metric: metricRTTLoadedAvg.Key, Detail: load(19950)}}},
		{System: "ovs", Pass: 1, Results: []measurement{{Metric: metricRTTLoadedAvg.Key, Detail: load(15000)}}},
		{System: "tapswitch", Pass: 1, Results: []measurement{{Metric: metricUDP64.Key, Detail: map[string]float64{"delivered_packets": 5}}}},
	}}
	got := loadNotes(rep)
	want := []string{"ovs: UDP RTT avg, 64 B load: the background load delivered 15000 of 20000 datagrams a second; the round trips ran under less load there"}
	if !slices.Equal(got, want) {
		t.Errorf("loadNotes = %q, want %q", got, want)
	}
}
