package metrics

import "github.com/prometheus/client_golang/prometheus"

// Tunnel is the VXLAN endpoint's counters (tapswitchd --advertise).
type Tunnel struct {
	RxPackets, TxPackets, TxErrors uint64
	// Dropped counts packets dropped, by reason: not_member,
	// unknown_vni, malformed, host_only.
	Dropped map[string]uint64
}

// Cluster is the cluster's store (tapswitchd --cluster).
type Cluster struct {
	Connected bool
	Hosts     int
}

var (
	dVXLANPackets = desc("vxlan_packets_total", "VXLAN packets the tunnel received (rx) and sent (tx), each replicated copy counted.", lDirection)
	dVXLANTxErrs  = desc("vxlan_tx_errors_total", "Frames the tunnel could not send: socket errors, no VTEP, too large to cut.")
	dVXLANDropped = desc("vxlan_dropped_total", "Packets the tunnel dropped, by reason: not_member (from an address neither a cluster host nor a static peer), unknown_vni, malformed, host_only (to or from a network's gateway).", lReason)
	dClusterConn  = desc("cluster_store_connected", "1 while the cluster's store (etcd) is reachable, else 0.")
	dClusterHosts = desc("cluster_hosts", "Hosts registered in the cluster, this one included.")
)

func describeOverlay(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dVXLANPackets, dVXLANTxErrs, dVXLANDropped, dClusterConn, dClusterHosts} {
		ch <- d
	}
}

func collectOverlay(ch chan<- prometheus.Metric, s *Snapshot) {
	if t := s.Tunnel; t != nil {
		ch <- counter(dVXLANPackets, float64(t.RxPackets), "rx")
		ch <- counter(dVXLANPackets, float64(t.TxPackets), "tx")
		ch <- counter(dVXLANTxErrs, float64(t.TxErrors))
		for _, r := range []string{"not_member", "unknown_vni", "malformed", "host_only"} {
			ch <- counter(dVXLANDropped, float64(t.Dropped[r]), r)
		}
	}
	if c := s.Cluster; c != nil {
		v := 0.0
		if c.Connected {
			v = 1
		}
		ch <- gauge(dClusterConn, v)
		ch <- gauge(dClusterHosts, float64(c.Hosts))
	}
}
