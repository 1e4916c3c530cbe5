package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseUpstreams(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr bool
	}{
		{name: "none means resolv.conf", in: nil, want: nil},
		{name: "address on port 53", in: []string{"127.0.0.53"}, want: []string{"127.0.0.53:53"}},
		{name: "address and port", in: []string{"127.1.2.3:5353"}, want: []string{"127.1.2.3:5353"}},
		{name: "IPv6", in: []string{"::1", "[fd00::53]:5300"}, want: []string{"[::1]:53", "[fd00::53]:5300"}},
		{name: "IPv4-mapped is IPv4", in: []string{"[::ffff:127.0.0.1]:53"}, want: []string{"127.0.0.1:53"}},
		{name: "several, in order", in: []string{"192.0.2.1", "192.0.2.2"}, want: []string{"192.0.2.1:53", "192.0.2.2:53"}},
		{name: "name", in: []string{"dns.example"}, wantErr: true},
		{name: "port 0", in: []string{"127.0.0.1:0"}, wantErr: true},
		{name: "IPv6 without brackets and port", in: []string{"fd00::53:5300:1:2:3:4:5"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUpstreams(tt.in)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "--dns-upstream") {
					t.Fatalf("parseUpstreams(%q) = %v, %v; want an error naming --dns-upstream", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseUpstreams(%q) = %v", tt.in, err)
			}
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if !slices.Equal(s, tt.want) {
				t.Fatalf("parseUpstreams(%q) = %v, want %v", tt.in, s, tt.want)
			}
			if tt.want == nil && got != nil {
				t.Fatalf("parseUpstreams(%q) = %#v, want nil", tt.in, got)
			}
		})
	}
}
