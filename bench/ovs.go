package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ovsTools must all be on PATH for the ovs column (Debian package
// openvswitch-switch).
var ovsTools = []string{"ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-vswitchd"}

// ovsSchemas are where distributions install the database schema.
var ovsSchemas = []string{
	"/usr/share/openvswitch/vswitch.ovsschema",
	"/usr/local/share/openvswitch/vswitch.ovsschema",
}

func ovsAvailable() error {
	for _, t := range ovsTools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found", t)
		}
	}
	if _, err := ovsSchema(); err != nil {
		return err
	}
	return nil
}

func ovsSchema() (string, error) {
	for _, p := range ovsSchemas {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("vswitch.ovsschema not found in %s", strings.Join(ovsSchemas, ", "))
}

// ovsSystem is Open vSwitch with its userspace datapath and TAP ports:
// the closest existing peer of tapswitch, a switch in a process moving
// frames between TAPs. userspace-tso-enable lets it pass TCP super-frames
// like tapswitch does; without it OVS is ten times slower on TCP and the
// comparison says nothing.
//
// Everything lives in a private directory (database, sockets, pid files,
// logs), so a system Open vSwitch, running or not, is left alone.
type ovsSystem struct {
	prefix string // of the bridge and port names, unique to this run
	dir    string
	env    []string
	db     string
	// pidfiles of the daemons started, in the order to stop them.
	pidfiles []ovsDaemon
	taps     []string
	// ownsDatapathDev is set when ovs-vswitchd makes ovsDatapathDev in
	// this run, which it leaves behind when it stops.
	ownsDatapathDev bool
	// netns, when set, is the network namespace ovs-vswitchd runs in
	// (a host of -cluster), whose links go with it: teardown leaves
	// them to the namespace's removal.
	netns string
	// noTSO leaves userspace TSO off: Open vSwitch 3.1 drops TCP
	// super-frames bound for a tunnel port instead of segmenting them.
	noTSO bool
}

// ovsDatapathDev is the device the userspace datapath makes in the host
// namespace for its own use when the first bridge joins it.
const ovsDatapathDev = "ovs-netdev"

type ovsDaemon struct {
	comm    string // as in /proc/PID/comm, checked before signalling
	pidfile string
}

func newOVSSystem(pid int) *ovsSystem {
	return &ovsSystem{prefix: fmt.Sprintf("tsb%do", pid)}
}

func (s *ovsSystem) name() string { return "ovs" }

// switchPID is ovs-vswitchd's pid from its pid file, checked by name.
// Its userspace datapath forwards in its own threads, which the pid's
// CPU time includes.
func (s *ovsSystem) switchPID() int {
	for _, d := range s.pidfiles {
		if d.comm != "ovs-vswitchd" {
			continue
		}
		if pid, err := d.pid(); err == nil && pidIs(pid, d.comm) {
			return pid
		}
	}
	return 0
}

func (s *ovsSystem) setup(ctx context.Context, tb *testbed) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	bridge := s.prefix
	if err := s.vsctl(ctx, "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev"); err != nil {
		return err
	}
	for _, end := range []struct{ ns, cidr, suffix string }{{tb.nsA, addrA, "a"}, {tb.nsB, addrB, "b"}} {
		tap := s.prefix + end.suffix
		if err := s.addTap(ctx, bridge, tap, end.ns); err != nil {
			return err
		}
		if err := configure(ctx, end.ns, tap, end.cidr); err != nil {
			return err
		}
	}
	return nil
}

// addTap adds a TAP port called tap to bridge and moves it into ns.
func (s *ovsSystem) addTap(ctx context.Context, bridge, tap, ns string) error {
	// ovs-vsctl waits until ovs-vswitchd has created the TAP, so it
	// can be moved at once. OVS keeps its file descriptor, which
	// follows the device into the namespace.
	if err := s.vsctl(ctx, "add-port", bridge, tap, "--", "set", "Interface", tap, "type=tap"); err != nil {
		return err
	}
	s.taps = append(s.taps, tap)
	ipArgs := []string{"link", "set", tap, "netns", ns}
	if s.netns != "" {
		ipArgs = append([]string{"-n", s.netns}, ipArgs...)
	}
	_, err := run(ctx, "ip", ipArgs...)
	return err
}

