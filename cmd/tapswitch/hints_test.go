package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

// runCLI runs the CLI in the test's process against the daemon at sock
// and returns what it printed and the error main would print.
func runCLI(t *testing.T, sock string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"--socket", sock}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, err := runCLI(t, sock, "ports")
	for _, want := range []string{"cannot connect to tapswitchd at " + sock, "no such file or directory", "is it running? Start it with 'tapswitchd &' as root", "--socket"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tapswitch ports with no daemon: %v, want it to contain %q", err, want)
		}
	}
}

func TestConnHint(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name string
		err  error
		want string // "" for no hint
	}{
		{"no socket", fmt.Errorf("cannot connect: %w", fs.ErrNotExist), "is it running?"},
		{"nobody listening", fmt.Errorf("cannot connect: %w", syscall.ECONNREFUSED), "is it running?"},
		{"permission", fmt.Errorf("cannot connect: %w", syscall.EACCES), "run as root, or as a member of the group tapswitchd was started with (--group)"},
		{"daemon answered", &api.DaemonError{Status: 404, Message: "not found: x"}, ""},
		{"other", fmt.Errorf("cannot connect: %w", syscall.ETIMEDOUT), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := connHint(tt.err, sock)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("connHint(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// daemonSays serves a daemon that answers every request with status and
// an Error body of message and reason, and returns its socket.
func daemonSays(t *testing.T, status int, message string, reason api.Reason) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(api.Error{Message: message, Reason: reason})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// TestHints checks that a failure the daemon gives a reason gets the
// hint of the command that met it, after the daemon's message.
func TestHints(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		status  int
		message string
		reason  api.Reason
		hint    string // "" for none
	}{
		{"attach to a missing network", []string{"attach", "web", "--network", "nope"}, 404, `attach netns "web": not found: network "nope" does not exist`, api.ReasonNetworkNotFound,
			"list them with 'tapswitch network ls' or create it with 'tapswitch network create nope'"},
		{"connect to a missing network", []string{"connect", "web", "back"}, 404, `connect port "web" to network "back": not found: network "back" does not exist`, api.ReasonNetworkNotFound,
			"list them with 'tapswitch network ls' or create it with 'tapswitch network create back'"},
		{"rm a missing network", []string{"network", "rm", "nope"}, 404, `remove network: not found: network "nope" does not exist`, api.ReasonNetworkNotFound,
			"list them with 'tapswitch network ls'"},
		{"fdb of a missing network", []string{"fdb", "--network", "nope"}, 404, `not found: vswitch: no such network`, api.ReasonNetworkNotFound,
			"list them with 'tapswitch network ls'"},
		{"detach a missing port", []string{"detach", "nope"}, 404, `detach: not found: vswitch: no such port`, api.ReasonPortNotFound,
			"list them with 'tapswitch ports'"},
		{"network exists", []string{"network", "create", "front"}, 409, `create network "front": conflict: network "front" already exists`, api.ReasonNetworkExists,
			"inspect it with 'tapswitch network inspect front'"},
		{"port name in use", []string{"attach", "b", "--name", "web"}, 409, `attach netns "b": conflict: port name "web" already exists (in netns "a")`, api.ReasonPortNameInUse,
			"choose another with --name"},
		{"interface name in use", []string{"attach", "b", "--ifname", "lo"}, 409, `attach netns "b": conflict: lo: interface already exists in the namespace`, api.ReasonIfnameInUse,
			"choose another with --ifname"},
		{"address in use", []string{"attach", "b", "--ip", "10.0.0.1/24"}, 409, `attach netns "b": conflict: address 10.0.0.1 already in use in network "default"`, api.ReasonAddressInUse,
			"choose another, or leave --ip out"},
		{"MAC in use", []string{"attach", "b", "--mac", "02:00:00:00:00:01"}, 409, `attach netns "b": conflict: MAC 02:00:00:00:00:01 already in use`, api.ReasonMACInUse,
			"choose another with --mac, or leave --mac out for a random one"},
		{"network has ports", []string{"network", "rm", "front"}, 409, `remove network "front": conflict: 1 port(s) still attached (web)`, api.ReasonNetworkHasPorts,
			"detach them first, or use --force to detach them"},
		{"detach a gateway", []string{"detach", "tsw-12345678"}, 400, `detach: invalid request: port "tsw-12345678" is the gateway of network "front"`, api.ReasonGatewayPort,
			"a gateway goes with its network (tapswitch network rm)"},
		{"connect a gateway", []string{"connect", "tsw-12345678", "back"}, 400, `connect port "tsw-12345678" to network "back": invalid request: port "tsw-12345678" is a network's gateway, not a container's port`, api.ReasonGatewayPort,
			"give a container's port"},
		{"port set on a gateway", []string{"port", "set", "tsw-12345678", "--mac-limit", "2"}, 400, `update port: invalid request: port "tsw-12345678" is the gateway of network "front"; it routes for the host and has no port security`, api.ReasonGatewayPort,
			""},
		{"no port name", []string{"attach", "/run/netns/é"}, 400, `attach netns "/run/netns/é": invalid request: no port name can be made from netns "/run/netns/é"`, api.ReasonPortNameRequired,
			"give one with --name"},
		{"publish without an address", []string{"attach", "b", "--ip", "10.9.0.1/24", "-p", "80:80"}, 400, `attach netns "b": invalid request: published ports need an address in network "default"'s subnet 10.89.0.0/24, and the port has none`, api.ReasonPublishNeedsAddress,
			"leave --ip out, or give --ip an address in the subnet"},
		{"gateway without a subnet", []string{"network", "create", "x", "--gateway", "10.0.0.1"}, 400, `create network "x": invalid request: gateway "10.0.0.1" without a subnet`, api.ReasonGatewayWithoutSubnet,
			"give the subnet too (--subnet)"},
		{"subnet overlaps", []string{"network", "create", "x", "--subnet", "10.0.0.0/8"}, 409, `create network "x": conflict: ipam: subnets overlap: subnet 10.0.0.0/8 overlaps network "front" (10.20.0.0/24)`, api.ReasonSubnetOverlap,
			"choose another with --subnet"},
		{"pool exhausted", []string{"network", "create", "x"}, 409, `create network "x": conflict: ipam: address pool exhausted: every /24 in 10.89.0.0/16 overlaps a network or route in use`, api.ReasonPoolExhausted,
			"remove a network, or give a subnet with --subnet"},
		{"root only", []string{"ports"}, 403, `permission denied: tapswitchd's socket is for root only`, api.ReasonRootOnly,
			"run tapswitch as root, or have tapswitchd started with --group GROUP and join that group"},
		{"not in the group", []string{"network", "ls"}, 403, `permission denied: tapswitchd's socket is for root and group tsw`, api.ReasonNotInGroup,
			"ask an administrator to add you to it"},
		{"no reason", []string{"attach", "b", "--mtu", "10"}, 400, `attach netns "b": invalid request: MTU 10: must be between 68 and 65535`, "", ""},
		{"a reason this CLI does not know", []string{"attach", "b"}, 409, `attach netns "b": conflict: something new`, "something_new", ""},
		{"a reason met by another command", []string{"network", "create", "x"}, 409, `create network "x": conflict: port name "x" already exists`, api.ReasonPortNameInUse, ""},
		{"a hint the message already gives", []string{"attach", "b"}, 409, `attach netns "b": conflict: eth0: interface already exists in the namespace (choose another with --ifname)`, api.ReasonIfnameInUse, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := daemonSays(t, tt.status, tt.message, tt.reason)
			_, err := runCLI(t, sock, tt.args...)
			want := tt.message
			if tt.hint != "" {
				want += "; " + tt.hint
			}
			if err == nil || err.Error() != want {
				t.Fatalf("tapswitch %s: %v, want %q", strings.Join(tt.args, " "), err, want)
			}
			if got := api.ReasonOf(err); got != tt.reason {
				t.Errorf("ReasonOf(%v) = %q, want the daemon's %q", err, got, tt.reason)
			}
		})
	}
}
