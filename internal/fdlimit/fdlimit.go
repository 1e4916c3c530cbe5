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

// Reserve is how many descriptors the control plane keeps for itself:
// the API's connections (bounded separately), a TAP queue per port and
// queue, netlink and nftables sockets, namespace handles and the state
// file. 1024 is four times what a daemon with 64 ports of two queues
// holds at rest.
const Reserve = 1024

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
// RLIMIT_NOFILE (which the Go runtime raises to the hard limit at start)
// less Reserve, and at least a quarter of the limit.
func Process() *Budget {
	processOnce.Do(func() {
		var rl unix.Rlimit
		limit := int64(1024)
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Cur > 0 && rl.Cur < 1<<31 {
			limit = int64(rl.Cur)
		}
		process = New(int(max(limit-Reserve, limit/4)))
	})
	return process
}
