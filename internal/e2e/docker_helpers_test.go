package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/privtest"
)

// What the Docker tests need besides the tools on PATH.
const (
	// dockerdPath and dockerPath are Debian's docker.io: the daemon and
	// the client of its version. A newer client may come first on PATH
	// and refuses to talk to a 20.10 daemon, so both are named by path.
	dockerdPath = "/usr/sbin/dockerd"
	dockerPath  = "/usr/bin/docker"
	// dockerImage is the name the imported busybox image gets, and
	// dockerPage the index page of its /www, which `httpd -f -p 80 -h
	// /www` serves.
	dockerImage = "tapswitch-busybox:e2e"
	dockerPage  = "tapswitch docker e2e\n"
	// dockerStartTimeout bounds how long dockerd may take to answer on
	// its socket, dockerStopTimeout how long it may take to exit on
	// SIGTERM (it stops its containers first, 10 s each at most).
	dockerStartTimeout = 60 * time.Second
	dockerStopTimeout  = 60 * time.Second
	// dockerCmdTimeout bounds one docker client command: a run pulls
	// nothing but may wait on the network plugin.
	dockerCmdTimeout = 90 * time.Second
)

// Paths outside its own directory that dockerd makes whatever its
// flags: its trust key, and the directory it looks for plugin sockets in.
var dockerHostPaths = []string{"/etc/docker", "/etc/docker/key.json", "/run/docker", "/run/docker/plugins"}

// dockerEnv is a dockerd of the test's own: data root, exec root,
// pidfile, socket and cgroup parent in a temporary directory, so that the
// host's Docker (its /var/lib/docker, socket, docker0 and firewall) is
// left alone. It makes no bridge and no firewall rules
// (--bridge=none --iptables=false --ip6tables=false): the tests' networks
// are tapswitch's, or bridge networks they create with a bridge name of
// their own. Everything it made is removed when the test ends, whether
// the test passed or not.
type dockerEnv struct {
	t   *testing.T
	dir string
	// Host is the daemon's address for the client (-H) and for
	// tapswitchd --docker-host.
	Host string
	sock string
	// args are dockerd's, kept for restarts; extra are the test's own.
	args         []string
	logPath      string
	cgroupParent string
	daemon       *proc
	// madePaths are the dockerHostPaths that did not exist before.
	madePaths []string
}

// requireDocker skips t (fails it with TAPSWITCH_REQUIRE_PRIVILEGED=1)
// unless Debian's docker.io and a static busybox are there.
func requireDocker(t *testing.T) {
	t.Helper()
	privtest.Require(t, "run a dockerd of the test's own", "ip", "ping", "iptables", "tar", "chroot")
	cannot := t.Skipf
	if privtest.Required() {
		cannot = t.Fatalf
	}
	for _, p := range []string{dockerdPath, dockerPath} {
		if _, err := os.Stat(p); err != nil {
			cannot("needs Debian's docker.io (%s): %v", p, err)
		}
	}
	if err := checkStatic(busyboxPath); err != nil {
		cannot("needs a static busybox (Debian's busybox-static) for the test image: %v", err)
	}
	if binDir == "" {
		t.Fatal("tapswitchd and tapswitch were not built")
	}
}

// newDocker starts a private dockerd with the test image imported.
// extraArgs are added to its command line (--live-restore, say). Call it
// after newEnv: cleanups run last in, first out, so the containers and
// networks are removed while tapswitchd still serves the plugin.
func newDocker(t *testing.T, extraArgs ...string) *dockerEnv {
	t.Helper()
	requireDocker(t)
	// Short: containerd's sockets live under the exec root, and
	// sun_path holds 108 bytes.
	dir, err := os.MkdirTemp("", "tsdk")
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerEnv{
		t:            t,
		dir:          dir,
		sock:         filepath.Join(dir, "sock"),
		logPath:      filepath.Join(dir, "dockerd.log"),
		cgroupParent: fmt.Sprintf("/tsdk%08x", rand.Uint32()),
	}
	d.Host = "unix://" + d.sock
	for _, p := range dockerHostPaths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			d.madePaths = append(d.madePaths, p)
		}
	}
	d.args = append([]string{
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "x"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"-H", d.Host,
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--cgroup-parent", d.cgroupParent,
		"--log-level", "info",
	}, extraArgs...)
	t.Cleanup(d.cleanup)
	d.Start()
	d.importImage()
	return d
}

// Start starts dockerd and waits until it answers.
func (d *dockerEnv) Start() {
	d.t.Helper()
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(dockerdPath, d.args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group: a signal for the test's process group does
	// not reach it, and nothing of the host's dockerd is touched.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := startProc(cmd)
	if err != nil {
		d.t.Fatalf("start dockerd: %v", err)
	}
	d.daemon = p
	client := d.httpClient()
	deadline := time.Now().Add(dockerStartTimeout)
	for {
		select {
		case <-p.done:
			d.t.Fatalf("dockerd exited before answering on %s: %v\n%s", d.sock, p.err, d.log())
		default:
		}
		resp, err := client.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("dockerd not answering on %s after %v: %v\n%s", d.sock, dockerStartTimeout, err, d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpClient talks to dockerd's socket.
func (d *dockerEnv) httpClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.sock)
		}},
	}
}

