package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/namespace"
	"golang.org/x/sys/unix"
)

// The Docker comparison (-docker): two containers on a network of
// Docker's own bridge driver next to two on a tapswitch network, both
// networks of one private dockerd, measured in turns with the host's
// iperf3 and sockperf run in the containers' network namespaces.

// dockerClient is Debian's docker.io client, which matches its 20.10
// daemon; another, newer client may come first on PATH.
const dockerClient = "/usr/bin/docker"

// dockerBridgeName is the Linux bridge Docker's bridge driver makes for
// the run's bridge network.
const dockerBridgeName = "dbxbr0"

// The networks' subnets. Docker's default IPAM refuses overlapping
// pools, so the two networks cannot share one as the namespace passes do.
const (
	dockerBridgeSubnet    = "10.151.1.0/24"
	dockerTapswitchSubnet = "10.151.2.0/24"
)

// dockerSystems are the two halves, in the order each round runs them.
var dockerSystems = []string{"bridge", "tapswitch"}

// dockerTests are the rows of the Docker comparison: bulk TCP and
// round-trip latency, what containers talking to each other feel.
func dockerTests() ([]test, []metric) {
	return []test{testTCP1, testTCP4, testRTT},
		[]metric{metricTCP1, metricTCP4, metricRTTAvg, metricRTTP99}
}

// dockerStartTimeout bounds the wait for dockerd's API: its first start
// on an empty data root takes a few seconds on a busy 2-CPU VM.
const dockerStartTimeout = 60 * time.Second

// dockerStopGrace is how long dockerd, with no container left, may take
// to exit on SIGTERM before it is killed.
const dockerStopGrace = 30 * time.Second

// cleanups undo what a run made, last made first.
type cleanups []func() error

func (c *cleanups) add(f func() error) { *c = append(*c, f) }

func (c *cleanups) run() error {
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		if err := (*c)[i](); err != nil {
			errs = append(errs, err)
		}
	}
	*c = nil
	return errors.Join(errs...)
}

// cleanupContext bounds one step of the clean-up; it does not derive
// from the run's context, which an interrupt has cancelled.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// dockerd is the run's private Docker daemon: its data root, exec root,
// pid file and API socket all live in dir, and it touches neither the
// host's firewall (--iptables=false, --ip-forward=false) nor its bridges
// (--bridge=none), nor the containers of another dockerd (its own
// containerd namespace).
type dockerd struct {
	dir    string
	socket string
	proc   *proc
	// cgroupParent holds the containers' cgroups, removed at the end.
	cgroupParent string
	// madePaths are the dockerHostPaths that did not exist before.
	madePaths []string
}

// dockerHostPaths are made by any dockerd whatever its flags: its trust
// key, and the directory Docker looks for plugin sockets in. Those the
// run made are removed at the end, directories only when empty, as
// another dockerd or tapswitchd may be using them.
var dockerHostPaths = []string{"/etc/docker", "/etc/docker/key.json", "/run/docker", dockerPluginDir}

