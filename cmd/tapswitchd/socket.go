package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tapswitch/tapswitch/internal/apiserver"
)

// The API socket's bounds. Only root and the --group reach it, but a
// client that hangs, or a script that opens connections in a loop, must
// not take the daemon's descriptors or goroutines: its connections count
// against fdlimit's reserve, never the budget of published ports, so at
// most apiMaxConns of the reserve's 1024 or more.
const (
	// apiMaxConns caps open API connections. The CLI opens one per
	// command and a container engine one per container it starts or
	// stops, tens at a time; 64 lets that many run at once. Beyond, a
	// new connection waits in the socket's backlog until one closes, as
	// with a busy server, rather than being refused.
	apiMaxConns = 64
	// apiMaxConnsPerUser caps the open API connections of one user
	// other than root (a member of --group), so that one such user, or
	// a script of theirs that leaks connections, leaves three quarters
	// of apiMaxConns to root and the others. A connection beyond is
	// closed at once. Root is bounded by apiMaxConns only: a hostile
	// root needs no socket to do harm.
	apiMaxConnsPerUser = 16
	// apiReadHeaderTimeout bounds the wait for a request's headers, and
	// for the first request of a new connection: the CLI sends its
	// request at once, so 10 s only ever cuts off a client that stalls.
	apiReadHeaderTimeout = 10 * time.Second
	// apiReadTimeout bounds reading a whole request, body included; a
	// body is at most apiMaxBody, written at once.
	apiReadTimeout = 30 * time.Second
	// apiWriteTimeout bounds a request from its headers to the end of
	// its answer. Changes are serialised, so an attach can wait for
	// others before its own few hundred milliseconds; 2 minutes is twice
	// the CLI's own timeout, so the daemon never cuts off an answer a
	// client still waits for.
	apiWriteTimeout = 2 * time.Minute
	// apiIdleTimeout closes a kept-alive connection with no request for
	// that long; Go's client keeps one 90 s, and opens another when the
	// daemon has closed it.
	apiIdleTimeout = 30 * time.Second
	// apiMaxHeaderBytes bounds a request's headers; the CLI's are about
	// 200 bytes. (net/http allows 4 KiB more than this.)
	apiMaxHeaderBytes = 16 << 10
	// apiMaxBody bounds a request's body; the largest real one, an
	// attach, is a few hundred bytes. The handlers bound theirs too.
	apiMaxBody = 64 << 10
)

// apiServer is the API's HTTP server, with its bounds.
func apiServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           http.MaxBytesHandler(h, apiMaxBody),
		ConnContext:       apiserver.ConnContext,
		ReadHeaderTimeout: apiReadHeaderTimeout,
		ReadTimeout:       apiReadTimeout,
		WriteTimeout:      apiWriteTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    apiMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// limitConns makes ln accept at most max connections open at once: past
// that, Accept waits for one to close, and the kernel holds new ones in
// the socket's backlog. A user other than root may have perUser of them;
// a connection beyond is closed at once. Each kind of episode is logged
// at most once per 10 s.
func limitConns(ln net.Listener, max, perUser int, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), perUser: perUser, users: map[uint32]int{}, done: make(chan struct{}), parked: make(chan struct{}), log: log}
}

type limitListener struct {
	net.Listener
	// sem holds a token per open connection.
	sem     chan struct{}
	perUser int
	done    chan struct{}
	log     *slog.Logger
	// mu guards users, the open connections by UID, root's left out.
	mu    sync.Mutex
	users map[uint32]int
	// lastFull and lastUser are when each episode was last logged, in
	// Unix ns.
	lastFull, lastUser atomic.Int64
	closeOnce          sync.Once
	// paused: Accept takes no more connections, leaving them in the
	// socket's backlog (for a successor); parked is closed once the
	// accepting goroutine has seen it.
	paused   atomic.Bool
	parked   chan struct{}
	parkOnce sync.Once
}

// pause stops Accept from taking connections without closing the socket,
// and waits up to limit for the accepting goroutine to stop: every
// connection accepted before then has been handed to the server. It
// reports whether that goroutine stopped in time.
func (l *limitListener) pause(limit time.Duration) bool {
	l.paused.Store(true)
	d, ok := l.Listener.(interface{ SetDeadline(time.Time) error })
	if !ok || d.SetDeadline(time.Now()) != nil {
		return false
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-l.parked:
		return true
	case <-t.C:
		return false
	}
}

// warnEvery logs msg unless it was logged less than 10 s ago by last.
func (l *limitListener) warnEvery(last *atomic.Int64, msg string, args ...any) {
	now, prev := time.Now().UnixNano(), last.Load()
	if now-prev >= int64(10*time.Second) && last.CompareAndSwap(prev, now) {
		l.log.Warn(msg, args...)
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.sem <- struct{}{}:
		default:
			l.warnEvery(&l.lastFull, "API connection limit reached; new connections wait for one to close", "limit", cap(l.sem))
			select {
			case l.sem <- struct{}{}:
			case <-l.done:
				return nil, net.ErrClosed
			}
		}
		if l.paused.Load() {
			<-l.sem
			return nil, l.park()
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			if l.paused.Load() {
				return nil, l.park()
			}
			return nil, err
		}
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
		<-l.sem
	}
}

