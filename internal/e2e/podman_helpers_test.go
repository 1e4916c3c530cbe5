package e2e

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/tapswitch/tapswitch/internal/privtest"
)

// What the podman test needs besides the tools on PATH.
const (
	// busyboxPath is busybox-static's binary, the whole of the test image.
	busyboxPath = "/bin/busybox"
	// cniPluginDir is where Debian's containernetworking-plugins puts
	// the reference plugins; portmap is chained after tapswitch-cni.
	cniPluginDir = "/usr/lib/cni"
	// cniCacheDir is libcni's cache of results, which podman's CNI
	// backend cannot move.
	cniCacheDir = "/var/lib/cni"
	// blobInfoCache is where podman import (containers/image) keeps
	// what it knows of blobs, for root whatever the storage's root.
	blobInfoCache = "/var/lib/containers/cache/blob-info-cache-v1.boltdb"
	// runcRoot is where runc keeps the state of running containers.
	runcRoot = "/run/runc"
	// podmanImage is the name the imported busybox image gets.
	podmanImage = "localhost/tapswitch-busybox:e2e"
	// podmanPage is the index page of the image's /www.
	podmanPage = "tapswitch podman e2e\n"
)

// podmanEnv is a rootful podman of the test's own: storage, run state,
// locks, events and CNI configuration in a temporary directory, given
// to podman through CONTAINERS_CONF and CONTAINERS_STORAGE_CONF, so that
// the host's podman state and /etc/cni/net.d are left alone. Its
// containers are put under a cgroup parent of their own, so that every
// process it started can be found and the cgroups removed.
type podmanEnv struct {
	t   *testing.T
	dir string
	// netConfDir holds the conflists, pluginDir tapswitch-cni.
	netConfDir, pluginDir string
	env                   []string
	// confPath is the containers.conf, in the environment of every
	// process podman starts (conmon and its cleanup command, plugins).
	confPath     string
	cgroupParent string
	// sandboxes are the network namespaces of the test's containers.
	sandboxes []string
	// host is what the test found on the machine before it began: the
	// paths outside dir podman makes that did not exist, deepest last.
	madePaths []string
	natBefore map[nftables.TableFamily]natState
}

// natState is what the iptables nat table of one family held before the
// test: portmap adds chains shared by all its users, and never removes
// them.
type natState struct {
	table, chains bool
}

// requirePodman skips t (fails it with TAPSWITCH_REQUIRE_PRIVILEGED=1)
// unless podman, its runtime, portmap and a static busybox are there.
func requirePodman(t *testing.T) {
	t.Helper()
	privtest.Require(t, "run podman with the CNI backend", "podman", "conmon", "runc", "iptables", "ip6tables", "iptables-save", "tar", "chroot")
	cannot := t.Skipf
	if privtest.Required() {
		cannot = t.Fatalf
	}
	if _, err := os.Stat(filepath.Join(cniPluginDir, "portmap")); err != nil {
		cannot("needs the CNI reference plugins (Debian's containernetworking-plugins): %v", err)
	}
	if err := checkStatic(busyboxPath); err != nil {
		cannot("needs a static busybox (Debian's busybox-static) for the test image: %v", err)
	}
}

// checkStatic reports an error unless path is a statically linked ELF
// program, which runs in an image with nothing else in it.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

