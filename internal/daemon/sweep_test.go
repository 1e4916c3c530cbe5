package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/tap"
)

// sweepTAPs removes the in-memory TAPs a kernel sweep would: persistent,
// with the alias, released, and not kept.
func (h *fakeHost) sweepTAPs(nsPath, alias string, keep func(string) bool) ([]string, error) {
	var removed []string
	for _, name := range h.taps.Names(nsPath) {
		cfg, _ := h.taps.Config(nsPath, name)
		if cfg.Persist && cfg.Alias == alias && h.taps.Device(nsPath, name) == nil && !keep(name) {
			h.taps.Remove(nsPath, name)
			removed = append(removed, name)
		}
	}
	return removed, nil
}

var _ sweepHost = (*fakeHost)(nil)

// useEtcNetns points the daemon's /etc/netns at a directory of the test.
func useEtcNetns(t *testing.T) string {
	t.Helper()
	etc := t.TempDir()
	old := netnsEtcDir
	netnsEtcDir = etc
	t.Cleanup(func() { netnsEtcDir = old })
	return etc
}

// daemonOf is a daemon of stateDir that is not started: what names its
// files and TAPs, as a daemon killed earlier had them.
func daemonOf(stateDir string, h *fakeHost) *Daemon {
	return &Daemon{cfg: Config{StateDir: stateDir}, log: slog.New(slog.DiscardHandler), host: h}
}

