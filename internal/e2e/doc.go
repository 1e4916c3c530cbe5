// Package e2e holds the integration tests of tapswitch: real network
// namespaces, the real tapswitchd binary and the real tapswitch CLI,
// with ping, iperf3 and packet sockets as the traffic.
//
// The tests need root and the tools ip, ping, ss, iperf3, unshare and
// nsenter, useradd and groupadd for the socket tests, and ethtool for the
// coalescing tests. Without them
// they skip, unless TAPSWITCH_REQUIRE_PRIVILEGED=1 is set, when a skip is
// a failure:
//
//	sudo go test -v -count=1 ./internal/e2e/
//
// The tests of networks that span hosts (TestCluster, TestVXLANKernelPeer)
// make three "hosts" of network namespaces on an underlay bridge, each with
// its own tapswitchd, and also need bridge, tshark and an etcd server
// (make etcd).
//
// TAPSWITCH_SOAK=1 (make soak) runs the churn and restart tests at full
// size; TAPSWITCH_CHURN=N sets the number of attach/detach cycles.
package e2e
