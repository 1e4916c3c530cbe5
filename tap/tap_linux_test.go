package tap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/internal/privtest"
	"github.com/tapswitch/tapswitch/namespace"
)

// newNetns makes a namespace for one test and removes it afterwards.
func newNetns(t *testing.T) string {
	t.Helper()
	privtest.Require(t, "create namespaces and TAP devices", "ip")
	return privtest.Netns(t, fmt.Sprintf("tstap%d", os.Getpid()))
}

func linkExists(t *testing.T, netns, name string) bool {
	t.Helper()
	err := exec.Command("ip", "netns", "exec", netns[len("/run/netns/"):], "ip", "link", "show", name).Run()
	return err == nil
}

func TestCreateAndClose(t *testing.T) {
	ns := newNetns(t)
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) {
			start := time.Now()
			d, err := Create(Config{Netns: ns, Name: "eth0", MTU: 9000, Queues: queues,
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.93.0.1/24"), netip.MustParsePrefix("fd93::1/64")}})
			if err != nil {
				t.Fatalf("Create() = %v", err)
			}
			created := time.Since(start)
			if got := len(d.Queues()); got != queues {
				t.Fatalf("len(Queues()) = %d, want %d", got, queues)
			}
			if c := d.Caps(); !c.Csum || c.GSO&device.GSOSetTCP != device.GSOSetTCP {
				t.Fatalf("Caps() = %+v, want at least partial checksums and TCP super-frames", c)
			}
			if !linkExists(t, ns, "eth0") {
				t.Fatal("eth0 missing in the namespace after Create")
			}
			if _, err := Create(Config{Netns: ns, Name: "eth0"}); !errors.Is(err, ErrExists) {
				t.Fatalf("second Create(eth0) = %v, want ErrExists", err)
			}
			// A reader blocked on an empty queue is woken by Close. The
			// kernel's own frames (IPv6 router solicitations and the like)
			// are read until the queue runs dry.
			done := make(chan error, 1)
			go func() {
				for {
					if _, err := readBatch(d.Queues()[0]); err != nil {
						done <- err
						return
					}
				}
			}()
			time.Sleep(20 * time.Millisecond)
			start = time.Now()
			if err := d.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			closed := time.Since(start)
			if err := <-done; !errors.Is(err, os.ErrClosed) {
				t.Fatalf("Read during Close = %v, want os.ErrClosed", err)
			}
			if _, err := d.Queues()[0].Write([][]byte{make([]byte, 60+device.Headroom)}, device.Headroom); !errors.Is(err, os.ErrClosed) {
				t.Fatalf("Write after Close = %v, want os.ErrClosed", err)
			}
			if linkExists(t, ns, "eth0") {
				t.Fatal("eth0 still in the namespace after Close")
			}
			t.Logf("create %v, close %v", created, closed)
		})
	}
}

// nsLink returns the interface name inside netns as netlink reports it,
// or nil when there is none.
func nsLink(t *testing.T, netns, name string) netlink.Link {
	t.Helper()
	var link netlink.Link
	err := namespace.Do(netns, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		link, err = h.LinkByName(name)
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			link, err = nil, nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("look up %s: %v", name, err)
	}
	return link
}

// nsAddrs lists the addresses on name inside netns.
func nsAddrs(t *testing.T, netns, name string) []string {
	t.Helper()
	var out []string
	err := namespace.Do(netns, func() error {
		link, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if !a.IP.IsLinkLocalUnicast() {
				out = append(out, a.IPNet.String())
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("addresses of %s: %v", name, err)
	}
	slices.Sort(out)
	return out
}

// readBatch reads one batch from q and returns copies of its frames,
// each with its virtio net header in front.
func readBatch(q device.Queue) ([][]byte, error) {
	bufs := make([][]byte, q.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, device.Headroom+65536)
	}
	sizes := make([]int, len(bufs))
	n, err := q.Read(bufs, sizes, device.Headroom)
	var out [][]byte
	for i := range n {
		out = append(out, slices.Clone(bufs[i][device.Headroom-device.VnetHdrLen:device.Headroom+sizes[i]]))
	}
	return out, err
}

// readFrames reads every queue of d, each from a goroutine of its own,
// into frames (virtio header and frame) until stop is closed or a read
// fails.
func readFrames(d Device) (frames chan []byte, stop chan struct{}) {
	frames, stop = make(chan []byte, 64), make(chan struct{})
	for _, q := range d.Queues() {
		go func() {
			for {
				got, err := readBatch(q)
				if err != nil {
					return
				}
				for _, f := range got {
					select {
					case frames <- f:
					case <-stop:
						return
					}
				}
			}
		}()
	}
	return frames, stop
}

// readARP makes the namespace's kernel ask for dst on the TAP, by sending
// it a datagram, and reads queues until the ARP request shows up.
func readARP(t *testing.T, netns string, d Device, dst string) {
	t.Helper()
	frames, stop := readFrames(d)
	defer close(stop)
	err := namespace.Do(netns, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(dst, "9"))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	})
	if err != nil {
		t.Fatalf("send to %s in the namespace: %v", dst, err)
	}
	timeout := time.After(5 * time.Second)
	want := netip.MustParseAddr(dst).As4()
	for {
		select {
		case f := <-frames:
			// virtio header, then Ethernet: ethertype 0x0806, ARP target
			// protocol address at offset 24 of the ARP payload.
			e := f[device.VnetHdrLen:]
			if len(e) >= 42 && e[12] == 0x08 && e[13] == 0x06 && [4]byte(e[38:42]) == want {
				return
			}
		case <-timeout:
			t.Fatalf("no ARP request for %s read from the TAP within 5s", dst)
		}
	}
}