// leaveTAP makes a persistent TAP in this process's namespace as a
// daemon with alias would, with addr on it, and lets it go unless held.
func leaveTAP(t *testing.T, h *fakeHost, name, alias, addr string, held bool) {
	t.Helper()
	dev, err := h.taps.Create(tap.Config{Netns: selfPath, Name: name, Persist: true, Alias: alias,
		Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}})
	if err != nil {
		t.Fatal(err)
	}
	if !held {
		dev.Release()
	} else {
		t.Cleanup(func() { dev.Close() })
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func intentsLeft(t *testing.T, d *Daemon) []string {
	t.Helper()
	entries, err := os.ReadDir(d.intentDir())
	if err != nil {
		t.Fatalf("read %s: %v", d.intentDir(), err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// An attach records what it may make before it makes anything, and
// clears the record once the state file has the port, or once it has
// rolled back.
func TestAttachIntent(t *testing.T) {
	h := newFakeHost()
	dir := t.TempDir()
	d := startDaemon(t, dir, h)
	defer d.CloseAndRemove()
	frontNet(t, d)
	var seen *intentRecord
	h.taps.FailCreate = func(cfg tap.Config) error {
		recs, _ := d.readIntents()
		for _, r := range recs {
			if r.Port == "web" {
				seen = &r
			}
		}
		return nil
	}
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.NetnsPath != d.pinPath("web") || seen.Ifname != "t0" || seen.Network != "front" {
		t.Fatalf("intent record while the TAP was made = %+v, want web's pin, t0, front", seen)
	}
	if left := intentsLeft(t, d); len(left) != 0 {
		t.Fatalf("intent records left after the attach: %v", left)
	}
	h.taps.FailCreate = func(tap.Config) error { return errors.New("no TAP for you") }
	if _, err := attach(d, "api", "t1"); err == nil {
		t.Fatal("Attach(api) = nil error, want the TAP's failure")
	}
	if left := intentsLeft(t, d); len(left) != 0 {
		t.Fatalf("intent records left after a rolled-back attach: %v", left)
	}
}

// An attach the state file could not record keeps its intent record,
// so that the next start, which will not know the port, removes its TAP
// rather than leave it holding an address the IPAM holds free.
func TestAttachIntentKeptUnsaved(t *testing.T) {
	h := newFakeHost()
	dir := t.TempDir()
	d := startDaemon(t, dir, h)
	frontNet(t, d)
	// A directory where the state file goes: renaming over it fails.
	os.Remove(d.state.path)
	if err := os.Mkdir(d.state.path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatalf("Attach(web) = %v", err)
	}
	if left := intentsLeft(t, d); !slices.Equal(left, []string{"web.json"}) {
		t.Fatalf("intent records = %v, want web's kept", left)
	}
	d.Close()
	os.Remove(d.state.path)
	d = startDaemon(t, dir, h)
	defer d.CloseAndRemove()
	if h.taps.Exists(selfPath, "t0") {
		t.Fatal("the TAP of a port the state file never recorded is still there")
	}
}

// TestSweepInterruptedAttach starts a daemon where one was killed in the
// middle of an attach, after its TAP was made persistent and its
// resolv.conf written, before the state file recorded the port. The
// sweep removes them, the pin and the temporary file, and leaves what is
// not this daemon's: another state directory's TAP and files, a TAP in
// use, the administrator's resolv.conf, a file an edited record points
// at.
func TestSweepInterruptedAttach(t *testing.T) {
	etc := useEtcNetns(t)
	dir := t.TempDir()
	h := newFakeHost()
	d := startDaemon(t, dir, h)
	frontNet(t, d)
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatal(err)
	}
	d.Close()

	// What the killed attach of port api left.
	crashed := daemonOf(dir, h)
	gw := netip.MustParseAddr("10.250.7.1")
	api := intentRecord{Port: "api", Network: "front", NetnsPath: crashed.pinPath("api"), Ifname: "t1",
		ResolvConf: filepath.Join(etc, "apins", "resolv.conf")}
	if err := crashed.writeIntent(api, true); err != nil {
		t.Fatal(err)
	}
	if err := h.pin(selfPath, api.NetnsPath); err != nil {
		t.Fatal(err)
	}
	leaveTAP(t, h, "t1", crashed.alias(), "10.250.7.3/24", false)
	if err := dns.WriteResolvConfAs(api.ResolvConf, crashed.resolvOwner(), gw, nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(etc, "apins", dns.TempPrefix(crashed.resolvOwner())+"k1"), "# Written")

	// What is not this daemon's, though its records lead there.
	other := daemonOf("/var/lib/tapswitch-other", h)
	leaveTAP(t, h, "t2", other.alias(), "10.250.7.4/24", false)
	leaveTAP(t, h, "t3", crashed.alias(), "10.250.7.5/24", true)
	otherConf := filepath.Join(etc, "otherns", "resolv.conf")
	if err := dns.WriteResolvConfAs(otherConf, other.resolvOwner(), gw, nil); err != nil {
		t.Fatal(err)
	}
	otherTemp := filepath.Join(etc, "otherns", dns.TempPrefix(other.resolvOwner())+"k2")
	writeFile(t, otherTemp, "")
	adminConf := filepath.Join(etc, "adminns", "resolv.conf")
	writeFile(t, adminConf, "nameserver 192.0.2.53\n")
	elsewhere := filepath.Join(t.TempDir(), "x", "resolv.conf")
	if err := dns.WriteResolvConfAs(elsewhere, crashed.resolvOwner(), gw, nil); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []intentRecord{
		{Port: "db", NetnsPath: selfPath, Ifname: "t2", ResolvConf: otherConf},
		{Port: "admin", NetnsPath: selfPath, ResolvConf: adminConf},
		{Port: "edited", NetnsPath: selfPath, ResolvConf: elsewhere},
	} {
		if err := crashed.writeIntent(rec, false); err != nil {
			t.Fatal(err)
		}
	}
	// And a record torn by a kill as it was written.
	writeFile(t, crashed.intentPath("torn"), `{"port": "to`)

	d = startDaemon(t, dir, h)
	defer d.CloseAndRemove()
	if h.taps.Exists(selfPath, "t1") {
		t.Error("the interrupted attach's TAP t1 is still there")
	}
	if _, err := os.Lstat(api.NetnsPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the interrupted attach's pin: %v, want it gone", err)
	}
	if _, err := os.Stat(filepath.Dir(api.ResolvConf)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: %v, want it gone with its resolv.conf and temporary file", filepath.Dir(api.ResolvConf), err)
	}
	if !h.taps.Exists(selfPath, "t0") || d.ports["web"] == nil {
		t.Error("the restored port web or its TAP went")
	}
	for _, name := range []string{"t2", "t3"} {
		if !h.taps.Exists(selfPath, name) {
			t.Errorf("TAP %s went: it is another daemon's or in use", name)
		}
	}
	for _, path := range []string{otherConf, otherTemp, adminConf, elsewhere} {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s went: it is not this daemon's (%v)", path, err)
		}
	}
	if left := intentsLeft(t, d); len(left) != 0 {
		t.Errorf("intent records left after the sweep: %v", left)
	}
	// The address t1 had is free again, and handed out once.
	p, err := attach(d, "db", "t4")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.IPs, []string{"10.250.7.3/24"}) {
		t.Fatalf("Attach(db) = %v, want the swept TAP's 10.250.7.3/24", p.IPs)
	}
}

// A port whose TAP is there but cannot be opened again is dropped, its
// address released; the sweep then removes the TAP, which would hold that
// address a second time.
func TestSweepDroppedPort(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHost()
	d := startDaemon(t, dir, h)
	frontNet(t, d)
	if _, err := attach(d, "web", "t0"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	h.taps.FailOpen = func(cfg tap.Config) error {
		if cfg.Name == "t0" {
			return errors.New("cannot open it")
		}
		return nil
	}
	d = startDaemon(t, dir, h)
	defer d.CloseAndRemove()
	if st := d.Status(); st.DroppedPorts != 1 {
		t.Fatalf("Status().DroppedPorts = %d, want 1", st.DroppedPorts)
	}
	if h.taps.Exists(selfPath, "t0") {
		t.Fatal("the dropped port's TAP is still there")
	}
	nothingLeft(t, d, h, "web", "t0")
	if left := intentsLeft(t, d); len(left) != 0 {
		t.Errorf("intent records left after the sweep: %v", left)
	}
}

// Two daemons with different state directories, attached to one
// namespace, never sweep each other's TAPs or files, whatever a record
// names.
func TestSweepOtherStateDir(t *testing.T) {
	etc := useEtcNetns(t)
	h := newFakeHost()
	dirA, dirB := t.TempDir(), t.TempDir()
	a := daemonOf(dirA, h)
	leaveTAP(t, h, "t0", a.alias(), "10.250.7.2/24", false)
	conf := filepath.Join(etc, "web", "resolv.conf")
	if err := dns.WriteResolvConfAs(conf, a.resolvOwner(), netip.MustParseAddr("10.250.7.1"), nil); err != nil {
		t.Fatal(err)
	}
	temp := filepath.Join(etc, "web", dns.TempPrefix(a.resolvOwner())+"k")
	writeFile(t, temp, "")
	b := daemonOf(dirB, h)
	if err := b.writeIntent(intentRecord{Port: "web", NetnsPath: selfPath, Ifname: "t0", ResolvConf: conf}, true); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, dirB, h)
	defer d.CloseAndRemove()
	if !h.taps.Exists(selfPath, "t0") {
		t.Error("daemon B removed daemon A's TAP")
	}
	for _, path := range []string{conf, temp} {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("daemon B removed daemon A's %s: %v", path, err)
		}
	}
	// Daemon A's own start removes them: nothing holds them.
	if err := a.writeIntent(intentRecord{Port: "web", NetnsPath: selfPath, Ifname: "t0", ResolvConf: conf}, true); err != nil {
		t.Fatal(err)
	}
	da := startDaemon(t, dirA, h)
	defer da.CloseAndRemove()
	if h.taps.Exists(selfPath, "t0") {
		t.Error("daemon A left its own TAP")
	}
	if _, err := os.Stat(filepath.Dir(conf)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("daemon A left %s: %v", filepath.Dir(conf), err)
	}
}