func startDockerd(ctx context.Context, cl *cleanups) (*dockerd, error) {
	dir, err := os.MkdirTemp("", "dbx-")
	if err != nil {
		return nil, err
	}
	d := &dockerd{dir: dir, socket: filepath.Join(dir, "docker.sock"), cgroupParent: fmt.Sprintf("/dbx-%d", pidForNames)}
	for _, p := range dockerHostPaths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			d.madePaths = append(d.madePaths, p)
		}
	}
	cl.add(d.remove)
	// An empty configuration file keeps /etc/docker/daemon.json, made for
	// the host's own dockerd, out of the run.
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o600); err != nil {
		return nil, err
	}
	ns := fmt.Sprintf("dbx-%d", pidForNames)
	d.proc, err = startProc("dockerd",
		"--config-file", config,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"-H", "unix://"+d.socket,
		"--containerd-namespace", ns,
		"--containerd-plugins-namespace", ns+"-plugins",
		"--cgroup-parent", d.cgroupParent,
		"--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
		"--bridge=none",
		"--log-level", "warn")
	if err != nil {
		return nil, err
	}
	cl.add(d.stop)
	deadline := time.Now().Add(dockerStartTimeout)
	for {
		_, err := d.cli(ctx, "version", "--format", "{{.Server.Version}}")
		if err == nil {
			return d, nil
		}
		if d.proc.exited() {
			return nil, fmt.Errorf("dockerd exited before serving %s: %v\n%s", d.socket, d.proc.err, indent(d.proc.output.String()))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("dockerd not serving %s after %v: %w\ndockerd log:\n%s", d.socket, dockerStartTimeout, err, indent(d.proc.output.String()))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// cli runs Debian's docker client against the run's dockerd.
func (d *dockerd) cli(ctx context.Context, args ...string) (string, error) {
	out, err := run(ctx, dockerClient, append([]string{"-H", "unix://" + d.socket}, args...)...)
	return strings.TrimSpace(out), err
}

// stop stops dockerd by its pid, killing it when it outlasts its grace.
func (d *dockerd) stop() error {
	if d.proc == nil {
		return nil
	}
	err := d.proc.stop(dockerStopGrace)
	d.proc = nil
	return err
}

// remove ends what dockerd left running (its containerd and the
// containers' shims, which name its directory), removes the containers'
// cgroup parent, unmounts whatever is still mounted under its directory
// (overlays, namespace pins), and removes that and the host paths it made.
func (d *dockerd) remove() error {
	var errs []error
	killLeft(d.dir)
	errs = append(errs, removeCgroupParent(d.cgroupParent))
	errs = append(errs, unmountUnder(d.dir))
	if err := os.RemoveAll(d.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove dockerd's directory: %w", err))
	}
	for i := len(d.madePaths) - 1; i >= 0; i-- {
		os.Remove(d.madePaths[i])
	}
	return errors.Join(errs...)
}

// killLeft waits a little for the processes whose command line names dir
// to end, then kills those left, by pid.
func killLeft(dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := procsNaming(dir + "/")
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				logf("docker: killing pid %d, left running by dockerd", pid)
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// procsNaming lists the processes whose command line contains s.
func procsNaming(s string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, p := range dirs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(p, "cmdline")); err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// removeCgroupParent removes the cgroup parent of the run's containers
// from every cgroup hierarchy, deepest first, killing by pid what is
// still in it: only the run's containers can be.
func removeCgroupParent(parent string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range cgroupMounts(data) {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(m, parent), func(path string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			for range 50 {
				b, _ := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs"))
				pids := strings.Fields(string(b))
				if len(pids) == 0 {
					break
				}
				for _, p := range pids {
					if pid, err := strconv.Atoi(p); err == nil {
						_ = unix.Kill(pid, unix.SIGKILL)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// cgroupMounts returns the mount points of the cgroup hierarchies in a
// mountinfo table, v1 and v2.
func cgroupMounts(mountinfo []byte) []string {
	var out []string
	for _, line := range strings.Split(string(mountinfo), "\n") {
		_, after, ok := strings.Cut(line, " - ")
		f, af := strings.Fields(line), strings.Fields(after)
		if !ok || len(f) < 5 || len(af) < 1 {
			continue
		}
		if af[0] == "cgroup" || af[0] == "cgroup2" {
			out = append(out, namespace.UnescapeMountinfo(f[4]))
		}
	}
	return out
}

// unmountUnder unmounts every mount point at or below dir, deepest
// first, detaching those still busy.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	points := mountsUnder(data, dir)
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			if derr := unix.Unmount(p, unix.MNT_DETACH); derr != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, derr))
			}
		}
	}
	return errors.Join(errs...)
}

// mountsUnder returns the mount points of a mountinfo table at or below
// dir, later mounts first, so that a mount on top of another, or inside
// it, goes before it.
func mountsUnder(mountinfo []byte, dir string) []string {
	dir = filepath.Clean(dir)
	var out []string
	for _, line := range strings.Split(string(mountinfo), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := namespace.UnescapeMountinfo(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	slices.Reverse(out)
	return out
}

// busyboxImage is the run's only image, imported from the host's
// busybox-static: no registry is needed.
func busyboxImage() string { return fmt.Sprintf("dbx-busybox:%d", pidForNames) }

// checkStaticBusybox refuses a busybox linked against a libc the image
// does not have.
func checkStaticBusybox(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w; apt-get install -y busybox-static", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is linked dynamically and cannot run alone in an image: apt-get install -y busybox-static", path)
		}
	}
	return nil
}

// busyboxTar is a root file system of busybox alone: bin/busybox and a
// link to it for each applet, which is all a sleeping container and
// docker exec need.
func busyboxTar(binary []byte, applets []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	hdrs := []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: now},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(binary)), ModTime: now}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, err
	}
	seen := map[string]bool{"busybox": true}
	for _, a := range applets {
		a = strings.TrimSpace(a)
		if a == "" || seen[a] || strings.ContainsAny(a, "/ ") {
			continue
		}
		seen[a] = true
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// importBusybox makes the image from the host's busybox.
func importBusybox(ctx context.Context, d *dockerd) error {
	path, err := exec.LookPath("busybox")
	if err != nil {
		return errors.New("busybox not found: apt-get install -y busybox-static")
	}
	if err := checkStaticBusybox(path); err != nil {
		return err
	}
	binary, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	list, err := run(ctx, path, "--list")
	if err != nil {
		return err
	}
	data, err := busyboxTar(binary, strings.Split(list, "\n"))
	if err != nil {
		return fmt.Errorf("image of busybox: %w", err)
	}
	args := []string{"-H", "unix://" + d.socket, "import", "-", busyboxImage()}
	cmd := command(ctx, dockerClient, args...)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", commandLine(dockerClient, args), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// container is one of the four: its network namespace is /proc/PID/ns/net.
type container struct {
	name    string
	pid     int
	ip, mac string
}

// dockerInspectFormat gives what parseInspect reads: the pid, then the
// address and MAC on each network.
const dockerInspectFormat = `{{.State.Pid}}{{range .NetworkSettings.Networks}} {{.IPAddress}} {{.MacAddress}}{{end}}`

// parseInspect reads dockerInspectFormat's output for a container on
// one network.
func parseInspect(name, out string) (container, error) {
	f := strings.Fields(out)
	if len(f) != 3 {
		return container{}, fmt.Errorf("docker inspect %s: want a pid, an address and a MAC on one network, got %q", name, out)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return container{}, fmt.Errorf("docker inspect %s: %q is no pid of a running container", name, f[0])
	}
	if net.ParseIP(f[1]) == nil {
		return container{}, fmt.Errorf("docker inspect %s: %q is no IP address", name, f[1])
	}
	if _, err := net.ParseMAC(f[2]); err != nil {
		return container{}, fmt.Errorf("docker inspect %s: %q is no MAC address", name, f[2])
	}
	return container{name: name, pid: pid, ip: f[1], mac: strings.ToLower(f[2])}, nil
}

// enter is the command prefix that runs a host program in c's network
// namespace, with the host's file system: the image has no iperf3.
func (c container) enter() []string {
	return []string{"nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", c.pid)}
}

// dockerPair is one half of the comparison: a network and two
// containers on it, a the client, b the server.
type dockerPair struct {
	system  string
	network string
	a, b    container
	// mtu is eth0's MTU in a, for the notes.
	mtu string
	// tsd is tapswitchd, for the tapswitch half.
	tsd *tapswitchSystem
}

func (p *dockerPair) testbed() *testbed {
	tb := &testbed{enterA: p.a.enter(), enterB: p.b.enter(), serverAddr: p.b.ip}
	if p.tsd != nil {
		tb.switchPID = p.tsd.switchPID()
	}
	return tb
}

// startContainers runs the pair's two sleeping containers on its network.
func (p *dockerPair) startContainers(ctx context.Context, d *dockerd, cl *cleanups) error {
	for _, c := range []*container{&p.a, &p.b} {
		name := c.name
		cl.add(func() error {
			ctx, cancel := cleanupContext()
			defer cancel()
			// A container that was never made is no error.
			if _, err := d.cli(ctx, "container", "inspect", "--format", "{{.Id}}", name); err != nil {
				return nil
			}
			_, err := d.cli(ctx, "rm", "-f", name)
			return err
		})
		if _, err := d.cli(ctx, "run", "-d", "--name", name, "--network", p.network, busyboxImage(), "sleep", "86400"); err != nil {
			return err
		}
		out, err := d.cli(ctx, "inspect", "--format", dockerInspectFormat, name)
		if err != nil {
			return err
		}
		if *c, err = parseInspect(name, out); err != nil {
			return err
		}
	}
	mtu, err := d.cli(ctx, "exec", p.a.name, "cat", "/sys/class/net/eth0/mtu")
	if err != nil {
		return err
	}
	p.mtu = mtu
	return nil
}

// isTAP reports whether eth0 in c is a TUN/TAP device, which a veth is
// not: only a TAP has tun_flags.
func isTAP(ctx context.Context, d *dockerd, c container) bool {
	_, err := d.cli(ctx, "exec", c.name, "test", "-e", "/sys/class/net/eth0/tun_flags")
	return err == nil
}

// checkBridgePair checks that the bridge half really goes through
// Docker's bridge: both containers' eth0 are veths enslaved to it.
func checkBridgePair(ctx context.Context, d *dockerd, p *dockerPair) error {
	for _, c := range []container{p.a, p.b} {
		if isTAP(ctx, d, c) {
			return fmt.Errorf("%s: eth0 is a TAP, not a veth of Docker's bridge", c.name)
		}
	}
	ifs, err := os.ReadDir(filepath.Join("/sys/class/net", dockerBridgeName, "brif"))
	if err != nil {
		return fmt.Errorf("the bridge %s of the bridge network: %w", dockerBridgeName, err)
	}
	if len(ifs) != 2 {
		return fmt.Errorf("the bridge %s of the bridge network has %d ports, want the 2 containers' veths", dockerBridgeName, len(ifs))
	}
	return nil
}

// verifyPings is how many echo requests the check of the tapswitch half
// sends; each must show in both ports' counters, both ways.
const verifyPings = 5

// checkTapswitchPair checks, before anything is measured, that the
// tapswitch half really crosses tapswitch: both containers' eth0 are
// TAPs and pings between them move both ports' counters both ways.
func checkTapswitchPair(ctx context.Context, d *dockerd, p *dockerPair) error {
	for _, c := range []container{p.a, p.b} {
		if !isTAP(ctx, d, c) {
			return fmt.Errorf("%s: eth0 has no tun_flags: it is not a tapswitch TAP", c.name)
		}
	}
	before, err := tapswitchPortCounters(ctx, p.tsd)
	if err != nil {
		return err
	}
	name, args := inNetns(p.a.enter(), "ping", "-c", strconv.Itoa(verifyPings), "-i", "0.2", "-W", "2", p.b.ip)
	if _, err := run(ctx, name, args...); err != nil {
		return err
	}
	after, err := tapswitchPortCounters(ctx, p.tsd)
	if err != nil {
		return err
	}
	return countersMoved(before, after, []container{p.a, p.b}, verifyPings)
}

// tapswitchPortCounters reads every port's counters, by MAC.
func tapswitchPortCounters(ctx context.Context, tsd *tapswitchSystem) (map[string]api.PortCounters, error) {
	out, err := tsd.cli(ctx, "ports", "-o", "json")
	if err != nil {
		return nil, tsd.withDaemonLog(err)
	}
	return parsePortCounters([]byte(out))
}

// parsePortCounters reads `tapswitch ports -o json`: a list of ports, or
// an object holding one under "ports".
func parsePortCounters(data []byte) (map[string]api.PortCounters, error) {
	var ports []api.Port
	if err := json.Unmarshal(data, &ports); err != nil {
		var wrapped struct {
			Ports []api.Port `json:"ports"`
		}
		if werr := json.Unmarshal(data, &wrapped); werr != nil {
			return nil, fmt.Errorf("read tapswitch ports -o json: %w", err)
		}
		ports = wrapped.Ports
	}
	out := map[string]api.PortCounters{}
	for _, p := range ports {
		out[strings.ToLower(p.MAC)] = p.Stats
	}
	return out, nil
}

// countersMoved checks that the port of each container received and sent
// at least n frames between two readings.
func countersMoved(before, after map[string]api.PortCounters, cs []container, n uint64) error {
	for _, c := range cs {
		b, okB := before[c.mac]
		a, okA := after[c.mac]
		if !okB || !okA {
			var macs []string
			for m := range after {
				macs = append(macs, m)
			}
			slices.Sort(macs)
			return fmt.Errorf("tapswitch has no port with %s's MAC %s (its ports' MACs: %s): the container is not on tapswitch",
				c.name, c.mac, strings.Join(macs, ", "))
		}
		if a.RxFrames-b.RxFrames < n || a.TxFrames-b.TxFrames < n {
			return fmt.Errorf("%d pings between the containers moved %s's tapswitch port by %d frames in and %d out, want at least %d each: the traffic does not cross tapswitch",
				n, c.name, a.RxFrames-b.RxFrames, a.TxFrames-b.TxFrames, n)
		}
	}
	return nil
}

// randomPluginName is the run's plugin name: the plugin directory is
// shared by every dockerd on the machine.
func randomPluginName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "db-" + hex.EncodeToString(b)
}

