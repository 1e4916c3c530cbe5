package etcdtest

import (
	"context"
	"testing"
	"time"
)

// TestCluster starts three members, kills the leader, finds another
// leading and the key still there, restarts the killed member and finds
// it back in the cluster with the key.
func TestCluster(t *testing.T) {
	c := StartCluster(t, ClusterOptions{})
	if len(c.URLs()) != 3 {
		t.Fatalf("URLs() = %v, want 3", c.URLs())
	}
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/tsc/k", "v"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	l := c.Leader()
	old := c.Member(l)
	pid := old.Pid()
	old.Kill()
	if old.Running() || old.Pid() != 0 {
		t.Fatalf("%s still running after Kill (pid %d)", old.Name(), pid)
	}
	l2 := c.Leader()
	if l2 == l {
		t.Fatalf("Leader() = %d after killing it", l)
	}
	t.Logf("leader %s (pid %d) killed; %s leads", old.Name(), pid, c.Member(l2).Name())
	if _, err := cli.Put(ctx, "/tsc/k2", "v2"); err != nil {
		t.Fatalf("Put with the leader killed: %v", err)
	}
	old.Restart()
	c.WaitHealthy()
	// The restarted member has the key put while it was down.
	st, err := cli.Status(ctx, old.URL())
	if err != nil {
		t.Fatalf("status of %s after restart: %v", old.Name(), err)
	}
	if st.Leader == 0 {
		t.Fatalf("%s knows no leader after restart", old.Name())
	}
	one := old.Client()
	resp, err := one.Get(ctx, "/tsc/k2")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v2" {
		t.Fatalf("Get from %s after restart = %v, %v; want v2", old.Name(), resp, err)
	}
	if len(c.Followers()) != 2 {
		t.Fatalf("Followers() = %v, want two", c.Followers())
	}
}