// A resolv.conf path from an intent record is taken only if it is one
// the daemon makes: /etc/netns/NAME/resolv.conf.
func TestIsResolvConfPath(t *testing.T) {
	for path, want := range map[string]bool{
		filepath.Join(netnsEtcDir, "web", "resolv.conf"):          true,
		filepath.Join(netnsEtcDir, "web", "hosts"):                false,
		filepath.Join(netnsEtcDir, "..", "shadow", "resolv.conf"): false,
		"/etc/resolv.conf":                        false,
		filepath.Join(netnsEtcDir, "resolv.conf"): false,
		"": false,
	} {
		if got := isResolvConfPath(path); got != want {
			t.Errorf("isResolvConfPath(%q) = %v, want %v", path, got, want)
		}
	}
	if !strings.HasPrefix(filepath.Join(netnsEtcDir, "web"), netnsEtcDir) {
		t.Fatal("netnsEtcDir is not a directory")
	}
}

// BenchmarkIntent measures what the intent record adds to an attach:
// one small file written (and synced, with its directory, for an attach
// that may write a resolv.conf), then removed.
func BenchmarkIntent(b *testing.B) {
	for _, durable := range []bool{false, true} {
		b.Run(fmt.Sprintf("synced=%v", durable), func(b *testing.B) {
			d := daemonOf(b.TempDir(), newFakeHost())
			rec := intentRecord{Port: "web", Network: "front", NetnsPath: "/run/netns/web", Ifname: "eth0",
				ResolvConf: "/etc/netns/web/resolv.conf"}
			b.ReportAllocs()
			for b.Loop() {
				if err := d.writeIntent(rec, durable); err != nil {
					b.Fatal(err)
				}
				d.clearIntent(rec.Port)
			}
		})
	}
}

// A namespace whose /etc/netns/NAME, or the resolv.conf in it, is a
// symbolic link gets no resolv.conf: nothing is written, read or removed
// through the link, and the port works without one.
func TestWriteResolvConfSymlink(t *testing.T) {
	etc := useEtcNetns(t)
	outside := t.TempDir()
	shadow := filepath.Join(outside, "shadow")
	writeFile(t, shadow, "root:secret\n")
	if err := os.Symlink(outside, filepath.Join(etc, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(etc, "filelink"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shadow, filepath.Join(etc, "filelink", "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	d := daemonOf(t.TempDir(), newFakeHost())
	for _, ns := range []string{"dirlink", "filelink"} {
		if got := d.writeResolvConf(ns, netip.MustParseAddr("10.250.7.1"), nil); got != "" {
			t.Errorf("writeResolvConf(%s) = %q, want none written", ns, got)
		}
		d.removeResolvConf(filepath.Join(etc, ns, "resolv.conf"))
	}
	entries, _ := os.ReadDir(outside)
	if b, _ := os.ReadFile(shadow); len(entries) != 1 || string(b) != "root:secret\n" {
		t.Errorf("the directory the links point at holds %d files, shadow %q; want shadow alone, unchanged", len(entries), b)
	}
	for _, link := range []string{filepath.Join(etc, "dirlink"), filepath.Join(etc, "filelink", "resolv.conf")} {
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: %v, want the link left as it was", link, err)
		}
	}
}