// dockerPluginDir is where Docker looks for plugins' sockets.
const dockerPluginDir = "/run/docker/plugins"

// pluginSocketTimeout bounds the wait for tapswitchd's plugin socket
// once its API answers.
const pluginSocketTimeout = 10 * time.Second

// startTapswitchDriver starts the run's tapswitchd with the Docker driver
// on plugin and waits for the plugin's socket.
func startTapswitchDriver(ctx context.Context, cfg *config, plugin string, cl *cleanups) (*tapswitchSystem, error) {
	tsd := newTapswitchSystem("tapswitch", cfg.tapswitchd, cfg.tapswitch)
	tsd.extraArgs = []string{"--docker", "--docker-plugin", plugin}
	sock := filepath.Join(dockerPluginDir, plugin+".sock")
	cl.add(func() error {
		err := tsd.teardown()
		// tapswitchd removes its socket on exit; a killed one cannot.
		if rerr := os.Remove(sock); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		return err
	})
	if err := tsd.start(ctx); err != nil {
		if tsd.daemon != nil && strings.Contains(tsd.daemon.output.String(), "unknown flag: --docker") {
			return nil, fmt.Errorf("%s has no Docker network driver (it does not know --docker): build tapswitchd with it, or run the bridge half alone with -only bridge", cfg.tapswitchd)
		}
		return nil, err
	}
	deadline := time.Now().Add(pluginSocketTimeout)
	for {
		if fi, err := os.Stat(sock); err == nil && fi.Mode().Type() == os.ModeSocket {
			return tsd, nil
		}
		if tsd.daemon.exited() {
			return nil, fmt.Errorf("tapswitchd exited before serving the plugin socket %s: %v\n%s", sock, tsd.daemon.err, indent(tsd.daemon.output.String()))
		}
		if time.Now().After(deadline) {
			return nil, tsd.withDaemonLog(fmt.Errorf("tapswitchd --docker serves no plugin socket %s after %v", sock, pluginSocketTimeout))
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// removeLeftoverTAPs deletes the TAPs of containers, found in the host's
// namespace by their MAC, that neither Docker nor tapswitchd deleted once
// the containers were removed and tapswitchd stopped, and says so: the
// run must leave nothing behind, and a TAP left is a leak to fix.
func removeLeftoverTAPs(cs []container) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if c.mac == "" {
			continue
		}
		for _, ifc := range ifs {
			if !strings.EqualFold(ifc.HardwareAddr.String(), c.mac) {
				continue
			}
			if _, err := os.Stat(filepath.Join("/sys/class/net", ifc.Name, "tun_flags")); err != nil {
				continue
			}
			ctx, cancel := cleanupContext()
			_, err := run(ctx, "ip", "link", "delete", ifc.Name)
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, fmt.Errorf("the TAP %s of container %s (MAC %s) was still in the host's namespace after the container was removed and tapswitchd stopped; the bench deleted it", ifc.Name, c.name, c.mac))
		}
	}
	return errors.Join(errs...)
}

