package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestNoLeader(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{rpctypes.ErrGRPCNoLeader, true},
		{rpctypes.ErrGRPCLeaderChanged, true},
		{rpctypes.ErrNoLeader, true},
		{fmt.Errorf("grant a lease: %w", rpctypes.ErrLeaderChanged), true},
		{status.Error(codes.Unknown, "raft proposal dropped"), true},
		{rpctypes.ErrGRPCTimeout, false},
		{rpctypes.ErrGRPCTimeoutDueToLeaderFail, false},
		{context.DeadlineExceeded, false},
		{errors.New("connection refused"), false},
	} {
		if got := noLeader(tc.err); got != tc.want {
			t.Errorf("noLeader(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestRetryElection: a call refused for want of a leader is made again
// until it is answered; any other error is returned at once; when the
// context ends the last refusal is returned.
func TestRetryElection(t *testing.T) {
	calls := 0
	answers := func(errs ...error) grpc.UnaryInvoker {
		calls = 0
		return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			calls++
			if calls <= len(errs) {
				return errs[calls-1]
			}
			return errs[len(errs)-1]
		}
	}
	ctx := context.Background()
	if err := retryElection(ctx, "/m", nil, nil, nil, answers(rpctypes.ErrGRPCLeaderChanged, rpctypes.ErrGRPCNoLeader, nil)); err != nil || calls != 3 {
		t.Fatalf("retryElection over an election = %v after %d calls, want nil after 3", err, calls)
	}
	if err := retryElection(ctx, "/m", nil, nil, nil, answers(rpctypes.ErrGRPCTimeout)); err != rpctypes.ErrGRPCTimeout || calls != 1 {
		t.Fatalf("retryElection of a timeout = %v after %d calls, want it at once", err, calls)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := retryElection(short, "/m", nil, nil, nil, answers(rpctypes.ErrGRPCNoLeader))
	if err != rpctypes.ErrGRPCNoLeader || calls < 2 || time.Since(start) > 2*time.Second {
		t.Fatalf("retryElection without a leader = %v after %d calls and %v, want the refusal after a few calls, once the context ends", err, calls, time.Since(start))
	}
}
