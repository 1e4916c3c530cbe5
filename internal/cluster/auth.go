package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// authenticateMethod is etcd's RPC that trades a user name and password
// for a token.
const authenticateMethod = "/etcdserverpb.Auth/Authenticate"

// lazyAuth makes the etcd client authenticate on first use rather than
// in clientv3.New, which otherwise waits for etcd, without end when it is
// unreachable; Open must not. It answers New's own Authenticate, and only
// that one, with "auth not enabled" without asking etcd: New then starts
// with no token. Until an Authenticate has succeeded, every other call
// is answered "user name is empty" without asking etcd either, which has
// the client authenticate and retry the call, as it does when etcd says
// so; an error of that, such as a wrong password, is the call's. (etcd
// itself would not say so to a client with a certificate: it takes the
// certificate's common name for the user then.) A token that etcd
// forgets, when it restarts, the client renews the same way.
type lazyAuth struct {
	// newDone is set once New's Authenticate has been answered.
	newDone atomic.Bool
	// authed is set once etcd has answered an Authenticate.
	authed atomic.Bool
}

func (a *lazyAuth) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method == authenticateMethod {
		if !a.newDone.Swap(true) {
			return rpctypes.ErrGRPCAuthNotEnabled
		}
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil || errors.Is(rpctypes.Error(err), rpctypes.ErrAuthNotEnabled) {
			a.authed.Store(true)
		}
		return err
	}
	if !a.authed.Load() {
		return rpctypes.ErrGRPCUserEmpty
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// tlsNotes keeps the last failure of TLS with etcd. gRPC retries the
// connection in the background, and a call that times out waiting for it
// says only that: the handshake's own error, such as an untrusted
// certificate, is noted here to be told with it.
type tlsNotes struct {
	mu  sync.Mutex
	err error
}

func (n *tlsNotes) note(err error) {
	n.mu.Lock()
	n.err = err
	n.mu.Unlock()
}

// last returns the failure noted since the last clear, nil if none.
func (n *tlsNotes) last() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func (n *tlsNotes) clear() {
	if n != nil {
		n.note(nil)
	}
}

// notingCreds are TLS transport credentials that note handshake failures,
// and a refusal by etcd that comes after the handshake: with TLS 1.3 the
// server checks the client certificate once the client has finished, and
// its alert is the first thing the client reads.
type notingCreds struct {
	credentials.TransportCredentials
	notes *tlsNotes
}

func newNotingCreds(cfg *tls.Config, notes *tlsNotes) credentials.TransportCredentials {
	return notingCreds{credentials.NewTLS(cfg), notes}
}

func (c notingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		c.notes.note(fmt.Errorf("TLS handshake with %s: %w", authority, err))
		return nil, nil, err
	}
	return &notingConn{Conn: conn, notes: c.notes, authority: authority}, info, nil
}

func (c notingCreds) Clone() credentials.TransportCredentials {
	return notingCreds{c.TransportCredentials.Clone(), c.notes}
}

// notingConn notes a TLS alert etcd sends instead of its first bytes.
type notingConn struct {
	net.Conn
	notes     *tlsNotes
	authority string
	// read is set once a read has succeeded.
	read atomic.Bool
}

func (c *notingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == nil {
		c.read.Store(true)
	} else if !c.read.Load() && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && strings.Contains(err.Error(), "tls:") {
		c.notes.note(fmt.Errorf("TLS with %s: %w", c.authority, err))
	}
	return n, err
}

// advice says what to check for an error from etcd that is not a matter
// of reaching it: TLS or authentication; "" for others.
func advice(err error, prefix string) string {
	msg := err.Error()
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return "check the etcd user name (--cluster-user) and its password (--cluster-password-file)"
	case errors.Is(err, rpctypes.ErrUserEmpty):
		return "etcd has authentication enabled: give an etcd user (--cluster-user, --cluster-password-file)"
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return fmt.Sprintf("etcd's user for this host (--cluster-user, or else the common name of the client certificate) may not read and write the keys under %s: grant it a role with readwrite permission on that prefix", prefix)
	case errors.Is(err, rpctypes.ErrInvalidAuthToken) || errors.Is(err, rpctypes.ErrAuthOldRevision):
		return "etcd did not take this host's authentication token; check the etcd user (--cluster-user, --cluster-password-file)"
	case strings.Contains(msg, "remote error: tls:"):
		return "etcd refused this host's TLS client certificate: check --cluster-cert and --cluster-key, a certificate and key signed by a CA that etcd trusts (its --trusted-ca-file)"
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls: failed to verify"):
		return "etcd's server certificate is not trusted: check that --cluster-ca is the CA that signed it, and that the certificate names the host or IP address of the etcd URL"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "etcd does not serve TLS at that URL: use its http:// URL, or give etcd a certificate (--cert-file, --key-file)"
	case strings.Contains(msg, "tls:"):
		return "TLS with etcd failed: check --cluster-ca, --cluster-cert and --cluster-key against etcd's certificate and --trusted-ca-file"
	}
	return ""
}
