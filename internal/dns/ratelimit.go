package dns

import (
	"net/netip"
	"sync"
	"time"
)

// Per-source rate limiting. A resolver in a container sends two to six
// queries per lookup (A and AAAA, times the search list), and a busy
// container resolves a few dozen names a second. queryRate is five times
// that and queryBurst lets a container starting up resolve a hundred names
// at once; a source above it loses the excess without an answer, so a
// flooding namespace costs the server one read and one map lookup per
// packet and its neighbours keep their own share. At these figures a
// whole /24 of flooding sources (253 x 200 q/s, about 50,000 q/s) is what
// one core answers, so no single source comes near it.
const (
	queryRate  = 200 // tokens per second
	queryBurst = 400 // bucket size
)

// maxSources bounds the sources that have a bucket of their own: a /20 of
// ports, far more than a network holds (a /24 has 253). A bucket is about
// 60 bytes with its map entry, so the table stays under 256 KiB. Buckets
// that have been idle long enough to be full again are dropped when the
// table is full; sources beyond it, which only a namespace forging many
// source addresses inside the subnet produces (port security forbids that),
// share one bucket, so that they cannot evict the sources already known.
const maxSources = 4096

// sweepEvery is the least time between two sweeps of a full table, so
// that a flood of new sources costs one walk of the table a second, not
// one per packet.
const sweepEvery = time.Second

// bucket is a token bucket.
type bucket struct {
	tokens float64
	// last is when tokens was last brought up to date.
	last time.Time
}

// take refills b for the time since its last use and takes one token.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(burst, b.tokens+el*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether b would be full at now, so that forgetting it
// changes nothing.
func (b *bucket) full(now time.Time, rate, burst float64) bool {
	return b.tokens+now.Sub(b.last).Seconds()*rate >= burst
}

// rateLimiter keeps a token bucket per source address. It is safe for
// concurrent use.
type rateLimiter struct {
	rate, burst float64
	max         int

	// mu guards what follows.
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	// overflow is the bucket shared by the sources that found the table
	// full.
	overflow  bucket
	lastSweep time.Time
}

func newRateLimiter(rate, burst float64, maxSources int) *rateLimiter {
	return &rateLimiter{
		rate:     rate,
		burst:    burst,
		max:      maxSources,
		buckets:  make(map[netip.Addr]*bucket),
		overflow: bucket{tokens: burst},
	}
}

// allow takes a token from src's bucket and reports whether there was one.
func (l *rateLimiter) allow(src netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[src]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweep(now)
		}
		if len(l.buckets) >= l.max {
			return l.overflow.take(now, l.rate, l.burst)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[src] = b
	}
	return b.take(now, l.rate, l.burst)
}

// sweep forgets the buckets that are full again, at most once per
// sweepEvery. The caller holds l.mu.
func (l *rateLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < sweepEvery {
		return
	}
	l.lastSweep = now
	for a, b := range l.buckets {
		if b.full(now, l.rate, l.burst) {
			delete(l.buckets, a)
		}
	}
}

// len is the number of sources with a bucket of their own.
func (l *rateLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
