package main

import (
	"fmt"

	"github.com/spf13/pflag"

	vswitch "github.com/tapswitch/tapswitch/switch"
)

// dataplaneOptions are --batch, --coalesce and --busy-poll, as given.
type dataplaneOptions struct {
	batch    int
	coalesce bool
	busyPoll string
}

func addDataplaneFlags(f *pflag.FlagSet, o *dataplaneOptions) {
	f.IntVar(&o.batch, "batch", vswitch.DefaultBatch, fmt.Sprintf("most frames a worker reads from one queue before it writes them, grouped by destination port (1 to %d; 1 forwards each frame as it is read)", vswitch.MaxBatch))
	f.BoolVar(&o.coalesce, "coalesce", true, "merge runs of one flow into super-frames for ports whose device takes them (needs --batch above 1)")
	f.StringVar(&o.busyPoll, "busy-poll", "adaptive", "after forwarding, keep polling the worker's queues this long before sleeping: adaptive (as long as replies usually follow soon, up to 100us), off (sleep at once), or a `DURATION` such as 50us")
}

// config checks the options and returns them as the switch takes them.
func (o dataplaneOptions) config() (vswitch.Dataplane, error) {
	if o.batch < 1 || o.batch > vswitch.MaxBatch {
		return vswitch.Dataplane{}, fmt.Errorf("--batch %d: must be 1 to %d", o.batch, vswitch.MaxBatch)
	}
	bp, err := vswitch.ParseBusyPoll(o.busyPoll)
	if err != nil {
		return vswitch.Dataplane{}, fmt.Errorf("--busy-poll: %w", err)
	}
	return vswitch.Dataplane{Batch: o.batch, NoCoalesce: !o.coalesce, BusyPoll: bp}, nil
}
