package e2e

import (
	"strconv"
	"testing"
)

// TestDetach detaches ports by name and by id and checks that the TAP,
// the port and its learned MAC are all gone.
func TestDetach(t *testing.T) {
	e := newEnv(t)
	nsA, nsB, nsC := e.newNetns("a"), e.newNetns("b"), e.newNetns("c")
	const ipA, ipB, ipC = "10.77.5.1/24", "10.77.5.2/24", "10.77.5.3/24"
	e.attach(nsA, "--ip", ipA)
	e.attach(nsB, "--name", "web", "--ip", ipB)
	portC := e.attach(nsC, "--ip", ipC)
	mustPing(t, nsA, addr(ipB))
	mustPing(t, nsA, addr(ipC))
	macB, macC := linkMAC(t, nsB, "eth0"), linkMAC(t, nsC, "eth0")
	e.waitFDB(macB, "web")

	p := findPort(e.ports(), portC)
	if p == nil {
		t.Fatalf("tapswitch ports: no port %q", portC)
	}
	idC := strconv.FormatUint(uint64(p.ID), 10)

	tests := []struct {
		name string
		arg  string // what detach is given
		port string
		ns   string
		ip   string
		mac  string
	}{
		{"by name", "web", "web", nsB, ipB, macB.String()},
		{"by id", idC, portC, nsC, ipC, macC.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.mustCLI("detach", tt.arg)
			if out, err := nsRun(tt.ns, "ip", "link", "show", "eth0"); err == nil {
				t.Errorf("ip link show eth0 in %s after tapswitch detach %s: still there\n%s", tt.ns, tt.arg, out)
			}
			if p := findPort(e.ports(), tt.port); p != nil {
				t.Errorf("tapswitch ports after tapswitch detach %s: still lists %+v", tt.arg, *p)
			}
			for _, ent := range e.fdb() {
				if ent.Port == tt.port || sameMACString(ent.MAC, tt.mac) {
					t.Errorf("tapswitch fdb after tapswitch detach %s: still has %+v", tt.arg, ent)
				}
			}
			if out, err := ping(nsA, addr(tt.ip)); err == nil {
				t.Errorf("ping %s from %s after tapswitch detach %s: replies still come\n%s", addr(tt.ip), nsA, tt.arg, out)
			}
		})
	}
	if n := len(e.ports()); n != 1 {
		t.Errorf("tapswitch ports: %d ports left, want 1 (%s)", n, nsA)
	}
}
