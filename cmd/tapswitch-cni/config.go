package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/tapswitch/tapswitch/api"
)

// netConf is the plugin's network configuration.
type netConf struct {
	types.PluginConf
	// Network is the tapswitch network; empty means the config's name.
	Network string `json:"network,omitempty"`
	// Socket is tapswitchd's API socket; empty means $TAPSWITCH_SOCKET,
	// then api.DefaultSocket.
	Socket string `json:"socket,omitempty"`

	// hasValid says whether the config holds a list of valid
	// attachments (GC): an absent list is not an empty one.
	hasValid bool
}

// nameRE is what tapswitchd takes as a port or network name, and as a
// DNS name: a DNS label with '_' allowed (internal/apiserver's nameRE,
// repeated here because the plugin is a client of package api only).
var nameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$`)

func validName(s string) bool { return nameRE.MatchString(s) }

// loadConf parses the configuration on stdin, with its prevResult.
func loadConf(stdin []byte) (*netConf, error) {
	conf := &netConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot parse the network configuration", err.Error())
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(stdin, &raw); err == nil {
		_, a := raw["cni.dev/valid-attachments"]
		// The key the spec first gave; libcni still sends both.
		old, b := raw["cni.dev/attachments"]
		conf.hasValid = a || b
		if !a && b {
			if err := json.Unmarshal(old, &conf.ValidAttachments); err != nil {
				return nil, types.NewError(types.ErrDecodingFailure, "cannot parse cni.dev/attachments", err.Error())
			}
		}
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot parse prevResult", err.Error())
	}
	if conf.Network == "" {
		conf.Network = conf.Name
	}
	if !validName(conf.Network) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("invalid tapswitch network name %q", conf.Network),
			`set "network" in the config to a tapswitch network (see tapswitch network ls); a name has 1 to 63 letters, digits, '-' and '_'`)
	}
	if conf.Socket == "" {
		conf.Socket = os.Getenv(api.SocketEnv)
	}
	if conf.Socket == "" {
		conf.Socket = api.DefaultSocket
	}
	return conf, nil
}

// cniArg returns the value of key in CNI_ARGS ("K1=V1;K2=V2"), or "".
func cniArg(args, key string) string {
	for _, kv := range strings.Split(args, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// portNames are the names ADD tries for the port, in order: the pod's
// name, POD-IFNAME, then cni-<first 12 of the container id>-IFNAME, each
// only when it is a valid name.
func portNames(pod, ifname, containerID string) []string {
	var names []string
	add := func(s string) {
		if validName(s) {
			names = append(names, s)
		}
	}
	if validName(pod) {
		add(pod)
		add(pod + "-" + ifname)
	}
	id := containerID
	if len(id) > 12 {
		id = id[:12]
	}
	add(strings.TrimRight("cni-"+labelChars(id)+"-"+labelChars(ifname), "-"))
	return names
}

// labelChars replaces what a port name may not hold with '-'.
func labelChars(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, s)
}