// newPodman sets up a private podman whose CNI networks use the
// tapswitch-cni built for the tests, and removes everything it made when
// the test ends. Its cleanup runs before the daemon's (t.Cleanup is
// last in, first out), so the CNI DELs reach a live daemon.
func newPodman(t *testing.T) *podmanEnv {
	t.Helper()
	plugin := filepath.Join(binDir, "tapswitch-cni")
	if _, err := os.Stat(plugin); err != nil {
		t.Fatalf("tapswitch-cni was not built: %v", err)
	}
	dir, err := os.MkdirTemp("", "tsw-podman")
	if err != nil {
		t.Fatal(err)
	}
	p := &podmanEnv{
		t:            t,
		dir:          dir,
		netConfDir:   filepath.Join(dir, "net.d"),
		pluginDir:    filepath.Join(dir, "cni"),
		cgroupParent: fmt.Sprintf("/tapswitch-e2e-%08x", rand.Uint32()),
	}
	for _, path := range []string{runcRoot, cniCacheDir, filepath.Dir(filepath.Dir(blobInfoCache)), filepath.Dir(blobInfoCache), blobInfoCache} {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			p.madePaths = append(p.madePaths, path)
		}
	}
	p.natBefore = map[nftables.TableFamily]natState{
		nftables.TableFamilyIPv4: readNAT(t, nftables.TableFamilyIPv4),
		nftables.TableFamilyIPv6: readNAT(t, nftables.TableFamilyIPv6),
	}
	t.Cleanup(p.cleanup)

	for _, d := range []string{p.netConfDir, p.pluginDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(plugin, filepath.Join(p.pluginDir, "tapswitch-cni")); err != nil {
		t.Fatal(err)
	}
	// No systemd here: cgroups through cgroupfs, events to a file.
	// runc rather than crun, which refuses hosts with cgroup v1 and v2
	// controllers both mounted (hybrid), as this kind of machine has.
	// File locks under tmp_dir, not the host podman's shared memory.
	// conmon runs podman's cleanup of an exited container (CNI DEL
	// included) with conmon_env_vars for its environment, not podman's:
	// GORACE goes there too, or the race-built plugin sleeps a second
	// at every exit.
	conmonEnv := []string{"PATH=" + os.Getenv("PATH")}
	if v, ok := os.LookupEnv("GORACE"); ok {
		conmonEnv = append(conmonEnv, "GORACE="+v)
	}
	conf := fmt.Sprintf(`[engine]
conmon_env_vars = %s
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
runtime = "runc"
tmp_dir = %q
volume_path = %q

[network]
network_backend = "cni"
cni_plugin_dirs = [%q, %q]
network_config_dir = %q
`, tomlStrings(conmonEnv), filepath.Join(dir, "tmp"), filepath.Join(dir, "volumes"), p.pluginDir, cniPluginDir, p.netConfDir)
	// vfs: the image is one 2 MB layer, so copying it per container
	// costs nothing, and vfs mounts nothing on the host.
	storage := fmt.Sprintf(`[storage]
driver = "vfs"
graphroot = %q
runroot = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "runroot"))
	confPath, storagePath := filepath.Join(dir, "containers.conf"), filepath.Join(dir, "storage.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(storagePath, []byte(storage), 0o644); err != nil {
		t.Fatal(err)
	}
	p.confPath = confPath
	p.env = append(os.Environ(), "CONTAINERS_CONF="+confPath, "CONTAINERS_STORAGE_CONF="+storagePath)
	return p
}

// tomlStrings formats a TOML array of strings.
func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// podman runs podman with the private configuration and returns its
// output (stderr too, after stdout).
func (p *podmanEnv) podman(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Env = p.env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %v: %w", cmdTimeout, err)
	}
	return stdout.String() + stderr.String(), err
}

// mustPodman runs podman, fails the test unless it succeeds, and returns
// its output, trimmed.
func (p *podmanEnv) mustPodman(args ...string) string {
	p.t.Helper()
	out, err := p.podman(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// runFlags go with every podman run of the test: the cgroup parent, and
// the limits this kind of machine needs (it withholds CAP_SYS_RESOURCE,
// so podman may not raise a container's limits to its defaults).
func (p *podmanEnv) runFlags() []string {
	return []string{"--cgroup-parent", p.cgroupParent,
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
}

// run is podman run with runFlags and args.
func (p *podmanEnv) run(args ...string) (string, error) {
	return p.podman(append(append([]string{"run"}, p.runFlags()...), args...)...)
}

// mustRun is run that fails the test unless podman succeeds.
func (p *podmanEnv) mustRun(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman run %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// importImage builds the test image offline: busybox-static with its
// applets linked and /www/index.html, tarred and imported.
func (p *podmanEnv) importImage() {
	p.t.Helper()
	rootfs := filepath.Join(p.dir, "rootfs")
	for _, d := range []string{"bin", "www", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			p.t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777)
	b, err := os.ReadFile(busyboxPath)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "www", "index.html"), []byte(podmanPage), 0o644); err != nil {
		p.t.Fatal(err)
	}
	// Inside the rootfs, so that the links point at /bin/busybox.
	if out, err := run("chroot", rootfs, "/bin/busybox", "--install", "-s", "/bin"); err != nil {
		p.t.Fatalf("busybox --install: %v\n%s", err, out)
	}
	tarball := filepath.Join(p.dir, "rootfs.tar")
	if out, err := run("tar", "-C", rootfs, "-cf", tarball, "."); err != nil {
		p.t.Fatalf("tar the rootfs: %v\n%s", err, out)
	}
	p.mustPodman("import", "--quiet", tarball, podmanImage)
	os.RemoveAll(rootfs)
	os.Remove(tarball)
}

// writeConflist puts a network configuration where podman looks.
func (p *podmanEnv) writeConflist(name string, conf any) {
	p.t.Helper()
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.netConfDir, name+".conflist"), b, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// podmanContainer is what the test needs of podman inspect.
type podmanContainer struct {
	ID              string
	Name            string
	NetworkSettings struct {
		SandboxKey string
		Networks   map[string]struct {
			IPAddress   string
			IPPrefixLen int
			Gateway     string
			MacAddress  string
		}
	}
}

// inspect returns podman's view of a container and remembers its
// network namespace for the cleanup.
func (p *podmanEnv) inspect(name string) podmanContainer {
	p.t.Helper()
	out := p.mustPodman("container", "inspect", name)
	var cs []podmanContainer
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 1 {
		p.t.Fatalf("podman container inspect %s: %v\n%s", name, err, out)
	}
	if k := cs[0].NetworkSettings.SandboxKey; k != "" && !slices.Contains(p.sandboxes, k) {
		p.sandboxes = append(p.sandboxes, k)
	}
	return cs[0]
}

// cleanup removes the containers (CNI DEL through podman), then whatever
// a failure may have left: processes in the test's cgroups, namespaces,
// mounts, the directory, and the host state portmap and libcni make
// once for all their users, when the test was the one that made it.
func (p *podmanEnv) cleanup() {
	t := p.t
	if out, err := p.podman("ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
		if out, err := p.podman(append([]string{"rm", "-f", "-t", "0"}, strings.Fields(out)...)...); err != nil {
			t.Errorf("podman rm -f: %v\n%s", err, out)
		}
	}
	p.waitProcs()
	p.removeCgroups()
	for _, sb := range p.sandboxes {
		if _, err := os.Stat(sb); err == nil {
			t.Errorf("network namespace %s left after podman rm", sb)
			syscall.Unmount(sb, syscall.MNT_DETACH)
			os.Remove(sb)
		}
	}
	for _, m := range mountsUnder(t, p.dir) {
		t.Errorf("mount %s left after podman rm", m)
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	if err := os.RemoveAll(p.dir); err != nil {
		t.Errorf("remove podman's directory: %v", err)
	}
	p.removePortmapChains()
	for i := len(p.madePaths) - 1; i >= 0; i-- {
		switch path := p.madePaths[i]; path {
		case cniCacheDir:
			removeEmptyDirs(path)
		default:
			// The cache file was the test's; a directory goes if empty.
			os.Remove(path)
		}
	}
}

// procs lists the processes with the test's containers.conf in their
// environment: podman, conmon, the cleanup command conmon runs when a
// container exits (CNI DEL included), and the plugins they run.
func (p *podmanEnv) procs() []int {
	want := []byte("CONTAINERS_CONF=" + p.confPath + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "environ")); err == nil && bytes.Contains(b, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitProcs waits for the processes podman started for the test to end:
// conmon runs a container's cleanup after it exits, after podman rm
// has returned, and it makes libcni's cache and portmap's tables again.
// Those still running after a while are killed by pid.
func (p *podmanEnv) waitProcs() {
	deadline := time.Now().Add(15 * time.Second)
	for {
		pids := p.procs()
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				p.t.Errorf("pid %d (%s) of podman still running; killed", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cgroupMounts lists the mount points of the cgroup hierarchies, v1 and v2.
func cgroupMounts(t *testing.T) []string {
	var out []string
	for _, f := range mountinfo(t) {
		if f.fstype == "cgroup" || f.fstype == "cgroup2" {
			out = append(out, f.point)
		}
	}
	return out
}

// removeCgroups kills, by pid, every process left in the test's cgroups
// (containers and their conmon, which podman started for the test) and
// removes the cgroups, deepest first.
func (p *podmanEnv) removeCgroups() {
	removeCgroupTree(p.t, p.cgroupParent, func(pid int, dir string) {
		p.t.Errorf("pid %d left in cgroup %s after podman rm; killed", pid, dir)
	})
}

// removeCgroupTree kills, by pid, every process left in the cgroup
// parent (a test's own) of every hierarchy, telling left about each, and
// removes its cgroups, deepest first.
func removeCgroupTree(t *testing.T, parent string, left func(pid int, dir string)) {
	for _, m := range cgroupMounts(t) {
		root := filepath.Join(m, parent)
		var dirs []string
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
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
				for _, s := range pids {
					if pid, err := strconv.Atoi(s); err == nil {
						if left != nil {
							left(pid, dirs[i])
						}
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("remove cgroup %s: %v", dirs[i], err)
			}
		}
	}
}

type mountEntry struct{ point, fstype string }

func mountinfo(t *testing.T) []mountEntry {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		i := slices.Index(fields, "-")
		if len(fields) < 5 || i < 0 || i+1 >= len(fields) {
			continue
		}
		out = append(out, mountEntry{point: fields[4], fstype: fields[i+1]})
	}
	return out
}

// mountsUnder lists the mounts below dir, deepest last.
func mountsUnder(t *testing.T, dir string) []string {
	var out []string
	for _, m := range mountinfo(t) {
		if strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m.point)
		}
	}
	slices.Reverse(out)
	return out
}

// removeEmptyDirs removes dir and the directories below it, if they hold
// nothing else.
func removeEmptyDirs(dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}

// portmap's chains shared by every container it maps ports of.
var portmapChains = []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"}

// readNAT says whether the nat table of family exists and whether it
// has portmap's chains.
func readNAT(t *testing.T, family nftables.TableFamily) natState {
	c, err := nftables.New()
	if err != nil {
		t.Fatalf("nftables: %v", err)
	}
	chains, err := c.ListChainsOfTableFamily(family)
	if err != nil {
		t.Fatalf("nftables: list chains: %v", err)
	}
	var s natState
	tables, err := c.ListTablesOfFamily(family)
	if err != nil {
		t.Fatalf("nftables: list tables: %v", err)
	}
	for _, tb := range tables {
		if tb.Name == "nat" {
			s.table = true
		}
	}
	for _, ch := range chains {
		if ch.Table.Name == "nat" && ch.Name == portmapChains[0] {
			s.chains = true
		}
	}
	return s
}

// portmapRules lists the rules of iptables-save's nat table of one family
// that portmap made for a container (those with its id), or all of
// portmap's rules with id "".
func portmapRules(t *testing.T, save, id string) []string {
	t.Helper()
	out, err := run(save, "-t", "nat")
	if err != nil {
		t.Fatalf("%s -t nat: %v\n%s", save, err, out)
	}
	var rules []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A ") && strings.Contains(l, "CNI-") && (id == "" || strings.Contains(l, id)) {
			rules = append(rules, l)
		}
	}
	return rules
}

// removePortmapChains removes portmap's shared chains from a family
// whose nat table did not have them before the test, and the nat table
// if it did not exist (portmap makes it for IPv6 too). portmap leaves
// them when its last mapping goes.
func (p *podmanEnv) removePortmapChains() {
	for family, tool := range map[nftables.TableFamily]string{nftables.TableFamilyIPv4: "iptables", nftables.TableFamilyIPv6: "ip6tables"} {
		before, after := p.natBefore[family], readNAT(p.t, family)
		if !before.chains && after.chains {
			run(tool, "-t", "nat", "-D", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT")
			run(tool, "-t", "nat", "-D", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT")
			run(tool, "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ")
			for _, ch := range portmapChains {
				run(tool, "-t", "nat", "-F", ch)
			}
			for _, ch := range portmapChains {
				if out, err := run(tool, "-t", "nat", "-X", ch); err != nil {
					p.t.Errorf("%s -t nat -X %s: %v\n%s", tool, ch, err, out)
				}
			}
		}
		if !before.table && after.table {
			p.deleteEmptyNAT(family)
		}
	}
}

// deleteEmptyNAT deletes the nat table of family if no chain of it has a
// rule: iptables-nft made it for portmap.
func (p *podmanEnv) deleteEmptyNAT(family nftables.TableFamily) {
	c, err := nftables.New()
	if err != nil {
		p.t.Errorf("nftables: %v", err)
		return
	}
	table := &nftables.Table{Name: "nat", Family: family}
	chains, err := c.ListChainsOfTableFamily(family)
	if err != nil {
		p.t.Errorf("nftables: list chains: %v", err)
		return
	}
	for _, ch := range chains {
		if ch.Table.Name != "nat" {
			continue
		}
		rules, err := c.GetRules(table, ch)
		if err != nil || len(rules) > 0 {
			return
		}
	}
	c.DelTable(table)
	if err := c.Flush(); err != nil {
		p.t.Errorf("nftables: delete table nat: %v", err)
	}
}
