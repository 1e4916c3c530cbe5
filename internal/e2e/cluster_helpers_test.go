package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/etcdtest"
	"github.com/tapswitch/tapswitch/namespace"
)

// The three-host harness: "hosts" are network namespaces joined by veths
// to a bridge in an underlay namespace, each running its own tapswitchd
// (own socket, own state directory) driven by the real CLI; etcd runs on
// the underlay; containers are further namespaces attached through their
// host's daemon.
//
//	tse-h1 (10.231.0.1)   tse-h2 (.2)   tse-h3 (.3)   [tse-x (.4): no member]
//	  tapswitchd            tapswitchd    tapswitchd
//	    ul0                   ul0           ul0
//	     |                     |             |
//	tse-ul: bridge tse-br (10.231.0.10: etcd; .11, .12: its other members if any) --+
//
// Every name starts with "tse" and every address is in 10.231.0.0/24
// (underlay) or 10.241.0.0/16 (overlays).
const (
	ulNetns  = "tse-ul"
	ulBridge = "tse-br"
	// ulIfname is each host's end of its veth to the underlay.
	ulIfname = "ul0"
	ulPrefix = "10.231.0."
	etcdAddr = ulPrefix + "10"
	// ulMTU is the underlay's MTU: overlays get ulMTU - 50.
	ulMTU = 1500
	// clusterTTL is the hosts' lease TTL: a dead host vanishes within it.
	clusterTTL = 3 * time.Second
	// settle bounds every poll for a change to spread over the cluster.
	// It is generous: the times are logged, never asserted.
	settle = 30 * time.Second
)

// overlayMTU is the MTU a cluster network has over the underlay: VXLAN
// takes 50 bytes (outer IPv4, UDP, VXLAN and inner Ethernet headers).
const overlayMTU = ulMTU - 50

// clusterEnv is one three-host world. It is torn down by a t.Cleanup of
// the test that made it, whatever happened.
type clusterEnv struct {
	t *testing.T
	// dir holds each host's socket, state directory and log.
	dir  string
	etcd *etcdtest.Server
	// etcds is the etcd of several members when clusterOptions.etcdMembers
	// asks for one; etcd is nil then.
	etcds *etcdtest.Cluster
	hosts []*clusterHost
	// namespaces are removed last, in reverse order; containers lists
	// those whose /etc/netns directory may hold a resolv.conf that a
	// killed daemon did not remove.
	namespaces []string
	containers []string
	procs      []*proc
}

// clusterHost is one host namespace and its tapswitchd.
type clusterHost struct {
	c    *clusterEnv
	name string // h1
	ns   string // tse-h1
	vtep string // 10.231.0.1
	sock string
	// state is the daemon's state directory; it survives a restart.
	state   string
	logPath string
	args    []string
	daemon  *proc
}

// clusterOptions shape a clusterEnv.
type clusterOptions struct {
	// hosts is the number of host namespaces (3 when 0).
	hosts int
	// noStore runs no etcd and starts the daemons without --cluster.
	noStore bool
	// etcdMembers, above 1, runs an etcd cluster of that many members
	// on the underlay (10.231.0.10, .11, ...) and gives the daemons
	// every member's URL.
	etcdMembers int
	// args gives host i (1-based) extra tapswitchd arguments.
	args func(i int) []string
	// noDaemon leaves host i without a tapswitchd (a kernel-only host).
	noDaemon func(i int) bool
}

