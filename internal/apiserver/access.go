package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"

	"github.com/tapswitch/tapswitch/api"
)

// Who may use the API is decided twice. The file system decides first:
// tapswitchd's socket is root's, mode 0600, or with --group root:GROUP
// mode 0660, and connect() needs write access to it. Then Guard checks
// the credentials the kernel recorded for the connecting process
// (SO_PEERCRED, and SO_PEERGROUPS for its supplementary groups) on every
// request, so that access does not rest on the socket's mode alone: a
// socket whose mode or ACL was loosened still serves only root and the
// group. The kernel gives those ids as the daemon's user namespace sees
// them, so root inside a container's user namespace is not root here.
// (A connection passed on to another process keeps the credentials of
// the process that made it, as with any Unix socket.)

// Peer is the process at the other end of a connection to the socket, as
// the kernel recorded it when that process called connect().
type Peer struct {
	PID int
	// UID and GID are the effective user and group ids.
	UID, GID uint32
	// Groups are the supplementary groups; nil on kernels without
	// SO_PEERGROUPS (before 4.13), where a member is recognised by
	// its primary group only.
	Groups []uint32
}

// Access says who may use the API: root always, and the members of one
// group when GID is not negative.
type Access struct {
	// GID is the group whose members may use the API; negative for
	// none, so that only root may.
	GID int
	// Group is the group's name, for messages; empty shows GID.
	Group string
}

// RootOnly is the Access that lets root alone use the API.
var RootOnly = Access{GID: -1}

// Allows reports whether p may use the API: p is root, or its primary or
// a supplementary group is a's.
func (a Access) Allows(p Peer) bool {
	if p.UID == 0 {
		return true
	}
	if a.GID < 0 {
		return false
	}
	g := uint32(a.GID)
	return p.GID == g || slices.Contains(p.Groups, g)
}

// String says who may use the API, as in "root and group tapswitch".
func (a Access) String() string {
	if a.GID < 0 {
		return "root only"
	}
	return "root and group " + a.groupName()
}

func (a Access) groupName() string {
	if a.Group != "" {
		return a.Group
	}
	return strconv.Itoa(a.GID)
}

// refusal is the error a peer a does not allow gets.
func (a Access) refusal() error {
	if a.GID < 0 {
		return api.Errorf(api.ErrForbidden, api.ReasonRootOnly, "tapswitchd's socket is for root only")
	}
	return api.Errorf(api.ErrForbidden, api.ReasonNotInGroup, "tapswitchd's socket is for root and group %s", a.groupName())
}

// Guard returns h behind a check of every request's peer: a peer a does
// not allow gets 403 and an Error saying who may use the socket, with the
// reason root_only or not_in_group. The server's ConnContext must be
// ConnContext, which reads the peer's credentials once per connection; a
// request without them is refused.
func (a Access) Guard(h http.Handler, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := PeerFromContext(r.Context())
		if err != nil {
			log.Warn("API request refused: peer unknown", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, log, fmt.Errorf("%w: cannot read the credentials of the connecting process: %w", api.ErrForbidden, err))
			return
		}
		if !a.Allows(p) {
			log.Warn("API request refused", "method", r.Method, "path", r.URL.Path, "uid", p.UID, "gid", p.GID, "pid", p.PID, "allowed", a.String())
			writeError(w, log, a.refusal())
			return
		}
		h.ServeHTTP(w, r)
	})
}

type peerKey struct{}

type peerResult struct {
	peer Peer
	err  error
}

// ConnContext records the credentials of c's peer in the context of the
// requests c carries, and c itself for ClientGone. Set it as the
// http.Server's ConnContext when the handler is behind Guard.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	p, err := PeerOf(c)
	return withConn(context.WithValue(ctx, peerKey{}, peerResult{peer: p, err: err}), c)
}

// PeerFromContext returns the peer ConnContext recorded in ctx.
func PeerFromContext(ctx context.Context) (Peer, error) {
	r, ok := ctx.Value(peerKey{}).(peerResult)
	if !ok {
		return Peer{}, fmt.Errorf("no credentials recorded for the connection")
	}
	return r.peer, r.err
}
