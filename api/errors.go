package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Error classes. The daemon wraps its errors with one of these (using %w)
// so the server can pick the HTTP status (StatusOf); the message is the
// error's text.
var (
	ErrInvalid  = errors.New("invalid request")
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrForbidden is for a peer that may not use the socket (403).
	ErrForbidden = errors.New("permission denied")
	// ErrUnavailable is for a change that needs the cluster's store
	// while it cannot be reached (503).
	ErrUnavailable = errors.New("unavailable")
)

// classes are the error classes with their HTTP statuses.
var classes = []struct {
	err    error
	status int
}{
	{ErrInvalid, http.StatusBadRequest},
	{ErrForbidden, http.StatusForbidden},
	{ErrNotFound, http.StatusNotFound},
	{ErrConflict, http.StatusConflict},
	{ErrUnavailable, http.StatusServiceUnavailable},
}

// StatusOf is the HTTP status of an error of the daemon: that of its
// class, 503 for a request not carried out because its context ended
// (its client hung up while it waited its turn, or the daemon is
// stopping), or 500 when it has none.
func StatusOf(err error) int {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.status
		}
	}
	if Abandoned(err) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Abandoned reports whether err says that a request was not carried out
// because its context ended before its turn came.
func Abandoned(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Error is the body of every failed request.
type Error struct {
	// Message says what failed and why, naming the thing.
	Message string `json:"message"`
	// Reason is the failure in a word, for programs; empty when none of
	// the Reasons fits.
	Reason Reason `json:"reason,omitempty"`
}

// Reason says in a word why a request failed, finer than the error's
// class, so that a program can act on it and the CLI can say what to do.
// New reasons may be added; a client must treat one it does not know as
// no reason.
type Reason string

// The reasons, with their class.
const (
	// ReasonNetworkNotFound (ErrNotFound): the network named does not
	// exist.
	ReasonNetworkNotFound Reason = "network_not_found"
	// ReasonPortNotFound (ErrNotFound): no port has the name or id given.
	ReasonPortNotFound Reason = "port_not_found"
	// ReasonNetworkExists (ErrConflict): a network of that name exists.
	ReasonNetworkExists Reason = "network_exists"
	// ReasonPortNameInUse (ErrConflict): a port of that name exists.
	ReasonPortNameInUse Reason = "port_name_in_use"
	// ReasonIfnameInUse (ErrConflict): the namespace has an interface of
	// the name the port's TAP was to have.
	ReasonIfnameInUse Reason = "ifname_in_use"
	// ReasonAddressInUse (ErrConflict): another port of the network has
	// the address asked for.
	ReasonAddressInUse Reason = "address_in_use"
	// ReasonMACInUse (ErrConflict): another port of the network has the
	// MAC asked for.
	ReasonMACInUse Reason = "mac_in_use"
	// ReasonNetworkHasPorts (ErrConflict): the network to remove has
	// ports attached, and force was not given.
	ReasonNetworkHasPorts Reason = "network_has_ports"
	// ReasonGatewayPort (ErrInvalid): the port named is a network's
	// gateway, which cannot be detached, changed or connected from.
	ReasonGatewayPort Reason = "gateway_port"
	// ReasonPortNameRequired (ErrInvalid): no valid port name can be made
	// from the request (from the namespace, or PORT-NETWORK for
	// connect); the request must give one.
	ReasonPortNameRequired Reason = "port_name_required"
	// ReasonPublishNeedsAddress (ErrInvalid): ports are to be published
	// but the port has no address in its network's subnet.
	ReasonPublishNeedsAddress Reason = "publish_needs_address"
	// ReasonGatewayWithoutSubnet (ErrInvalid): a network's gateway was
	// given without its subnet.
	ReasonGatewayWithoutSubnet Reason = "gateway_without_subnet"
	// ReasonSubnetOverlap (ErrConflict): the subnet asked for overlaps
	// another network's or a route of the host.
	ReasonSubnetOverlap Reason = "subnet_overlap"
	// ReasonPoolExhausted (ErrConflict): no subnet of the daemon's pool
	// is free for a network created without one.
	ReasonPoolExhausted Reason = "pool_exhausted"
	// ReasonUnsafeRange (ErrInvalid): a subnet, gateway or address lies
	// in a range no network may use (loopback, link-local, multicast,
	// reserved); the message names the range and what to use instead.
	ReasonUnsafeRange Reason = "unsafe_range"
	// ReasonHostNetns (ErrInvalid): the namespace to attach to is the
	// daemon's own, the host's; the request must say allow_host_netns
	// to attach there anyway.
	ReasonHostNetns Reason = "host_netns"
	// ReasonRootOnly (ErrForbidden): the socket serves root only.
	ReasonRootOnly Reason = "root_only"
	// ReasonNotInGroup (ErrForbidden): the socket serves root and a group
	// the caller is not in.
	ReasonNotInGroup Reason = "not_in_group"
)

// ReasonError is an error of the daemon with its class and reason. Its
// message is the class's and then the cause's, as "conflict: port name
// \"web\" already exists"; errors.Is matches both the class and what the
// cause wraps.
type ReasonError struct {
	// Class is one of ErrInvalid, ErrForbidden, ErrNotFound and
	// ErrConflict.
	Class  error
	Reason Reason
	// Err is what failed.
	Err error
}

// Errorf returns a ReasonError of class and reason whose cause is
// fmt.Errorf(format, a...).
func Errorf(class error, reason Reason, format string, a ...any) error {
	return &ReasonError{Class: class, Reason: reason, Err: fmt.Errorf(format, a...)}
}

func (e *ReasonError) Error() string {
	if e.Class == nil {
		return e.Err.Error()
	}
	return e.Class.Error() + ": " + e.Err.Error()
}

func (e *ReasonError) Unwrap() []error { return []error{e.Class, e.Err} }

// ReasonOf returns the reason err carries: that of the first ReasonError
// or DaemonError it wraps, or "".
func ReasonOf(err error) Reason {
	var re *ReasonError
	if errors.As(err, &re) {
		return re.Reason
	}
	var de *DaemonError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}
