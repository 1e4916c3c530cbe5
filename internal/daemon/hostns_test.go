package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

// hostNSHost is the fake host with the daemon's own namespace given: the
// test's own (own) or another (a made-up identity).
type hostNSHost struct {
	*fakeHost
	own nsID
}

func (h hostNSHost) ownNetns() (nsID, error) { return h.own, nil }

func TestHostNetnsRefused(t *testing.T) {
	own, err := nsIDOf(selfNetns)
	if err != nil {
		t.Fatal(err)
	}
	fh := newFakeHost()
	d, err := newDaemon(Config{StateDir: t.TempDir(), TAPs: fh.taps, Queues: 1, DNSUpstreams: []netip.AddrPort{}, Logger: slog.New(slog.DiscardHandler)}, hostNSHost{fh, own})
	if err != nil {
		t.Fatal(err)
	}
	defer d.CloseAndRemove()
	frontNet(t, d)
	pid := os.Getpid()
	spellings := []string{
		self, // pid:PID
		"/proc/self/ns/net",
		fmt.Sprintf("/proc/%d/ns/net", pid),
		fmt.Sprintf("/proc/%d/task/%d/ns/net", pid, pid),
		"/proc/thread-self/ns/net",
	}
	for _, spec := range spellings {
		t.Run(spec, func(t *testing.T) {
			_, err := d.Attach(context.Background(), api.AttachRequest{Netns: spec, Network: "front", Name: "web", Ifname: "t0"})
			if !errors.Is(err, api.ErrInvalid) || api.ReasonOf(err) != api.ReasonHostNetns ||
				!strings.Contains(err.Error(), "--allow-host-netns") || !strings.Contains(err.Error(), "allow_host_netns") {
				t.Fatalf("Attach(%s) = %v, want refused as the host's namespace (%s), naming --allow-host-netns", spec, err, api.ReasonHostNetns)
			}
			nothingLeft(t, d, fh, "web", "t0")
		})
	}

	// Asked for explicitly, it is done; a port in the host's namespace
	// connects to another network only when asked explicitly too.
	p, err := d.Attach(context.Background(), api.AttachRequest{Netns: self, Network: "front", Name: "web", Ifname: "t0", AllowHostNetns: true})
	if err != nil {
		t.Fatalf("Attach(%s, allow_host_netns) = %v", self, err)
	}
	if p.Name != "web" || !d.ports["web"].state.Request.AllowHostNetns {
		t.Fatalf("Attach() = %+v, recorded allow_host_netns %v; want port web, recorded", p, d.ports["web"].state.Request.AllowHostNetns)
	}
	if _, err := d.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "back", Subnet: "10.250.8.0/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Connect(context.Background(), "back", api.ConnectRequest{Port: "web"}); api.ReasonOf(err) != api.ReasonHostNetns {
		t.Fatalf("Connect(web in the host's namespace) = %v, want refused (%s)", err, api.ReasonHostNetns)
	}
	if _, err := d.Connect(context.Background(), "back", api.ConnectRequest{Port: "web", AllowHostNetns: true}); err != nil {
		t.Fatalf("Connect(allow_host_netns) = %v", err)
	}
	if err := d.Detach(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	nothingLeft(t, d, fh, "web", "t0")
}

// TestHostNetnsByIdentity: what counts is the namespace, not its name:
// with the daemon in another namespace, the test's own is a container's.
func TestHostNetnsByIdentity(t *testing.T) {
	fh := newFakeHost()
	d, err := newDaemon(Config{TAPs: fh.taps, Queues: 1, DNSUpstreams: []netip.AddrPort{}, Logger: slog.New(slog.DiscardHandler)}, hostNSHost{fh, nsID{dev: 1, ino: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.CloseAndRemove()
	frontNet(t, d)
	if _, err := d.Attach(context.Background(), api.AttachRequest{Netns: "/proc/self/ns/net", Network: "front", Name: "web", Ifname: "t0"}); err != nil {
		t.Fatalf("Attach(/proc/self/ns/net) with the daemon elsewhere = %v", err)
	}
	// allow_host_netns where it does not matter is not recorded.
	if _, err := d.Attach(context.Background(), api.AttachRequest{Netns: self, Network: "front", Name: "web2", Ifname: "t1", AllowHostNetns: true}); err != nil {
		t.Fatal(err)
	}
	if d.ports["web2"].state.Request.AllowHostNetns {
		t.Error("allow_host_netns recorded for a namespace not the host's")
	}
}