// Pid is dockerd's pid.
func (d *dockerEnv) Pid() int { return d.daemon.cmd.Process.Pid }

// Stop stops dockerd with SIGTERM and waits for it: without
// --live-restore it stops its containers first.
func (d *dockerEnv) Stop() {
	d.t.Helper()
	if err := d.stop(); err != nil {
		d.t.Fatalf("stop dockerd: %v\n%s", err, d.log())
	}
}

func (d *dockerEnv) stop() error {
	select {
	case <-d.daemon.done:
		return nil
	default:
	}
	d.daemon.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.daemon.wait(dockerStopTimeout); err != nil && !isSignalExit(err) {
		d.daemon.kill()
		return err
	}
	return nil
}

// isSignalExit reports whether err is only a process's exit status.
func isSignalExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// Kill kills dockerd with SIGKILL, as a crash would: containerd and the
// containers' shims go on running.
func (d *dockerEnv) Kill() {
	d.t.Helper()
	d.daemon.kill()
	d.reapContainerd()
}

// reapContainerd waits for the containerd of a killed dockerd to end (it
// dies with its parent), and removes its pid file: a dockerd started
// while that pid still names a process, even a zombie not yet reaped,
// waits on it as a containerd "still running" and gives up.
func (d *dockerEnv) reapContainerd() {
	pidFile := filepath.Join(d.dir, "x", "containerd", "containerd.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || !isContainerd(pid) {
			break
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(100 * time.Millisecond)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Remove(pidFile)
}

// isContainerd reports whether pid runs containerd.
func isContainerd(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(b)) == "containerd"
}

// Restart stops dockerd (SIGTERM) and starts it again.
func (d *dockerEnv) Restart() {
	d.t.Helper()
	d.Stop()
	d.Start()
}

func (d *dockerEnv) log() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 16<<10 {
		b = b[len(b)-16<<10:]
	}
	return "--- dockerd log (tail) ---\n" + string(b)
}

// Docker runs the docker client against the test's dockerd and returns
// its combined output.
func (d *dockerEnv) Docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerPath, append([]string{"-H", d.Host}, args...)...)
	// The client's own configuration stays in the test's directory.
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(d.dir, "client"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustDocker is Docker failing the test on an error, returning the
// output without surrounding space.
func (d *dockerEnv) MustDocker(args ...string) string {
	d.t.Helper()
	out, err := d.Docker(args...)
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// RunDetached starts a container of the test image in the background:
// docker run -d --name NAME ARGS... IMAGE CMD...; args are docker run's
// flags (--network, -p), cmd the command (default: sleep).
func (d *dockerEnv) RunDetached(name string, args []string, cmd ...string) string {
	d.t.Helper()
	if len(cmd) == 0 {
		cmd = []string{"sleep", "86400"}
	}
	full := append([]string{"run", "-d", "--name", name}, args...)
	full = append(full, dockerImage)
	return d.MustDocker(append(full, cmd...)...)
}

// HTTPServer is the command that serves dockerPage on port 80.
var HTTPServer = []string{"httpd", "-f", "-p", "80", "-h", "/www"}

// Exec runs a command in a running container.
func (d *dockerEnv) Exec(name string, cmd ...string) (string, error) {
	return d.Docker(append([]string{"exec", name}, cmd...)...)
}

// Inspect returns the Go template's value for a container (or network,
// with kind "network").
func (d *dockerEnv) Inspect(name, format string) string {
	d.t.Helper()
	return d.MustDocker("inspect", "-f", format, name)
}

// ContainerPid is the pid of a running container's first process.
func (d *dockerEnv) ContainerPid(name string) int {
	d.t.Helper()
	s := d.Inspect(name, "{{.State.Pid}}")
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		d.t.Fatalf("container %s has no pid (%q): is it running?", name, s)
	}
	return pid
}

// NetnsPath is a path to a running container's network namespace, for
// nsenter --net= or tapswitch attach.
func (d *dockerEnv) NetnsPath(name string) string {
	return fmt.Sprintf("/proc/%d/ns/net", d.ContainerPid(name))
}

// NsRun runs a host program inside a running container's network
// namespace (the image has busybox only; iperf3, sockperf and ip are the
// host's).
func (d *dockerEnv) NsRun(name string, args ...string) (string, error) {
	return run("nsenter", append([]string{"--net=" + d.NetnsPath(name)}, args...)...)
}

// importImage builds the test image offline: busybox-static with its
// applets linked and /www/index.html, tarred and imported.
func (d *dockerEnv) importImage() {
	d.t.Helper()
	rootfs := filepath.Join(d.dir, "rootfs")
	for _, dir := range []string{"bin", "www", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, dir), 0o755); err != nil {
			d.t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777)
	b, err := os.ReadFile(busyboxPath)
	if err != nil {
		d.t.Fatal(err)
	}
	files := map[string]string{
		"www/index.html": dockerPage,
		// For busybox's httpd and id; Docker puts its own hosts,
		// hostname and resolv.conf over these.
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755); err != nil {
		d.t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o644); err != nil {
			d.t.Fatal(err)
		}
	}
	// Inside the rootfs, so that the links point at /bin/busybox.
	if out, err := run("chroot", rootfs, "/bin/busybox", "--install", "-s", "/bin"); err != nil {
		d.t.Fatalf("busybox --install: %v\n%s", err, out)
	}
	tarball := filepath.Join(d.dir, "rootfs.tar")
	if out, err := run("tar", "-C", rootfs, "-cf", tarball, "."); err != nil {
		d.t.Fatalf("tar the rootfs: %v\n%s", err, out)
	}
	d.MustDocker("import", "-c", `CMD ["/bin/sh"]`, tarball, dockerImage)
	os.RemoveAll(rootfs)
	os.Remove(tarball)
}

