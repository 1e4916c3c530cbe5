package apiserver

import (
	"context"
	"fmt"
	"net"
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
