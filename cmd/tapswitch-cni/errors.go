package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/tapswitch/tapswitch/api"
)

// unreachable reports whether err says that tapswitchd did not answer:
// no socket, nobody listening on it, or no reply in time. The runtime
// may try again later.
func unreachable(err error) bool {
	var de *api.DaemonError
	if errors.As(err, &de) {
		return false
	}
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}

// notAnswering is the message for a daemon that does not answer.
func notAnswering(socket string) string {
	return fmt.Sprintf("tapswitchd is not answering on %s: start it (tapswitchd &) or set \"socket\" in the network config", socket)
}

// cniError turns an error of the API client into a CNI error: code 11
// (try again later) while the daemon does not answer, 7 for a network
// that does not exist or an address from a range no port may have, 4 for
// CNI_NETNS naming the host's own namespace, 999 with the daemon's
// message otherwise. what
// says what the plugin was doing.
func cniError(conf *netConf, what string, err error) *types.Error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	var de *api.DaemonError
	switch {
	case unreachable(err):
		return types.NewError(types.ErrTryAgainLater, notAnswering(conf.Socket), what+": "+err.Error())
	case errors.As(err, &de) && de.Reason == api.ReasonNetworkNotFound:
		return networkNotFound(conf, err)
	case errors.As(err, &de) && de.Reason == api.ReasonHostNetns:
		// The runtime gave the host's namespace as CNI_NETNS: a
		// host-network container, which needs no plugin.
		return types.NewError(types.ErrInvalidEnvironmentVariables,
			what+": CNI_NETNS is the host's own network namespace, which tapswitch does not attach to for a container", err.Error())
	case errors.As(err, &de) && de.Reason == api.ReasonUnsafeRange:
		return types.NewError(types.ErrInvalidNetworkConfig,
			what+": the IPAM plugin gave an address no port may have: change the ranges of \"ipam\" in the network config", err.Error())
	case errors.Is(err, fs.ErrPermission), errors.Is(err, api.ErrForbidden):
		return types.NewError(types.ErrInternal,
			fmt.Sprintf("%s: %v: run the container runtime as root, or start tapswitchd with --group GROUP and run it in that group", what, err), "")
	default:
		return types.NewError(types.ErrInternal, what+": "+err.Error(), "")
	}
}

// networkNotFound is the error for a config naming a network tapswitchd
// does not have.
func networkNotFound(conf *netConf, err error) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("tapswitch network %q does not exist: create it (tapswitch network create %s) or set \"network\" in the network config to one of tapswitch network ls", conf.Network, conf.Network),
		err.Error())
}
