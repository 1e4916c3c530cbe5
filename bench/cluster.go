package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// The cross-host comparison (-cluster): two containers on two hosts,
// joined by a VXLAN overlay over an underlay network. A host is a
// network namespace with one link to the underlay, a Linux bridge in a
// namespace of its own; a container is a further namespace, reached
// from its host by whatever the system under test uses. Every pass
// makes all five namespaces afresh and removes them at its end.
//
//	container A ─ host 1 ═╗                 ╔═ host 2 ─ container B
//	                      ╚═ underlay bridge╝
//
// The systems, named as in the namespaces' comparison so the ratios,
// tables and chart are the same:
//
//   - bridge: the Linux kernel's path, the yardstick: on each host a
//     vxlan device (VNI clusterVNI, dstport 4789, the host's underlay
//     address as local, nolearning, a default fdb entry to the other
//     host) and a veth to the container in one Linux bridge.
//   - tapswitch: a tapswitchd on each host, as users run tapswitch
//     between tapswitch hosts: a cluster on one etcd (see etcd.go, in
//     the underlay's namespace at clusterEtcdAddr), each daemon with
//     --cluster, --advertise and --cluster-host; the network made once,
//     with --scope cluster, on host 1, reaching host 2 through the
//     store; each container attached with an explicit --ip. Before the
//     tests, each host lists the other as a cluster peer with the other
//     container's MAC behind it.
//   - tapswitch static (-cluster-static): a tapswitchd on each host
//     with --advertise and --vxlan-peer of the other and no store, as
//     toward a foreign VTEP (a Linux vxlan device), the network made on
//     each with the same --vni and --subnet. The data path treats such a
//     peer's frames as not known checksummed.
//   - ovs: Open vSwitch's userspace datapath on each host, two daemons
//     with their own database and run directory: the underlay link in
//     a netdev bridge holding the host's underlay address (userspace
//     tunnelling sends through it), and a second netdev bridge with a
//     vxlan port to the other host and the container's TAP.

// Addresses and names of the cross-host setting. The underlay and the
// overlay have subnets of their own; the namespaces are named after the
// run's pid, so two runs never collide, and links inside them, which no
// one else sees, have fixed names.
const (
	clusterPrefix = "tsx"
	clusterVNI    = 4243
	// clusterNetwork is tapswitch's network on both hosts.
	clusterNetwork = "tsxnet"
	// clusterSubnet is the overlay's; the containers' addresses are in
	// it, clear of the first, which tapswitch's gateway takes.
	clusterSubnet = "10.243.0.0/24"
	clusterAddrA  = "10.243.0.11/24"
	clusterAddrB  = "10.243.0.12/24"
	// underlayBits is the prefix length of the underlay's subnet,
	// 10.233.0.0/24, whose first two addresses the hosts have.
	underlayBits = 24
	// underlayMTU is that of every underlay link: Ethernet's.
	underlayMTU = 1500
	// overlayMTU leaves room for the 50 bytes VXLAN adds (outer IPv4,
	// UDP, VXLAN and inner Ethernet headers).
	overlayMTU = underlayMTU - 50
	// Link names: ul0 is a host's end of its underlay link (the
	// underlay bridge's end is named after the host), br0 a bridge,
	// vx0 a VXLAN device or port, c0 a host's end of its container's
	// link.
	underlayLink = "ul0"
	bridgeLink   = "br0"
	vxlanLink    = "vx0"
	// containerLink is the host's end of the container's link.
	containerLink = "c0"
	// ovsPhysBridge holds the underlay link and address for Open
	// vSwitch's userspace tunnelling; ovsIntBridge the vxlan port and
	// the container's TAP.
	ovsPhysBridge = "brphy"
	ovsIntBridge  = "brint"
)

// underlayAddrs are the hosts' underlay (VTEP) addresses, host 1's first.
var underlayAddrs = [2]string{"10.233.0.1", "10.233.0.2"}

// clusterEtcdAddr is the store's address, on the underlay bridge in the
// underlay's namespace: a third address of the underlay, neither host's.
const clusterEtcdAddr = "10.233.0.10"

// hostNames are the hosts' --cluster-host names, host 1's first.
var hostNames = [2]string{"h1", "h2"}

