package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/privtest"
)

// cniAddr returns the one address of an ADD result and checks that it is
// on the sandbox interface, with the gateway.
func cniAddr(t *testing.T, res *types100.Result, ns string) string {
	t.Helper()
	if len(res.Interfaces) != 2 || res.Interfaces[1].Sandbox != nsPath(ns) || res.Interfaces[1].Name != "eth0" {
		t.Fatalf("ADD result interfaces = %v, want the gateway and eth0 in %s", res.Interfaces, nsPath(ns))
	}
	if len(res.IPs) != 1 || res.IPs[0].Interface == nil || *res.IPs[0].Interface != 1 || res.IPs[0].Gateway == nil {
		t.Fatalf("ADD result ips = %v, want one address of eth0 with a gateway", res.IPs)
	}
	return res.IPs[0].Address.IP.String()
}

// TestCNIAddCheckDel puts two namespaces on a network with cnitool: they
// reach each other by address and by name through the network's DNS;
// CHECK passes, a repeated ADD returns the same, DEL removes the port and
// a second DEL succeeds; CHECK after the TAP is deleted inside the
// namespace fails.
func TestCNIAddCheckDel(t *testing.T) {
	c := newCNIEnv(t, newEnv(t))
	a, b := c.newNetns("a"), c.newNetns("b")
	podA, podB := a+"-pod", b+"-pod"
	resA := c.add(c.net, a, podA)
	resB := c.add(c.net, b, podB)
	ipA, ipB := cniAddr(t, resA, a), cniAddr(t, resB, b)

	det := c.inspect(c.net)
	if resA.Interfaces[0].Name != det.Bridge || resA.Interfaces[0].Sandbox != "" {
		t.Errorf("host interface %v, want %s on the host", resA.Interfaces[0], det.Bridge)
	}
	if len(resA.Routes) != 1 || resA.Routes[0].Dst.String() != "0.0.0.0/0" || resA.Routes[0].GW.String() != det.Gateway {
		t.Errorf("routes %v, want default via %s", resA.Routes, det.Gateway)
	}
	wantDNS := types.DNS{Nameservers: []string{det.Gateway}, Domain: c.net, Search: []string{c.net}}
	if !reflect.DeepEqual(resA.DNS, wantDNS) {
		t.Errorf("dns %+v, want %+v", resA.DNS, wantDNS)
	}
	pa := c.portOf(a)
	if pa == nil || pa.Name != podA || pa.ContainerID == "" || pa.Ifname != "eth0" || !sameMACString(pa.MAC, resA.Interfaces[1].Mac) {
		t.Fatalf("port of %s = %+v, want %s with a container id and the MAC %s", a, pa, podA, resA.Interfaces[1].Mac)
	}

	mustPing(t, a, ipB)
	mustPing(t, b, ipA)
	cniWriteResolvConf(t, b, resB.DNS)
	mustPing(t, b, podA)

	c.mustCnitool(nil, "check", c.net, nsPath(a))

	again := c.add(c.net, a, podA)
	if !reflect.DeepEqual(again, resA) {
		t.Errorf("repeated ADD = %+v, want %+v", again, resA)
	}
	if n := len(c.ports()); n != 2 {
		t.Errorf("%d ports after a repeated ADD, want 2", n)
	}

	c.mustCnitool(nil, "del", c.net, nsPath(a))
	if p := c.portOf(a); p != nil {
		t.Errorf("port %q still there after DEL", p.Name)
	}
	if l := leftovers(t, a); len(l) != 0 {
		t.Errorf("interfaces %v left in %s after DEL", l, a)
	}
	// The runtime retries a DEL; cnitool's cache is gone, so run the
	// plugin itself.
	if _, cerr := c.execPlugin(c.pluginConf1(nil), "CNI_COMMAND=DEL", "CNI_CONTAINERID="+pa.ContainerID, "CNI_NETNS="+nsPath(a), "CNI_IFNAME=eth0"); cerr != nil {
		t.Errorf("DEL again: %v, want success", cerr)
	}

	if out, err := nsRun(b, "ip", "link", "del", "eth0"); err != nil {
		t.Fatalf("ip link del eth0 in %s: %v\n%s", b, err, out)
	}
	r := c.cnitoolRun(nil, "check", c.net, nsPath(b))
	if r.code == 0 || !strings.Contains(r.stderr, "check:") {
		t.Errorf("cnitool check after eth0 was deleted: exit %d\n%s, want a check error", r.code, r.stderr)
	}
	c.mustCnitool(nil, "del", c.net, nsPath(b))
}

