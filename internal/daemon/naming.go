package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/nat"
)

// DefaultStateDir is where tapswitchd keeps its state unless told
// otherwise; a daemon using it owns the plain nftables table name.
const DefaultStateDir = "/var/lib/tapswitch"

// GatewayPrefix starts the name of every gateway interface, of every
// daemon: the firewall keeps traffic from crossing between interfaces
// that share it.
const GatewayPrefix = "tsw-"

// stateID names a state directory in 8 hex digits, so that names derived
// from it (gateway interfaces, the nftables table) differ between daemons
// with different state and stay the same across restarts of one daemon.
func stateID(stateDir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(stateDir)))
	return hex.EncodeToString(sum[:4])
}

// GatewayName is the interface name of network's gateway for a daemon
// with stateDir: "tsw-" and 8 hex digits, within the kernel's 15 bytes
// whatever the network is called.
func GatewayName(stateDir, network string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(stateDir) + "\x00" + network))
	return GatewayPrefix + hex.EncodeToString(sum[:4])
}

// TableName is the nftables table (family inet) of a daemon with
// stateDir: "tapswitch" for the default state directory, otherwise
// "tapswitch-" and the state directory's id, so that a second daemon
// (tests, benchmarks) never replaces the first one's rules.
func TableName(stateDir string) string {
	if filepath.Clean(stateDir) == DefaultStateDir {
		return nat.TableName
	}
	return nat.TableName + "-" + stateID(stateDir)
}

// defaultName names a port after its namespace: "web" for netns web,
// "pid-42" for pid:42 or /proc/42/ns/net, the file's name for other
// paths. Characters a DNS label cannot hold become '-'.
func defaultName(netns string) string {
	name := filepath.Base(netns)
	if pid, ok := strings.CutPrefix(netns, "pid:"); ok {
		name = "pid-" + pid
	} else if strings.HasPrefix(netns, "/proc/") {
		parts := strings.Split(strings.TrimPrefix(netns, "/proc/"), "/")
		if len(parts) > 0 {
			name = "pid-" + parts[0]
		}
	}
	name = strings.Map(func(r rune) rune {
		if r < 128 && (r == '-' || r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return r
		}
		return '-'
	}, name)
	if len(name) > 63 {
		name = name[:63]
	}
	return strings.Trim(name, "-")
}

// checkName reports why name cannot name a port or network (what says
// which).

// connectName is the default name of the port connect makes.
func connectName(port, network string) (string, error) {
	name := port + "-" + network
	if apiserver.CheckName("port", name) != nil {
		return "", api.Errorf(api.ErrInvalid, api.ReasonPortNameRequired, "port name %q (PORT-NETWORK) is too long", name)
	}
	return name, nil
}

// maxNetworkName bounds a network's name by what the firewall rules'
// comments hold.
var maxNetworkName = min(63, nat.MaxNameLen)

func checkNetworkName(name string) error {
	if len(name) > maxNetworkName {
		return invalid("network name %q: longer than %d bytes", name, maxNetworkName)
	}
	return apiserver.CheckName("network", name)
}
