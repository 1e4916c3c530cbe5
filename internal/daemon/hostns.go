package daemon

import (
	"sync"

	"github.com/tapswitch/tapswitch/api"
)

// A port's TAP belongs in a container's namespace. Attached into the
// daemon's own, the host's, it would put a container's interface and a
// second route for the network's subnet next to the gateway's, where
// the host's own traffic then goes. The spellings of that namespace are
// many (/proc/self/ns/net, pid:PID of the daemon or of any host process,
// pid:1 where the daemon runs in the host namespace, /proc/PID/task/TID/
// ns/net, a /run/netns entry bind-mounted from one of those), so the
// namespace is compared by identity, the device and inode of its nsfs
// file, never by name. It is refused unless the request says
// allow_host_netns.

// selfNetns is the daemon's own network namespace file, as the calling
// thread sees it. Not /proc/self, which is the main thread's: namespace.Do
// may have lent the main thread to another namespace for a moment. A
// goroutine not locked to its thread always runs on one in the daemon's
// own namespace (namespace.Do sees to that), so the thread asking is.
const selfNetns = "/proc/thread-self/ns/net"

// ownNetns is the identity of the daemon's namespace, read once: the
// daemon never leaves it.
var ownNetns = sync.OnceValues(func() (nsID, error) { return nsIDOf(selfNetns) })

// ownNetnser is a host that knows which namespace the daemon itself is
// in: linuxHost, which reads selfNetns. The tests' fake host puts its
// fake TAPs in the test's own namespace and does not say, so no
// namespace counts as the host's there unless a test says so.
type ownNetnser interface {
	ownNetns() (nsID, error)
}

func (linuxHost) ownNetns() (nsID, error) { return ownNetns() }

// isHostNetns reports whether ns, the namespace a port is to go into,
// is the daemon's own.
func (d *Daemon) isHostNetns(ns nsID) bool {
	h, ok := d.host.(ownNetnser)
	if !ok {
		return false
	}
	own, err := h.ownNetns()
	if err != nil {
		// Without it nothing can be compared; a daemon that cannot stat
		// its own /proc entry has worse troubles, and says so.
		d.log.Warn("cannot tell the daemon's own network namespace; a port may be attached into it", "err", err)
		return false
	}
	return ns == own
}

// hostNetnsError is the refusal of the daemon's own namespace, spelled
// spec by the user.
func hostNetnsError(spec string) error {
	return api.Errorf(api.ErrInvalid, api.ReasonHostNetns,
		"network namespace %q is tapswitchd's own, the host's: a container's TAP and a second route for the network's subnet would go into the host; "+
			"attach a container's namespace, or ask for this one explicitly (tapswitch attach --allow-host-netns, or allow_host_netns in the API)", spec)
}
