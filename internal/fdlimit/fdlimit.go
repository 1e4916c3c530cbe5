// Package fdlimit keeps the daemon's file descriptors from running out.
//
// Everything an outsider can make the daemon open (a published port's
// proxied connections and UDP flows, a DNS server's TCP connections)
// takes descriptors from one Budget before opening them and gives them
// back after closing them. The Budget is the process's descriptor limit
// less a Reserve that the control plane (the API socket, attach,
// detach, TAP queues, the state file) always keeps, so that no flood of
// connections can leave the daemon unable to answer its API or attach a
// port.
package fdlimit

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Reserve is the least the control plane keeps for itself: the API's
// connections (at most 64, see tapswitchd), a TAP queue per port and
// queue, a gateway's queues and DNS sockets per network, netlink and
// nftables sockets, namespace handles and the state file. 1024 is four
// times what a daemon with 64 ports of two queues holds at rest. A larger
// limit keeps an eighth of itself instead (ReserveOf), so that a daemon
// of thousands of ports, whose TAP queues alone pass 1024, still has
// room to attach the next one.
const Reserve = 1024

// ReserveOf is what the control plane keeps of a descriptor limit: an
// eighth of it, at least Reserve. With the 1,048,576 that tapswitchd
// raises its limit to, that is 131,072, enough for 30,000 ports of four
// queues; the rest, 917,504, is the budget of outside work.
func ReserveOf(limit int) int {
	return max(Reserve, limit/8)
}

// Budget counts descriptors taken by outside-driven work against a limit.
// Its methods are safe for concurrent use; a nil *Budget admits
// everything.
type Budget struct {
	limit   int64
	used    atomic.Int64
	refused atomic.Uint64
}

// New returns a Budget of limit descriptors.
func New(limit int) *Budget {
	return &Budget{limit: int64(max(limit, 0))}
}

// Acquire takes n descriptors, or reports false, counting a refusal,
// when fewer than n remain.
func (b *Budget) Acquire(n int) bool {
	if b == nil {
		return true
	}
	for {
		used := b.used.Load()
		if used+int64(n) > b.limit {
			b.refused.Add(1)
			return false
		}
		if b.used.CompareAndSwap(used, used+int64(n)) {
			return true
		}
	}
}

// Release gives back n descriptors taken by Acquire.
func (b *Budget) Release(n int) {
	if b == nil {
		return
	}
	b.used.Add(-int64(n))
}

// Limit is the Budget's size.
func (b *Budget) Limit() int {
	if b == nil {
		return 0
	}
	return int(b.limit)
}

// Used is how many descriptors are taken now.
func (b *Budget) Used() int {
	if b == nil {
		return 0
	}
	return int(b.used.Load())
}

// Refused counts the Acquire calls that were turned away.
func (b *Budget) Refused() uint64 {
	if b == nil {
		return 0
	}
	return b.refused.Load()
}

var (
	processOnce sync.Once
	process     *Budget
)

// Process returns the budget shared by the whole process: the soft
// RLIMIT_NOFILE (which the Go runtime raises to the hard limit at start,
// and tapswitchd further, see Raise) less ReserveOf it, and at least a
// quarter of the limit. It reads the limit once, at its first call: raise
// the limit before.
func Process() *Budget {
	processOnce.Do(func() {
		process = New(budgetOf(Limit()))
	})
	return process
}

// budgetOf is what Process leaves of limit to outside work.
func budgetOf(limit int) int {
	return max(limit-ReserveOf(limit), limit/4)
}

// Limit is the process's soft RLIMIT_NOFILE, or 1024 when it cannot be
// read.
func Limit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Cur > 0 && rl.Cur < 1<<31 {
		return int(rl.Cur)
	}
	return 1024
}
