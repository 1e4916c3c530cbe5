package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// TestTwoNamespaces attaches two namespaces, pings both ways, and checks
// what ports and fdb report about them.
func TestTwoNamespaces(t *testing.T) {
	e := newEnv(t)
	nsA, nsB := e.newNetns("a"), e.newNetns("b")
	const ipA, ipB = "10.77.1.1/24", "10.77.1.2/24"

	portA := e.attach(nsA, "--ip", ipA)
	if portA != nsA {
		t.Errorf("tapswitch attach %s printed port %q, want %q", nsA, portA, nsA)
	}
	out := e.mustCLI("attach", nsB, "--name", "web", "--ip", ipB, "-o", "json")
	var attached api.Port
	if err := json.Unmarshal([]byte(out), &attached); err != nil {
		t.Fatalf("tapswitch attach %s -o json: %v\n%s", nsB, err, out)
	}
	if attached.Name != "web" || attached.Ifname != "eth0" || attached.Network != api.DefaultNetwork {
		t.Errorf("tapswitch attach %s --name web -o json = %+v, want name web, ifname eth0, network %s", nsB, attached, api.DefaultNetwork)
	}

	mustPing(t, nsA, addr(ipB))
	mustPing(t, nsB, addr(ipA))

	macA, macB := linkMAC(t, nsA, "eth0"), linkMAC(t, nsB, "eth0")
	want := []struct {
		port string
		ip   string
		mac  string
	}{
		{portA, ipA, macA.String()},
		{"web", ipB, macB.String()},
	}

	// Counters may be published a little after the frames went through.
	var ports []api.Port
	deadline := time.Now().Add(5 * time.Second)
	for {
		ports = e.ports()
		ready := true
		for _, w := range want {
			p := findPort(ports, w.port)
			ready = ready && p != nil && p.Stats.RxFrames > 0 && p.Stats.TxFrames > 0
		}
		if ready || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range want {
		p := findPort(ports, w.port)
		if p == nil {
			t.Errorf("tapswitch ports -o json: no port %q in %+v", w.port, ports)
			continue
		}
		if p.Ifname != "eth0" {
			t.Errorf("port %s: ifname %q, want eth0", w.port, p.Ifname)
		}
		if len(p.IPs) != 1 || !samePrefix(p.IPs[0], w.ip) {
			t.Errorf("port %s: ips %q, want [%s]", w.port, p.IPs, w.ip)
		}
		if !sameMACString(p.MAC, w.mac) {
			t.Errorf("port %s: mac %q, want %s (ip link show eth0)", w.port, p.MAC, w.mac)
		}
		if p.Stats.RxFrames == 0 || p.Stats.TxFrames == 0 || p.Stats.RxBytes == 0 || p.Stats.TxBytes == 0 {
			t.Errorf("port %s: stats %+v, want rx and tx frames and bytes > 0", w.port, p.Stats)
		}
	}

	entries := e.fdb()
	for _, w := range want {
		var found bool
		for _, ent := range entries {
			if sameMACString(ent.MAC, w.mac) {
				found = true
				if ent.Port != w.port || ent.Network != api.DefaultNetwork {
					t.Errorf("tapswitch fdb: %s on port %q network %q, want port %q network %q", w.mac, ent.Port, ent.Network, w.port, api.DefaultNetwork)
				}
			}
		}
		if !found {
			t.Errorf("tapswitch fdb -o json: no entry for %s (port %s) in %+v", w.mac, w.port, entries)
		}
	}

	for _, args := range [][]string{{"ports"}, {"ports", "-o", "table"}, {"fdb"}, {"fdb", "-o", "table"}} {
		out := e.mustCLI(args...)
		for _, w := range want {
			if !strings.Contains(out, w.port) {
				t.Errorf("tapswitch %s: port %q missing from\n%s", strings.Join(args, " "), w.port, out)
			}
		}
	}
}

// TestFullMesh attaches four namespaces and pings every one from every
// other one.
func TestFullMesh(t *testing.T) {
	e := newEnv(t)
	type member struct{ ns, ip string }
	var members []member
	for i, role := range []string{"a", "b", "c", "d"} {
		ns := e.newNetns(role)
		ip := fmt.Sprintf("10.77.2.%d/24", i+1)
		e.attach(ns, "--ip", ip)
		members = append(members, member{ns, addr(ip)})
	}
	for _, from := range members {
		for _, to := range members {
			if from == to {
				continue
			}
			t.Run(from.ns+"->"+to.ns, func(t *testing.T) {
				mustPing(t, from.ns, to.ip)
			})
		}
	}
	if n := len(e.ports()); n != len(members) {
		t.Errorf("tapswitch ports: %d ports, want %d", n, len(members))
	}
}

// TestAttachByPid attaches a namespace by the pid of a process in it, and
// by the path of that process's namespace file, and pings through it.
func TestAttachByPid(t *testing.T) {
	requirePrivileged(t, "ip", "ping")
	tests := []struct {
		name string
		spec func(pid int) string
	}{
		{"pid", func(pid int) string { return fmt.Sprintf("pid:%d", pid) }},
		{"path", func(pid int) string { return fmt.Sprintf("/proc/%d/ns/net", pid) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			nsA, nsB := e.newNetns("a"), e.newNetns("b")
			const ipA, ipB = "10.77.8.1/24", "10.77.8.2/24"
			spec := tt.spec(e.startSleeper(nsA))
			portA := e.attach(spec, "--ip", ipA)
			e.attach(nsB, "--ip", ipB)

			if got := leftovers(t, nsA); !slices.Contains(got, "eth0") {
				t.Fatalf("tapswitch attach %s: no eth0 in namespace %s (links %v)", spec, nsA, got)
			}
			mustPing(t, nsA, addr(ipB))
			mustPing(t, nsB, addr(ipA))
			if p := findPort(e.ports(), portA); p == nil || len(p.IPs) != 1 || !samePrefix(p.IPs[0], ipA) {
				t.Errorf("tapswitch ports: port %q = %+v, want it with ips [%s]", portA, p, ipA)
			}
		})
	}
}