// admit counts c against its user's cap, or closes it when the user has
// reached it. A peer whose credentials cannot be read is left to the
// access check, which refuses it.
func (l *limitListener) admit(c net.Conn) net.Conn {
	p, err := apiserver.PeerOf(c)
	if err != nil || p.UID == 0 {
		return &limitConn{Conn: c, release: func() { <-l.sem }}
	}
	l.mu.Lock()
	n := l.users[p.UID]
	if n >= l.perUser {
		l.mu.Unlock()
		c.Close()
		l.warnEvery(&l.lastUser, "user at the API's connection limit; closing its new connections", "uid", p.UID, "pid", p.PID, "limit", l.perUser)
		return nil
	}
	l.users[p.UID] = n + 1
	l.mu.Unlock()
	return &limitConn{Conn: c, release: func() {
		l.mu.Lock()
		if l.users[p.UID]--; l.users[p.UID] <= 0 {
			delete(l.users, p.UID)
		}
		l.mu.Unlock()
		<-l.sem
	}}
}

// park is Accept once paused: it says so, and waits for Close.
func (l *limitListener) park() error {
	l.parkOnce.Do(func() { close(l.parked) })
	<-l.done
	return net.ErrClosed
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its listener's token back when closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// SyscallConn reaches the socket, for the peer's credentials
// (apiserver.PeerOf).
func (c *limitConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T is not a socket", c.Conn)
	}
	return sc.SyscallConn()
}

// socketAccess resolves --group, a group's name or GID, to who may use
// the API socket; empty means root only. A name must be in the group
// database; a GID need not be.
func socketAccess(group string) (apiserver.Access, error) {
	if group == "" {
		return apiserver.RootOnly, nil
	}
	if g, err := user.LookupGroup(group); err == nil {
		gid, err := strconv.Atoi(g.Gid)
		if err != nil {
			return apiserver.Access{}, fmt.Errorf("--group %q: group database gives GID %q", group, g.Gid)
		}
		return apiserver.Access{GID: gid, Group: g.Name}, nil
	}
	gid, err := strconv.ParseUint(group, 10, 32)
	if err != nil || gid == math.MaxUint32 {
		// Not a number, or (gid_t)-1, which chown takes as "no change".
		return apiserver.Access{}, fmt.Errorf("--group %q: no such group; give the name or GID of an existing group (create one with 'groupadd %s')", group, group)
	}
	a := apiserver.Access{GID: int(gid)}
	if g, err := user.LookupGroupId(group); err == nil {
		a.Group = g.Name
	}
	return a, nil
}

// warnUnreachable logs when a directory on the way to the socket in dir
// does not let the members of access's group through: they could not
// connect, whatever the socket's mode. Only mode bits are read (ACLs
// may open a directory they close), so this warns and does not refuse.
func warnUnreachable(dir string, access apiserver.Access) {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return
		}
		perm := fi.Mode().Perm()
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return
		}
		if perm&0o001 == 0 && (perm&0o010 == 0 || st.Gid != uint32(access.GID)) {
			slog.Warn("the socket's group cannot reach it: a directory on its path is closed to the group; open it (chmod o+x, or chgrp and chmod g+x) or choose another --socket",
				"group", access.String(), "dir", d, "mode", fmt.Sprintf("%04o", perm), "uid", st.Uid, "gid", st.Gid)
			return
		}
		if d == "/" || d == "." {
			return
		}
	}
}

// apiConns follows the API server's connections, for a hand-over: those
// accepted that have not sent a request yet, and those whose request the
// server began to read and that has not reached the handler.
type apiConns struct {
	mu      sync.Mutex
	waiting map[net.Conn]struct{}
}

func newAPIConns() *apiConns { return &apiConns{waiting: map[net.Conn]struct{}{}} }

type apiConnKey struct{}

// connContext is the server's ConnContext: apiserver's, and the
// connection itself, for handler.
func (a *apiConns) connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(apiserver.ConnContext(ctx, c), apiConnKey{}, c)
}

// track is the server's ConnState hook: a connection new or reading a
// request waits; idle, closed or taken over, it does not.
func (a *apiConns) track(c net.Conn, st http.ConnState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st == http.StateNew || st == http.StateActive {
		a.waiting[c] = struct{}{}
	} else {
		delete(a.waiting, c)
	}
}

// handler marks a request's connection as no longer waiting once the
// request reaches h.
func (a *apiConns) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(apiConnKey{}).(net.Conn); ok {
			a.mu.Lock()
			delete(a.waiting, c)
			a.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// quiet reports whether no connection waits: then the server's Shutdown
// drops no request unanswered.
func (a *apiConns) quiet() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.waiting) == 0
}