func TestPersistAndOpen(t *testing.T) {
	ns := newNetns(t)
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0x93, 1}
	addrs := []netip.Prefix{netip.MustParsePrefix("10.93.0.1/24"), netip.MustParsePrefix("fd93::1/64")}
	d, err := Create(Config{Netns: ns, Name: "eth0", MAC: mac, MTU: 9000, Queues: 2, Addrs: addrs, Persist: true, Alias: "tstap test"})
	if err != nil {
		t.Fatalf("Create(Persist) = %v", err)
	}
	// Whatever happens below, the device goes with the namespace.
	if err := d.Release(); err != nil {
		t.Fatalf("Release() = %v", err)
	}
	if _, err := d.Queues()[0].Write([][]byte{make([]byte, 60+device.Headroom)}, device.Headroom); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Release = %v, want os.ErrClosed", err)
	}
	link := nsLink(t, ns, "eth0")
	tun, ok := link.(*netlink.Tuntap)
	if !ok {
		t.Fatalf("eth0 after Release = %T, want a persistent TAP still there", link)
	}
	if tun.NonPersist || tun.Queues != 0 || tun.Attrs().MTU != 9000 || tun.Attrs().HardwareAddr.String() != mac.String() || tun.Attrs().Alias != "tstap test" {
		t.Fatalf("eth0 after Release: persist %v, queues %d, MTU %d, MAC %s, alias %q; want persistent, 0 queues, 9000, %s, %q",
			!tun.NonPersist, tun.Queues, tun.Attrs().MTU, tun.Attrs().HardwareAddr, tun.Attrs().Alias, mac, "tstap test")
	}
	wantAddrs := []string{"10.93.0.1/24", "fd93::1/64"}
	if got := nsAddrs(t, ns, "eth0"); !slices.Equal(got, wantAddrs) {
		t.Fatalf("addresses of eth0 after Release = %v, want %v", got, wantAddrs)
	}

	start := time.Now()
	d, err = Open(Config{Netns: ns, Name: "eth0", Queues: 2})
	if err != nil {
		t.Fatalf("Open(eth0) = %v", err)
	}
	opened := time.Since(start)
	if c := d.Caps(); len(d.Queues()) != 2 || d.MAC().String() != mac.String() || c != capsOf(offloadsBase) && c != capsOf(offloadsUSO) {
		t.Fatalf("Open(eth0): %d queues, MAC %s, caps %+v; want 2, %s, at least %+v", len(d.Queues()), d.MAC(), c, mac, capsOf(offloadsBase))
	}
	if got := nsAddrs(t, ns, "eth0"); !slices.Equal(got, wantAddrs) {
		t.Fatalf("addresses of eth0 after Open = %v, want %v", got, wantAddrs)
	}
	if _, err := Open(Config{Netns: ns, Name: "eth0", Queues: 2}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open(eth0) = %v, want ErrInUse", err)
	}
	// Another alias, or a device held open, is never taken for stale.
	if _, err := Create(Config{Netns: ns, Name: "eth0", Alias: "tstap test", Persist: true}); !errors.Is(err, ErrExists) {
		t.Fatalf("Create(eth0) while open = %v, want ErrExists", err)
	}
	readARP(t, ns, d, "10.93.0.2")

	start = time.Now()
	if err := d.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	closed := time.Since(start)
	if nsLink(t, ns, "eth0") != nil {
		t.Fatal("persistent eth0 still in the namespace after Close")
	}
	t.Logf("open %v, close %v", opened, closed)
}