// newCluster builds the underlay, the hosts, etcd and the daemons.
func newCluster(t *testing.T, o clusterOptions) *clusterEnv {
	t.Helper()
	requirePrivileged(t, "ip", "ping", "iperf3", "ss", "bridge")
	if o.hosts == 0 {
		o.hosts = 3
	}
	dir, err := os.MkdirTemp("", "tse")
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterEnv{t: t, dir: dir}
	t.Cleanup(c.cleanup)

	c.addNetns(t, ulNetns)
	c.mustIP(t, ulNetns, "link", "add", ulBridge, "mtu", fmt.Sprint(ulMTU), "type", "bridge")
	c.mustIP(t, ulNetns, "addr", "add", etcdAddr+"/24", "dev", ulBridge)
	c.mustIP(t, ulNetns, "link", "set", ulBridge, "up")
	var etcdURLs string
	switch {
	case o.noStore:
	case o.etcdMembers > 1:
		addrs := []string{etcdAddr}
		for i := 1; i < o.etcdMembers; i++ {
			a := fmt.Sprintf("%s%d", ulPrefix, 10+i)
			c.mustIP(t, ulNetns, "addr", "add", a+"/24", "dev", ulBridge)
			addrs = append(addrs, a)
		}
		c.etcds = etcdtest.StartCluster(t, etcdtest.ClusterOptions{Members: o.etcdMembers, Netns: ulNetns, Addrs: addrs})
		etcdURLs = strings.Join(c.etcds.URLs(), ",")
	default:
		c.etcd = etcdtest.Start(t, etcdtest.Options{Netns: ulNetns, Addr: etcdAddr})
		etcdURLs = c.etcd.URL()
	}
	// Cleanups run last first: the daemons stop before etcd does (its
	// Cleanup was registered by Start), so that they leave the cluster
	// as they would in life.
	t.Cleanup(c.stopDaemons)
	for i := 1; i <= o.hosts; i++ {
		h := &clusterHost{
			c:       c,
			name:    fmt.Sprintf("h%d", i),
			ns:      fmt.Sprintf("tse-h%d", i),
			vtep:    fmt.Sprintf("%s%d", ulPrefix, i),
			sock:    filepath.Join(dir, fmt.Sprintf("h%d.sock", i)),
			state:   filepath.Join(dir, fmt.Sprintf("h%d.state", i)),
			logPath: filepath.Join(dir, fmt.Sprintf("h%d.log", i)),
		}
		c.hosts = append(c.hosts, h)
		c.joinUnderlay(t, h.ns, h.vtep)
		h.args = []string{
			"--socket", h.sock,
			"--state-dir", h.state,
			"--log-level", "debug",
			"--advertise", h.vtep,
		}
		if i%2 == 0 {
			// Every other host receives on two sockets, so that the
			// tests cross between hosts of one and of several.
			h.args = append(h.args, "--vxlan-receivers", "2")
		}
		if !o.noStore {
			h.args = append(h.args,
				"--cluster", "etcd="+etcdURLs,
				"--cluster-host", h.name,
				"--cluster-ttl", clusterTTL.String())
		}
		if o.args != nil {
			h.args = append(h.args, o.args(i)...)
		}
	}
	for i, h := range c.hosts {
		if o.noDaemon != nil && o.noDaemon(i+1) {
			continue
		}
		h.start(t)
	}
	return c
}

// host returns host i, 1-based.
func (c *clusterEnv) host(i int) *clusterHost { return c.hosts[i-1] }

// addNetns makes namespace name with its loopback up, to be removed at
// cleanup. The names are fixed (the task's tse-*): one left by a run that
// was killed before its cleanup is removed first.
func (c *clusterEnv) addNetns(t *testing.T, name string) {
	t.Helper()
	if namespace.Exists(nsPath(name)) {
		t.Logf("removing namespace %s left by an earlier run", name)
		run("ip", "netns", "del", name)
	}
	if out, err := run("ip", "netns", "add", name); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	c.namespaces = append(c.namespaces, name)
	c.mustIP(t, name, "link", "set", "lo", "up")
}

// joinUnderlay gives namespace ns a veth to the underlay bridge with
// address a/24. The veth is made inside the namespaces, so nothing ever
// appears in the test's own.
func (c *clusterEnv) joinUnderlay(t *testing.T, ns, a string) {
	t.Helper()
	c.addNetns(t, ns)
	port := ns + "-ul" // tse-h1-ul: the bridge's port in tse-ul
	c.mustIP(t, ulNetns, "link", "add", port, "mtu", fmt.Sprint(ulMTU), "type", "veth", "peer", "name", ulIfname, "netns", ns)
	c.mustIP(t, ulNetns, "link", "set", port, "master", ulBridge, "up")
	c.mustIP(t, ns, "link", "set", ulIfname, "mtu", fmt.Sprint(ulMTU), "up")
	c.mustIP(t, ns, "addr", "add", a+"/24", "dev", ulIfname)
}

