// Package fdb holds the forwarding table of one switched network: which
// port each learned MAC address lives behind.
//
// The switch keeps one Table per network, so the table is keyed by
// (network, MAC) by construction: a flood of source addresses in one
// network fills only that network's table and cannot evict another
// network's entries.
//
// # Hot path
//
// Every received frame costs one Learn (its source address) and one Lookup
// (its destination). Both are lock-free and allocate nothing. Lookup writes
// no shared memory at all. Learn for a MAC already known on the same port
// stores the entry's last-seen time only when the table's coarse clock has
// advanced since the last store, so steady traffic writes nothing shared
// either; the clock moves only when the switch calls Tick (about once a
// second). A MAC seen on a new port is repointed with one compare-and-swap.
//
// Inserting a new MAC, removing entries (Delete, Expire, FlushPort, Flush)
// and rebuilding the probe array take a mutex; they are rare next to
// frames.
//
// # Limit
//
// A Table holds at most Limit entries (DefaultLimit unless configured).
// When it is full, a new MAC is not learned: Learn returns LimitReached and
// the LimitDrops counter grows. Known MACs keep working: they are found,
// refreshed and moved as usual, and nothing that was learned is pushed out
// by a newcomer. Room comes back when entries age out or are flushed. The
// switch drops a frame whose source cannot be learned, so a flood of made-up
// source addresses is neither learned nor flooded onwards.
//
// A table made by NewWithQuota also bounds each port: it counts every
// port's entries in a Quota the port holds, across inserts, moves,
// ageing, Delete, FlushPort and Flush, and refuses a MAC new to a port
// whose Quota is used up (PortLimitReached), whether the MAC is unknown or
// known on another port. One port can so fill at most its share of the
// table. The Quota is touched on inserts, moves and removals only, never
// by a refresh or a Lookup.
//
// # Ageing
//
// An entry not seen for AgeingTime (DefaultAgeingTime, 300 s, as in the
// Linux bridge and Open vSwitch) is removed by the next Expire. Ageing
// resolution is the Tick interval.
//
// # Keys
//
// A MAC address is handled as a uint64 holding its 48 bits (see Key), so
// the hot path compares integers and never hashes a slice. Bits above the
// low 48 are ignored. Callers learn unicast source addresses only; group
// addresses are the switch's business, not the table's.
package fdb
