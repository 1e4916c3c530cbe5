package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/cluster"
)

func TestClusterOptions(t *testing.T) {
	local := []netip.Addr{netip.MustParseAddr("10.234.0.1"), netip.MustParseAddr("127.0.0.1")}
	base := func() clusterOptions {
		return clusterOptions{clusterTTL: cluster.DefaultTTL, vxlanPort: 4789}
	}
	tests := []struct {
		name    string
		set     func(*clusterOptions)
		errText string
	}{
		{name: "none", set: func(*clusterOptions) {}},
		{name: "advertise only", set: func(o *clusterOptions) { o.advertise = "10.234.0.1" }},
		{name: "static peers", set: func(o *clusterOptions) {
			o.advertise, o.vxlanPeers = "10.234.0.1", []string{"10.234.0.2", "10.234.0.3"}
		}},
		{name: "cluster", set: func(o *clusterOptions) {
			o.advertise, o.cluster, o.clusterHost = "10.234.0.1", "etcd=http://10.234.0.10:2379,https://10.234.0.11:2379", "h1"
		}},
		{name: "cluster without advertise", set: func(o *clusterOptions) { o.cluster = "etcd=http://10.234.0.10:2379" }, errText: "--cluster needs --advertise"},
		{name: "peer without advertise", set: func(o *clusterOptions) { o.vxlanPeers = []string{"10.234.0.2"} }, errText: "--vxlan-peer needs --advertise"},
		{name: "advertise not here", set: func(o *clusterOptions) { o.advertise = "10.234.0.9" }, errText: "not an address of this host"},
		{name: "advertise not an address", set: func(o *clusterOptions) { o.advertise = "eth0" }, errText: "want an IP address"},
		{name: "advertise IPv6", set: func(o *clusterOptions) { o.advertise = "fd00::1" }, errText: "not an address of this host"},
		{name: "peer of the other family", set: func(o *clusterOptions) { o.advertise, o.vxlanPeers = "10.234.0.1", []string{"fd00::2"} }, errText: "family"},
		{name: "advertise loopback", set: func(o *clusterOptions) { o.advertise = "127.0.0.1" }, errText: "other hosts reach"},
		{name: "other store", set: func(o *clusterOptions) { o.advertise, o.cluster = "10.234.0.1", "consul=http://10.0.0.1:8500" }, errText: `store "consul" is not supported`},
		{name: "no store kind", set: func(o *clusterOptions) { o.advertise, o.cluster = "10.234.0.1", "http://10.0.0.1:2379" }, errText: "want etcd=URL"},
		{name: "URL without port", set: func(o *clusterOptions) { o.advertise, o.cluster = "10.234.0.1", "etcd=http://10.0.0.1" }, errText: "http://HOST:PORT"},
		{name: "URL of another scheme", set: func(o *clusterOptions) { o.advertise, o.cluster = "10.234.0.1", "etcd=unix:///run/etcd.sock" }, errText: "http://HOST:PORT"},
		{name: "peer is self", set: func(o *clusterOptions) { o.advertise, o.vxlanPeers = "10.234.0.1", []string{"10.234.0.1"} }, errText: "this host's --advertise"},
		{name: "peer twice", set: func(o *clusterOptions) {
			o.advertise, o.vxlanPeers = "10.234.0.1", []string{"10.234.0.2", "10.234.0.2"}
		}, errText: "given twice"},
		{name: "peer a name", set: func(o *clusterOptions) { o.advertise, o.vxlanPeers = "10.234.0.1", []string{"host2"} }, errText: "--vxlan-peer"},
		{name: "port 0", set: func(o *clusterOptions) { o.vxlanPort = 0 }, errText: "--vxlan-port 0"},
		{name: "short TTL", set: func(o *clusterOptions) { o.clusterTTL = time.Second }, errText: "--cluster-ttl"},
		{name: "TTL not in seconds", set: func(o *clusterOptions) { o.clusterTTL = 2500 * time.Millisecond }, errText: "whole seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.set(&o)
			c, err := o.config(local)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("config() = %+v, %v; want an error containing %q", c, err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("config() = %v", err)
			}
			if o.advertise != "" && c.Advertise.String() != o.advertise {
				t.Fatalf("Advertise = %v, want %s", c.Advertise, o.advertise)
			}
			if len(c.Peers) != len(o.vxlanPeers) || c.Port != o.vxlanPort || c.Host != o.clusterHost {
				t.Fatalf("config() = %+v, want the options' peers, port and host", c)
			}
			if o.cluster != "" && !slices.Equal(c.Cluster, []string{"http://10.234.0.10:2379", "https://10.234.0.11:2379"}) {
				t.Fatalf("Cluster = %v", c.Cluster)
			}
		})
	}
}