// staticSystem is tapswitch with static peers (-cluster-static).
const staticSystem = "tapswitch static"

// clusterSettle bounds each wait for the store to carry a change from
// one host to the other.
const clusterSettle = 30 * time.Second

// clusterTests are the rows of the cross-host comparison unless -rows
// names others: bulk TCP and the per-packet cost.
var clusterTests = []string{testTCP1.name, testTCP4.name, testUDP64.name}

// clusterSetting is the report's Setting with -cluster.
const clusterSetting = "across two hosts over VXLAN (VNI 4243, underlay MTU 1500, bridges without br_netfilter's hooks); bridge: the kernel's vxlan device and bridge on each host"

// other returns the index of the host that is not i.
func other(i int) int { return 1 - i }

// clusterHosts are the underlay and the two hosts of one pass.
type clusterHosts struct {
	underlay string
	hosts    [2]string
	// created are the namespaces made, removed in reverse order.
	created []string
}

func newClusterHosts(pid int) *clusterHosts {
	p := fmt.Sprintf("%s-%d-", clusterPrefix, pid)
	return &clusterHosts{underlay: p + "u", hosts: [2]string{p + "h1", p + "h2"}}
}

// clusterTestbed is the pair of containers of a cross-host pass: A on
// host 1 runs the clients, B on host 2 the servers.
func clusterTestbed(pid int) *testbed {
	tb := &testbed{
		nsA:        fmt.Sprintf("%s-%d-a", clusterPrefix, pid),
		nsB:        fmt.Sprintf("%s-%d-b", clusterPrefix, pid),
		serverAddr: hostAddr(clusterAddrB),
	}
	tb.enterA, tb.enterB = netnsExec(tb.nsA), netnsExec(tb.nsB)
	return tb
}

// containerAddrs are the containers' addresses, A's (on host 1) first.
var containerAddrs = [2]string{clusterAddrA, clusterAddrB}

// containers returns tb's namespaces, A's first.
func containers(tb *testbed) [2]string { return [2]string{tb.nsA, tb.nsB} }

// create makes the underlay namespace with its bridge and each host's
// namespace with its underlay link, up and without an address: where
// the address goes depends on the system (see addUnderlayAddr).
func (h *clusterHosts) create(ctx context.Context) error {
	for _, ns := range append([]string{h.underlay}, h.hosts[:]...) {
		if nsExists(ns) {
			return fmt.Errorf("netns %q already exists: left over from an earlier run? remove it with: ip netns delete %s", ns, ns)
		}
		if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return err
		}
		h.created = append(h.created, ns)
		if _, err := run(ctx, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
		if err := bridgeNFOff(ctx, ns); err != nil {
			return err
		}
	}
	if _, err := runIn(ctx, h.underlay,
		"link add "+bridgeLink+" type bridge",
		"link set "+bridgeLink+" up"); err != nil {
		return err
	}
	for i, host := range h.hosts {
		end := "h" + strconv.Itoa(i+1)
		if _, err := runIn(ctx, h.underlay,
			fmt.Sprintf("link add %s mtu %d type veth peer name %s netns %s", end, underlayMTU, underlayLink, host),
			fmt.Sprintf("link set %s master %s up", end, bridgeLink)); err != nil {
			return err
		}
		if _, err := runIn(ctx, host, fmt.Sprintf("link set %s mtu %d up", underlayLink, underlayMTU)); err != nil {
			return err
		}
	}
	return nil
}

// bridgeNFSysctls are br_netfilter's switches, per network namespace,
// which send bridged frames through the iptables, ip6tables and
// arptables hooks; a new namespace starts with them on.
var bridgeNFSysctls = []string{
	"net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables",
	"net.bridge.bridge-nf-call-arptables",
}

// bridgeNFOff turns bridgeNFSysctls off in ns when br_netfilter is
// loaded: the underlay stands for a network, not a firewalled host, and
// on the hosts only the kernel's path has a bridge, which would pay for
// hooks the other systems never pass.
func bridgeNFOff(ctx context.Context, ns string) error {
	var args []string
	for _, k := range bridgeNFSysctls {
		if _, err := os.Stat("/proc/sys/" + strings.ReplaceAll(k, ".", "/")); err == nil {
			args = append(args, k+"=0")
		}
	}
	if len(args) == 0 {
		return nil
	}
	name, rest := inNetns(netnsExec(ns), append([]string{"sysctl", "-q", "-w"}, args...)...)
	_, err := run(ctx, name, rest...)
	return err
}