// createNetwork makes a Docker network and has it removed at the end.
func createNetwork(ctx context.Context, d *dockerd, cl *cleanups, name string, args ...string) error {
	cl.add(func() error {
		ctx, cancel := cleanupContext()
		defer cancel()
		if _, err := d.cli(ctx, "network", "inspect", "--format", "{{.Id}}", name); err != nil {
			return nil
		}
		_, err := d.cli(ctx, "network", "rm", name)
		return err
	})
	_, err := d.cli(ctx, append(append([]string{"network", "create"}, args...), name)...)
	return err
}

// setupBridgePair makes the bridge half: a network of Docker's bridge
// driver on dbxbr0 and its two containers.
func setupBridgePair(ctx context.Context, d *dockerd, cl *cleanups) (*dockerPair, error) {
	if linkExists(ctx, dockerBridgeName) {
		return nil, fmt.Errorf("a link %s already exists: left over from an earlier run, or another run is going on; when none is, remove it with: ip link delete %s", dockerBridgeName, dockerBridgeName)
	}
	p := dockerPair{system: "bridge", network: fmt.Sprintf("dbx-%d-bridge", pidForNames)}
	if err := createNetwork(ctx, d, cl, p.network, "-d", "bridge", "--subnet", dockerBridgeSubnet,
		"-o", "com.docker.network.bridge.name="+dockerBridgeName); err != nil {
		return nil, err
	}
	p.a.name, p.b.name = p.network+"-a", p.network+"-b"
	if err := p.startContainers(ctx, d, cl); err != nil {
		return nil, err
	}
	if err := checkBridgePair(ctx, d, &p); err != nil {
		return nil, err
	}
	// As for tapswitch: the first frames fill the ARP caches and the
	// bridge's table, which the first test would otherwise be charged.
	if err := waitPingIn(ctx, p.a.enter(), p.b.ip, 10*time.Second); err != nil {
		return nil, err
	}
	return &p, nil
}

