package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/tap"
)

// maxTxQueueLen bounds --tap-txqueuelen: each frame the ring holds may
// pin up to 64 KiB, so a ring much longer than this buys no throughput
// (the reader drains it faster than a sender refills it) for memory a
// stalled reader lets a namespace fill.
const maxTxQueueLen = 100000

// tapOptions say how the daemon makes its TAPs (daemon.TAPConfig).
type tapOptions struct {
	napi       bool
	txQueueLen int
}

func addTAPFlags(f *pflag.FlagSet, o *tapOptions) {
	f.BoolVar(&o.napi, "tap-napi", false, "make and open TAPs with IFF_NAPI: the kernel takes the frames the switch writes through a NAPI poll and its GRO, rather than straight from the write (TAPs made or opened again from now on; queues handed over by --upgrade keep their mode)")
	f.IntVar(&o.txQueueLen, "tap-txqueuelen", tap.DefaultTxQueueLen, fmt.Sprintf("transmit queue length of the TAPs made from now on: how many frames a namespace can queue for the switch before the kernel drops (1 to %d)", maxTxQueueLen))
}

// check validates the options without changing anything.
func (o tapOptions) check() error {
	if o.txQueueLen < 1 || o.txQueueLen > maxTxQueueLen {
		return fmt.Errorf("--tap-txqueuelen %d: must be 1 to %d", o.txQueueLen, maxTxQueueLen)
	}
	return nil
}

func (o tapOptions) config() daemon.TAPConfig {
	return daemon.TAPConfig{NAPI: o.napi, TxQueueLen: o.txQueueLen}
}
