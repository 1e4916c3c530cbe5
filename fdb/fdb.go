package fdb

import (
	"cmp"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultLimit matches the order of magnitude of a busy host's
	// neighbours while keeping a table's probe array at 128 KiB.
	DefaultLimit = 8192

	// MaxLimit bounds the memory one misconfigured network can take: the
	// probe array costs 16 to 32 bytes per allowed entry (at least two
	// 8-byte slots, rounded up to a power of two), so 16 to 32 MiB here.
	// Larger configured limits are lowered to it.
	MaxLimit = 1 << 20

	// DefaultAgeingTime is the Linux bridge and Open vSwitch default, so a
	// network behaves the same when moved onto this switch.
	DefaultAgeingTime = 300 * time.Second
)

// minSlots keeps tiny limits from producing arrays so small that every
// insert lands next to a neighbour.
const minSlots = 8

// cacheLine is padding between field groups written by different parties.
// 128 rather than 64: x86 prefetches lines in adjacent pairs and arm64
// server parts have 128-byte lines, so 64 still shares in practice.
const cacheLine = 128

// Config sets a Table's limits. The zero value gives the defaults.
type Config struct {
	// Limit is the most entries the table holds; 0 or less means
	// DefaultLimit, more than MaxLimit means MaxLimit.
	Limit int

	// AgeingTime is how long an entry lives without being seen; 0 or less
	// means DefaultAgeingTime.
	AgeingTime time.Duration
}

// Result tells what Learn did.
type Result uint8

const (
	// Refreshed: the MAC was known on this port; only its last-seen time
	// was updated, and only if the clock had moved.
	Refreshed Result = iota
	// Learned: the MAC was new and now has an entry.
	Learned
	// Moved: the MAC was known on another port and now points to this one.
	Moved
	// LimitReached: the MAC was new and the table is full; it was not
	// learned.
	LimitReached
	// PortLimitReached: the MAC was new to this port (unknown, or known on
	// another port) and the port's Quota is used up; nothing changed.
	PortLimitReached
)

