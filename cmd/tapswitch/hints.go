package main

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/api"
)

// The daemon's errors say what failed; the CLI says what to do about it,
// in the terms of its commands and flags. advise adds that hint to an
// error of the client where one helps: from the reason the daemon gave
// (api.Reason) and the command that got it, or from why the daemon could
// not be reached.

// hintError is an error with what the user can do about it.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + "; " + e.hint }
func (e *hintError) Unwrap() error { return e.err }

// advise returns err, which cmd got from the daemon or in reaching it,
// with a hint when one helps. network is the network cmd named, if any.
func (g *globals) advise(cmd *cobra.Command, err error, network string) error {
	if err == nil {
		return nil
	}
	h := connHint(err, g.socket)
	if h == "" {
		h = reasonHint(commandName(cmd), api.ReasonOf(err), network)
	}
	// A daemon older than the reasons said what to do itself.
	if h == "" || strings.Contains(err.Error(), h) {
		return err
	}
	return &hintError{err: err, hint: h}
}

// commandName is cmd's path without the program's name: "attach",
// "network rm".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// connHint says what to do when the daemon at socket could not be
// reached.
func connHint(err error, socket string) string {
	var de *api.DaemonError
	if errors.As(err, &de) {
		// The daemon was reached and answered.
		return ""
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return "is it running? Start it with 'tapswitchd &' as root, or point --socket or " + api.SocketEnv + " at its socket"
	case errors.Is(err, fs.ErrPermission):
		return permissionHint(socket)
	}
	return ""
}

// reasonHint says what to do about a failure of the command cmd for
// reason; network is the network cmd named, if any. It is "" where the
// message says enough.
func reasonHint(cmd string, reason api.Reason, network string) string {
	is := func(cmds ...string) bool { return slices.Contains(cmds, cmd) }
	switch reason {
	case api.ReasonNetworkNotFound:
		if network != "" && is("attach", "connect") {
			return fmt.Sprintf("list them with 'tapswitch network ls' or create it with 'tapswitch network create %s'", network)
		}
		return "list them with 'tapswitch network ls'"
	case api.ReasonPortNotFound:
		return "list them with 'tapswitch ports'"
	case api.ReasonNetworkExists:
		if is("network create") {
			return fmt.Sprintf("inspect it with 'tapswitch network inspect %s'", network)
		}
	case api.ReasonPortNameInUse:
		if is("attach", "connect") {
			return "choose another with --name"
		}
	case api.ReasonIfnameInUse:
		if is("attach") {
			return "choose another with --ifname"
		}
	case api.ReasonAddressInUse:
		if is("attach", "connect") {
			return "choose another, or leave --ip out"
		}
	case api.ReasonMACInUse:
		if is("attach") {
			return "choose another with --mac, or leave --mac out for a random one"
		}
	case api.ReasonNetworkHasPorts:
		if is("network rm") {
			return "detach them first, or use --force to detach them"
		}
	case api.ReasonGatewayPort:
		switch cmd {
		case "detach":
			return "a gateway goes with its network (tapswitch network rm)"
		case "connect":
			return "give a container's port"
		}
	case api.ReasonPortNameRequired:
		if is("attach", "connect") {
			return "give one with --name"
		}
	case api.ReasonPublishNeedsAddress:
		if is("attach") {
			return "leave --ip out, or give --ip an address in the subnet"
		}
	case api.ReasonGatewayWithoutSubnet:
		if is("network create") {
			return "give the subnet too (--subnet)"
		}
	case api.ReasonSubnetOverlap:
		if is("network create") {
			return "choose another with --subnet"
		}
	case api.ReasonPoolExhausted:
		if is("network create") {
			return "remove a network, or give a subnet with --subnet"
		}
	case api.ReasonRootOnly:
		return "run tapswitch as root, or have tapswitchd started with --group GROUP and join that group"
	case api.ReasonNotInGroup:
		return "ask an administrator to add you to it"
	}
	return ""
}
