package fdb

import "sync/atomic"

// Quota counts the entries a Table holds for one port and bounds them (see
// NewWithQuota). The zero value counts without a limit. Its methods may
// be called concurrently with each other and with the table.
type Quota struct {
	n     atomic.Int64
	limit atomic.Int64 // 0: no limit
}

// Len returns the number of entries the table holds for the port. While
// entries move concurrently it may be one off for an instant per move.
func (q *Quota) Len() int { return int(q.n.Load()) }

// Limit returns the most entries the port may have; 0 means no limit.
func (q *Quota) Limit() int { return int(q.limit.Load()) }

// SetLimit sets the most entries the port may have; 0 or less means no
// limit. Lowering it below Len removes nothing: the port gains no new
// entries until it is back below the limit.
func (q *Quota) SetLimit(n int) { q.limit.Store(int64(max(n, 0))) }

// full reports whether the port is at its limit. A nil Quota never is.
func (q *Quota) full() bool {
	if q == nil {
		return false
	}
	l := q.limit.Load()
	return l > 0 && q.n.Load() >= l
}

// take counts one more entry for the port unless that would pass the
// limit, and reports whether it did. Counting first and undoing on
// failure keeps racing takers from passing the limit together.
func (q *Quota) take() bool {
	if q == nil {
		return true
	}
	l := q.limit.Load()
	if n := q.n.Add(1); l > 0 && n > l {
		q.n.Add(-1)
		return false
	}
	return true
}

// give counts one entry less for the port.
func (q *Quota) give() {
	if q != nil {
		q.n.Add(-1)
	}
}
