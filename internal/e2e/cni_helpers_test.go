package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/privtest"
)

// cnitoolInstall is how to get cnitool, for messages.
const cnitoolInstall = "go install github.com/containernetworking/cni/cnitool@v1.3.1"

// cnitoolCacheDir is where libcni (cnitool) keeps the result of every ADD,
// for CHECK, DEL and GC; it has no setting to put it elsewhere.
const cnitoolCacheDir = "/var/lib/cni/results"

// findCnitool returns the path of cnitool: on PATH, else in $GOBIN,
// $GOPATH/bin or $HOME/go/bin, where go install puts it. Without it the
// test skips, or fails when privileged tests are required.
func findCnitool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cnitool"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			if lines[0] != "" {
				dirs = append(dirs, lines[0])
			}
			for _, p := range filepath.SplitList(lines[1]) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "cnitool")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	cannot := t.Skipf
	if privtest.Required() {
		cannot = t.Fatalf
	}
	cannot("needs cnitool (%s) on PATH or in %s", cnitoolInstall, strings.Join(dirs, ", "))
	return ""
}

// cniEnv is a test's daemon with a tapswitch network, a CNI config for
// it in a directory of its own, and cnitool to drive the plugin.
type cniEnv struct {
	*testEnv
	cnitool string
	// net is the tapswitch network and the CNI network's name.
	net     string
	confDir string
	// cniPath is CNI_PATH: the plugin, then Debian's reference plugins.
	cniPath string
}

// newCNIEnv starts a daemon (with daemonArgs) and makes a network for the
// CNI tests.
func newCNIEnv(t *testing.T, env *testEnv) *cniEnv {
	t.Helper()
	c := &cniEnv{
		testEnv: env,
		cnitool: findCnitool(t),
		net:     fmt.Sprintf("cni%04x", rand.N(0x10000)),
		confDir: filepath.Join(env.dir, "net.d"),
		cniPath: binDir + string(filepath.ListSeparator) + "/usr/lib/cni",
	}
	if err := os.Mkdir(c.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// cnitool's cache of results outlives the test otherwise, and so
	// do its directories on a machine that had none.
	_, hadCache := os.Stat(filepath.Dir(cnitoolCacheDir))
	t.Cleanup(func() {
		files, _ := filepath.Glob(filepath.Join(cnitoolCacheDir, c.net+"-*"))
		for _, f := range files {
			os.Remove(f)
		}
		if hadCache != nil {
			// Remove takes only empty directories: another test's
			// results stay.
			os.Remove(cnitoolCacheDir)
			os.Remove(filepath.Dir(cnitoolCacheDir))
		}
	})
	c.mustCLI("network", "create", c.net)
	c.writeConf(c.net, nil)
	return c
}

// writeConf writes the conflist name with one tapswitch-cni plugin of
// cniVersion 1.1.0 on the test's network and socket; extra adds or
// overrides the plugin's keys.
func (c *cniEnv) writeConf(name string, extra map[string]any) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.confDir, name+".conflist"), c.confList(name, extra), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cniEnv) pluginConf(name string, extra map[string]any) map[string]any {
	p := map[string]any{"type": "tapswitch-cni", "network": c.net, "socket": c.sock}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func (c *cniEnv) confList(name string, extra map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": name, "plugins": []any{c.pluginConf(name, extra)}})
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// cnitoolRun runs cnitool CMD NET NETNS with env added to its
// environment (CNI_ARGS, CNI_IFNAME).
func (c *cniEnv) cnitoolRun(env []string, args ...string) cliResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.cnitool, args...)
	cmd.Env = append(os.Environ(), "NETCONFPATH="+c.confDir, "CNI_PATH="+c.cniPath)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		c.t.Fatalf("cnitool %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		c.t.Fatalf("cnitool %s: no answer within %v\n%s", strings.Join(args, " "), cmdTimeout, stderr.String())
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// mustCnitool runs cnitool and fails the test unless it succeeds.
func (c *cniEnv) mustCnitool(env []string, args ...string) string {
	c.t.Helper()
	r := c.cnitoolRun(env, args...)
	if r.code != 0 {
		c.t.Fatalf("cnitool %s: exit code %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// add runs cnitool add for namespace ns on network name, with the pod name
// in CNI_ARGS when pod is not "", and returns the result.
func (c *cniEnv) add(name, ns, pod string) *types100.Result {
	c.t.Helper()
	var env []string
	if pod != "" {
		env = append(env, "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME="+pod)
	}
	out := c.mustCnitool(env, "add", name, nsPath(ns))
	res := &types100.Result{}
	if err := json.Unmarshal([]byte(out), res); err != nil {
		c.t.Fatalf("cnitool add %s %s: result: %v\n%s", name, ns, err, out)
	}
	return res
}

// portOf returns the port tapswitch has for namespace ns, or nil.
func (c *cniEnv) portOf(ns string) *api.Port {
	c.t.Helper()
	for _, p := range c.ports() {
		if p.Netns == nsPath(ns) {
			return &p
		}
	}
	return nil
}

// execPlugin runs tapswitch-cni itself, as a runtime does, with the CNI
// variables in env and conf on stdin. It returns stdout and, when the
// plugin failed, its error.
func (c *cniEnv) execPlugin(conf []byte, env ...string) (string, *types.Error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "tapswitch-cni"))
	cmd.Env = append(os.Environ(), "CNI_PATH="+c.cniPath)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		c.t.Fatalf("tapswitch-cni %s: %v", strings.Join(env, " "), err)
	}
	var te types.Error
	if jerr := json.Unmarshal(stdout.Bytes(), &te); jerr != nil || te.Code == 0 {
		c.t.Fatalf("tapswitch-cni %s: exit code %d and no CNI error on stdout: %v\nstdout: %s\nstderr: %s",
			strings.Join(env, " "), exitErr.ExitCode(), jerr, stdout.String(), stderr.String())
	}
	return stdout.String(), &te
}

// pluginConf1 is the single plugin config a runtime gives the plugin
// (the conflist's plugin with its name and cniVersion), with extra keys.
func (c *cniEnv) pluginConf1(extra map[string]any) []byte {
	c.t.Helper()
	p := c.pluginConf(c.net, nil)
	p["cniVersion"], p["name"] = "1.1.0", c.net
	for k, v := range extra {
		p[k] = v
	}
	b, err := json.Marshal(p)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// cniWriteResolvConf does what a runtime does with the result's DNS: writes
// the namespace's resolv.conf (/etc/netns/NS, which ip netns exec
// uses). The test environment removes it with the namespace.
func cniWriteResolvConf(t *testing.T, ns string, dns types.DNS) {
	t.Helper()
	var b strings.Builder
	for _, s := range dns.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.Search, " "))
	}
	dir := filepath.Join(netnsEtcDir, ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
