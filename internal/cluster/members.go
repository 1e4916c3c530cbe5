package cluster

import (
	"context"
	"crypto/tls"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tapswitch/tapswitch/internal/etcdhealth"
)

// Members that stop answering.
//
// etcd's client spreads calls over a connection to every member it is
// given. A member that dies closes its connections, and the client drops
// it at once; one that hangs, or is cut off from this host or from the
// other members, keeps its connection open while nothing comes back, and
// the client goes on sending it its share of the calls until gRPC's
// keepalive gives up on the connection, which takes at least ten
// seconds whatever is asked (gRPC's floor). Each of those calls waits out
// its whole bound and fails, as does the lease's renewal if it went
// there.
//
// So, with more than one member, the store asks each member's /health
// every memberCheck, and gives the client only those that answer
// healthy: a member that does not answer within memberCheck, or says it
// has no leader (cut off from the others), is left out until it answers
// healthy again. With none healthy (etcd down, or without quorum), the
// client keeps them all, to find whichever comes back first.

// memberCheck is how often each member is asked, and how long it has to
// answer.
const memberCheck = time.Second

// memberWatch is the store's view of which members answer.
type memberWatch struct {
	s      *Store
	client *http.Client
	// avoided are the members left out of the client, in the order of
	// Config.Endpoints. Guarded by the store's mu.
	avoided []string
}

// watchMembers starts asking the members, when there are several.
func (s *Store) watchMembers(tlsCfg *tls.Config) {
	if len(s.cfg.Endpoints) < 2 {
		return
	}
	// A connection of its own per question, so that a member that hangs
	// holds none that the next question would wait on.
	tr := &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}
	m := &memberWatch{s: s, client: &http.Client{Transport: tr, Timeout: memberCheck}}
	s.members = m
	s.watchers.Go(func() {
		t := time.NewTicker(memberCheck)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
			m.check()
		}
	})
}

// check asks every member at once and gives the client those that
// answer healthy.
func (m *memberWatch) check() {
	s := m.s
	eps := s.cfg.Endpoints
	ok := make([]bool, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(s.ctx, memberCheck)
			defer cancel()
			ok[i] = etcdhealth.Check(ctx, m.client, ep) == nil
		})
	}
	wg.Wait()
	if s.ctx.Err() != nil {
		return
	}
	var healthy, avoided []string
	for i, ep := range eps {
		if ok[i] {
			healthy = append(healthy, ep)
		} else {
			avoided = append(avoided, ep)
		}
	}
	if len(healthy) == 0 {
		// Nobody answers: keep them all, for whichever comes back.
		avoided = nil
		healthy = eps
	}
	s.mu.Lock()
	was := m.avoided
	same := slices.Equal(was, avoided)
	m.avoided = avoided
	s.mu.Unlock()
	if same {
		return
	}
	s.cli.SetEndpoints(healthy...)
	select {
	case s.membersChanged <- struct{}{}:
	default:
	}
	for _, ep := range avoided {
		if !slices.Contains(was, ep) {
			s.log.Warn("etcd member not answering as healthy; calls go to the others until it does", "member", ep)
		}
	}
	for _, ep := range was {
		if !slices.Contains(avoided, ep) {
			s.log.Info("etcd member answers again; calls go to it too", "member", ep)
		}
	}
}

// avoidedMembersLocked returns the members left out; the store's mu is
// held.
func (s *Store) avoidedMembersLocked() []string {
	if s.members == nil {
		return nil
	}
	return slices.Clone(s.members.avoided)
}