// TestCNICheckDrift changes the address of an attached interface behind
// the plugin's back: CHECK reports it.
func TestCNICheckDrift(t *testing.T) {
	c := newCNIEnv(t, newEnv(t))
	a := c.newNetns("a")
	res := c.add(c.net, a, "")
	ip := res.IPs[0].Address.String()
	if out, err := nsRun(a, "ip", "addr", "del", ip, "dev", "eth0"); err != nil {
		t.Fatalf("ip addr del in %s: %v\n%s", a, err, out)
	}
	r := c.cnitoolRun(nil, "check", c.net, nsPath(a))
	if r.code == 0 || !strings.Contains(r.stderr, "not "+ip) {
		t.Errorf("cnitool check without %s on eth0: exit %d\n%s, want an error naming it", ip, r.code, r.stderr)
	}
	c.mustCnitool(nil, "del", c.net, nsPath(a))
}

// TestCNIStatus: STATUS succeeds while tapswitchd answers, fails with 50
// for a network it does not have and with 51 once it is stopped, when
// ADD fails with 11 (try again later) and DEL too.
func TestCNIStatus(t *testing.T) {
	c := newCNIEnv(t, newEnv(t))
	a := c.newNetns("a")
	c.mustCnitool(nil, "status", c.net, nsPath(a))
	if _, cerr := c.execPlugin(c.pluginConf1(nil), "CNI_COMMAND=STATUS"); cerr != nil {
		t.Errorf("STATUS: %v", cerr)
	}
	if _, cerr := c.execPlugin(c.pluginConf1(map[string]any{"network": "nosuch"}), "CNI_COMMAND=STATUS"); cerr == nil || cerr.Code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS of a network tapswitchd has not: %v, want code %d", cerr, types.ErrPluginNotAvailable)
	}

	if err := c.stopDaemon(); err != nil {
		t.Fatal(err)
	}
	r := c.cnitoolRun(nil, "status", c.net, nsPath(a))
	if r.code == 0 || !strings.Contains(r.stderr, "tapswitchd is not answering") {
		t.Errorf("cnitool status, daemon stopped: exit %d\n%s", r.code, r.stderr)
	}
	_, cerr := c.execPlugin(c.pluginConf1(nil), "CNI_COMMAND=STATUS")
	if cerr == nil || cerr.Code != types.ErrLimitedConnectivity || !strings.Contains(cerr.Msg, "tapswitchd &") {
		t.Errorf("STATUS, daemon stopped: %v, want code %d saying how to start it", cerr, types.ErrLimitedConnectivity)
	}
	env := []string{"CNI_CONTAINERID=stopped1", "CNI_NETNS=" + nsPath(a), "CNI_IFNAME=eth0"}
	for _, cmd := range []string{"ADD", "DEL"} {
		_, cerr := c.execPlugin(c.pluginConf1(nil), append([]string{"CNI_COMMAND=" + cmd}, env...)...)
		if cerr == nil || cerr.Code != types.ErrTryAgainLater {
			t.Errorf("%s, daemon stopped: %v, want code %d", cmd, cerr, types.ErrTryAgainLater)
		}
	}
}

// TestCNIGC: GC detaches the CNI ports not in cni.dev/valid-attachments
// and never a port attached by hand.
func TestCNIGC(t *testing.T) {
	c := newCNIEnv(t, newEnv(t))
	a, b, h := c.newNetns("a"), c.newNetns("b"), c.newNetns("h")
	c.add(c.net, a, "")
	c.add(c.net, b, "")
	hand := c.attach(h, "--network", c.net)
	pa := c.portOf(a)
	if pa == nil {
		t.Fatalf("no port for %s", a)
	}
	valid := []map[string]string{{"containerID": pa.ContainerID, "ifname": "eth0"}}
	if _, cerr := c.execPlugin(c.pluginConf1(map[string]any{"cni.dev/valid-attachments": valid}), "CNI_COMMAND=GC"); cerr != nil {
		t.Fatalf("GC: %v", cerr)
	}
	if c.portOf(a) == nil {
		t.Errorf("GC detached %s's port, which was valid", a)
	}
	if p := c.portOf(b); p != nil {
		t.Errorf("GC left %s's port %q, not a valid attachment", b, p.Name)
	}
	if findPort(c.ports(), hand) == nil {
		t.Errorf("GC detached the port %q attached by hand", hand)
	}
	// cnitool gc deletes every attachment it has cached for the network,
	// then asks for a GC without a list, which detaches nothing more.
	c.mustCnitool(nil, "gc", c.net, nsPath(a))
	if p := c.portOf(a); p != nil {
		t.Errorf("cnitool gc left %s's port %q", a, p.Name)
	}
	if findPort(c.ports(), hand) == nil {
		t.Errorf("cnitool gc detached the port %q attached by hand", hand)
	}
}

