package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/daemon"
)

// The Docker network and IPAM driver with a real dockerd: the session of
// the issue, line by line, with frames checked to cross tapswitch (its
// port counters move, and the containers' interfaces are TUN/TAP
// devices).

// dockerDriverEnv is a tapswitchd serving the driver under a plugin name
// of the test's own, and a dockerd that uses it.
type dockerDriverEnv struct {
	*testEnv
	dk     *dockerEnv
	plugin string
}

func newDockerDriver(t *testing.T, daemonArgs ...string) *dockerDriverEnv {
	t.Helper()
	requireDocker(t)
	plugin := fmt.Sprintf("dd-%08x", rand.Uint32())
	// Registered first, so run last: the socket of a daemon the test
	// killed goes even if no daemon starts again.
	pluginSocketCleanup(t, plugin)
	e := newEnvArgs(t, append([]string{"--docker", "--docker-plugin", plugin}, daemonArgs...))
	dk := newDocker(t)
	return &dockerDriverEnv{testEnv: e, dk: dk, plugin: plugin}
}

// endpoint is the id of container's endpoint on network, and the name
// of its tapswitch port.
func (e *dockerDriverEnv) endpoint(container, network string) (id, port string) {
	e.t.Helper()
	id = e.dk.Inspect(container, fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).EndpointID}}`, network))
	if len(id) < 12 {
		e.t.Fatalf("container %s has no endpoint on %s: %q", container, network, id)
	}
	return id, id[:12]
}

// port is the tapswitch port called name; the test fails without it.
func (e *dockerDriverEnv) port(name string) api.Port {
	e.t.Helper()
	p := findPort(e.ports(), name)
	if p == nil {
		e.t.Fatalf("tapswitch has no port %s:\n%s", name, e.mustCLI("ports"))
	}
	return *p
}

// mustExec runs cmd in container, failing the test on an error.
func (e *dockerDriverEnv) mustExec(container string, cmd ...string) string {
	e.t.Helper()
	out, err := e.dk.Exec(container, cmd...)
	if err != nil {
		e.t.Fatalf("docker exec %s %s: %v\n%s", container, strings.Join(cmd, " "), err, out)
	}
	return out
}

// TestDockerDriverSession runs the session of the issue against a real
// dockerd: networks of the driver (Docker's IPAM and tapswitch's),
// containers that reach each other by name, docker network connect, a
// published port, the refusals, docker rm, and a tapswitchd killed and
// started again while the containers run.
func TestDockerDriverSession(t *testing.T) {
	e := newDockerDriver(t, "--remove-on-exit=false")
	dk := e.dk
	start := time.Now()

	// docker network create -d NAME --subnet ...
	frontID := dk.MustDocker("network", "create", "-d", e.plugin, "--subnet", "10.131.40.0/24", "ddfront")
	// --ipam-driver NAME: the subnet is checked and held by tapswitch's
	// IPAM, and Docker's addresses come from it.
	backID := dk.MustDocker("network", "create", "-d", e.plugin, "--ipam-driver", e.plugin, "--subnet", "10.131.41.0/24", "ddback")
	front, back := frontID[:12], backID[:12]
	var nets []api.Network
	if err := json.Unmarshal([]byte(e.mustCLI("network", "ls", "-o", "json")), &nets); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range nets {
		got[n.Name] = n.Subnet + " " + n.Gateway
	}
	if got[front] != "10.131.40.0/24 10.131.40.1" || got[back] != "10.131.41.0/24 10.131.41.1" {
		t.Fatalf("tapswitch network ls = %v, want %s on 10.131.40.0/24 and %s on 10.131.41.0/24", got, front, back)
	}

	dk.RunDetached("dd-db", []string{"--network", "ddback"}, HTTPServer...)
	dk.RunDetached("dd-api", []string{"--network", "ddfront"})
	_, apiFront := e.endpoint("dd-api", "ddfront")
	_, dbPort := e.endpoint("dd-db", "ddback")
	if gw := dk.Inspect("dd-db", `{{(index .NetworkSettings.Networks "ddback").Gateway}}`); gw != "10.131.41.1" {
		t.Errorf("dd-db's gateway on ddback as Docker has it = %q, want tapswitch's 10.131.41.1", gw)
	}
	if p := e.port(apiFront); p.Kind != api.KindDocker || p.Network != front || p.Ifname != "eth0" {
		t.Errorf("port %s = kind %q on %q, interface %q; want docker on %s, eth0 (Docker's name)", apiFront, p.Kind, p.Network, p.Ifname, front)
	}
	if ip := e.port(dbPort).IPs; len(ip) != 1 || !strings.HasPrefix(ip[0], "10.131.41.") {
		t.Errorf("db's port has %v, want an address of ddback from tapswitch's IPAM", ip)
	}
	// Frames cross tapswitch: eth0 is a TAP.
	if out := e.mustExec("dd-api", "cat", "/sys/class/net/eth0/tun_flags"); strings.TrimSpace(out) == "" {
		t.Errorf("eth0 of dd-api has no tun_flags: not tapswitch's TAP")
	}

	// docker network connect gives eth1.
	dk.MustDocker("network", "connect", "ddback", "dd-api")
	_, apiBack := e.endpoint("dd-api", "ddback")
	if out := e.mustExec("dd-api", "cat", "/sys/class/net/eth1/tun_flags"); strings.TrimSpace(out) == "" {
		t.Errorf("eth1 of dd-api has no tun_flags")
	}
	before := e.port(apiBack).Stats.RxFrames
	// Docker's DNS answers db on back.
	if out := e.mustExec("dd-api", "wget", "-qO-", "http://dd-db/"); out != dockerPage {
		t.Errorf("wget http://dd-db/ from dd-api = %q, want %q", out, dockerPage)
	}
	if after := e.port(apiBack).Stats.RxFrames; after <= before {
		t.Errorf("port %s (dd-api's eth1) received no frames from the container during wget: %d then %d", apiBack, before, after)
	}

	// A published port, from the host.
	hostPort := freeHostPort(t, 18080)
	dk.RunDetached("dd-web", []string{"--network", "ddfront", "-p", fmt.Sprintf("127.0.0.1:%d:80", hostPort)}, HTTPServer...)
	webID, webPort := e.endpoint("dd-web", "ddfront")
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
	if out, err := httpGet(url); err != nil || out != dockerPage {
		t.Errorf("GET %s = %q, %v; want the page", url, out, err)
	}
	if pub := e.port(webPort).Publish; len(pub) != 1 || !strings.Contains(pub[0], fmt.Sprintf("%d:80/tcp", hostPort)) {
		t.Errorf("tapswitch ports shows %v for web, want %d:80/tcp", pub, hostPort)
	}
	t.Logf("docker port dd-web: %q (Docker drops a remote driver's port map: see the README)", strings.TrimSpace(dk.MustDocker("port", "dd-web")))
	before = e.port(apiFront).Stats.TxFrames
	if out, err := dk.Exec("dd-api", "ping", "-c", "3", "-W", "5", "dd-web"); err != nil {
		t.Errorf("ping dd-web from dd-api: %v\n%s", err, out)
	}
	if after := e.port(apiFront).Stats.TxFrames; after <= before {
		t.Errorf("port %s (dd-api's eth0) sent no frames to the container during ping: %d then %d", apiFront, before, after)
	}

	// Refusals: Docker's own while in use, tapswitch's of what Docker
	// manages.
	if out, err := dk.Docker("network", "rm", "ddback"); err == nil || !strings.Contains(out, "active endpoints") {
		t.Errorf("docker network rm ddback while in use = %v\n%s", err, out)
	}
	if r := e.cli("network", "rm", back); r.code == 0 || !strings.Contains(r.stderr, "docker network rm") {
		t.Errorf("tapswitch network rm %s = exit %d %q, want a refusal naming docker network rm", back, r.code, r.stderr)
	}
	if r := e.cli("detach", webPort); r.code == 0 || !strings.Contains(r.stderr, "docker rm") {
		t.Errorf("tapswitch detach %s = exit %d %q, want a refusal naming docker rm", webPort, r.code, r.stderr)
	}

	// tapswitchd killed and started again: the TAPs, which Docker renamed
	// eth0 and eth1 inside the containers, are taken back.
	e.killDaemon()
	e.stopped = false
	restart := time.Now()
	e.startDaemon()
	t.Logf("tapswitchd back in %v after kill -9", time.Since(restart))
	if st := e.status(); st.RestoredPorts != 4 || st.DroppedPorts != 0 {
		t.Errorf("after kill -9: %d ports restored, %d dropped; want 4 and 0\n%s", st.RestoredPorts, st.DroppedPorts, e.daemonLog())
	}
	if p := e.port(apiBack); p.Ifname != "eth1" {
		t.Errorf("after the restart port %s is on %q, want eth1 in the container", apiBack, p.Ifname)
	}
	before = e.port(apiBack).Stats.TxFrames
	if out := e.mustExec("dd-api", "wget", "-qO-", "http://dd-db/"); out != dockerPage {
		t.Errorf("after kill -9, wget http://dd-db/ = %q", out)
	}
	if after := e.port(apiBack).Stats.TxFrames; after == before {
		t.Errorf("after kill -9, port %s forwarded no frames", apiBack)
	}
	if out, err := httpGet(url); err != nil || out != dockerPage {
		t.Errorf("after kill -9, GET %s = %q, %v", url, out, err)
	}

	// docker rm frees the port, its TAP, its address and its host port.
	webIP := strings.Split(e.port(webPort).IPs[0], "/")[0]
	dk.MustDocker("rm", "-f", "dd-web")
	if p := findPort(e.ports(), webPort); p != nil {
		t.Errorf("port %s left after docker rm", webPort)
	}
	if out, _ := run("ip", "-br", "link"); strings.Contains(out, "ts"+webID[:13]) {
		t.Errorf("TAP ts%s left in the host after docker rm:\n%s", webID[:13], out)
	}
	for _, a := range e.allocated(front) {
		if a == webIP {
			t.Errorf("address %s of dd-web still held on %s after docker rm", webIP, front)
		}
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort), time.Second); err == nil {
		c.Close()
		t.Errorf("host port %d still served after docker rm", hostPort)
	}

	// -p without a host port: tapswitch chooses a free one.
	dk.RunDetached("dd-web2", []string{"--network", "ddfront", "-p", "127.0.0.1::80"}, HTTPServer...)
	_, web2Port := e.endpoint("dd-web2", "ddfront")
	pub := e.port(web2Port).Publish
	if len(pub) != 1 || !strings.HasPrefix(pub[0], "127.0.0.1:") || !strings.HasSuffix(pub[0], ":80/tcp") {
		t.Fatalf("tapswitch ports shows %v for -p 127.0.0.1::80, want 127.0.0.1:PORT:80/tcp", pub)
	}
	if chosen := strings.Split(pub[0], ":")[1]; chosen == "0" {
		t.Errorf("host port 0 published: %v", pub)
	} else if out, err := httpGet("http://127.0.0.1:" + chosen + "/"); err != nil || out != dockerPage {
		t.Errorf("GET on the chosen host port %s = %q, %v", chosen, out, err)
	}
	dk.MustDocker("rm", "-f", "dd-web2")

	// docker network disconnect takes eth1 away, and its port.
	dk.MustDocker("network", "disconnect", "ddback", "dd-api")
	if p := findPort(e.ports(), apiBack); p != nil {
		t.Errorf("port %s left after docker network disconnect", apiBack)
	}
	if out, err := dk.Exec("dd-api", "cat", "/sys/class/net/eth1/tun_flags"); err == nil {
		t.Errorf("eth1 still in dd-api after docker network disconnect: %s", out)
	}
	dk.MustDocker("network", "connect", "ddback", "dd-api")

	// docker restart: a new endpoint, and traffic again.
	dk.MustDocker("restart", "-t", "1", "dd-db")
	if out := e.mustExec("dd-api", "wget", "-qO-", "http://dd-db/"); out != dockerPage {
		t.Errorf("after docker restart dd-db, wget = %q", out)
	}
	dk.MustDocker("rm", "-f", "dd-api", "dd-db")
	dk.MustDocker("network", "rm", "ddfront", "ddback")
	if len(e.ports()) != 0 {
		t.Errorf("ports left after every container was removed:\n%s", e.mustCLI("ports"))
	}
	for _, n := range []string{front, back} {
		if r := e.cli("network", "inspect", n); r.code == 0 {
			t.Errorf("network %s left after docker network rm", n)
		}
	}
	t.Logf("session took %v", time.Since(start))
}

// TestDockerDriverInternal checks that --internal arrives and is
// honoured: no way out, no published ports, but names and traffic
// inside.
func TestDockerDriverInternal(t *testing.T) {
	e := newDockerDriver(t)
	dk := e.dk
	id := dk.MustDocker("network", "create", "-d", e.plugin, "--internal", "--subnet", "10.131.42.0/24", "ddinternal")
	var n api.NetworkDetail
	if err := json.Unmarshal([]byte(e.mustCLI("network", "inspect", id[:12], "-o", "json")), &n); err != nil {
		t.Fatal(err)
	}
	if !n.Internal {
		t.Errorf("network %s is not internal in tapswitch", id[:12])
	}
	dk.RunDetached("dd-i1", []string{"--network", "ddinternal"}, HTTPServer...)
	dk.RunDetached("dd-i2", []string{"--network", "ddinternal"})
	if out := e.mustExec("dd-i2", "wget", "-qO-", "http://dd-i1/"); out != dockerPage {
		t.Errorf("wget inside an internal network = %q", out)
	}
	if out, err := dk.Exec("dd-i2", "ip", "route"); err != nil || strings.Contains(out, "default") {
		t.Errorf("an internal network's container has a default route: %v\n%s", err, out)
	}
	out, err := dk.Docker("run", "--rm", "--network", "ddinternal", "-p", strconv.Itoa(freeHostPort(t, 18080))+":80", dockerImage, "true")
	if err == nil || !strings.Contains(out, "internal") {
		t.Errorf("docker run -p on an internal network = %v\n%s, want a refusal saying internal", err, out)
	}
	dk.MustDocker("rm", "-f", "dd-i1", "dd-i2")
	dk.MustDocker("network", "rm", "ddinternal")
}

// TestDockerDriverSocketAndUpgrade checks the plugin socket (root's,
// 0600; a second daemon refused while one serves it) and that
// tapswitchd --upgrade hands it over with the Docker ports: traffic goes
// on and Docker's next calls reach the successor.
func TestDockerDriverSocketAndUpgrade(t *testing.T) {
	e := newDockerDriver(t)
	dk := e.dk
	path := filepath.Join("/run/docker/plugins", e.plugin+".sock")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("plugin socket: %v", err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("plugin socket %s is %v, want a socket with mode 0600", path, fi.Mode())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("plugin socket %s is not root's", path)
	}

	// Another daemon asking for the same plugin name is refused, and
	// leaves the socket to the one serving it.
	other, err := os.MkdirTemp("", "tsdd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(other)
	out, err := run(filepath.Join(binDir, "tapswitchd"), "--socket", filepath.Join(other, "sock"), "--state-dir", filepath.Join(other, "state"),
		"--docker", "--docker-plugin", e.plugin)
	if err == nil || !strings.Contains(out, "another process serves the Docker plugin socket") {
		t.Errorf("a second tapswitchd --docker-plugin %s = %v\n%s\nwant a refusal", e.plugin, err, out)
	}
	if c, err := net.Dial("unix", path); err != nil {
		t.Errorf("the plugin socket no longer answers after the refused start: %v", err)
	} else {
		c.Close()
	}

	dk.MustDocker("network", "create", "-d", e.plugin, "--subnet", "10.131.43.0/24", "ddup")
	dk.RunDetached("dd-u1", []string{"--network", "ddup"}, HTTPServer...)
	dk.RunDetached("dd-u2", []string{"--network", "ddup"})
	_, u2 := e.endpoint("dd-u2", "ddup")
	took := e.upgrade()
	t.Logf("the previous tapswitchd exited %v after tapswitchd --upgrade started", took)
	if st := e.status(); st.RestoredPorts != 2 || st.DroppedPorts != 0 {
		t.Errorf("after --upgrade: %d ports restored, %d dropped; want 2 and 0", st.RestoredPorts, st.DroppedPorts)
	}
	before := e.port(u2).Stats.TxFrames
	if out := e.mustExec("dd-u2", "wget", "-qO-", "http://dd-u1/"); out != dockerPage {
		t.Errorf("after --upgrade, wget http://dd-u1/ = %q", out)
	}
	if after := e.port(u2).Stats.TxFrames; after == before {
		t.Errorf("after --upgrade, port %s forwarded no frames", u2)
	}
	// Docker's next calls reach the successor.
	dk.RunDetached("dd-u3", []string{"--network", "ddup"})
	if out, err := dk.Exec("dd-u3", "ping", "-c", "1", "-W", "5", "dd-u1"); err != nil {
		t.Errorf("a container started after --upgrade cannot ping: %v\n%s", err, out)
	}
	dk.MustDocker("rm", "-f", "dd-u1", "dd-u2", "dd-u3")
	dk.MustDocker("network", "rm", "ddup")
	if len(e.ports()) != 0 {
		t.Errorf("ports left after the containers were removed:\n%s", e.mustCLI("ports"))
	}
}

// TestDockerDriverCrashMidJoin leaves what a tapswitchd killed in the
// middle of a Join leaves (a TAP of its own in its namespace that no port
// holds, and the intent record of the Join) and checks that the next
// start removes both.
func TestDockerDriverCrashMidJoin(t *testing.T) {
	requireDocker(t)
	plugin := fmt.Sprintf("dd-%08x", rand.Uint32())
	pluginSocketCleanup(t, plugin)
	e := newEnvArgs(t, []string{"--docker", "--docker-plugin", plugin, "--remove-on-exit=false"})
	if err := e.stopDaemon(); err != nil {
		t.Fatal(err)
	}
	e.stopped = false
	id := strings.TrimPrefix(daemon.TableName(e.stateDir()), "tapswitch-")
	name := fmt.Sprintf("%012x", rand.Uint64()&(1<<48-1))
	ifname := "ts" + name + "0"
	t.Cleanup(func() { run("ip", "link", "del", ifname) })
	for _, args := range [][]string{
		{"ip", "tuntap", "add", "mode", "tap", "multi_queue", "name", ifname},
		{"ip", "link", "set", ifname, "alias", "tapswitch " + id},
	} {
		if out, err := run(args[0], args[1:]...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	intent := filepath.Join(e.stateDir(), "intents", name+".json")
	rec := fmt.Sprintf(`{"port":%q,"network":"x","netns_path":"/proc/thread-self/ns/net","ifname":%q}`, name, ifname)
	if err := os.WriteFile(intent, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	e.startDaemon()
	// Answered once the start, its sweep included, is over.
	e.status()
	if out, err := run("ip", "link", "show", ifname); err == nil {
		t.Errorf("the TAP of the interrupted Join is still there after the start:\n%s", out)
	}
	if _, err := os.Stat(intent); err == nil {
		t.Errorf("the intent record %s is still there after the start", intent)
	}
}