// cleanup removes the test's containers and networks (while the plugin
// still serves), stops dockerd, ends by pid whatever it left running
// (containerd and the containers' shims after a kill), unmounts and
// removes its directory, its cgroups, and the host paths it made.
func (d *dockerEnv) cleanup() {
	t := d.t
	if t.Failed() {
		t.Log(d.log())
	}
	running := d.daemon != nil
	if running {
		select {
		case <-d.daemon.done:
			running = false
		default:
		}
	}
	if running {
		if out, err := d.Docker("ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			if out, err := d.Docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...); err != nil {
				t.Errorf("docker rm -f: %v\n%s", err, out)
			}
		}
		if out, err := d.Docker("network", "ls", "-q", "--filter", "type=custom"); err == nil && strings.TrimSpace(out) != "" {
			if out, err := d.Docker(append([]string{"network", "rm"}, strings.Fields(out)...)...); err != nil {
				t.Errorf("docker network rm: %v\n%s", err, out)
			}
		}
		if err := d.stop(); err != nil {
			t.Errorf("stop dockerd: %v", err)
		}
	}
	d.killLeft()
	d.removeCgroups()
	for _, m := range mountsUnder(t, d.dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
	if err := os.RemoveAll(d.dir); err != nil {
		t.Errorf("remove dockerd's directory: %v", err)
	}
	for i := len(d.madePaths) - 1; i >= 0; i-- {
		// A directory goes only if empty: another dockerd, or a
		// tapswitchd's plugin socket, may use it.
		os.Remove(d.madePaths[i])
	}
}

// procsOf lists the processes whose command line names the test's data
// or exec root: dockerd, its containerd, the containers' shims; not a
// tapswitchd told where dockerd's socket is.
func (d *dockerEnv) procsOf() []int {
	roots := [][]byte{[]byte(filepath.Join(d.dir, "data")), []byte(filepath.Join(d.dir, "x") + "/")}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, p := range dirs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		for _, root := range roots {
			if bytes.Contains(b, root) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// killLeft waits a little for what dockerd started to end, then ends
// what is left by pid.
func (d *dockerEnv) killLeft() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := d.procsOf()
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(200 * time.Millisecond)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeCgroups ends by pid what is left in the test's cgroup parent (the
// containers' processes after dockerd was killed) and removes its
// cgroups, deepest first.
func (d *dockerEnv) removeCgroups() {
	// Without a word: after a kill of dockerd, containers left are
	// expected.
	removeCgroupTree(d.t, d.cgroupParent, nil)
}

// PingThroughRestart pings from container (the host's ping in its
// namespace: docker exec's stream would end with dockerd) while dockerd
// restarts, and fails the test unless every one of the pings is
// answered. args are ping's, the address last.
func (d *dockerEnv) PingThroughRestart(container string, pings int, args ...string) {
	d.t.Helper()
	var out string
	var perr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		full := append([]string{"ping", "-c", strconv.Itoa(pings), "-i", "0.2", "-W", "5"}, args...)
		out, perr = d.NsRun(container, full...)
	}()
	time.Sleep(time.Second) // a few replies before the restart
	t0 := time.Now()
	d.Restart()
	d.t.Logf("dockerd restarted in %v", time.Since(t0).Round(time.Millisecond))
	<-done
	sent, got := pingCounts(out)
	d.t.Logf("ping %s across the dockerd restart: %d sent, %d received", strings.Join(args, " "), sent, got)
	if perr != nil || sent != pings || got != sent {
		d.t.Errorf("ping %s across the dockerd restart: %v, %d of %d; want every reply\n%s", strings.Join(args, " "), perr, got, sent, out)
	}
}

// pluginSocketCleanup removes, when t ends, the socket of the plugin
// name a tapswitchd --docker of the test serves (a daemon the test killed
// leaves it), and /run/docker/plugins and /run/docker if the test's
// daemon made them and they are empty. Call it before starting the
// daemon; registered first, it runs after the daemon has stopped.
func pluginSocketCleanup(t *testing.T, plugin string) {
	var made []string
	for _, p := range []string{"/run/docker", "/run/docker/plugins"} {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			made = append(made, p)
		}
	}
	t.Cleanup(func() {
		os.Remove(filepath.Join("/run/docker/plugins", plugin+".sock"))
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	})
}