// TestCNIHostLocal delegates addresses to Debian's host-local (of plugins
// 1.1.1, which speaks CNI up to 1.0.0) in the network's subnet: the
// namespaces get its addresses and still the gateway and DNS; DEL
// releases the addresses.
func TestCNIHostLocal(t *testing.T) {
	c := newCNIEnv(t, newEnv(t))
	if _, err := os.Stat("/usr/lib/cni/host-local"); err != nil {
		cannot := t.Skipf
		if privtest.Required() {
			cannot = t.Fatalf
		}
		cannot("needs host-local (Debian package containernetworking-plugins): %v", err)
	}
	det := c.inspect(c.net)
	subnet := netip.MustParsePrefix(det.Subnet)
	start := subnet.Addr().Next().Next().Next().Next().Next().Next().Next().Next().Next().Next() // .10
	dataDir := filepath.Join(c.dir, "host-local")
	c.writeConf(c.net, map[string]any{"ipam": map[string]any{
		"type":    "host-local",
		"dataDir": dataDir,
		"ranges":  [][]map[string]string{{{"subnet": det.Subnet, "rangeStart": start.String(), "rangeEnd": start.Next().Next().String()}}},
	}})
	a, b := c.newNetns("a"), c.newNetns("b")
	resA, resB := c.add(c.net, a, "a-pod"), c.add(c.net, b, "")
	ipA, ipB := cniAddr(t, resA, a), cniAddr(t, resB, b)
	for _, ip := range []string{ipA, ipB} {
		if x := netip.MustParseAddr(ip); x.Less(start) || start.Next().Next().Less(x) {
			t.Errorf("address %s outside host-local's range from %s", ip, start)
		}
	}
	if len(resA.Routes) != 1 || len(resA.DNS.Nameservers) != 1 {
		t.Errorf("result %+v, want a default route and the DNS of the network", resA)
	}
	mustPing(t, b, ipA)
	cniWriteResolvConf(t, b, resB.DNS)
	mustPing(t, b, "a-pod")
	c.mustCnitool(nil, "check", c.net, nsPath(a))

	lease := filepath.Join(dataDir, c.net, ipA)
	if _, err := os.Stat(lease); err != nil {
		t.Errorf("host-local's lease of %s: %v", ipA, err)
	}
	c.mustCnitool(nil, "del", c.net, nsPath(a))
	if _, err := os.Stat(lease); !os.IsNotExist(err) {
		t.Errorf("host-local's lease of %s after DEL: %v, want it gone", ipA, err)
	}
	if c.portOf(a) != nil {
		t.Errorf("port of %s left after DEL", a)
	}
	c.mustCnitool(nil, "del", c.net, nsPath(b))
}

// TestCNIRestart: after tapswitchd restarts, CHECK and DEL find the port
// of an ADD through the container id the daemon kept.
func TestCNIRestart(t *testing.T) {
	c := newCNIEnv(t, newRestartEnv(t))
	a, b := c.newNetns("a"), c.newNetns("b")
	res := c.add(c.net, a, "")
	c.add(c.net, b, "")
	c.restartDaemon()
	mustPing(t, b, cniAddr(t, res, a))
	c.mustCnitool(nil, "check", c.net, nsPath(a))
	c.mustCnitool(nil, "del", c.net, nsPath(a))
	if p := c.portOf(a); p != nil {
		t.Errorf("port %q left after DEL across a restart", p.Name)
	}
	c.mustCnitool(nil, "del", c.net, nsPath(b))
}

// TestCNINetworkNotFound: a config naming a network tapswitchd does not
// have fails ADD with code 7 and says how to create it.
func TestCNINetworkNotFound(t *testing.T) {
	c := newCNIEnv(t, newEnv(t))
	a := c.newNetns("a")
	name := c.net + "-missing"
	c.writeConf(name, map[string]any{"network": "nosuch"})
	r := c.cnitoolRun(nil, "add", name, nsPath(a))
	if r.code == 0 || !strings.Contains(r.stderr, "tapswitch network create nosuch") {
		t.Errorf("cnitool add to a missing network: exit %d\n%s", r.code, r.stderr)
	}
	_, cerr := c.execPlugin(c.pluginConf1(map[string]any{"network": "nosuch"}),
		"CNI_COMMAND=ADD", "CNI_CONTAINERID=missing1", "CNI_NETNS="+nsPath(a), "CNI_IFNAME=eth0")
	if cerr == nil || cerr.Code != types.ErrInvalidNetworkConfig {
		t.Errorf("ADD to a missing network: %v, want code %d", cerr, types.ErrInvalidNetworkConfig)
	}
	if l := leftovers(t, a); len(l) != 0 {
		t.Errorf("interfaces %v left in %s", l, a)
	}
}

// inspect is tapswitch network inspect NAME.
func (c *cniEnv) inspect(name string) api.NetworkDetail {
	c.t.Helper()
	var d api.NetworkDetail
	out := c.mustCLI("network", "inspect", name, "-o", "json")
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		c.t.Fatalf("tapswitch network inspect %s: %v\n%s", name, err, out)
	}
	return d
}
