package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// A request whose client has gone is not carried out later. net/http
// cancels a request's context when it sees the connection close, but it
// looks only once the request's body has been read, from a goroutine of
// its own; a request whose client sent it and hung up at once (or while
// the daemon was stopped) can reach its turn before that goroutine has
// run. ClientGone also looks at the connection itself.

type connKey struct{}

// withConn records c in the context of the requests it carries, for
// ClientGone. ConnContext calls it.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// ErrClientGone is the cause of a request not carried out because its
// client closed the connection.
var ErrClientGone = fmt.Errorf("client closed the connection: %w", context.Canceled)

// ClientGone returns why the request of ctx must no longer be carried
// out, or nil: ctx has ended (net/http saw the client hang up, or the
// server is stopping), or the client has closed its end of the
// connection, which a request's connection recorded by ConnContext shows
// at once. A Backend calls it when a change's turn comes, before it
// begins. The error wraps context.Canceled or context.DeadlineExceeded.
func ClientGone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, ok := ctx.Value(connKey{}).(net.Conn)
	if !ok {
		return nil
	}
	if peerClosed(c) {
		return ErrClientGone
	}
	return nil
}

// dropLog logs the requests dropped because their client went away: each
// at debug level, and at info at most once per dropInterval with how many
// were dropped since the last such line, so that a client that sends
// requests and hangs up in a loop does not flood the log.
type dropLog struct {
	mu sync.Mutex
	// last is when the last info line was written; n counts the drops
	// since.
	last time.Time
	n    int
}

// dropInterval is how often at most the info line is written: often
// enough to see when drops happen, rarely enough that a loop of them is
// a line a second.
const dropInterval = time.Second

// drops is the server's dropLog, one for the process as there is one
// daemon.
var drops dropLog

func (d *dropLog) log(log *slog.Logger, err error) {
	log.Debug("request dropped: its client went away before its turn", "err", err)
	d.mu.Lock()
	d.n++
	now := time.Now()
	if now.Sub(d.last) < dropInterval {
		d.mu.Unlock()
		return
	}
	n := d.n
	d.n, d.last = 0, now
	d.mu.Unlock()
	log.Info("requests dropped: their clients went away before their turn; nothing was done for them", "dropped", n, "last", err)
}
