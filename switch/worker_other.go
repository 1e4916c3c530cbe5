//go:build !linux

package vswitch

import (
	"errors"
	"sync/atomic"

	"github.com/tapswitch/tapswitch/device"
)

type worker struct{}

type slot struct{ w *worker }

func newWorker(int, Dataplane, *atomic.Int32) (*worker, error) {
	return nil, errors.New("vswitch: pollers need Linux")
}

func (w *worker) add(*Port, int, device.PollQueue) (*slot, error) {
	return nil, errors.New("unreachable")
}
func (w *worker) remove(*slot) {}
func (w *worker) close()       {}
