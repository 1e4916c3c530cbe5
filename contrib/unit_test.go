// Tests of the systemd unit that need no systemd: that it parses, and
// that what it says agrees with the daemon's defaults and needs.
// internal/e2e's TestInstall verifies it with systemd-analyze and
// TestServiceUnit runs the daemon as the unit does.
package contrib_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/internal/fdlimit"
)

// values reads the unit: every value of each section/key, in order.
func values(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("tapswitchd.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts, err := unit.DeserializeOptions(f)
	if err != nil {
		t.Fatalf("parse tapswitchd.service: %v", err)
	}
	m := map[string][]string{}
	for _, o := range opts {
		k := o.Section + "/" + o.Name
		m[k] = append(m[k], o.Value)
	}
	return m
}

func one(t *testing.T, m map[string][]string, key string) string {
	t.Helper()
	v := m[key]
	if len(v) != 1 {
		t.Fatalf("tapswitchd.service: %s = %q, want one value", key, v)
	}
	return v[0]
}

func TestUnitMatchesDaemon(t *testing.T) {
	m := values(t)
	for key, want := range map[string]string{
		"Service/Type":                     "notify",
		"Service/NotifyAccess":             "main",
		"Service/Restart":                  "always",
		"Service/StateDirectory":           strings.TrimPrefix(daemon.DefaultStateDir, "/var/lib/"),
		"Service/RuntimeDirectory":         strings.TrimPrefix(filepath.Dir(api.DefaultSocket), "/run/"),
		"Service/RuntimeDirectoryPreserve": "restart",
		"Service/LimitNOFILE":              strconv.Itoa(fdlimit.DefaultLimit),
		"Install/WantedBy":                 "multi-user.target",
	} {
		if got := one(t, m, key); got != want {
			t.Errorf("tapswitchd.service: %s=%s, want %s", key, got, want)
		}
	}
	// The directories systemd makes are the daemon's defaults, and
	// ExecStart= names them so that a drop-in changing one shows both.
	if !strings.HasPrefix(daemon.DefaultStateDir, "/var/lib/") || !strings.HasPrefix(api.DefaultSocket, "/run/") {
		t.Fatalf("defaults %s and %s are not under /var/lib and /run, where StateDirectory= and RuntimeDirectory= are", daemon.DefaultStateDir, api.DefaultSocket)
	}
	exec := strings.Fields(one(t, m, "Service/ExecStart"))
	if exec[0] != "/usr/local/bin/tapswitchd" {
		t.Errorf("ExecStart= runs %s; make install rewrites /usr/local/bin/tapswitchd only", exec[0])
	}
	for flag, want := range map[string]string{"--state-dir": daemon.DefaultStateDir, "--socket": api.DefaultSocket} {
		i := slices.Index(exec, flag)
		if i < 0 || i+1 >= len(exec) || exec[i+1] != want {
			t.Errorf("ExecStart=%s: want %s %s", strings.Join(exec, " "), flag, want)
		}
	}
	if n, err := strconv.Atoi(one(t, m, "Service/FileDescriptorStoreMax")); err != nil || n < 1024 {
		t.Errorf("FileDescriptorStoreMax=%v: want a store of at least 1024 descriptors", m["Service/FileDescriptorStoreMax"])
	}
	if doc := one(t, m, "Unit/Documentation"); !strings.Contains(doc, "man:tapswitchd(8)") {
		t.Errorf("Documentation=%s: want man:tapswitchd(8), the page make install puts", doc)
	}
}

// TestUnitHardeningKeepsHostMounts checks that no setting gives the
// service a mount namespace of its own: the pins the daemon bind-mounts
// under its state directory must be the host's and outlive a restart,
// and it must see /run/netns entries made after it started. And that
// the capability bounding set holds what the daemon cannot do without.
func TestUnitHardeningKeepsHostMounts(t *testing.T) {
	m := values(t)
	for _, key := range []string{
		"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts",
		"PrivateNetwork", "PrivateUsers", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths",
		"TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "ProtectKernelTunables",
		"ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectProc",
		"ProcSubset", "ProtectClock", "ProtectHostname", "RestrictNamespaces", "MountFlags",
		"DynamicUser", "User", "RootDirectory", "RootImage", "NetworkNamespacePath",
		"DevicePolicy", "DeviceAllow",
	} {
		if v, ok := m["Service/"+key]; ok {
			t.Errorf("tapswitchd.service sets %s=%v, which would take the daemon out of the host's mounts, namespaces or devices", key, v)
		}
	}
	caps := strings.Fields(one(t, m, "Service/CapabilityBoundingSet"))
	for _, c := range []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_NET_BIND_SERVICE"} {
		if !slices.Contains(caps, c) {
			t.Errorf("CapabilityBoundingSet=%s lacks %s", strings.Join(caps, " "), c)
		}
	}
	fams := strings.Fields(one(t, m, "Service/RestrictAddressFamilies"))
	for _, f := range []string{"AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"} {
		if !slices.Contains(fams, f) {
			t.Errorf("RestrictAddressFamilies=%s lacks %s", strings.Join(fams, " "), f)
		}
	}
	if _, ok := m["Service/ExecReload"]; ok {
		t.Errorf("ExecReload= is set, but tapswitchd has nothing to reload and SIGHUP ends it")
	}
}
