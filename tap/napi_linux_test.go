package tap

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/internal/privtest"
)

func TestTapFlags(t *testing.T) {
	base := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	for _, tc := range []struct {
		name        string
		multi, napi bool
		want        uint16
	}{
		{"single", false, false, base},
		{"multi-queue", true, false, base | unix.IFF_MULTI_QUEUE},
		{"napi", false, true, base | unix.IFF_NAPI},
		{"multi-queue napi", true, true, base | unix.IFF_MULTI_QUEUE | unix.IFF_NAPI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tapFlags(tc.multi, tc.napi); got != tc.want {
				t.Fatalf("tapFlags(%v, %v) = %#x, want %#x", tc.multi, tc.napi, got, tc.want)
			}
		})
	}
}

// queueFlags are the TUNGETIFF flags of each of d's queues: the device's,
// IFF_NAPI included as the queue was attached.
func queueFlags(t *testing.T, d Device) []uint16 {
	t.Helper()
	td := d.(*tapDevice)
	var out []uint16
	for _, f := range td.fds {
		ifr, err := unix.NewIfreq(td.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.IoctlIfreq(f.fd, unix.TUNGETIFF, ifr); err != nil {
			t.Fatalf("TUNGETIFF on a queue of %s: %v", td.name, err)
		}
		out = append(out, ifr.Uint16())
	}
	return out
}

func checkNAPI(t *testing.T, step string, d Device, want bool) {
	t.Helper()
	for i, f := range queueFlags(t, d) {
		if got := f&unix.IFF_NAPI != 0; got != want {
			t.Fatalf("%s: queue %d flags %#x: IFF_NAPI %v, want %v", step, i, f, got, want)
		}
	}
}

// arpRoundTrip writes an ARP request for addr (the namespace's address on
// d) into the TAP, from a MAC and address of nobody's, and reads queues
// until the namespace's reply comes back: a frame the switch writes gets
// into the namespace's stack, and one the stack sends reaches the
// switch.
func arpRoundTrip(t *testing.T, d Device, addr string) {
	t.Helper()
	frames, stop := readFrames(d)
	defer close(stop)
	tpa := netip.MustParseAddr(addr).As4()
	spa := tpa
	spa[3]++
	buf := make([]byte, device.Headroom+60)
	e := buf[device.Headroom:]
	sha := []byte{0x02, 0, 0, 0, 0xa2, 0x01}
	copy(e[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(e[6:12], sha)
	e[12], e[13] = 0x08, 0x06
	copy(e[14:22], []byte{0, 1, 0x08, 0, 6, 4, 0, 1})
	copy(e[22:28], sha)
	copy(e[28:32], spa[:])
	copy(e[38:42], tpa[:])
	if _, err := d.Queues()[0].Write([][]byte{buf}, device.Headroom); err != nil {
		t.Fatalf("write an ARP request for %s: %v", addr, err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f := <-frames:
			r := f[device.VnetHdrLen:]
			// An ARP reply (operation 2) from addr to the asker's MAC.
			if len(r) >= 42 && r[12] == 0x08 && r[13] == 0x06 && r[20] == 0 && r[21] == 2 &&
				[4]byte(r[28:32]) == tpa && string(r[0:6]) == string(sha) {
				return
			}
		case <-timeout:
			t.Fatalf("no ARP reply from %s read from the TAP within 5s", addr)
		}
	}
}

// TestNAPI makes, opens again and adopts TAPs with and without IFF_NAPI,
// with one queue and two, and checks that the mode is what the last
// Create or Open asked for, that a queue handed over keeps its own, and
// that frames go both ways through a TAP in NAPI mode.
func TestNAPI(t *testing.T) {
	privtest.Require(t, "create namespaces and TAP devices", "ip")
	ns := privtest.Netns(t, fmt.Sprintf("txnapi%d", os.Getpid()))
	for i, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) {
			name := fmt.Sprintf("txn%d", i)
			addr := fmt.Sprintf("10.162.%d.1", 10+i)
			d, err := Create(Config{Netns: ns, Name: name, Queues: queues, NAPI: true, Persist: true,
				Addrs: []netip.Prefix{netip.MustParsePrefix(addr + "/24")}})
			if err != nil {
				t.Fatalf("Create(NAPI) = %v", err)
			}
			defer func() { d.Close() }()
			checkNAPI(t, "Create(NAPI)", d, true)
			arpRoundTrip(t, d, addr)

			// Open sets the mode anew, either way.
			for _, napi := range []bool{false, true} {
				if err := d.Release(); err != nil {
					t.Fatalf("Release() = %v", err)
				}
				if d, err = Open(Config{Netns: ns, Name: name, Queues: queues, NAPI: napi}); err != nil {
					t.Fatalf("Open(NAPI %v) = %v", napi, err)
				}
				checkNAPI(t, fmt.Sprintf("Open(NAPI %v)", napi), d, napi)
				arpRoundTrip(t, d, addr)
			}

			// Queues handed over keep their mode, whatever the adopter's
			// Config says.
			fds, err := d.(Exporter).ExportQueues()
			if err != nil {
				t.Fatalf("ExportQueues() = %v", err)
			}
			if err := d.Release(); err != nil {
				t.Fatalf("Release() = %v", err)
			}
			if d, err = Adopt(Config{Netns: ns, Name: name}, fds); err != nil {
				t.Fatalf("Adopt() = %v", err)
			}
			if len(d.Queues()) != queues {
				t.Fatalf("Adopt(): %d queues, want %d", len(d.Queues()), queues)
			}
			checkNAPI(t, "Adopt", d, true)
			arpRoundTrip(t, d, addr)
		})
	}
}
