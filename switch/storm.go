package vswitch

// Storm control: a port may send at most so many broadcast, multicast and
// unknown-unicast frames a second, each class bounded on its own. These
// are the frames the switch floods, writing each to every other port of
// the network, so one port sending them at full speed costs every
// neighbour a write per frame and the switch a write per port. Frames
// over the rate are dropped and counted (storm); a queue that sends
// mostly such frames is not read for a while (worker_linux.go), so that
// reading the storm does not cost the switch what flooding it did.
//
// Each class is a token bucket kept as one word, the theoretical arrival
// time of the next frame (the generic cell rate algorithm): a frame is
// let through if that time, moved on by one frame's interval, is no more
// than a burst ahead of now, and then the word is moved on with one
// compare-and-swap. No lock, no allocation; the clock is read only for
// frames that are flooded anyway, each of which costs a write per port,
// far more than the read.

import (
	"sync/atomic"
	"time"
)

// StormLimits are a port's storm control rates in frames per second, one
// per class of flooded frame. 0 means DefaultStormRate; less than 0 means
// no limit. A port may send a second's worth at once (the burst), then
// the rate.
type StormLimits struct {
	Broadcast      int
	Multicast      int
	UnknownUnicast int
}

// DefaultStormRate is the rate of every class unless a port says
// otherwise, chosen from a measurement (2-core machine, namespaces
// attached to a network of their own, their frames captured):
//
//   - what ordinary traffic needs: a namespace at rest sent 9 multicast
//     frames in its first minute (MLD reports, duplicate address
//     detection, router solicitations) and then one router solicitation
//     now and then; the busiest ordinary case, a ping sweep of a whole
//     /24, sent 253 ARP requests within one second (125 within 100 ms),
//     753 in 2.3 s with the retries for silent addresses, and the same
//     sweep of 254 IPv6 addresses 253 neighbour solicitations in a
//     second. Unknown unicast lasts only until a destination answers, a
//     frame or two per flow after its MAC was learned or aged out;
//   - what a storm is: one namespace blasting broadcasts through a packet
//     socket sent 180,000 to 450,000 frames a second, and the switch
//     flooded 40,000 to 125,000 a second of them to every port, which
//     took TCP between two other namespaces to 0.60 of its speed alone.
//
// 2,000 a second, with as many at once, is eight times that sweep's
// busiest second, so nothing ordinary comes near it, and a hundredth of
// the storm. A multicast stream (video, market data) can need more: set
// it per port.
const DefaultStormRate = 2000

// MaxStormRate bounds a rate that is set: above it the bound does nothing
// a port could not do anyway (a TAP delivers about a million frames a
// second at most).
const MaxStormRate = 10_000_000

// Storm classes.
const (
	stormBroadcast = iota
	stormMulticast
	stormUnknown
	numStormClasses
)

// stormEpoch is the zero of the buckets' clock; time.Since reads only the
// monotonic clock.
var stormEpoch = time.Now()

// bucket is one class's token bucket.
type bucket struct {
	// tat is the theoretical arrival time of the next frame, in
	// nanoseconds since stormEpoch.
	tat atomic.Int64
	// interval is 1s / rate, 0 for no limit; burst is interval times
	// the frames let through at once. Set by SetStormLimits.
	interval, burst atomic.Int64
}

// storm holds a port's buckets, on cache lines of their own: any loop
// flooding a frame from the port writes them.
type storm struct {
	_ [64]byte
	b [numStormClasses]bucket
	_ [64]byte
}

// allow takes one frame's worth from the bucket, if it is there.
func (b *bucket) allow() bool {
	if b.interval.Load() == 0 {
		return true
	}
	return b.allowAt(int64(time.Since(stormEpoch)))
}

// allowAt is allow at time now, in nanoseconds since stormEpoch.
func (b *bucket) allowAt(now int64) bool {
	iv, burst := b.interval.Load(), b.burst.Load()
	if iv == 0 {
		return true
	}
	for {
		old := b.tat.Load()
		next := max(old, now) + iv
		if next-now > burst {
			return false
		}
		if b.tat.CompareAndSwap(old, next) {
			return true
		}
	}
}

// set gives the bucket a rate in frames per second, with its meaning in
// StormLimits, and a second's worth of burst.
func (b *bucket) set(rate int) int {
	switch {
	case rate == 0:
		rate = DefaultStormRate
	case rate < 0:
		b.interval.Store(0)
		return -1
	}
	rate = min(rate, MaxStormRate)
	iv := int64(time.Second) / int64(rate)
	b.burst.Store(iv * int64(rate))
	b.interval.Store(iv)
	return rate
}

// SetStormLimits sets the port's storm control rates, with the meaning of
// StormLimits; the next flooded frame is held to them.
func (p *Port) SetStormLimits(l StormLimits) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setStormLocked(l)
}

func (p *Port) setStormLocked(l StormLimits) {
	p.info.Storm = l
	p.stormNow = StormLimits{
		Broadcast:      p.storm.b[stormBroadcast].set(l.Broadcast),
		Multicast:      p.storm.b[stormMulticast].set(l.Multicast),
		UnknownUnicast: p.storm.b[stormUnknown].set(l.UnknownUnicast),
	}
}

// StormLimits returns the rates in force: DefaultStormRate for each
// class set to 0, -1 for one without a limit.
func (p *Port) StormLimits() StormLimits {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stormNow
}
