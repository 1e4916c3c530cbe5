package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// The socket tests run the real CLI as real unprivileged users, made
// with useradd for the test and removed after it.

// accountTool runs useradd, userdel, groupadd or groupdel, retrying while
// another process holds the account files' lock.
func accountTool(t *testing.T, args ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := run(args[0], args[1:]...)
		if err == nil {
			return
		}
		if strings.Contains(out, "lock") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// addGroup creates a group with a unique name, removed when t ends.
func addGroup(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("tswg%06x", rand.N(1<<24))
	accountTool(t, "groupadd", name)
	t.Cleanup(func() {
		if out, err := run("groupdel", name); err != nil {
			t.Errorf("groupdel %s: %v\n%s", name, err, out)
		}
	})
	return name
}

// addUser creates a user with a unique name, no home and no login shell,
// in the supplementary groups given; it is removed when t ends. It
// returns the user's name and credentials as the user database has them.
func addUser(t *testing.T, groups ...string) (string, *syscall.Credential) {
	t.Helper()
	name := fmt.Sprintf("tswu%06x", rand.N(1<<24))
	args := []string{"useradd", "-M", "-N", "-s", "/usr/sbin/nologin"}
	if len(groups) > 0 {
		args = append(args, "-G", strings.Join(groups, ","))
	}
	accountTool(t, append(args, name)...)
	t.Cleanup(func() {
		if out, err := run("userdel", name); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("look up user %s: %v", name, err)
	}
	gids, err := u.GroupIds()
	if err != nil {
		t.Fatalf("groups of user %s: %v", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		t.Fatalf("user %s: uid %q gid %q, want an unprivileged user", name, u.Uid, u.Gid)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			t.Fatalf("user %s: group id %q", name, g)
		}
		cred.Groups = append(cred.Groups, uint32(n))
	}
	return name, cred
}

// shareCLI copies the tapswitch binary to a directory anyone may read,
// removed when t ends, and returns its path: the test's build directory
// is root's alone.
func shareCLI(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tsw-cli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(filepath.Join(binDir, "tapswitch"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, "tapswitch")
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("copy tapswitch to %s: %v", path, err)
	}
	return path
}

// runCLIAs runs the CLI at cli as the user with cred, against sock.
func runCLIAs(t *testing.T, cli string, cred *syscall.Credential, sock string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, append([]string{"--socket", sock}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	cmd.Dir = "/"
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("tapswitch %s as uid %d: %v", strings.Join(args, " "), cred.Uid, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("tapswitch %s as uid %d: no answer within %v\n%s", strings.Join(args, " "), cred.Uid, cmdTimeout, stderr.String())
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// openSocketDir lets other users through the test's directory to its
// socket; it lists nothing to them.
func (e *testEnv) openSocketDir() {
	e.t.Helper()
	if err := os.Chmod(e.dir, 0o711); err != nil {
		e.t.Fatal(err)
	}
}

// checkSocket fails t unless the socket is root's with group gid and
// mode.
func (e *testEnv) checkSocket(gid uint32, mode os.FileMode) {
	e.t.Helper()
	fi, err := os.Stat(e.sock)
	if err != nil {
		e.t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != mode || st.Uid != 0 || st.Gid != gid {
		e.t.Fatalf("socket %s: mode %04o, owner %d:%d; want mode %04o, owner 0:%d", e.sock, fi.Mode().Perm(), st.Uid, st.Gid, mode, gid)
	}
}

// wantRefused fails t unless r is a refusal: a non-zero exit, and stderr
// starting with "tapswitch: " and holding every one of want.
func wantRefused(t *testing.T, who string, r cliResult, want ...string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("%s: exit code 0, want a refusal\nstdout: %s", who, r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "tapswitch: ") {
		t.Errorf("%s: stderr %q, want it to start with %q", who, r.stderr, "tapswitch: ")
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("%s: stderr %q, want it to contain %q", who, r.stderr, w)
		}
	}
}

// TestSocketGroup checks that with --group the members of the group may
// use the daemon, and other users may not, even when the socket's mode
// would let them.
func TestSocketGroup(t *testing.T) {
	requirePrivileged(t, "useradd", "userdel", "groupadd", "groupdel")
	group := addGroup(t)
	member, memberCred := addUser(t, group)
	outsider, outsiderCred := addUser(t)
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.ParseUint(g.Gid, 10, 32)
	if !slices.Contains(memberCred.Groups, uint32(gid)) || slices.Contains(outsiderCred.Groups, uint32(gid)) {
		t.Fatalf("groups of %s %v and %s %v: want only %s in %s (%d)", member, memberCred.Groups, outsider, outsiderCred.Groups, member, group, gid)
	}
	cli := shareCLI(t)

	e := newEnvArgs(t, []string{"--group", group})
	e.openSocketDir()
	e.checkSocket(uint32(gid), 0o660)

	r := runCLIAs(t, cli, memberCred, e.sock, "ports", "-o", "json")
	if r.code != 0 {
		t.Fatalf("tapswitch ports as %s, member of %s: exit code %d\n%s", member, group, r.code, r.stderr)
	}
	var ports []api.Port
	if err := json.Unmarshal([]byte(r.stdout), &ports); err != nil || len(ports) != 0 {
		t.Fatalf("tapswitch ports -o json as %s = %q, %v; want []", member, r.stdout, err)
	}
	if r := runCLIAs(t, cli, memberCred, e.sock, "network", "ls"); r.code != 0 || !strings.Contains(r.stdout, api.DefaultNetwork) {
		t.Fatalf("tapswitch network ls as %s: exit code %d, stdout %q\n%s; want the default network", member, r.code, r.stdout, r.stderr)
	}

	// The socket's mode keeps the outsider from connecting at all.
	r = runCLIAs(t, cli, outsiderCred, e.sock, "ports")
	wantRefused(t, "tapswitch ports as "+outsider, r, "permission denied", e.sock, "group "+group, "run as root")

	// With the socket's mode loosened, the daemon's check of the peer's
	// credentials refuses the outsider still.
	if err := os.Chmod(e.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	r = runCLIAs(t, cli, outsiderCred, e.sock, "ports")
	wantRefused(t, "tapswitch ports as "+outsider+" with the socket open to all", r,
		"permission denied: tapswitchd's socket is for root and group "+group+"; ask an administrator to add you to it")
	r = runCLIAs(t, cli, outsiderCred, e.sock, "network", "create", "intruder")
	wantRefused(t, "tapswitch network create as "+outsider+" with the socket open to all", r, "permission denied")
	if err := os.Chmod(e.sock, 0o660); err != nil {
		t.Fatal(err)
	}
	if log := e.daemonLog(); !strings.Contains(log, "API request refused") || !strings.Contains(log, "uid="+strconv.Itoa(int(outsiderCred.Uid))) {
		t.Errorf("daemon log does not record the refusal of uid %d\n%s", outsiderCred.Uid, log)
	}
	for _, n := range e.networks() {
		if n.Name == "intruder" {
			t.Fatalf("network %q exists: an outsider's request went through", n.Name)
		}
	}
	if r := runCLIAs(t, cli, memberCred, e.sock, "ports"); r.code != 0 {
		t.Fatalf("tapswitch ports as %s after the refusals: exit code %d\n%s", member, r.code, r.stderr)
	}
}

// TestSocketRootOnly checks that without --group only root may use the
// daemon.
func TestSocketRootOnly(t *testing.T) {
	requirePrivileged(t, "useradd", "userdel")
	name, cred := addUser(t)
	cli := shareCLI(t)
	e := newEnv(t)
	e.openSocketDir()
	e.checkSocket(0, 0o600)

	r := runCLIAs(t, cli, cred, e.sock, "ports")
	wantRefused(t, "tapswitch ports as "+name, r, "permission denied", e.sock, "root only", "run as root", "--group")

	if err := os.Chmod(e.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	r = runCLIAs(t, cli, cred, e.sock, "ports")
	wantRefused(t, "tapswitch ports as "+name+" with the socket open to all", r, "permission denied: tapswitchd's socket is for root only")
	if err := os.Chmod(e.sock, 0o600); err != nil {
		t.Fatal(err)
	}
	if ports := e.ports(); len(ports) != 0 {
		t.Fatalf("tapswitch ports as root = %+v, want none", ports)
	}
}

// TestSocketUnknownGroup checks that tapswitchd refuses to start with a
// group that does not exist, and leaves no socket behind.
func TestSocketUnknownGroup(t *testing.T) {
	requirePrivileged(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	group := fmt.Sprintf("tswnone%06x", rand.N(1<<24))
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "tapswitchd"),
		"--socket", sock, "--state-dir", filepath.Join(dir, "state"), "--group", group).CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || ctx.Err() != nil {
		t.Fatalf("tapswitchd --group %s = %v\n%s\nwant it to exit with an error", group, err, out)
	}
	want := fmt.Sprintf("tapswitchd: --group %q: no such group", group)
	if !strings.HasPrefix(string(out), want) {
		t.Fatalf("tapswitchd --group %s said %q, want it to start with %q", group, out, want)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket %s after the failed start: %v, want none", sock, err)
	}
}

// TestBadInput checks that requests with bad input fail through the real
// CLI with a message saying what was wrong and what is allowed, and leave
// nothing behind.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	ns := e.newNetns("a")
	tests := []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"port name with a space", []string{"attach", ns, "--name", "web one"}, []string{"port name", "1 to 63 letters"}},
		{"port name with a dot", []string{"attach", ns, "--name", "web.one"}, []string{"port name", "DNS name"}},
		{"network name with a slash", []string{"attach", ns, "--network", "a/b"}, []string{"network name"}},
		{"MTU too small", []string{"attach", ns, "--mtu", "10"}, []string{"MTU 10", "between 68 and 65535"}},
		{"MTU too big", []string{"attach", ns, "--mtu", "70000"}, []string{"MTU 70000", "between 68 and 65535"}},
		{"interface name with a colon", []string{"attach", ns, "--ifname", "eth0:1"}, []string{"interface name", "without '/', ':'"}},
		{"interface name too long", []string{"attach", ns, "--ifname", "abcdefghijklmnop"}, []string{"interface name", "1 to 15"}},
		{"multicast MAC", []string{"attach", ns, "--mac", "01:00:5e:00:00:01"}, []string{"MAC", "unicast"}},
		{"network address", []string{"attach", ns, "--ip", "10.77.9.0/24"}, []string{"network address of 10.77.9.0/24", "10.77.9.1/24"}},
		{"bad publish", []string{"attach", ns, "--publish", "8080"}, []string{"HOSTPORT:CONTAINERPORT"}},
		{"netns a regular file", []string{"attach", "/etc/passwd"}, []string{"/etc/passwd", "not a network namespace", "not a namespace file"}},
		{"netns a mount namespace", []string{"attach", "/proc/self/ns/mnt"}, []string{"not a network namespace", "mount namespace"}},
		{"netns a directory", []string{"attach", "/run/netns"}, []string{"not a network namespace", "directory"}},
		{"netns a device", []string{"attach", "/dev/zero"}, []string{"not a network namespace", "device"}},
		{"netns path climbing out", []string{"attach", "/run/netns/../../etc/shadow"}, []string{"not a namespace file"}},
		{"netns relative path", []string{"attach", "../../etc/passwd"}, []string{"must be absolute"}},
		{"network create bad name", []string{"network", "create", "a b"}, []string{"network name", "1 to 63 letters"}},
		{"network create host address", []string{"network", "create", "x", "--subnet", "10.1.2.3/24"}, []string{"10.1.2.0/24"}},
		{"network create bad gateway", []string{"network", "create", "x", "--subnet", "10.1.2.0/24", "--gateway", "gw"}, []string{"gateway", "want an address"}},
		{"network inspect with a slash", []string{"network", "inspect", "a/b"}, []string{"network name"}},
		{"network rm with a newline", []string{"network", "rm", "a\nb"}, []string{"network name"}},
		{"detach with a space", []string{"detach", "a b"}, []string{"not a port name or id"}},
		{"connect with a space", []string{"connect", "a b", api.DefaultNetwork}, []string{"not a port name or id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.cli(tt.args...)
			wantRefused(t, "tapswitch "+strings.Join(tt.args, " "), r, append(tt.want, "invalid request")...)
			if got := leftovers(t, ns); len(got) != 0 {
				t.Fatalf("left %v behind in namespace %s", got, ns)
			}
		})
	}
	if ports := e.ports(); len(ports) != 0 {
		t.Errorf("tapswitch ports after the failures = %+v, want none", ports)
	}
	var names []string
	for _, n := range e.networks() {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{api.DefaultNetwork}) {
		t.Errorf("tapswitch network ls after the failures = %v, want only %s", names, api.DefaultNetwork)
	}
	// The namespace and the daemon are as good as new.
	e.attach(ns, "--name", "web")
}
