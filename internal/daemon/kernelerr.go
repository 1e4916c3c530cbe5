package daemon

import (
	"errors"
	"io/fs"
	"net/http"
	"net/netip"
	"syscall"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/namespace"
)

// The kernel finds some requests wrong only when the daemon acts on
// them: an IPv6 address where IPv6 is off, a namespace deleted between
// the check and the act, an address the host's DNS servers already hold.
// These give such a failure, which would otherwise be a 500, the class
// that says whose it is. Failures of the daemon's own (a full disk, a
// kernel without TAP support) stay 500s.

// kernelError classes a failure to make a new port's interface.
func kernelError(err error, ips []netip.Prefix) error {
	if api.StatusOf(err) != http.StatusInternalServerError {
		return err
	}
	switch {
	case errors.Is(err, namespace.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		// A namespace given by pid whose process exited, or one deleted,
		// between the check and the pin or the TAP.
		return api.Errorf(api.ErrNotFound, "", "%w: the network namespace went away while the port was being made", err)
	case errors.Is(err, syscall.EACCES):
		for _, ip := range ips {
			if ip.Addr().Is6() {
				return invalid("%w: is IPv6 turned off in the namespace (net.ipv6.conf.all.disable_ipv6=1)? Turn it on, or give IPv4 addresses only", err)
			}
		}
	}
	return err
}

// startError classes a failure to bring a new network up.
func startError(err error) error {
	if api.StatusOf(err) != http.StatusInternalServerError {
		return err
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		// Another server holds the gateway's port 53 (on the gateway's
		// address or on every address): the host's, not the request's,
		// and not the daemon's failure either.
		return conflict("%w", err)
	}
	return err
}
