package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseOnly(t *testing.T) {
	tests := []struct {
		list    string
		want    []string
		wantErr string
	}{
		{"bridge", []string{"bridge"}, ""},
		// Run order is fixed whatever order the list gives.
		{"ovs,bridge", []string{"bridge", "ovs"}, ""},
		{" tapswitch , bridge,tapswitch", []string{"bridge", "tapswitch"}, ""},
		{"bridge,vde", nil, `unknown system "vde"`},
		{",", nil, "no system named"},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			got, err := parseOnly(tt.list)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseOnly(%q) error = %v, want %q", tt.list, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("parseOnly(%q) = %v, %v; want %v", tt.list, got, err, tt.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(*config) bool
		wantErr string
	}{
		{"defaults", nil, func(c *config) bool {
			return c.seconds == 5 && c.only == nil && c.tapswitchd == "./bin/tapswitchd" && c.tapswitch == "./bin/tapswitch" &&
				strings.HasPrefix(c.jsonPath, "bench/results/") && strings.HasSuffix(c.jsonPath, "Z.json")
		}, ""},
		{"demo", []string{"-demo"}, func(c *config) bool {
			return c.seconds == 3 && slices.Equal(c.only, []string{"bridge", "tapswitch"}) && c.jsonPath == ""
		}, ""},
		{"demo with -t", []string{"-demo", "-t", "7"}, func(c *config) bool { return c.seconds == 7 }, ""},
		{"json", []string{"-json", "/tmp/x.json"}, func(c *config) bool { return c.jsonPath == "/tmp/x.json" }, ""},
		{"zero seconds", []string{"-t", "0"}, nil, "at least 1 second"},
		{"bracket without bridge", []string{"-bracket", "-only", "tapswitch"}, nil, "-bracket needs the bridge"},
		{"stray argument", []string{"bridge"}, nil, "unexpected argument"},
		{"scale", []string{"-scale", "-t", "3"}, func(c *config) bool {
			return c.scale && c.seconds == 3 && strings.HasPrefix(c.jsonPath, "bench/results/")
		}, ""},
		{"scale bracketed", []string{"-scale", "-bracket"}, func(c *config) bool { return c.scale && c.bracket }, ""},
		{"scale with demo", []string{"-scale", "-demo"}, nil, "-scale runs on its own: drop -demo"},
		{"scale with only", []string{"-scale", "-only", "bridge"}, nil, "drop -only"},
		{"scale with profile", []string{"-scale", "-profile"}, nil, "drop -profile"},
		{"no profile", nil, func(c *config) bool { return c.profileDir == "" }, ""},
		{"profile", []string{"-profile"}, func(c *config) bool {
			return c.profileDir == strings.TrimSuffix(c.jsonPath, ".json")+"-perf" && strings.HasPrefix(c.profileDir, "bench/results/")
		}, ""},
		{"ab", []string{"-base-tapswitchd", "/b/tapswitchd", "-base-tapswitch", "/b/tapswitch"}, func(c *config) bool {
			return c.ab() && c.bracket && c.baseTapswitchd == "/b/tapswitchd" && c.baseTapswitch == "/b/tapswitch" && c.tapswitchd == "./bin/tapswitchd"
		}, ""},
		{"ab with only", []string{"-base-tapswitchd", "d", "-base-tapswitch", "c", "-only", "tapswitch,bridge", "-t", "3"}, func(c *config) bool {
			return c.ab() && c.bracket && slices.Equal(c.only, []string{"bridge", "tapswitch"}) && c.seconds == 3
		}, ""},
		{"no ab", nil, func(c *config) bool { return !c.ab() && !c.bracket }, ""},
		{"ab without cli", []string{"-base-tapswitchd", "d"}, nil, "-base-tapswitchd goes with -base-tapswitch: give both"},
		{"ab without daemon", []string{"-base-tapswitch", "c"}, nil, "-base-tapswitch goes with -base-tapswitchd: give both"},
		{"ab without tapswitch", []string{"-base-tapswitchd", "d", "-base-tapswitch", "c", "-only", "bridge,ovs"}, nil, "add tapswitch to -only"},
		{"ab without bridge", []string{"-base-tapswitchd", "d", "-base-tapswitch", "c", "-only", "tapswitch"}, nil, "A/B needs the bridge among -only"},
		{"ab with scale", []string{"-base-tapswitchd", "d", "-base-tapswitch", "c", "-scale"}, nil, "not -scale"},
		{"ab with demo", []string{"-base-tapswitchd", "d", "-base-tapswitch", "c", "-demo"}, nil, "not -demo"},
		{"profile with json", []string{"-profile", "-json", "/tmp/x.json"}, func(c *config) bool { return c.profileDir == "/tmp/x-perf" }, ""},
		{"profile with demo", []string{"-profile", "-demo"}, func(c *config) bool {
			return c.jsonPath == "" && strings.HasPrefix(c.profileDir, "bench/results/") && strings.HasSuffix(c.profileDir, "Z-perf")
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q) error: %v", tt.args, err)
			}
			if !tt.check(c) {
				t.Errorf("parseFlags(%q) = %+v", tt.args, *c)
			}
		})
	}
}