// setupTapswitchPair makes the tapswitch half: tapswitchd with the
// Docker driver, a network of that driver and its two containers, and
// checks that their traffic crosses tapswitch.
func setupTapswitchPair(ctx context.Context, cfg *config, d *dockerd, cl *cleanups) (*dockerPair, error) {
	p := dockerPair{system: "tapswitch", network: fmt.Sprintf("dbx-%d-tapswitch", pidForNames)}
	// Runs after tapswitchd has stopped, the containers being gone.
	cl.add(func() error { return removeLeftoverTAPs([]container{p.a, p.b}) })
	plugin := randomPluginName()
	tsd, err := startTapswitchDriver(ctx, cfg, plugin, cl)
	if err != nil {
		return nil, err
	}
	p.tsd = tsd
	if err := createNetwork(ctx, d, cl, p.network, "-d", plugin, "--subnet", dockerTapswitchSubnet); err != nil {
		return nil, tsd.withDaemonLog(err)
	}
	p.a.name, p.b.name = p.network+"-a", p.network+"-b"
	if err := p.startContainers(ctx, d, cl); err != nil {
		return nil, tsd.withDaemonLog(err)
	}
	if err := waitPingIn(ctx, p.a.enter(), p.b.ip, 10*time.Second); err != nil {
		return nil, tsd.withDaemonLog(err)
	}
	if err := checkTapswitchPair(ctx, d, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// dockerRunOrder interleaves the halves: each round runs every system
// once, in turn; with bracket the first runs once more at the end.
func dockerRunOrder(systems []string, rounds int, bracket bool) []string {
	var out []string
	for range rounds {
		out = append(out, systems...)
	}
	if bracket && len(systems) > 1 {
		out = append(out, systems[0])
	}
	return out
}

// dockerVersion is the server's version, for the JSON.
func dockerVersion(ctx context.Context, d *dockerd) string {
	v, err := d.cli(ctx, "version", "--format", "{{.Server.Version}}")
	if err != nil {
		return ""
	}
	return v
}

// runDockerMain is -docker: everything it starts and makes is removed
// before it returns, also when it fails or is interrupted.
func runDockerMain(cfg *config) (err error) {
	for _, t := range []string{dockerClient, "dockerd", "nsenter", "sockperf"} {
		if _, lerr := exec.LookPath(t); lerr != nil {
			return fmt.Errorf("%s not found: apt-get install -y docker.io util-linux sockperf", t)
		}
	}
	systems := dockerSystems
	if cfg.only != nil {
		systems = cfg.only
	}
	if slices.Contains(systems, "tapswitch") {
		if err := errors.Join(executable(cfg.tapswitchd), executable(cfg.tapswitch)); err != nil {
			return fmt.Errorf("tapswitch: %v; build it with `make build`, point -tapswitchd and -tapswitch at the binaries, or run the bridge half alone with -only bridge", err)
		}
	}

	// The first signal cancels the run; the clean-up then runs under its
	// own timeouts, with signals still caught, so that a second Ctrl-C
	// cannot leave dockerd and its mounts behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var cl cleanups
	defer func() {
		logf("docker: removing containers, networks, image, tapswitchd and dockerd")
		if cerr := cl.run(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean-up: %w", cerr))
		}
	}()

	tests, metrics := dockerTests()
	runs := dockerRunOrder(systems, cfg.rounds, cfg.bracket)
	rep := &report{
		Date:           time.Now().UTC(),
		Machine:        readMachine(),
		SecondsPerTest: cfg.seconds,
		Tools:          toolVersions(ctx, cfg, systems),
		Metrics:        metrics,
		Setting:        "between two Docker containers, same dockerd",
	}
	start := time.Now()

	logf("docker: starting a private dockerd")
	d, err := startDockerd(ctx, &cl)
	if err != nil {
		return interrupted(ctx, fmt.Errorf("dockerd: %w", err))
	}
	rep.Tools["dockerd"] = dockerVersion(ctx, d)
	if err := importBusybox(ctx, d); err != nil {
		return interrupted(ctx, err)
	}
	cl.add(func() error {
		ctx, cancel := cleanupContext()
		defer cancel()
		_, err := d.cli(ctx, "image", "rm", busyboxImage())
		return err
	})

	pairs := map[string]*dockerPair{}
	var failed []passResult
	for _, sys := range systems {
		logf("docker: setting up the %s half", sys)
		var p *dockerPair
		var err error
		switch sys {
		case "bridge":
			p, err = setupBridgePair(ctx, d, &cl)
		case "tapswitch":
			p, err = setupTapswitchPair(ctx, cfg, d, &cl)
		}
		if ctx.Err() != nil {
			return errInterrupted
		}
		if err != nil {
			logf("docker: %s half: %v", sys, err)
			failed = append(failed, passResult{System: sys, Pass: 1, Started: time.Now().UTC(), Error: "setup: " + err.Error()})
			continue
		}
		pairs[sys] = p
	}
	if len(pairs) == 0 {
		rep.Systems = failed
		_ = rep.writeTable(os.Stdout)
		return errors.New("no half of the comparison could be set up")
	}
	runs = slices.DeleteFunc(runs, func(s string) bool { return pairs[s] == nil })

	prog := newProgress(os.Stderr, len(runs)*len(tests), time.Duration(cfg.seconds)*time.Second+stepOverhead)
	passes := map[string]int{}
	for i, sys := range runs {
		if i > 0 {
			if err := sleep(ctx, pause); err != nil {
				break
			}
		}
		passes[sys]++
		label := fmt.Sprintf("pass %d of %d, %s", i+1, len(runs), sys)
		if passes[sys] > 1 {
			label += " again"
		}
		p := pairs[sys]
		pr := passResult{System: sys, Pass: passes[sys], Started: time.Now().UTC()}
		if err := runTests(ctx, p.testbed(), &pr, tests, cfg.seconds, prog, label); err != nil {
			pr.Error = err.Error()
		}
		rep.Systems = append(rep.Systems, pr)
		if ctx.Err() != nil {
			return errInterrupted
		}
	}
	prog.done("all passes ended")
	rep.Systems = append(rep.Systems, failed...)
	rep.ElapsedSeconds = time.Since(start).Seconds()
	rep.Ratios = computeRatios(metrics, rep.Systems)
	if p := pairs["tapswitch"]; p != nil {
		// Taken after the tests, so the counters show what they sent.
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if out, err := p.tsd.cli(ctx, "ports"); err == nil {
			last := &rep.Systems[slices.IndexFunc(rep.Systems, func(pr passResult) bool { return pr.System == "tapswitch" })]
			last.Listings = append(last.Listings, listing{Title: "tapswitch ports", Output: out})
		}
		cancel()
	}
	notes := []string{
		"bridge: Docker's bridge driver (" + dockerBridgeName + ", " + dockerBridgeSubnet + "); tapswitch: tapswitch's Docker network driver (" + dockerTapswitchSubnet + "); both networks of one dockerd, iperf3 and sockperf of the host run in the containers' network namespaces",
	}
	if len(pairs) > 1 {
		notes = append(notes, "ratios are tapswitch over the mean of the bridge passes")
	}
	if pairs["tapswitch"] != nil {
		notes = append(notes, fmt.Sprintf("checked before the tests: eth0 in both tapswitch containers is a TAP (it has tun_flags), and %d pings between them moved both tapswitch ports' counters both ways", verifyPings))
	}
	if pairs["bridge"] != nil {
		if n := brNetfilterNote(); n != "" {
			notes = append(notes, n)
		}
	}
	var mtus []string
	for _, sys := range systems {
		if p := pairs[sys]; p != nil {
			mtus = append(mtus, sys+" "+p.mtu)
		}
	}
	notes = append(notes, "eth0 MTU in the containers: "+strings.Join(mtus, ", "))
	if n := busyNote(rep.Machine); n != "" {
		notes = append(notes, n)
	}
	rep.Notes = append(notes, driftNotes(rep)...)

	fmt.Println()
	if err := rep.writeTable(os.Stdout); err != nil {
		return err
	}
	for _, p := range rep.Systems {
		for _, l := range p.Listings {
			fmt.Printf("\n%s (after the tests):\n%s\n", l.Title, strings.TrimRight(l.Output, "\n"))
		}
	}
	if cfg.jsonPath != "" {
		if err := rep.writeJSON(cfg.jsonPath); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
		fmt.Printf("\nresults: %s\n", cfg.jsonPath)
		if err := rep.writeChartFile(chartPath(cfg.jsonPath)); err != nil {
			return fmt.Errorf("write chart: %w", err)
		}
		fmt.Printf("chart: %s\n", chartPath(cfg.jsonPath))
	}
	for _, p := range rep.Systems {
		if p.Error != "" {
			return fmt.Errorf("%s failed", p.System)
		}
		for _, m := range p.Results {
			if !m.ok() {
				return fmt.Errorf("%s: %s failed", p.System, metricByKey(m.Metric).Label)
			}
		}
	}
	return nil
}

// interrupted turns the error of a step cut short by Ctrl-C into
// errInterrupted.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errInterrupted
	}
	return err
}

