package etcdtest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// ClusterOptions say how many members a Cluster has and where they
// listen.
type ClusterOptions struct {
	// Members is the number of members; 0 means 3.
	Members int
	// Netns, when set, runs every member inside that network namespace.
	Netns string
	// Addrs are the members' listen IPs, one for each member; none means
	// 127.0.0.1 for all of them, each on ports of its own.
	Addrs []string
}

// Cluster is an etcd cluster of several members, each a Server with its
// own data directory, client port and peer port, all listed in every
// member's --initial-cluster. Each member is stopped by its pid and its
// directory removed when the test ends.
type Cluster struct {
	tb      testing.TB
	members []*Server
	netns   string
}

// StartCluster starts the members together (a member alone has no
// quorum, so none answers before enough of them run) and waits until
// every one is healthy, which means the cluster has a leader.
func StartCluster(tb testing.TB, o ClusterOptions) *Cluster {
	tb.Helper()
	n := o.Members
	if n == 0 {
		n = 3
	}
	if len(o.Addrs) != 0 && len(o.Addrs) != n {
		tb.Fatalf("etcdtest: %d addresses for %d members", len(o.Addrs), n)
	}
	c := &Cluster{tb: tb}
	taken := map[int]bool{}
	var initial []string
	for i := range n {
		addr := ""
		if len(o.Addrs) != 0 {
			addr = o.Addrs[i]
		}
		s := newServer(tb, o.Netns, addr, 0, taken)
		s.name = fmt.Sprintf("m%d", i+1)
		c.netns = s.netns
		c.members = append(c.members, s)
		initial = append(initial, s.name+"="+s.peerURL())
	}
	token := fmt.Sprintf("tsc-cluster-%d", c.members[0].port)
	for _, s := range c.members {
		s.initialCluster, s.clusterToken = strings.Join(initial, ","), token
		s.launch()
	}
	for _, s := range c.members {
		s.waitHealthy()
	}
	return c
}

// Members are the members, m1 first.
func (c *Cluster) Members() []*Server { return c.members }

// Member returns member i, 0-based (member m1 is 0).
func (c *Cluster) Member(i int) *Server { return c.members[i] }

// URLs are the members' client URLs, m1's first.
func (c *Cluster) URLs() []string {
	var u []string
	for _, s := range c.members {
		u = append(u, s.URL())
	}
	return u
}

// Client connects to all the members. It is closed when the test ends.
func (c *Cluster) Client() *clientv3.Client {
	c.tb.Helper()
	m := c.members[0]
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.URLs(),
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return m.dial(ctx, "tcp", addr)
		})},
	})
	if err != nil {
		c.tb.Fatalf("etcdtest: connect to %s: %v", strings.Join(c.URLs(), ","), err)
	}
	c.tb.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Leader returns the index of the member that leads, once every running
// member that answers names the same running member as its leader. It
// fails the test if there is none within startTimeout (no quorum).
func (c *Cluster) Leader() int {
	c.tb.Helper()
	cli := c.Client()
	deadline := time.Now().Add(startTimeout)
	var why string
	for time.Now().Before(deadline) {
		i, w := c.leader(cli)
		if i >= 0 {
			return i
		}
		why = w
		time.Sleep(100 * time.Millisecond)
	}
	c.tb.Fatalf("etcdtest: no leader among the running members within %v: %s", startTimeout, why)
	return -1
}

// leader asks each running member for its status (etcd's maintenance
// API): the index of the leader they agree on, or -1 and why not.
func (c *Cluster) leader(cli *clientv3.Client) (int, string) {
	ids := map[uint64]int{}
	var leader uint64
	answered := 0
	for i, s := range c.members {
		if !s.Running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(ctx, s.URL())
		cancel()
		if err != nil {
			return -1, fmt.Sprintf("status of %s: %v", s.name, err)
		}
		answered++
		ids[st.Header.MemberId] = i
		switch {
		case st.Leader == 0:
			return -1, s.name + " knows no leader"
		case leader == 0:
			leader = st.Leader
		case leader != st.Leader:
			return -1, fmt.Sprintf("the members name leaders %x and %x", leader, st.Leader)
		}
	}
	if answered == 0 {
		return -1, "no member runs"
	}
	i, ok := ids[leader]
	if !ok {
		return -1, fmt.Sprintf("the leader %x named is not a running member", leader)
	}
	return i, ""
}

// Followers are the indexes of the running members other than the
// leader.
func (c *Cluster) Followers() []int {
	c.tb.Helper()
	l := c.Leader()
	var f []int
	for i, s := range c.members {
		if i != l && s.Running() {
			f = append(f, i)
		}
	}
	return f
}

// WaitHealthy waits until every running member is healthy: the cluster
// has a leader and each answers.
func (c *Cluster) WaitHealthy() {
	c.tb.Helper()
	for _, s := range c.members {
		if s.Running() {
			s.waitHealthy()
		}
	}
}
