package tap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
)

// TestExportAndAdopt hands a TAP's queues over as a daemon does to its
// successor: the queues are exported, reads paused, the device
// released, and frames the namespace sends meanwhile wait in the rings;
// the adopted device reads every one of them.
func TestExportAndAdopt(t *testing.T) {
	privtest.Require(t, "create namespaces and TAP devices", "ip")
	ns := privtest.Netns(t, fmt.Sprintf("hotap%d", os.Getpid()))
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0xaa, 1}
	d, err := Create(Config{Netns: ns, Name: "eth0", MAC: mac, Queues: 2, Persist: true,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.170.93.1/24")}})
	if err != nil {
		t.Fatalf("Create(Persist) = %v", err)
	}
	fds, err := d.(Exporter).ExportQueues()
	if err != nil {
		t.Fatalf("ExportQueues() = %v", err)
	}
	if len(fds) != 2 {
		t.Fatalf("ExportQueues() = %d descriptors, want 2", len(fds))
	}
	d.(Pauser).PauseReads()
	if tun := nsLink(t, ns, "eth0").(*netlink.Tuntap); tun.Queues != 2 {
		t.Fatalf("eth0 after Release with its queues exported: %d queues attached, want 2", tun.Queues)
	}

	// Sent while nobody reads: a static neighbour spares the ARP.
	const sent = 50
	name := ns[len(namespace.RunDir)+1:]
	if out, err := exec.Command("ip", "-n", name, "neigh", "add", "10.170.93.2", "lladdr", "02:00:00:00:aa:02", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("ip neigh add: %v\n%s", err, out)
	}
	err = namespace.Do(ns, func() error {
		c, err := net.Dial("udp4", "10.170.93.2:9")
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range sent {
			if _, err := c.Write([]byte{byte(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send in the namespace: %v", err)
	}
	// Paused, the device reads nothing: the frames wait in the rings.
	for _, q := range d.Queues() {
		if frames, err := tryRead(q.(device.PollQueue)); len(frames) != 0 || err != nil {
			t.Fatalf("TryRead after PauseReads = %d frames, %v; want none", len(frames), err)
		}
	}
	if err := d.Release(); err != nil {
		t.Fatalf("Release() = %v", err)
	}

	a, err := Adopt(Config{Netns: ns, Name: "eth0"}, fds)
	if err != nil {
		t.Fatalf("Adopt(eth0) = %v", err)
	}
	defer a.Close()
	if a.MAC().String() != mac.String() || len(a.Queues()) != 2 {
		t.Fatalf("Adopt(eth0): MAC %s, %d queues; want %s, 2", a.MAC(), len(a.Queues()), mac)
	}
	got := 0
	deadline := time.Now().Add(5 * time.Second)
	for got < sent && time.Now().Before(deadline) {
		for _, q := range a.Queues() {
			frames, err := tryRead(q.(device.PollQueue))
			if err != nil {
				t.Fatalf("TryRead: %v", err)
			}
			for _, f := range frames {
				e := f[device.VnetHdrLen:]
				// IPv4, UDP to port 9.
				if len(e) >= 38 && e[12] == 0x08 && e[13] == 0 && e[23] == 17 && e[36] == 0 && e[37] == 9 {
					got++
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	if got != sent {
		t.Fatalf("frames read after Adopt = %d, want the %d sent while the queues were handed over", got, sent)
	}
}

func tryRead(q device.PollQueue) ([][]byte, error) {
	bufs := make([][]byte, q.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, device.Headroom+65536)
	}
	sizes := make([]int, len(bufs))
	n, err := q.TryRead(bufs, sizes, device.Headroom)
	var out [][]byte
	for i := range n {
		out = append(out, bufs[i][device.Headroom-device.VnetHdrLen:device.Headroom+sizes[i]])
	}
	return out, err
}

// TestAdoptRefuses: a descriptor that is not the queue it is said to be
// is refused, and closed.
func TestAdoptRefuses(t *testing.T) {
	privtest.Require(t, "create namespaces and TAP devices", "ip")
	ns := privtest.Netns(t, fmt.Sprintf("hotaq%d", os.Getpid()))
	d, err := Create(Config{Netns: ns, Name: "eth0"})
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	export := func() int {
		fds, err := d.(Exporter).ExportQueues()
		if err != nil {
			t.Fatalf("ExportQueues() = %v", err)
		}
		return fds[0]
	}
	closed := func(fd int) bool {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		return errors.Is(err, unix.EBADF)
	}
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		fd   int
	}{
		{"another name", Config{Netns: ns, Name: "eth1"}, export()},
		{"another namespace", Config{Name: "eth0"}, export()},
		{"not a TAP", Config{Netns: ns, Name: "eth0"}, null},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Adopt(c.cfg, []int{c.fd}); err == nil {
				t.Fatalf("Adopt(%+v) = nil error, want a refusal", c.cfg)
			}
			if !closed(c.fd) {
				t.Errorf("descriptor %d still open after a refused Adopt", c.fd)
			}
		})
	}
	// A queue of a device deleted since.
	fd := export()
	if err := d.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if _, err := Adopt(Config{Netns: ns, Name: "eth0"}, []int{fd}); err == nil {
		t.Fatal("Adopt of a deleted device's queue = nil error, want a refusal")
	}
}
