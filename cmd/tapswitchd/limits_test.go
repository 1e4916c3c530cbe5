package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/publish"
)

func TestLimitOptionsCheck(t *testing.T) {
	tests := []struct {
		name string
		o    limitOptions
		want string
	}{
		{"defaults", limitOptions{maxFDs: 1 << 20, publish: publish.DefaultLimits()}, ""},
		{"keep the inherited limit", limitOptions{publish: publish.DefaultLimits()}, ""},
		{"too few descriptors", limitOptions{maxFDs: 1000}, "--max-fds 1000: must be 0"},
		{"negative", limitOptions{maxFDs: -1}, "--max-fds -1"},
		{"per source above per port", limitOptions{publish: publish.Limits{ConnsPerPort: 10, ConnsPerSource: 11}}, "--publish-max-*"},
		{"short idle", limitOptions{publish: publish.Limits{IdleTimeout: time.Millisecond}}, "at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.check()
			if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("check() = %v, want %q", err, tt.want)
			}
		})
	}
}