// checkDockerFlags refuses what -docker does not do, and what -only
// names that is no half of it.
func checkDockerFlags(cfg *config, set map[string]bool) error {
	for _, f := range []string{"scale", "demo", "profile", "base-tapswitchd", "base-tapswitch"} {
		if set[f] {
			return fmt.Errorf("-docker runs on its own: drop -%s", f)
		}
	}
	if cfg.rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", cfg.rounds)
	}
	for _, s := range cfg.only {
		if !slices.Contains(dockerSystems, s) {
			return fmt.Errorf("-docker -only: %s has no Docker half; want some of %s", s, strings.Join(dockerSystems, ","))
		}
	}
	return nil
}

// brNetfilterNote says whether frames crossing Docker's bridge also pass
// the host's iptables (br_netfilter), which costs the bridge some of its
// speed; Docker loads br_netfilter itself when it manages iptables.
func brNetfilterNote() string {
	b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	switch {
	case err != nil:
		return "br_netfilter is not loaded: frames crossing Docker's bridge skip iptables, unlike on a Docker host with --iptables=true (the default)"
	case strings.TrimSpace(string(b)) == "1":
		return "br_netfilter is loaded with bridge-nf-call-iptables=1: frames crossing Docker's bridge also pass the host's iptables, as on a Docker host with --iptables=true (the default)"
	}
	return "bridge-nf-call-iptables=0: frames crossing Docker's bridge skip iptables, unlike on a Docker host with --iptables=true (the default)"
}