// mustIP runs ip inside ns (the -n form, which needs no mount namespace).
func (c *clusterEnv) mustIP(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := run("ip", append([]string{"-n", ns}, args...)...)
	if err != nil {
		t.Fatalf("ip -n %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return out
}

// container makes a namespace for a container called name ("tse" and a
// random suffix, so that runs never meet) and attaches it through host h
// as port name, with the extra attach args. It returns the namespace.
func (c *clusterEnv) container(t *testing.T, h *clusterHost, name, network string, args ...string) string {
	t.Helper()
	ns := c.newContainerNetns(t, name)
	h.attach(t, ns, name, network, args...)
	return ns
}

// newContainerNetns makes an empty namespace for container name.
func (c *clusterEnv) newContainerNetns(t *testing.T, name string) string {
	t.Helper()
	for range 20 {
		ns := fmt.Sprintf("tse%04x%s", rand.N(0x10000), name)
		if len(ns) > 15 {
			ns = ns[:15]
		}
		if namespace.Exists(nsPath(ns)) {
			continue
		}
		c.addNetns(t, ns)
		c.containers = append(c.containers, ns)
		return ns
	}
	t.Fatal("no free namespace name")
	return ""
}

// start starts h's tapswitchd inside h's namespace with ip netns exec, as
// an administrator would, and waits until it accepts on its socket.
func (h *clusterHost) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- tapswitchd %s (%s) ---\n", strings.Join(h.args, " "), time.Now().Format(time.RFC3339Nano))
	// ip netns exec execs tapswitchd, so the pid is the daemon's.
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, filepath.Join(binDir, "tapswitchd")}, h.args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("start tapswitchd in %s: %v", h.ns, err)
	}
	h.daemon = p
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.done:
			t.Fatalf("tapswitchd of %s exited before accepting on %s: %v\n%s", h.name, h.sock, p.err, h.log())
		default:
		}
		conn, err := net.DialTimeout("unix", h.sock, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: tapswitchd of %s not accepting after %v: %v\n%s", h.sock, h.name, startTimeout, err, h.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM to h's daemon and waits for it, killing it after
// stopTimeout; it returns what went wrong.
func (h *clusterHost) stop() error {
	p := h.daemon
	if p == nil {
		return nil
	}
	h.daemon = nil
	select {
	case <-p.done:
		return fmt.Errorf("tapswitchd of %s had exited: %v", h.name, p.err)
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(stopTimeout); err != nil {
		p.kill()
		return fmt.Errorf("tapswitchd of %s after SIGTERM: %w", h.name, err)
	}
	return nil
}

// kill9 kills h's daemon with SIGKILL, as a crash would, and waits for it.
func (h *clusterHost) kill9(t *testing.T) {
	t.Helper()
	p := h.daemon
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 tapswitchd of %s (pid %d): %v", h.name, p.cmd.Process.Pid, err)
	}
	if err := p.wait(stopTimeout); err == nil {
		t.Fatalf("tapswitchd of %s exited 0 after SIGKILL", h.name)
	}
	h.daemon = nil
}

// log is the tail of h's daemon log.
func (h *clusterHost) log() string {
	b, err := os.ReadFile(h.logPath)
	if err != nil {
		return fmt.Sprintf("(no log of %s: %v)", h.name, err)
	}
	const max = 200
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > max {
		lines = append([]string{fmt.Sprintf("(%d lines before)", len(lines)-max)}, lines[len(lines)-max:]...)
	}
	return fmt.Sprintf("--- tapswitchd log of %s ---\n%s", h.name, strings.Join(lines, "\n"))
}

// stopDaemons stops every host's daemon that still runs.
func (c *clusterEnv) stopDaemons() {
	for _, h := range c.hosts {
		if err := h.stop(); err != nil {
			c.t.Errorf("stop: %v", err)
		}
	}
}

func (c *clusterEnv) cleanup() {
	c.stopDaemons()
	if c.t.Failed() {
		for _, h := range c.hosts {
			if _, err := os.Stat(h.logPath); err == nil {
				c.t.Log(h.log())
			}
		}
	}
	// etcd goes with its own Cleanup, registered after ours, so before
	// this runs; its namespace is removed here.
	removeStarted(c.t, c.procs, c.namespaces)
	for _, ns := range c.containers {
		os.RemoveAll(filepath.Join(netnsEtcDir, ns))
	}
	os.RemoveAll(c.dir)
}

// cli runs tapswitch against h's daemon.
func (h *clusterHost) cli(t *testing.T, args ...string) cliResult {
	t.Helper()
	return runCLI(t, h.sock, args...)
}

// runCLIQuiet runs tapswitch against the daemon on sock, for use from
// goroutines other than the test's: it fails no test, and a failure to
// run at all is exit code -1 with the error as stderr.
func runCLIQuiet(sock string, args ...string) cliResult {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "tapswitch"), append([]string{"--socket", sock}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		return cliResult{stderr: err.Error(), code: -1}
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// mustCLI runs tapswitch against h's daemon and fails t unless it
// succeeds.
func (h *clusterHost) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	r := h.cli(t, args...)
	if r.code != 0 {
		t.Fatalf("%s: tapswitch %s: exit code %d\n%s", h.name, strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// mustJSON runs tapswitch with args and decodes its output into v.
func (h *clusterHost) mustJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := h.mustCLI(t, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: tapswitch %s: %v\n%s", h.name, strings.Join(args, " "), err, out)
	}
}

// attach attaches namespace ns to network through h as port name.
func (h *clusterHost) attach(t *testing.T, ns, name, network string, args ...string) {
	t.Helper()
	h.mustCLI(t, append([]string{"attach", ns, "--name", name, "--network", network}, args...)...)
}

// networks is h's tapswitch network ls -o json.
func (h *clusterHost) networks(t *testing.T) []api.Network {
	t.Helper()
	var nets []api.Network
	h.mustJSON(t, &nets, "network", "ls", "-o", "json")
	return nets
}

// network returns h's network called name, or nil.
func (h *clusterHost) network(t *testing.T, name string) *api.Network {
	t.Helper()
	for _, n := range h.networks(t) {
		if n.Name == name {
			return &n
		}
	}
	return nil
}

// inspect is h's tapswitch network inspect name -o json.
func (h *clusterHost) inspect(t *testing.T, name string) api.NetworkDetail {
	t.Helper()
	var d api.NetworkDetail
	h.mustJSON(t, &d, "network", "inspect", name, "-o", "json")
	return d
}

// status is h's tapswitch status -o json.
func (h *clusterHost) status(t *testing.T) api.Status {
	t.Helper()
	var s api.Status
	h.mustJSON(t, &s, "status", "-o", "json")
	return s
}

// tunnelDrops is h's tunnel's dropped packets by reason, from status.
func (h *clusterHost) tunnelDrops(t *testing.T) map[string]uint64 {
	t.Helper()
	s := h.status(t)
	if s.Tunnel == nil {
		t.Fatalf("%s: tapswitch status shows no tunnel", h.name)
	}
	return s.Tunnel.Dropped
}

// peers is h's tapswitch peers -o json.
func (h *clusterHost) peers(t *testing.T) []api.Peer {
	t.Helper()
	var ps []api.Peer
	h.mustJSON(t, &ps, "peers", "-o", "json")
	return ps
}

// findPeer returns the peer whose VTEP is vtep, or nil.
func findPeer(ps []api.Peer, vtep string) *api.Peer {
	for i := range ps {
		if ps[i].VTEP == vtep {
			return &ps[i]
		}
	}
	return nil
}

// poll calls check until it returns "" (done) or settle passes, when it
// fails t with check's last word. It returns how long it took, for the log.
func poll(t *testing.T, what string, check func() string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(settle)
	for {
		why := check()
		if why == "" {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v: %s", what, settle, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pingName pings name (resolved by the container's resolver: the
// network's DNS) from container namespace ns.
func pingName(ns, name string, args ...string) (string, error) {
	return nsRun(ns, append([]string{"ping", "-n", "-c", "3", "-i", "0.2", "-W", "2"}, append(args, name)...)...)
}

func mustPingName(t *testing.T, ns, name string) {
	t.Helper()
	if out, err := pingName(ns, name); err != nil {
		t.Fatalf("ip netns exec %s ping %s: %v\n%s", ns, name, err, out)
	}
}

// containerAddr is the IPv4 address of eth0 in ns.
func containerAddr(t *testing.T, ns string) string {
	t.Helper()
	out, err := nsRun(ns, "ip", "-j", "-4", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatalf("ip addr show eth0 in %s: %v\n%s", ns, err, out)
	}
	var ifs []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &ifs); err != nil || len(ifs) != 1 || len(ifs[0].AddrInfo) == 0 {
		t.Fatalf("ip -j addr show eth0 in %s: %v\n%s", ns, err, out)
	}
	return ifs[0].AddrInfo[0].Local
}

// iperfServer starts iperf3 -s bound to ip on port in ns and waits
// until it listens. It runs until the test ends.
func (c *clusterEnv) iperfServer(t *testing.T, ns, ip string, port int) {
	t.Helper()
	logPath := filepath.Join(c.dir, fmt.Sprintf("iperf3-%s-%d.log", ns, port))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, "iperf3", "-s", "-B", ip, "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = f, f
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("iperf3 -s in %s: %v", ns, err)
	}
	c.procs = append(c.procs, p)
	sport := fmt.Sprintf(":%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("iperf3 -s in %s exited: %v\n%s", ns, p.err, b)
		default:
		}
		out, err := nsRun(ns, "ss", "-Htln", "sport", "= "+sport)
		if err == nil && strings.Contains(out, sport) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("iperf3 -s in %s: not listening on %s after 10s: %v\n%s", ns, sport, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterIperf is an iperf3 client started in the background.
type clusterIperf struct {
	desc           string
	p              *proc
	stdout, stderr bytes.Buffer
}

// startIperf starts iperf3 -c name -p port -J inside ns with the extra
// args; name resolves through the container's resolver.
func (c *clusterEnv) startIperf(t *testing.T, ns, name string, port int, args ...string) *clusterIperf {
	t.Helper()
	args = append([]string{"netns", "exec", ns, "iperf3", "-c", name, "-p", fmt.Sprint(port), "-J", "--connect-timeout", "5000"}, args...)
	r := &clusterIperf{desc: "ip " + strings.Join(args, " ")}
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &r.stdout, &r.stderr
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("%s: %v", r.desc, err)
	}
	r.p = p
	c.procs = append(c.procs, p)
	return r
}

// result waits for the client and fails t unless it succeeded and moved
// data both ways it was asked to.
func (r *clusterIperf) result(t *testing.T, timeout time.Duration) *iperfRun {
	t.Helper()
	err := r.p.wait(timeout)
	if err != nil {
		// Stuck (a stream that stopped moving): end it to read what it
		// has to say.
		r.p.kill()
	}
	var res iperfRun
	if jerr := json.Unmarshal(r.stdout.Bytes(), &res); jerr != nil {
		t.Fatalf("%s: %v (exit: %v)\n%s%s", r.desc, jerr, err, r.stdout.String(), r.stderr.String())
	}
	if err != nil || res.Error != "" {
		t.Fatalf("%s: %v: %s\n%s", r.desc, err, res.Error, r.stderr.String())
	}
	if res.End.SumReceived.Bytes == 0 {
		t.Fatalf("%s: nothing received", r.desc)
	}
	return &res
}

// iperf runs an iperf3 client to completion: see result.
func (c *clusterEnv) iperf(t *testing.T, ns, name string, port int, args ...string) *iperfRun {
	t.Helper()
	return c.startIperf(t, ns, name, port, args...).result(t, time.Minute)
}

// sendUDP sends payload from inside namespace ns (from an ephemeral
// port of its address toward dst) to dst:port.
func sendUDP(t *testing.T, ns, dst string, port int, payload []byte) {
	t.Helper()
	err := namespace.Do(nsPath(ns), func() error {
		conn, err := net.Dial("udp4", net.JoinHostPort(dst, fmt.Sprint(port)))
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Write(payload)
		return err
	})
	if err != nil {
		t.Fatalf("send %d bytes from %s to %s:%d: %v", len(payload), ns, dst, port, err)
	}
}

// vxlanPacket is a VXLAN payload (RFC 7348: flags with the I bit, the VNI
// in bytes 4-6) around a broadcast ARP request of src for target.
func vxlanPacket(vni uint32, src net.HardwareAddr, sender, target net.IP) []byte {
	b := []byte{0x08, 0, 0, 0, byte(vni >> 16), byte(vni >> 8), byte(vni), 0}
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, src...)
	b = append(b, 0x08, 0x06)
	// ARP: Ethernet, IPv4, lengths 6 and 4, request.
	b = append(b, 0, 1, 8, 0, 6, 4, 0, 1)
	b = append(b, src...)
	b = append(b, sender.To4()...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, target.To4()...)
	// Padding to the 60-byte minimum frame.
	return append(b, make([]byte, 18)...)
}