// addUnderlayAddr gives host i's link dev its underlay address and
// brings it up.
func (h *clusterHosts) addUnderlayAddr(ctx context.Context, i int, dev string) error {
	_, err := runIn(ctx, h.hosts[i],
		fmt.Sprintf("addr add %s/%d dev %s", underlayAddrs[i], underlayBits, dev),
		"link set "+dev+" up")
	return err
}

// waitUnderlay pings host 2's underlay address from host 1.
func (h *clusterHosts) waitUnderlay(ctx context.Context) error {
	return waitPing(ctx, h.hosts[0], underlayAddrs[1], 10*time.Second)
}

// destroy removes the namespaces, and with them every link, bridge and
// VXLAN device in them; the systems stop their daemons first.
func (h *clusterHosts) destroy() error {
	var errs []error
	for i := len(h.created) - 1; i >= 0; i-- {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := run(ctx, "ip", "netns", "delete", h.created[i]); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	h.created = nil
	return errors.Join(errs...)
}

// nsExists reports whether a network namespace called ns exists.
func nsExists(ns string) bool {
	_, err := os.Stat("/run/netns/" + ns)
	return err == nil
}

// runIn runs ip commands, one per line of cmds, in namespace ns with
// one ip -batch, which stops at the first that fails and says which.
func runIn(ctx context.Context, ns string, cmds ...string) (string, error) {
	return runInput(ctx, batch(cmds), "ip", "-n", ns, "-batch", "-")
}

// batch joins ip commands into an ip -batch script.
func batch(cmds []string) string {
	var s string
	for _, c := range cmds {
		s += c + "\n"
	}
	return s
}

// configureContainer addresses and brings up eth0, already in ns, with
// the overlay's MTU, as a container on an overlay network has it.
func configureContainer(ctx context.Context, ns, link, cidr string) error {
	if _, err := runIn(ctx, ns, fmt.Sprintf("link set %s mtu %d", link, overlayMTU)); err != nil {
		return err
	}
	return configure(ctx, ns, link, cidr)
}

// kernelVXLANCommands are the ip commands that make host i's kernel
// path: the vxlan device, the bridge, and the container's veth, whose
// far end is born in container as eth0. The vxlan device's fdb entry is
// bridge(8)'s (kernelFDBArgs).
func kernelVXLANCommands(i int, container string) []string {
	return []string{
		fmt.Sprintf("link add %s type vxlan id %d dstport 4789 local %s dev %s nolearning", vxlanLink, clusterVNI, underlayAddrs[i], underlayLink),
		"link add " + bridgeLink + " type bridge",
		fmt.Sprintf("link set %s master %s up", vxlanLink, bridgeLink),
		fmt.Sprintf("link add %s mtu %d type veth peer name eth0 netns %s", containerLink, overlayMTU, container),
		fmt.Sprintf("link set %s master %s up", containerLink, bridgeLink),
		"link set " + bridgeLink + " up",
	}
}

// kernelFDBArgs are the bridge(8) arguments of host i's default fdb
// entry: frames for any MAC not learned go to the other host.
func kernelFDBArgs(i int) []string {
	return []string{"fdb", "append", "00:00:00:00:00:00", "dev", vxlanLink, "dst", underlayAddrs[other(i)]}
}

// clusterKernel is the bridge system of -cluster: see the top of this file.
type clusterKernel struct {
	hosts *clusterHosts
}

func (s *clusterKernel) name() string { return baseline }

// switchPID is 0: the kernel forwards, as for the bridge.
func (s *clusterKernel) switchPID() int { return 0 }

func (s *clusterKernel) testbed(pid int) *testbed { return clusterTestbed(pid) }

func (s *clusterKernel) setup(ctx context.Context, tb *testbed) error {
	if err := s.hosts.create(ctx); err != nil {
		return err
	}
	cs := containers(tb)
	for i, host := range s.hosts.hosts {
		if err := s.hosts.addUnderlayAddr(ctx, i, underlayLink); err != nil {
			return err
		}
		if _, err := runIn(ctx, host, kernelVXLANCommands(i, cs[i])...); err != nil {
			return err
		}
		if _, err := run(ctx, "bridge", append([]string{"-n", host}, kernelFDBArgs(i)...)...); err != nil {
			return err
		}
		if err := configureContainer(ctx, cs[i], "eth0", containerAddrs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *clusterKernel) teardown() error { return s.hosts.destroy() }

// clusterTapswitch is a tapswitch system of -cluster: a daemon on each
// host, run in the host's namespace; the hosts form a cluster on one
// etcd, or, with static, know each other as static peers.
type clusterTapswitch struct {
	label               string
	daemonPath, cliPath string
	extraArgs           []string
	// static runs the daemons with --vxlan-peer and no store.
	static bool
	// etcdBin is the etcd binary of the store, unused when static.
	etcdBin string
	hosts   *clusterHosts
	etcd    *etcdServer
	daemons [2]*tapswitchSystem
	// madeEtcNetns is set when /etc/netns did not exist before the
	// daemons started: attaching a namespace by name makes it (for the
	// namespace's resolv.conf), and teardown removes it again if empty.
	madeEtcNetns bool
}

// etcNetns is where ip netns exec finds a namespace's own /etc files.
const etcNetns = "/etc/netns"

func (s *clusterTapswitch) name() string { return s.label }

// switchPID is host 1's daemon, the sender's; host 2's is in
// moreSwitchPIDs, and the CPU table's switch column sums both.
func (s *clusterTapswitch) switchPID() int {
	if s.daemons[0] == nil {
		return 0
	}
	return s.daemons[0].switchPID()
}

// moreSwitchPIDs is host 2's daemon.
func (s *clusterTapswitch) moreSwitchPIDs() []int {
	if s.daemons[1] == nil {
		return nil
	}
	return []int{s.daemons[1].switchPID()}
}

func (s *clusterTapswitch) testbed(pid int) *testbed { return clusterTestbed(pid) }

// tapswitchStoreArgs are the daemon flags of host i beyond the
// benchmark's own in a cluster on the etcd at url: its VTEP address,
// the store and its name there.
func tapswitchStoreArgs(i int, url string) []string {
	return []string{"--advertise", underlayAddrs[i], "--cluster", "etcd=" + url, "--cluster-host", hostNames[i]}
}

// tapswitchStaticArgs are the daemon flags of host i beyond the
// benchmark's own with static peers: its VTEP address and the other
// host as a static peer.
func tapswitchStaticArgs(i int) []string {
	return []string{"--advertise", underlayAddrs[i], "--vxlan-peer", underlayAddrs[other(i)]}
}

// networkCreateArgs are the CLI arguments that make the network: in a
// cluster once, on host 1; with static peers on each host.
func networkCreateArgs() []string {
	return []string{"network", "create", clusterNetwork, "--subnet", clusterSubnet, "--scope", "cluster", "--vni", strconv.Itoa(clusterVNI)}
}

// attachArgs are the CLI arguments that attach a host's container.
func attachArgs(container, cidr string) []string {
	return []string{"attach", container, "--network", clusterNetwork, "--ip", cidr}
}

func (s *clusterTapswitch) setup(ctx context.Context, tb *testbed) error {
	if err := s.hosts.create(ctx); err != nil {
		return err
	}
	for i := range s.hosts.hosts {
		if err := s.hosts.addUnderlayAddr(ctx, i, underlayLink); err != nil {
			return err
		}
	}
	var url string
	if !s.static {
		if _, err := runIn(ctx, s.hosts.underlay, fmt.Sprintf("addr add %s/%d dev %s", clusterEtcdAddr, underlayBits, bridgeLink)); err != nil {
			return err
		}
		s.etcd = &etcdServer{bin: s.etcdBin, netns: s.hosts.underlay, addr: clusterEtcdAddr}
		if err := s.etcd.start(ctx); err != nil {
			return err
		}
		url = s.etcd.clientURL()
	}
	_, err := os.Stat(etcNetns)
	s.madeEtcNetns = errors.Is(err, os.ErrNotExist)
	for i, host := range s.hosts.hosts {
		d := newTapswitchSystem(s.label, s.daemonPath, s.cliPath)
		d.netns = host
		if s.static {
			d.extraArgs = tapswitchStaticArgs(i)
		} else {
			d.extraArgs = tapswitchStoreArgs(i, url)
		}
		d.extraArgs = append(d.extraArgs, s.extraArgs...)
		s.daemons[i] = d
		if err := d.start(ctx); err != nil {
			return fmt.Errorf("host %d: %w", i+1, err)
		}
	}
	cs := containers(tb)
	if s.static {
		for i, d := range s.daemons {
			for _, args := range [][]string{networkCreateArgs(), attachArgs(cs[i], containerAddrs[i])} {
				if _, err := d.cli(ctx, args...); err != nil {
					return fmt.Errorf("host %d: %w", i+1, d.withDaemonLog(err))
				}
			}
		}
		return nil
	}
	if _, err := s.daemons[0].cli(ctx, networkCreateArgs()...); err != nil {
		return fmt.Errorf("host 1: %w", s.daemons[0].withDaemonLog(err))
	}
	if err := s.waitNetwork(ctx); err != nil {
		return err
	}
	for i, d := range s.daemons {
		if _, err := d.cli(ctx, attachArgs(cs[i], containerAddrs[i])...); err != nil {
			return fmt.Errorf("host %d: %w", i+1, d.withDaemonLog(err))
		}
	}
	return s.waitEndpoints(ctx, cs)
}

// waitFor calls check until it says "" (done) or returns an error, or
// clusterSettle passes, when the error is what and check's last word.
func waitFor(ctx context.Context, what string, check func() (string, error)) error {
	deadline := time.Now().Add(clusterSettle)
	for {
		why, err := check()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not so after %v: %s", what, clusterSettle, why)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitNetwork waits until the network host 1 made is on host 2 too,
// brought there by the store.
func (s *clusterTapswitch) waitNetwork(ctx context.Context) error {
	d := s.daemons[1]
	err := waitFor(ctx, fmt.Sprintf("network %s made on host 1 listed on host 2 (through etcd at %s)", clusterNetwork, s.etcd.clientURL()), func() (string, error) {
		out, err := d.cli(ctx, "network", "ls", "-o", "json")
		if err != nil {
			return "", err
		}
		var nets []api.Network
		if err := json.Unmarshal([]byte(out), &nets); err != nil {
			return "", fmt.Errorf("tapswitch network ls -o json: %w", err)
		}
		return networkListed(nets, clusterNetwork), nil
	})
	return d.withDaemonLog(err)
}

// networkListed says why nets lack the cluster network called name of
// the benchmark's VNI and subnet, or "" when they have it.
func networkListed(nets []api.Network, name string) string {
	for _, n := range nets {
		if n.Name != name {
			continue
		}
		if n.Scope != api.ScopeCluster || n.VNI != clusterVNI || !samePrefix(n.Subnet, clusterSubnet) {
			return fmt.Sprintf("%s has scope %q, VNI %d, subnet %s; want %s, %d, %s", name, n.Scope, n.VNI, n.Subnet, api.ScopeCluster, clusterVNI, clusterSubnet)
		}
		return ""
	}
	return fmt.Sprintf("no network %s yet", name)
}

// samePrefix reports whether a and b are the same prefix in CIDR form.
func samePrefix(a, b string) bool {
	pa, err := netip.ParsePrefix(a)
	if err != nil {
		return false
	}
	pb, err := netip.ParsePrefix(b)
	return err == nil && pa.Masked() == pb.Masked()
}

// waitEndpoints waits until each host lists the other as a cluster peer
// with the other container's MAC published behind it: from then on each
// daemon sends the other container's frames straight to its host.
func (s *clusterTapswitch) waitEndpoints(ctx context.Context, cs [2]string) error {
	var macs [2]string
	for i, ns := range cs {
		mac, err := linkMAC(ctx, ns, "eth0")
		if err != nil {
			return err
		}
		macs[i] = mac
	}
	for i, d := range s.daemons {
		o := other(i)
		what := fmt.Sprintf("host %d sees container %s (%s) behind host %d (%s, %s)", i+1, cs[o], macs[o], o+1, hostNames[o], underlayAddrs[o])
		err := waitFor(ctx, what, func() (string, error) {
			out, err := d.cli(ctx, "peers", "-o", "json")
			if err != nil {
				return "", err
			}
			var peers []api.Peer
			if err := json.Unmarshal([]byte(out), &peers); err != nil {
				return "", fmt.Errorf("tapswitch peers -o json: %w", err)
			}
			return peerHasEndpoint(peers, hostNames[o], underlayAddrs[o], macs[o], clusterNetwork), nil
		})
		if err != nil {
			return d.withDaemonLog(err)
		}
	}
	return nil
}

// peerHasEndpoint says why peers lack the cluster host name at vtep
// with mac on network published behind it, or "" when they have it.
func peerHasEndpoint(peers []api.Peer, name, vtep, mac, network string) string {
	for _, p := range peers {
		if p.VTEP != vtep {
			continue
		}
		if p.Name != name || p.Static || p.Self {
			return fmt.Sprintf("peer %s is %q (static %v, self %v); want the cluster host %s", vtep, p.Name, p.Static, p.Self, name)
		}
		for _, m := range p.MACs {
			if strings.EqualFold(m.MAC, mac) && m.Network == network && m.Static {
				return ""
			}
		}
		return fmt.Sprintf("peer %s (%s) has MACs %+v; want %s on %s from the store", name, vtep, p.MACs, mac, network)
	}
	return fmt.Sprintf("no peer %s yet (peers: %+v)", vtep, peers)
}

// linkMAC is the MAC address of link in namespace ns.
func linkMAC(ctx context.Context, ns, link string) (string, error) {
	out, err := run(ctx, "ip", "-n", ns, "-j", "link", "show", "dev", link)
	if err != nil {
		return "", err
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 || links[0].Address == "" {
		return "", fmt.Errorf("ip -n %s -j link show dev %s: %v: %s", ns, link, err, out)
	}
	return links[0].Address, nil
}

// listings are each host's peers, which show the tunnel's counters
// after the tests.
func (s *clusterTapswitch) listings() []listing {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []listing
	for i, d := range s.daemons {
		if d == nil {
			continue
		}
		text, err := d.cli(ctx, "peers")
		if err != nil {
			text = err.Error()
		}
		out = append(out, listing{Title: fmt.Sprintf("%s host %d peers", s.label, i+1), Output: text})
	}
	return out
}

// teardown stops the daemons, then etcd, whose data directory goes
// with it, then removes the namespaces.
func (s *clusterTapswitch) teardown() error {
	var errs []error
	for i, d := range s.daemons {
		if d == nil {
			continue
		}
		if err := d.teardown(); err != nil {
			errs = append(errs, fmt.Errorf("host %d: %w", i+1, err))
		}
		s.daemons[i] = nil
	}
	if s.etcd != nil {
		if err := s.etcd.stop(); err != nil {
			errs = append(errs, fmt.Errorf("etcd: %w", err))
		}
		s.etcd = nil
	}
	if s.madeEtcNetns {
		// Only when empty: another program may have put files there since.
		os.Remove(etcNetns)
		s.madeEtcNetns = false
	}
	errs = append(errs, s.hosts.destroy())
	return errors.Join(errs...)
}

// clusterOVS is the ovs system of -cluster: an Open vSwitch on each
// host, its ovs-vswitchd in the host's namespace.
type clusterOVS struct {
	pid      int
	hosts    *clusterHosts
	switches [2]*ovsSystem
}

func (s *clusterOVS) name() string { return peer }

// switchPID is host 1's ovs-vswitchd, the sender's; host 2's is in
// moreSwitchPIDs.
func (s *clusterOVS) switchPID() int {
	if s.switches[0] == nil {
		return 0
	}
	return s.switches[0].switchPID()
}

// moreSwitchPIDs is host 2's ovs-vswitchd.
func (s *clusterOVS) moreSwitchPIDs() []int {
	if s.switches[1] == nil {
		return nil
	}
	return []int{s.switches[1].switchPID()}
}

func (s *clusterOVS) testbed(pid int) *testbed { return clusterTestbed(pid) }

// ovsVXLANPort is the ovs-vsctl arguments that add host i's vxlan port
// to the other host.
func ovsVXLANPort(i int) []string {
	return []string{"add-port", ovsIntBridge, vxlanLink, "--", "set", "Interface", vxlanLink, "type=vxlan",
		"options:remote_ip=" + underlayAddrs[other(i)],
		"options:local_ip=" + underlayAddrs[i],
		"options:key=" + strconv.Itoa(clusterVNI),
		"options:dst_port=4789"}
}

func (s *clusterOVS) setup(ctx context.Context, tb *testbed) error {
	if err := s.hosts.create(ctx); err != nil {
		return err
	}
	cs := containers(tb)
	for i, host := range s.hosts.hosts {
		o := newOVSSystem(s.pid)
		o.prefix = fmt.Sprintf("%s%dh%d", clusterPrefix, s.pid, i+1)
		o.netns, o.noTSO = host, true
		s.switches[i] = o
		if err := o.start(ctx); err != nil {
			return fmt.Errorf("host %d: %w", i+1, err)
		}
		// Userspace tunnelling sends through the bridge holding the
		// underlay address, routed and resolved by Open vSwitch itself
		// from the host's routes and the ARP replies it sees there.
		for _, br := range []string{ovsPhysBridge, ovsIntBridge} {
			if err := o.vsctl(ctx, "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev"); err != nil {
				return fmt.Errorf("host %d: %w", i+1, err)
			}
		}
		if err := o.vsctl(ctx, "add-port", ovsPhysBridge, underlayLink); err != nil {
			return fmt.Errorf("host %d: %w", i+1, err)
		}
		if err := s.hosts.addUnderlayAddr(ctx, i, ovsPhysBridge); err != nil {
			return fmt.Errorf("host %d: %w", i+1, err)
		}
		if err := o.vsctl(ctx, ovsVXLANPort(i)...); err != nil {
			return fmt.Errorf("host %d: %w", i+1, err)
		}
		if _, err := runIn(ctx, host, "link set "+ovsIntBridge+" up"); err != nil {
			return err
		}
		if err := o.addTap(ctx, ovsIntBridge, containerLink, cs[i]); err != nil {
			return fmt.Errorf("host %d: %w", i+1, err)
		}
		if err := configureContainer(ctx, cs[i], containerLink, containerAddrs[i]); err != nil {
			return err
		}
	}
	// Both ways, so each Open vSwitch has the other's underlay MAC
	// before the first tunnelled frame.
	if err := s.hosts.waitUnderlay(ctx); err != nil {
		return err
	}
	return waitPing(ctx, s.hosts.hosts[1], underlayAddrs[0], 10*time.Second)
}

func (s *clusterOVS) teardown() error {
	var errs []error
	for i, o := range s.switches {
		if o == nil {
			continue
		}
		if err := o.teardown(); err != nil {
			errs = append(errs, fmt.Errorf("host %d: %w", i+1, err))
		}
		s.switches[i] = nil
	}
	errs = append(errs, s.hosts.destroy())
	return errors.Join(errs...)
}

// newClusterSystem is newSystem for -cluster.
func newClusterSystem(cfg *config, name string) system {
	hosts := newClusterHosts(pidForNames)
	switch name {
	case baseline:
		return &clusterKernel{hosts: hosts}
	case peer:
		return &clusterOVS{pid: pidForNames, hosts: hosts}
	case "tapswitch":
		return &clusterTapswitch{label: name, daemonPath: cfg.tapswitchd, cliPath: cfg.tapswitch, etcdBin: cfg.etcdBin, hosts: hosts}
	case staticSystem:
		return &clusterTapswitch{label: name, daemonPath: cfg.tapswitchd, cliPath: cfg.tapswitch, static: true, hosts: hosts}
	case baseSystem:
		return &clusterTapswitch{label: name, daemonPath: cfg.baseTapswitchd, cliPath: cfg.baseTapswitch, etcdBin: cfg.etcdBin, hosts: hosts}
	}
	if v, ok := cfg.variant(name); ok {
		return &clusterTapswitch{label: name, daemonPath: cfg.tapswitchd, cliPath: cfg.tapswitch, extraArgs: v.Args, etcdBin: cfg.etcdBin, hosts: hosts}
	}
	panic("unknown system " + name)
}

// clusterRunOrder is the order of the passes of -cluster: every system,
// then the tapswitch systems (an A/B's base build among them) again in
// reverse (mirrored about Open vSwitch, which runs once in the middle),
// then, with bracket, the
// kernel's path again, so that a drift linear in time cancels out of
// tapswitch's mean as of the kernel's.
func clusterRunOrder(systems []string, bracket bool) []string {
	runs := slices.Clone(systems)
	for i := len(systems) - 1; i >= 0; i-- {
		if s := systems[i]; s == "tapswitch" || s == baseSystem || isVariantSystem(s) {
			runs = append(runs, s)
		}
	}
	if bracket && slices.Contains(systems, baseline) && len(systems) > 1 {
		runs = append(runs, baseline)
	}
	return runs
}

// A testbedMaker names the namespaces of its own testbed instead of the
// namespaces' comparison's.
type testbedMaker interface {
	testbed(pid int) *testbed
}

var (
	_ testbedMaker    = (*clusterKernel)(nil)
	_ testbedMaker    = (*clusterTapswitch)(nil)
	_ testbedMaker    = (*clusterOVS)(nil)
	_ lister          = (*clusterTapswitch)(nil)
	_ switchProcesses = (*clusterTapswitch)(nil)
	_ switchProcesses = (*clusterOVS)(nil)
)

// checkClusterFlags checks -cluster against the other flags and turns
// on -bracket when the kernel's path runs: its second pass is the drift
// the ratios are judged by.
func checkClusterFlags(cfg *config, set map[string]bool) error {
	for _, f := range []string{"scale", "demo", "docker", "chart"} {
		if set[f] {
			return fmt.Errorf("-cluster is a comparison of its own: drop -%s", f)
		}
	}
	if cfg.clusterStatic {
		if cfg.only != nil && !slices.Contains(cfg.only, "tapswitch") {
			return errors.New("-cluster-static adds a tapswitch system: add tapswitch to -only")
		}
		if _, dup := cfg.variant(staticSystem); dup {
			return fmt.Errorf("-variant %s: that is -cluster-static's system; name the variant otherwise", strings.TrimPrefix(staticSystem, variantPrefix))
		}
	}
	if cfg.only == nil || slices.Contains(cfg.only, baseline) {
		cfg.bracket = true
	}
	return nil
}

// clusterNotes are the report's notes on the cross-host setting.
func clusterNotes(runs []string) []string {
	notes := []string{"the switch's CPU column sums both hosts' processes (tapswitchd, ovs-vswitchd); the kernel's path forwards in softirq"}
	n := map[string]int{}
	for _, s := range runs {
		n[s]++
	}
	ab := n[baseSystem] > 0
	for _, s := range runs {
		// Variants, and the two builds of an A/B, have a note of their
		// own.
		if s != baseline && (s == staticSystem || !isVariantSystem(s)) && !(ab && (s == baseSystem || s == "tapswitch")) && n[s] > 1 {
			notes = append(notes, fmt.Sprintf("%s ran twice, passes mirrored about the middle of the run: the tables show the mean of its passes", s))
			n[s] = 0
		}
	}
	if slices.ContainsFunc(runs, func(s string) bool {
		return s == "tapswitch" || s == baseSystem || (isVariantSystem(s) && s != staticSystem)
	}) {
		notes = append(notes, "tapswitch: the hosts form a cluster on one etcd (on the underlay, started for each pass): --cluster, --advertise, --cluster-host, the network made once and carried to the other host by the store;"+
			" etcd runs during the tests, and its CPU counts among the others")
	}
	if slices.Contains(runs, staticSystem) {
		notes = append(notes, "tapswitch static: the hosts know each other as static peers (--vxlan-peer, no store), as toward a foreign VTEP, and take the other's frames as not known checksummed")
	}
	if slices.Contains(runs, peer) {
		notes = append(notes, "ovs: userspace TSO off, as Open vSwitch 3.1 drops TCP super-frames bound for a tunnel port; its TAPs get one segment per frame")
	}
	return notes
}
