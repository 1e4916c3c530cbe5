package cluster

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// An etcd of several members answers some calls with an error while it
// elects a leader (a second or two after its leader dies): a member
// without a leader refuses what needs one, and a read it was serving
// when the leader changed fails. None of these calls was applied, so
// the store makes them again until the call's context ends, each time
// through the client's next member.

// electionPause is the first pause before a call refused for want of a
// leader is made again; it doubles up to electionMaxPause.
const (
	electionPause    = 50 * time.Millisecond
	electionMaxPause = 400 * time.Millisecond
)

// errProposalDropped is what a member without a leader answers a write
// with: raft's ErrProposalDropped, which etcd passes on as it is.
const errProposalDropped = "raft proposal dropped"

// noLeaderAdvice says what an etcd without a leader needs.
const noLeaderAdvice = "a majority of its members must be up and reach each other"

// noLeader reports whether err is etcd saying it has no leader, or lost
// it while serving the call: the call was not applied. err may be the
// client's, or wrap it.
func noLeader(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrLeaderChanged) {
		return true
	}
	msg := err.Error()
	for _, desc := range []string{rpctypes.ErrorDesc(rpctypes.ErrGRPCNoLeader), rpctypes.ErrorDesc(rpctypes.ErrGRPCLeaderChanged), errProposalDropped} {
		if strings.Contains(msg, desc) {
			return true
		}
	}
	return false
}

// retryElection is a unary interceptor that makes a call refused for
// want of a leader again, until it is answered otherwise or its context
// ends; then it returns the last refusal, which says why.
func retryElection(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	pause := electionPause
	for {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if !noLeader(err) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause = min(2*pause, electionMaxPause)
	}
}
