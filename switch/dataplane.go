package vswitch

import (
	"fmt"
	"strings"
	"time"
)

// Dataplane tunes how workers move frames: how many they read before
// writing, whether they merge runs of one flow, and whether they keep
// polling after forwarding. The zero value is the default: batches of
// DefaultBatch, coalescing on, adaptive polling.
type Dataplane struct {
	// Batch is the most frames a worker reads from one queue before it
	// writes them, grouped by destination port; 0 means DefaultBatch,
	// 1 forwards each frame as it is read (no grouping).
	Batch int
	// NoCoalesce turns coalescing off: frames go out as they came in,
	// even to a port whose device takes super-frames.
	NoCoalesce bool
	// BusyPoll is how long a worker keeps polling its queues after a
	// pass that forwarded something, before it sleeps.
	BusyPoll BusyPoll
}

// DefaultBatch: 64 small frames are what a sender's burst between two
// wake-ups of the switch held in the measurements of issue #14 (about 21
// datagrams per coalesced write, with room to spare); a batch much larger
// only delays its first frame.
const DefaultBatch = 64

// MaxBatch bounds Dataplane.Batch.
const MaxBatch = 1024

// batch is the batch size in force.
func (d Dataplane) batch() int {
	if d.Batch <= 0 {
		return DefaultBatch
	}
	return min(d.Batch, MaxBatch)
}

// BusyPoll is a polling policy: BusyPollAdaptive, BusyPollOff, or a fixed
// window (a positive duration).
type BusyPoll time.Duration

const (
	// BusyPollAdaptive, the default, polls after forwarding for as long
	// as replies usually follow (up to maxSpin), and not at all while
	// polls miss.
	BusyPollAdaptive BusyPoll = 0
	// BusyPollOff sleeps in epoll_wait at once.
	BusyPollOff BusyPoll = -1
)

// ParseBusyPoll reads "adaptive", "off" (or "0") or a duration such as
// "50us".
func ParseBusyPoll(s string) (BusyPoll, error) {
	switch strings.ToLower(s) {
	case "adaptive", "":
		return BusyPollAdaptive, nil
	case "off", "0":
		return BusyPollOff, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("busy poll %q: give adaptive, off or a duration such as 50us", s)
	}
	if d == 0 {
		return BusyPollOff, nil
	}
	if d > time.Second {
		return 0, fmt.Errorf("busy poll %q: at most 1s", s)
	}
	return BusyPoll(d), nil
}

func (b BusyPoll) String() string {
	switch {
	case b == BusyPollAdaptive:
		return "adaptive"
	case b < 0:
		return "off"
	}
	return time.Duration(b).String()
}
