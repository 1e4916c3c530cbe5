// Package cluster keeps the state that networks spanning hosts share, in
// etcd: the hosts, the cluster networks with their VNIs and subnets, the
// address of every port and where each port's MAC lives.
//
// # Keys
//
// Everything lives under one prefix (/tapswitch/ by default):
//
//	hosts/HOST              {"vtep", "since"}                under HOST's lease
//	networks/NETWORK        {"vni", "subnets", "internal"}
//	vni/VNI                 NETWORK
//	netrev                  rewritten by every network change
//	addrs/NETWORK/IP        {"owner", "host"}                under the host's lease
//	endpoints/NETWORK/NAME  {"host", "mac", "ips", "vtep"}   under the host's lease
//
// Values are JSON and, being written by any client of the etcd, are
// checked when read: a record that does not decode is logged and left out
// of the View.
//
// # Transactions
//
// CreateNetwork reads every network, the VNIs and netrev at one
// revision, checks the name, the VNI and the subnets against them, and
// writes the network, its VNI and netrev in a transaction that holds only
// if netrev, the name and the VNI are as read: two hosts creating
// overlapping networks at once cannot both succeed. RemoveNetwork deletes
// the network, its VNI, its addresses and its endpoints in one
// transaction.
//
// AllocateAddr reads the network and its taken addresses at one
// revision, picks the lowest free host address as internal/ipam does for
// local networks (never the network, broadcast or gateway address), and
// writes it in a transaction that holds only if the address is still
// free; when another host took it first, it reads again. ReserveAddr
// takes a given address the same way. An address held by this host for
// the same owner may be taken again, so a restarted daemon reclaims its
// ports' addresses.
//
// # Leases
//
// A host registers under a lease of Config.TTL, renewed on one stream
// every third of it, and its addresses and endpoints live under the same
// lease: a host that dies leaves the cluster, and its addresses come
// free, within the TTL; Close revokes the lease, so a host that stops
// leaves at once. A host cut off from etcd for longer than the TTL loses
// its lease; when etcd answers again, the store takes a new one and puts
// its host, addresses and endpoints back, each in a transaction that
// fails if another host took the address or the name meanwhile (logged:
// that record is no longer this host's). etcd extends every lease when it
// restarts, so an etcd that was stopped, not the host, costs no lease.
//
// A daemon that hands over to its successor (tapswitchd --upgrade) stops
// its store with Detach and gives the successor Store.Lease; the
// successor's store, opened with Config.Lease, keeps that lease alive in
// place of granting one. The host's record and its addresses and
// endpoints stay under it all along, so no other host sees this one
// leave or come back. A lease etcd no longer has (it expired meanwhile)
// is not carried on: the store registers anew, as after a crash.
//
// # While etcd is down
//
// Open never waits for etcd: it connects and registers in the background,
// for as long as the store is open, and Status says whether it is
// connected, since when, and the last error. The cached View stays as it
// was last read, and Watch functions are not called. Every call that
// needs etcd fails within its context or 3 s with ErrUnavailable, whose
// message names the endpoints and says that local networks and existing
// traffic are unaffected. When etcd answers again the store reads
// everything afresh at one revision and watches from there, so nothing
// that changed meanwhile is missed.
//
// # TLS and users
//
// Config.TLS (TLSConfig loads it from PEM files) gives https endpoints the
// CA of etcd's server certificate and this host's client certificate;
// Config.Username and Password an etcd user, for an etcd with
// authentication enabled. Neither makes Open wait: the client
// authenticates on its first call (auth.go), and renews its token when
// etcd forgets it. An etcd certificate the CA did not sign, a client
// certificate etcd refuses, a wrong password or a user without
// permission on the prefix is, like an etcd that is down, a Status last
// error and an ErrUnavailable, each saying what to check; the TLS failure
// behind a call that only timed out is told with it.
package cluster
