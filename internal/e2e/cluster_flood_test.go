package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// floodOnlyToPortHosts is a part of TestCluster: a cluster network's
// broadcasts go by head-end replication to the hosts with ports on it
// only. With ports of the network on h1 and h2, broadcasts from h1 reach
// h2 and never h3, whose tunnel of the network reads nothing; once a
// port of it is attached on h3, h3 gets them too. The network is removed
// at the end.
func floodOnlyToPortHosts(t *testing.T, c *clusterEnv) {
	const (
		name   = "bcast"
		subnet = "10.241.5.0/24"
		// bcastAddr is the subnet's broadcast address: a datagram to it
		// leaves a container as one Ethernet broadcast.
		bcastAddr = "10.241.5.255"
		// count broadcasts are sent at each step.
		count = 20
	)
	h1, h2, h3 := c.host(1), c.host(2), c.host(3)
	h1.mustCLI(t, "network", "create", name, "--subnet", subnet, "--scope", "cluster")
	defer h1.mustCLI(t, "network", "rm", "--force", name)
	for _, h := range c.hosts {
		poll(t, fmt.Sprintf("network %s on %s", name, h.name), func() string {
			if h.network(t, name) == nil {
				return "absent"
			}
			return ""
		})
	}
	a := c.container(t, h1, "fa", name)
	c.container(t, h2, "fb", name)
	// h1 has read b's endpoint from the store once b's MAC is behind h2
	// in its peers: its view has h2's port on the network.
	poll(t, "h1 knows h2's port on "+name, func() string {
		p := findPeer(h1.peers(t), h2.vtep)
		if p == nil {
			return "no peer h2"
		}
		for _, m := range p.MACs {
			if m.Network == name {
				return ""
			}
		}
		return fmt.Sprintf("no MAC of %s behind h2: %+v", name, p.MACs)
	})

	// rx is the frames h's tunnel of the network read: what the other
	// hosts sent it on the network's VNI.
	rx := func(h *clusterHost) uint64 {
		t.Helper()
		return tunnelPortOf(t, h, name).Stats.RxFrames
	}
	tx := func(h *clusterHost, to *clusterHost) uint64 {
		t.Helper()
		p := findPeer(h.peers(t), to.vtep)
		if p == nil {
			t.Fatalf("%s: tapswitch peers lists no %s (%s)", h.name, to.name, to.vtep)
		}
		return p.TxPackets
	}
	payload := []byte("tapswitch flood test")
	send := func(n int) {
		t.Helper()
		for range n {
			sendUDP(t, a, bcastAddr, 9, payload)
		}
	}

	rx2, tx2, tx3 := rx(h2), tx(h1, h2), tx(h1, h3)
	send(count)
	poll(t, fmt.Sprintf("h2's tunnel of %s reads the %d broadcasts from h1", name, count), func() string {
		if got := rx(h2); got < rx2+count {
			return fmt.Sprintf("%d frames read, %d before", got, rx2)
		}
		return ""
	})
	// h3 has no port on the network: nothing of it is sent there, by h1
	// or by h2 (multicast of b's own included).
	if got := rx(h3); got != 0 {
		t.Errorf("h3's tunnel of %s read %d frames, want none: h3 has no port on it", name, got)
	}
	d2, d3 := tx(h1, h2)-tx2, tx(h1, h3)-tx3
	t.Logf("%d broadcasts from h1 on %s (ports on h1 and h2): h1 sent h2 %d packets, h3 %d (any network); h3's tunnel of %s read %d frames",
		count, name, d2, d3, name, rx(h3))
	if d2 < count {
		t.Errorf("h1's peers: %d packets sent to h2 while %d broadcasts went out, want at least as many", d2, count)
	}
	if d3 >= count {
		t.Errorf("h1's peers: %d packets sent to h3 while %d broadcasts went out on %s, where h3 has no port", d3, count, name)
	}
	// tapswitch peers still lists h3, a cluster host that may send to
	// h1 on any network.
	if p := findPeer(h1.peers(t), h3.vtep); p == nil || p.Name != h3.name {
		t.Errorf("h1's peers: %s (%s) is %+v, want it listed", h3.name, h3.vtep, p)
	}

	// A port of the network on h3: h1 floods to h3 as soon as it reads
	// the port's endpoint from the store.
	start := time.Now()
	c.container(t, h3, "fc", name)
	before := rx(h3)
	took := poll(t, fmt.Sprintf("h3's tunnel of %s reads broadcasts from h1 once h3 has a port on it", name), func() string {
		send(1)
		if got := rx(h3); got == before {
			return fmt.Sprintf("%d frames read", got)
		}
		return ""
	})
	t.Logf("port attached on h3: its tunnel of %s reads floods %v after the attach returned (%v from its start)",
		name, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	rx2, rx3 := rx(h2), rx(h3)
	send(count)
	poll(t, fmt.Sprintf("h2 and h3 read the next %d broadcasts", count), func() string {
		if g2, g3 := rx(h2), rx(h3); g2 < rx2+count || g3 < rx3+count {
			return fmt.Sprintf("h2 read %d (%d before), h3 %d (%d before)", g2, rx2, g3, rx3)
		}
		return ""
	})
}

// tunnelPortOf is h's tunnel port of network.
func tunnelPortOf(t *testing.T, h *clusterHost, network string) api.Port {
	t.Helper()
	for _, p := range h.inspect(t, network).Ports {
		if p.Kind == api.KindTunnel {
			return p
		}
	}
	t.Fatalf("%s: network %s has no port of kind %s", h.name, network, api.KindTunnel)
	return api.Port{}
}
