// Package cluster keeps the state that networks spanning hosts share in
// etcd: the hosts (under a lease each), the cluster networks with their
// VNIs and subnets, the address of every port and where each port's MAC
// lives.
package cluster