// start makes the private directory and database and starts
// ovsdb-server and ovs-vswitchd (in s.netns when set), with no bridge.
func (s *ovsSystem) start(ctx context.Context) error {
	schema, err := ovsSchema()
	if err != nil {
		return err
	}
	becomeSubreaper()
	dir, err := os.MkdirTemp("", "tsb-ovs-")
	if err != nil {
		return err
	}
	s.dir = dir
	// The OVS tools find their control sockets and logs through these.
	s.env = append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_DBDIR="+dir, "OVS_LOGDIR="+dir)
	s.db = "unix:" + filepath.Join(dir, "db.sock")
	path := func(name string) string { return filepath.Join(dir, name) }

	if err := s.run(ctx, "ovsdb-tool", "create", path("conf.db"), schema); err != nil {
		return err
	}
	s.pidfiles = append(s.pidfiles, ovsDaemon{"ovsdb-server", path("ovsdb.pid")})
	if err := s.run(ctx, "ovsdb-server", path("conf.db"),
		"--remote=punix:"+path("db.sock"),
		"--unixctl="+path("ovsdb.ctl"),
		"--pidfile="+path("ovsdb.pid"),
		"--detach", "--log-file="+path("ovsdb.log")); err != nil {
		return err
	}
	if err := s.vsctl(ctx, "--no-wait", "init"); err != nil {
		return err
	}
	if !s.noTSO {
		if err := s.vsctl(ctx, "--no-wait", "set", "Open_vSwitch", ".", "other_config:userspace-tso-enable=true"); err != nil {
			return err
		}
	}
	// A system Open vSwitch's datapath device, if there is one, is not ours
	// to remove; in a namespace of our own, it goes with the namespace.
	s.ownsDatapathDev = s.netns == "" && !linkExists(ctx, ovsDatapathDev)
	// Stopped before the database: it is the one holding the TAPs.
	s.pidfiles = append([]ovsDaemon{{"ovs-vswitchd", path("vswitchd.pid")}}, s.pidfiles...)
	vswitchd := []string{"ovs-vswitchd", s.db,
		"--unixctl=" + path("vswitchd.ctl"),
		"--pidfile=" + path("vswitchd.pid"),
		"--detach", "--log-file=" + path("vswitchd.log")}
	if s.netns != "" {
		vswitchd = append(netnsExec(s.netns), vswitchd...)
	}
	return s.run(ctx, vswitchd[0], vswitchd[1:]...)
}

func (s *ovsSystem) run(ctx context.Context, name string, args ...string) error {
	cmd := command(ctx, name, args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s%s", commandLine(name, args), err, strings.TrimSpace(string(out)), s.logTail())
	}
	return nil
}

func (s *ovsSystem) vsctl(ctx context.Context, args ...string) error {
	// --timeout keeps a wedged ovs-vswitchd from hanging the run.
	return s.run(ctx, "ovs-vsctl", append([]string{"--db=" + s.db, "--timeout=30"}, args...)...)
}

// logTail returns the end of the OVS logs, where a failed start or a
// refused port explains itself.
func (s *ovsSystem) logTail() string {
	var b strings.Builder
	for _, name := range []string{"ovsdb.log", "vswitchd.log"} {
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		fmt.Fprintf(&b, "\n%s:\n%s", name, indent(strings.Join(lines, "\n")))
	}
	return b.String()
}

func (s *ovsSystem) teardown() error {
	var errs []error
	for _, d := range s.pidfiles {
		if err := stopPidfile(d); err != nil {
			errs = append(errs, err)
		}
	}
	s.pidfiles = nil
	// TAPs not yet moved into a namespace stay in the host one if
	// ovs-vswitchd made them persistent; the bridge's own port likewise.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var links []string
	if s.netns == "" {
		links = append(s.taps, s.prefix)
	}
	if s.ownsDatapathDev {
		links = append(links, ovsDatapathDev)
	}
	for _, l := range links {
		if linkExists(ctx, l) {
			if _, err := run(ctx, "ip", "link", "delete", l); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.taps, s.ownsDatapathDev = nil, false
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, err)
		}
		s.dir = ""
	}
	return errors.Join(errs...)
}

// stopPidfile stops a daemon that detached from us: signal it, then reap
// it (see becomeSubreaper) or, failing that, watch its /proc entry. The
// name check keeps a stale pid file from signalling an unrelated process
// that reused the pid.
func stopPidfile(d ovsDaemon) error {
	pid, err := d.pid()
	if errors.Is(err, os.ErrNotExist) {
		return nil // never started
	}
	if err != nil {
		return err
	}
	if !pidIs(pid, d.comm) {
		reap(pid)
		return nil
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return fmt.Errorf("stop %s (pid %d): %w", d.comm, pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pidIs(pid, d.comm) {
		if time.Now().After(deadline) {
			_ = unix.Kill(pid, unix.SIGKILL)
			reap(pid)
			return fmt.Errorf("stop %s (pid %d): still running 10s after SIGTERM; killed", d.comm, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	reap(pid)
	return nil
}

// pid reads d's pid file.
func (d ovsDaemon) pid() (int, error) {
	data, err := os.ReadFile(d.pidfile)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s: bad pid file %s: %q", d.comm, d.pidfile, data)
	}
	return pid, nil
}

// reap collects pid's exit status if it is our child and has exited.
func reap(pid int) {
	var ws unix.WaitStatus
	for i := 0; i < 20; i++ {
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if got == pid || err != nil {
			return // reaped, or not ours to reap
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pidIs reports whether pid is a live process named comm. A zombie
// counts as gone: it has stopped and only waits for init to reap it.
func pidIs(pid int, comm string) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	p, err := parseProcStat(data)
	return err == nil && p.comm == comm && p.state != 'Z'
}
