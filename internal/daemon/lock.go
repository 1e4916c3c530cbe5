package daemon

import (
	"context"
	"fmt"
	"sync"

	"github.com/tapswitch/tapswitch/internal/apiserver"
)

// turnLock is the daemon's lock of changes (Daemon.mu): a mutex whose
// waiters can give up. A request waits its turn behind the changes
// before it, which may take a while (an attach behind a slow one); one
// whose client hangs up meanwhile leaves the queue, and is not carried
// out when its turn would have come. Once a change has begun it takes no
// context: one left half done because its caller went away would leave
// more to undo than one finished for nobody (see apiserver.Backend).
//
// It is a channel of one slot, which a holder fills: Go hands a full
// channel's slot to the senders waiting on it in the order they came, so
// turns are taken first come, first served. The zero value is unlocked.
type turnLock struct {
	once sync.Once
	slot chan struct{}
}

func (l *turnLock) ch() chan struct{} {
	l.once.Do(func() { l.slot = make(chan struct{}, 1) })
	return l.slot
}

// Lock waits for the lock as long as it takes.
func (l *turnLock) Lock() { l.ch() <- struct{}{} }

// Unlock lets the next waiter in.
func (l *turnLock) Unlock() {
	select {
	case <-l.ch():
	default:
		panic("daemon: unlock of an unlocked turnLock")
	}
}

// LockContext waits for the lock until ctx ends, and returns ctx's error
// without the lock if it ends first, or if it has ended when the lock
// comes.
func (l *turnLock) LockContext(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case l.ch() <- struct{}{}:
		if err := ctx.Err(); err != nil {
			l.Unlock()
			return err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lockFor takes the daemon's lock for a change that ctx's client asked
// for, when its turn comes: not at all if the client has gone by then
// (apiserver.ClientGone), so that nothing is done for nobody. The error
// wraps context.Canceled, which the API answers with 503 (api.StatusOf)
// to a client that is not there to read it.
func (d *Daemon) lockFor(ctx context.Context) error {
	if err := d.mu.LockContext(ctx); err != nil {
		d.requestsDropped.Add(1)
		return notCarriedOut(err)
	}
	if err := apiserver.ClientGone(ctx); err != nil {
		d.mu.Unlock()
		d.requestsDropped.Add(1)
		return notCarriedOut(err)
	}
	return nil
}

// notCarriedOut says that a request was dropped when its turn came.
func notCarriedOut(err error) error {
	return fmt.Errorf("not carried out: the client went away while the request waited its turn: %w", err)
}