func TestOpenErrors(t *testing.T) {
	ns := newNetns(t)
	if _, err := Open(Config{Netns: ns, Name: "eth7"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open(missing) = %v, want ErrNotFound", err)
	}
	if nsLink(t, ns, "eth7") != nil {
		t.Fatal("Open(missing) made eth7")
	}
	d, err := Create(Config{Netns: ns, Name: "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := Open(Config{Netns: ns, Name: "eth1"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open(not persistent) = %v, want ErrNotFound", err)
	}
	if _, err := Open(Config{Netns: ns, Name: "lo"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open(lo) = %v, want ErrNotFound", err)
	}
	// One queue: opened with one, whatever is asked.
	one, err := Create(Config{Netns: ns, Name: "eth2", Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	one.Release()
	one, err = Open(Config{Netns: ns, Name: "eth2", Queues: 4})
	if err != nil {
		t.Fatalf("Open(single-queue device, 4 queues) = %v", err)
	}
	if got := len(one.Queues()); got != 1 {
		t.Fatalf("Open(single-queue device) has %d queues, want 1", got)
	}
	if err := one.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCreateReplacesStale(t *testing.T) {
	ns := newNetns(t)
	d, err := Create(Config{Netns: ns, Name: "eth0", MTU: 1400, Persist: true, Alias: "tstap mine"})
	if err != nil {
		t.Fatal(err)
	}
	d.Release()
	if _, err := Create(Config{Netns: ns, Name: "eth0", Persist: true, Alias: "tstap theirs"}); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over a stale TAP of another alias = %v, want ErrExists", err)
	}
	if _, err := Create(Config{Netns: ns, Name: "eth0"}); !errors.Is(err, ErrExists) {
		t.Fatalf("Create without alias over a stale TAP = %v, want ErrExists", err)
	}
	d, err = Create(Config{Netns: ns, Name: "eth0", Persist: true, Alias: "tstap mine"})
	if err != nil {
		t.Fatalf("Create over a stale TAP of its alias = %v, want it replaced", err)
	}
	if mtu := nsLink(t, ns, "eth0").Attrs().MTU; mtu != 1500 {
		t.Fatalf("MTU after replacing = %d, want 1500 (a new device)", mtu)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if nsLink(t, ns, "eth0") != nil {
		t.Fatal("eth0 still there after Close")
	}
}

// A read takes every frame queued, up to the batch, in one call: the
// namespace sends 20 datagrams to a neighbour whose MAC it knows, which
// queues 20 frames on the TAP before anything reads them.
func TestReadBatch(t *testing.T) {
	ns := newNetns(t)
	d, err := Create(Config{Netns: ns, Name: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.94.0.1/24")}})
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	defer d.Close()
	q := d.Queues()[0].(device.PollQueue)
	if got := q.BatchSize(); got != batchSize {
		t.Fatalf("BatchSize() = %d, want %d", got, batchSize)
	}
	const sent = 20
	err = namespace.Do(ns, func() error {
		if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: mustIndex(t, "eth0"), State: netlink.NUD_PERMANENT,
			IP: net.ParseIP("10.94.0.2"), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0x94, 2}}); err != nil {
			return fmt.Errorf("add neighbour: %w", err)
		}
		c, err := net.Dial("udp4", "10.94.0.2:9")
		if err != nil {
			return err
		}
		defer c.Close()
		for range sent {
			if _, err := c.Write([]byte("batch")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send in the namespace: %v", err)
	}
	bufs := make([][]byte, batchSize+4)
	for i := range bufs {
		bufs[i] = make([]byte, device.Headroom+65536)
	}
	sizes := make([]int, len(bufs))
	// The kernel's own frames (router solicitations, reports) may come
	// too; the datagrams are counted by their payload.
	datagrams, first := 0, -1
	for {
		n, err := q.TryRead(bufs, sizes, device.Headroom)
		if err != nil {
			t.Fatalf("TryRead() = %v", err)
		}
		if first < 0 {
			first = n
		}
		if n > batchSize {
			t.Fatalf("TryRead() = %d frames, want at most the batch size %d", n, batchSize)
		}
		if n == 0 {
			break
		}
		for i := range n {
			f := bufs[i][device.Headroom : device.Headroom+sizes[i]]
			if len(f) >= 47 && string(f[42:47]) == "batch" {
				datagrams++
			}
		}
	}
	if first != batchSize {
		t.Fatalf("first TryRead() = %d frames with %d queued, want a full batch of %d", first, sent, batchSize)
	}
	if datagrams != sent {
		t.Fatalf("read %d datagrams, want %d", datagrams, sent)
	}
}

// mustIndex is the index of the interface name in the calling thread's
// namespace.
func mustIndex(t *testing.T, name string) int {
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return l.Attrs().Index
}