func (r Result) String() string {
	switch r {
	case Refreshed:
		return "refreshed"
	case Learned:
		return "learned"
	case Moved:
		return "moved"
	case LimitReached:
		return "limit-reached"
	case PortLimitReached:
		return "port-limit-reached"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// Entry is one learned address, as returned by Entries.
type Entry[P any] struct {
	MAC      uint64
	Port     *P
	LastSeen time.Time
}

// Stats are a table's event counters since New. They only grow.
type Stats struct {
	Learned    uint64 // new entries inserted
	Moves      uint64 // known MACs seen on another port
	LimitDrops uint64 // new MACs not learned because the table was full
	Expired    uint64 // entries removed by ageing
	Rebuilds   uint64 // probe arrays rebuilt to shed tombstones
	// PortLimitDrops counts MACs not learned, or not moved, because their
	// port's Quota was used up.
	PortLimitDrops uint64
}

// entry is shared by every probe array it has been placed in, so a
// refresh or move made through a stale array is seen through the new one.
// It is never reused once removed: a reader may still hold it, and an
// immutable key is what lets readers match it without a lock.
type entry[P any] struct {
	key uint64
	// port is nil once the entry is removed. That state is final, which is
	// what makes lock-free moves safe against FlushPort: a move is a
	// compare-and-swap from the port it saw, so it either lands before the
	// removal (and the removal sees the new port) or fails.
	port atomic.Pointer[P]
	// seen is the clock value (Unix nanoseconds of the last Tick) at the
	// last learn, refresh or move.
	seen atomic.Int64
}

// slotArray is an open-addressing array probed linearly. It is replaced
// whole on rebuild and never resized in place, so a reader that loaded it
// can finish its probe on it even while a writer swaps in a new one.
type slotArray[P any] struct {
	// k0 and k1 key the hash. They are random per array, so addresses a
	// neighbour picks to collide cannot be predicted, and a rebuild
	// reshuffles whatever layout there was.
	k0, k1 uint64
	mask   uint64
	// maxUsed is the most non-nil slots (entries and tombstones) allowed
	// before the next insert rebuilds. Keeping some slots nil is what ends
	// every probe.
	maxUsed int
	s       []atomic.Pointer[entry[P]]
}

func newSlotArray[P any](n int) *slotArray[P] {
	return &slotArray[P]{
		k0:      rand.Uint64(),
		k1:      rand.Uint64(),
		mask:    uint64(n - 1),
		maxUsed: n - n/4,
		s:       make([]atomic.Pointer[entry[P]], n),
	}
}

// hash follows the Go runtime's portable memhash64, keyed per array: two
// 64x64->128 multiplications, each folded to 64 bits, which spread every
// input bit over the low bits used as the index. A neighbour who does not
// know the keys cannot predict the products, so cannot pick addresses
// that collide.
func (a *slotArray[P]) hash(mac uint64) uint64 {
	const m5 = 0x1d8e4e27c47d124f
	hi, lo := bits.Mul64(mac>>32^a.k1, mac&0xffffffff^a.k0)
	hi, lo = bits.Mul64(hi^lo, m5^a.k1)
	return hi ^ lo
}

// find returns the entry for mac in a, or nil. Tombstones carry a key no
// MAC can have, so they are skipped without being recognised.
func (a *slotArray[P]) find(mac uint64) *entry[P] {
	for i := a.hash(mac); ; i++ {
		e := a.s[i&a.mask].Load()
		if e == nil {
			return nil
		}
		if e.key == mac {
			return e
		}
	}
}

// Table is the forwarding table of one network. P is the switch's port
// type; the table stores *P and compares ports by pointer.
//
// Lookup and Learn of a known MAC are lock-free and allocation-free and may
// be called from any number of goroutines. Everything else may be called
// concurrently with them and with each other.
type Table[P any] struct {
	// Read by every Lookup and Learn. Written only by Tick and rebuilds,
	// so this line stays shared in every core's cache.
	slots  atomic.Pointer[slotArray[P]]
	clock  atomic.Int64 // Unix nanoseconds of the last Tick
	limit  int64
	ageing int64 // nanoseconds
	// quota returns a port's Quota, or nil for a port without one; nil
	// when the table counts no port's entries. Set once by NewWithQuota.
	quota func(*P) *Quota
	_     [cacheLine]byte

	// Written by lock-free learners, away from the read-mostly line above.
	moves          atomic.Uint64
	limitDrops     atomic.Uint64
	portLimitDrops atomic.Uint64
	_              [cacheLine]byte

	// mu serialises inserts and removals; readers never take it.
	mu sync.Mutex
	// live is the number of entries. Written under mu, read without it by
	// Len and the full-table check that keeps a MAC flood off mu.
	live atomic.Int64
	// used counts non-nil slots of the current array (entries and
	// tombstones).
	used int
	// tomb marks a removed slot. Its key is outside the 48-bit range, so a
	// probe never matches it and only writers need to recognise it.
	tomb     *entry[P]
	learned  atomic.Uint64
	expired  atomic.Uint64
	rebuilds atomic.Uint64
}

// New returns an empty table whose clock reads time.Now until the first
// Tick.
func New[P any](cfg Config) *Table[P] {
	limit := cfg.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	ageing := cfg.AgeingTime
	if ageing <= 0 {
		ageing = DefaultAgeingTime
	}
	t := &Table[P]{
		limit:  int64(limit),
		ageing: int64(ageing),
		tomb:   &entry[P]{key: ^uint64(0)},
	}
	t.slots.Store(newSlotArray[P](slotsFor(limit)))
	t.clock.Store(time.Now().UnixNano())
	return t
}

// NewWithQuota returns an empty table like New that also counts each
// port's entries in the Quota quota returns for it, and keeps a port from
// gaining entries beyond that Quota's limit. quota is called on inserts,
// moves and removals, never on a refresh or a Lookup, and may return nil
// for a port whose entries are neither counted nor bounded. It must return
// the same Quota for a port for as long as the port has entries.
func NewWithQuota[P any](cfg Config, quota func(*P) *Quota) *Table[P] {
	t := New[P](cfg)
	t.quota = quota
	return t
}

// quotaOf returns p's Quota, or nil.
func (t *Table[P]) quotaOf(p *P) *Quota {
	if t.quota == nil || p == nil {
		return nil
	}
	return t.quota(p)
}

// slotsFor sizes the array to at least twice the limit, a power of two:
// a full table is then at most half loaded, where linear probing averages
// about 1.5 probes on a hit and 2.5 on a miss.
func slotsFor(limit int) int {
	n := minSlots
	for n < 2*limit {
		n <<= 1
	}
	return n
}

// Lookup returns the port mac was learned on, or nil. It takes no lock and
// writes nothing.
func (t *Table[P]) Lookup(mac uint64) *P {
	e := t.slots.Load().find(mac & macMask)
	if e == nil {
		return nil
	}
	return e.port.Load()
}

// Learn records that mac was seen on port, which must not be nil. For a
// MAC already known it takes no lock and allocates nothing: a refresh on
// the same port stores the last-seen time only if the clock moved since,
// and a move to another port is one compare-and-swap. A new MAC is
// inserted under the table's mutex, unless the table is full, in which case
// it is dropped and LimitReached returned. A MAC new to port, inserted or
// moved, is refused with PortLimitReached when port's Quota is used up.
func (t *Table[P]) Learn(mac uint64, port *P) Result {
	if port == nil {
		panic("fdb: Learn with a nil port")
	}
	mac &= macMask
	if e := t.slots.Load().find(mac); e != nil {
		if r, ok := t.update(e, port); ok {
			return r
		}
	}
	return t.insert(mac, port)
}

// update refreshes or moves a found entry. It reports false if the entry
// has been removed meanwhile, so the caller inserts afresh.
func (t *Table[P]) update(e *entry[P], port *P) (Result, bool) {
	for {
		old := e.port.Load()
		switch {
		case old == port:
			// The comparison is what keeps steady traffic from writing:
			// the line holding e stays shared until the clock moves.
			if now := t.clock.Load(); e.seen.Load() != now {
				e.seen.Store(now)
			}
			return Refreshed, true
		case old == nil:
			return 0, false
		}
		// The entry is taken from the quota before the swap, so that
		// concurrent moves to one port cannot together pass its limit.
		q := t.quotaOf(port)
		if q.full() || !q.take() {
			t.portLimitDrops.Add(1)
			return PortLimitReached, true
		}
		if e.port.CompareAndSwap(old, port) {
			t.quotaOf(old).give()
			e.seen.Store(t.clock.Load())
			t.moves.Add(1)
			return Moved, true
		}
		q.give()
		// Another port won the entry between Load and CompareAndSwap;
		// look again so the result describes what this call did.
	}
}

func (t *Table[P]) insert(mac uint64, port *P) Result {
	// Checked before mu so that a flood of new source addresses at the
	// limit costs each rx loop one atomic add, not a fight over the lock.
	// The port's own limit goes first: it names the port that floods.
	q := t.quotaOf(port)
	if q.full() {
		t.portLimitDrops.Add(1)
		return PortLimitReached
	}
	if t.live.Load() >= t.limit {
		t.limitDrops.Add(1)
		return LimitReached
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.slots.Load()
	// Another learner may have inserted mac since the lock-free probe, so
	// probe again, remembering the first reusable slot on the way.
	free := -1
	i := a.hash(mac)
	for ; ; i++ {
		e := a.s[i&a.mask].Load()
		if e == nil {
			break
		}
		if e == t.tomb {
			if free < 0 {
				free = int(i & a.mask)
			}
			continue
		}
		if e.key == mac {
			// Removals happen under mu, so e is live here.
			r, _ := t.update(e, port)
			return r
		}
	}
	if t.live.Load() >= t.limit {
		t.limitDrops.Add(1)
		return LimitReached
	}
	// Moves to port do not take mu, so the quota may have filled since
	// the check above; take settles it.
	if !q.take() {
		t.portLimitDrops.Add(1)
		return PortLimitReached
	}
	if free < 0 {
		if t.used >= a.maxUsed {
			a = t.rebuild()
			i = a.hash(mac)
			for a.s[i&a.mask].Load() != nil {
				i++
			}
		}
		free = int(i & a.mask)
		t.used++
	}
	e := &entry[P]{key: mac}
	e.port.Store(port)
	e.seen.Store(t.clock.Load())
	// The slot store publishes the initialised entry to lock-free readers.
	a.s[free].Store(e)
	t.live.Add(1)
	t.learned.Add(1)
	return Learned
}

// rebuild copies the live entries into a fresh array, dropping tombstones,
// and publishes it. Readers still probing the old array find the same
// entry objects there, and nothing writes to the old array afterwards, so
// their probes stay correct and finite. Called with mu held.
func (t *Table[P]) rebuild() *slotArray[P] {
	old := t.slots.Load()
	a := newSlotArray[P](len(old.s))
	n := 0
	for i := range old.s {
		e := old.s[i].Load()
		if e == nil || e == t.tomb {
			continue
		}
		j := a.hash(e.key)
		for a.s[j&a.mask].Load() != nil {
			j++
		}
		a.s[j&a.mask].Store(e)
		n++
	}
	t.used = n
	t.slots.Store(a)
	t.rebuilds.Add(1)
	return a
}

// remove takes the entry in slot i of a out of the table. Called with mu
// held, a being the current array.
func (t *Table[P]) remove(a *slotArray[P], i uint64) {
	// Swap, not Store: a lock-free move may repoint the entry up to this
	// instant, and the port it ends on is the one whose count drops.
	if old := a.s[i].Load().port.Swap(nil); old != nil {
		t.quotaOf(old).give()
	}
	t.live.Add(-1)
	if a.s[(i+1)&a.mask].Load() != nil {
		// A later slot may belong to a probe that passed through i, so i
		// must keep the probe going.
		a.s[i].Store(t.tomb)
		return
	}
	// No probe continues past i, so i and the tombstones directly before
	// it end nothing and can go back to nil. This keeps churn at the end
	// of probe runs from ever counting towards a rebuild.
	a.s[i].Store(nil)
	t.used--
	for j := (i - 1) & a.mask; a.s[j].Load() == t.tomb; j = (j - 1) & a.mask {
		a.s[j].Store(nil)
		t.used--
	}
}

// removeIf removes every entry for which drop reports true and returns
// how many went.
func (t *Table[P]) removeIf(drop func(e *entry[P]) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.slots.Load()
	n := 0
	for i := range a.s {
		e := a.s[i].Load()
		if e == nil || e == t.tomb || !drop(e) {
			continue
		}
		t.remove(a, uint64(i))
		n++
	}
	return n
}

// Delete removes mac and reports whether it was there.
func (t *Table[P]) Delete(mac uint64) bool {
	mac &= macMask
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.slots.Load()
	for i := a.hash(mac); ; i++ {
		e := a.s[i&a.mask].Load()
		if e == nil {
			return false
		}
		if e.key == mac {
			t.remove(a, i&a.mask)
			return true
		}
	}
}

// Tick sets the clock that Learn stamps entries with. The switch calls it
// about once a second; between calls, refreshes of known MACs write
// nothing.
func (t *Table[P]) Tick(now time.Time) {
	t.clock.Store(now.UnixNano())
}

// Expire calls Tick(now), then removes every entry not seen for the
// ageing time, and returns how many it removed. An entry refreshed by a
// lock-free Learn while Expire decides may still go; its next frame
// learns it again.
func (t *Table[P]) Expire(now time.Time) int {
	t.Tick(now)
	cutoff := now.UnixNano() - t.ageing
	n := t.removeIf(func(e *entry[P]) bool { return e.seen.Load() <= cutoff })
	t.expired.Add(uint64(n))
	return n
}

// FlushPort removes every entry pointing at port, as when the port goes
// away, and returns how many it removed. An entry moving away from port
// meanwhile is either moved first and kept, or removed first and learned
// again on its new port by its next frame.
func (t *Table[P]) FlushPort(port *P) int {
	if port == nil {
		return 0
	}
	q := t.quotaOf(port)
	return t.removeIf(func(e *entry[P]) bool {
		if !e.port.CompareAndSwap(port, nil) {
			return false
		}
		// remove finds the port already nil and gives nothing back.
		q.give()
		return true
	})
}

// Flush removes every entry and returns how many it removed.
func (t *Table[P]) Flush() int {
	return t.removeIf(func(*entry[P]) bool { return true })
}

// Len returns the number of entries.
func (t *Table[P]) Len() int {
	return int(t.live.Load())
}

// Limit returns the most entries the table holds.
func (t *Table[P]) Limit() int {
	return int(t.limit)
}

// AgeingTime returns how long an entry lives without being seen.
func (t *Table[P]) AgeingTime() time.Duration {
	return time.Duration(t.ageing)
}

// Entries returns a copy of the table sorted by MAC. It takes the mutex
// so the copy is one consistent state as far as inserts and removals go.
func (t *Table[P]) Entries() []Entry[P] {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.slots.Load()
	out := make([]Entry[P], 0, t.live.Load())
	for i := range a.s {
		e := a.s[i].Load()
		if e == nil || e == t.tomb {
			continue
		}
		out = append(out, Entry[P]{
			MAC:      e.key,
			Port:     e.port.Load(),
			LastSeen: time.Unix(0, e.seen.Load()),
		})
	}
	slices.SortFunc(out, func(x, y Entry[P]) int { return cmp.Compare(x.MAC, y.MAC) })
	return out
}

// Stats returns the table's counters.
func (t *Table[P]) Stats() Stats {
	return Stats{
		Learned:        t.learned.Load(),
		Moves:          t.moves.Load(),
		LimitDrops:     t.limitDrops.Load(),
		Expired:        t.expired.Load(),
		Rebuilds:       t.rebuilds.Load(),
		PortLimitDrops: t.portLimitDrops.Load(),
	}
}
