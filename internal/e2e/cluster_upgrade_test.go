package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tapswitch/tapswitch/api"
)

// upgrade runs tapswitchd --upgrade on h with h's flags, as an
// administrator would, waits for the running daemon to exit 0 once
// taken over and for the new one to serve, and returns how long the old
// one took to exit.
func (h *clusterHost) upgrade(t *testing.T) time.Duration {
	t.Helper()
	old := h.daemon
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append(append([]string{}, h.args...), "--upgrade")
	fmt.Fprintf(logf, "--- tapswitchd %s (%s) ---\n", strings.Join(args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, binDir + "/tapswitchd"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("start tapswitchd --upgrade in %s: %v", h.ns, err)
	}
	if err := old.wait(startTimeout); err != nil {
		p.kill()
		t.Fatalf("%s: the running tapswitchd after tapswitchd --upgrade: %v, want it to exit 0 once taken over\n%s", h.name, err, h.log())
	}
	took := time.Since(start)
	h.daemon = p
	h.waitServed(t, p)
	return took
}

// waitServed polls h's tapswitch status until the daemon that answers
// is p.
func (h *clusterHost) waitServed(t *testing.T, p *proc) api.Status {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s: tapswitchd (pid %d) exited: %v\n%s", h.name, p.cmd.Process.Pid, p.err, h.log())
		default:
		}
		r := runCLIQuiet(h.sock, "status", "-o", "json")
		var s api.Status
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &s) == nil && s.PID == p.cmd.Process.Pid {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: tapswitchd (pid %d) not serving after %v: %s%s\n%s", h.name, p.cmd.Process.Pid, startTimeout, r.stdout, r.stderr, h.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostLease reads host's lease from etcd: the lease its record is put
// under.
func (c *clusterEnv) hostLease(t *testing.T, cli *clientv3.Client, host string) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, "/tapswitch/hosts/"+host)
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("etcd get /tapswitch/hosts/%s = %v, %v; want one record", host, r, err)
	}
	return clientv3.LeaseID(r.Kvs[0].Lease)
}

// clusterWatch records, from its start until stop, every record deleted
// from etcd and every time a host's tapswitch peers did not list the
// watched host with its VTEP.
type clusterWatch struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	mu     sync.Mutex
	// deleted are the keys deleted; missing what peers lacked, and
	// polls how many times peers answered.
	deleted []string
	missing []string
	polls   int
}

func (c *clusterEnv) watchHost(t *testing.T, cli *clientv3.Client, observer *clusterHost, watched *clusterHost) *clusterWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &clusterWatch{cancel: cancel}
	get, err := cli.Get(ctx, "/tapswitch/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	wch := cli.Watch(ctx, "/tapswitch/", clientv3.WithPrefix(), clientv3.WithRev(get.Header.Revision+1))
	w.done.Go(func() {
		for r := range wch {
			for _, ev := range r.Events {
				if ev.Type == clientv3.EventTypeDelete {
					w.mu.Lock()
					w.deleted = append(w.deleted, string(ev.Kv.Key))
					w.mu.Unlock()
				}
			}
		}
	})
	w.done.Go(func() {
		for ctx.Err() == nil {
			r := runCLIQuiet(observer.sock, "peers", "-o", "json")
			var ps []api.Peer
			if r.code == 0 && json.Unmarshal([]byte(r.stdout), &ps) == nil {
				p := findPeer(ps, watched.vtep)
				w.mu.Lock()
				w.polls++
				if p == nil || p.Name != watched.name {
					w.missing = append(w.missing, time.Now().Format("15:04:05.000"))
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	return w
}

// stop ends the watch and fails t if a record of host was deleted or
// observer's peers ever lacked it.
func (w *clusterWatch) stop(t *testing.T, observer, watched *clusterHost, what string) {
	t.Helper()
	w.cancel()
	w.done.Wait()
	// Nothing is detached or removed meanwhile: any deletion is a
	// record that left with a lease.
	for _, k := range w.deleted {
		t.Errorf("%s: etcd record %s deleted", what, k)
	}
	if len(w.missing) > 0 {
		t.Errorf("%s: %s's tapswitch peers lacked %s (%s) in %d of %d polls, at %v", what, observer.name, watched.name, watched.vtep, len(w.missing), w.polls, w.missing)
	}
	if w.polls == 0 {
		t.Errorf("%s: %s's tapswitch peers never answered", what, observer.name)
	}
	t.Logf("%s: %d polls of %s's peers, %d without %s; %d records deleted in etcd", what, w.polls, observer.name, len(w.missing), watched.name, len(w.deleted))
}

// clusterPing pings ip from container namespace ns every interval,
// count times, in the background.
func (c *clusterEnv) clusterPing(t *testing.T, ns, ip string, interval string, count int) *pinger {
	t.Helper()
	out := &strings.Builder{}
	// -W 2: a reply that waited out the hand-over in a ring or in the
	// VXLAN socket still counts.
	cmd := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-i", interval, "-c", strconv.Itoa(count), "-W", "2", ip)
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("ping in %s: %v", ns, err)
	}
	c.procs = append(c.procs, p)
	return &pinger{p: p, out: out, desc: fmt.Sprintf("ping -i %s -c %d %s from %s", interval, count, ip, ns)}
}

// TestClusterUpgrade: tapswitchd --upgrade on a cluster host (h1) while
// a TCP stream and a ping every 5 ms run from a container on h1 to one
// on h2. The upgrade completes; the stream completes without error; no
// echo request or reply is lost (the frames wait in h1's TAP rings and
// in its VXLAN socket, which the successor reads); h2's tapswitch peers
// never lacks h1, and no record of h1 leaves etcd; h1's lease is the same
// before and after. Then a successor that dies in the middle of the
// hand-over: h1 resumes with its socket and its lease, and forwards.
func TestClusterUpgrade(t *testing.T) {
	c := newCluster(t, clusterOptions{hosts: 2})
	h1, h2 := c.host(1), c.host(2)
	const network = "upg"
	h1.mustCLI(t, "network", "create", network, "--subnet", "10.241.7.0/24", "--scope", "cluster")
	poll(t, "network on h2", func() string {
		if h2.network(t, network) == nil {
			return "absent"
		}
		return ""
	})
	web := c.container(t, h1, "web", network)
	db := c.container(t, h2, "db", network)
	mustPingName(t, web, "db")
	dbIP := containerAddr(t, db)
	c.iperfServer(t, db, dbIP, 5201)
	cli := c.etcd.Client()
	lease := c.hostLease(t, cli, h1.name)

	t.Run("upgrade", func(t *testing.T) {
		w := c.watchHost(t, cli, h2, h1)
		timeouts := tcpTimeouts(t, web)
		stream := c.startIperf(t, web, "db", 5201, "-t", "8")
		ping := c.clusterPing(t, web, dbIP, "0.005", 1600)
		time.Sleep(2 * time.Second)
		oldPid := h1.daemon.cmd.Process.Pid
		took := h1.upgrade(t)
		t.Logf("h1: tapswitchd %d handed over to %d; the old one exited %v after the new one started", oldPid, h1.daemon.cmd.Process.Pid, took.Round(time.Millisecond))
		serr := stream.p.wait(time.Minute)
		if serr != nil {
			stream.p.kill()
		}
		r := ping.result(t)
		t.Logf("ping: %d sent, %d received, longest round trip %v", r.sent, r.received, r.maxRTT)
		checkNoLoss(t, "ping across hosts through the upgrade of h1", r)
		for _, h := range c.hosts {
			if s := h.status(t); s.Tunnel != nil {
				t.Logf("%s's tunnel: rx %d tx %d packets, tx errors %d, dropped %v", h.name, s.Tunnel.RxPackets, s.Tunnel.TxPackets, s.Tunnel.TxErrors, s.Tunnel.Dropped)
			}
		}
		var res iperfRun
		if jerr := json.Unmarshal(stream.stdout.Bytes(), &res); serr != nil || jerr != nil || res.Error != "" || res.End.SumReceived.Bytes == 0 {
			srv, _ := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("iperf3-%s-%d.log", db, 5201)))
			t.Errorf("%s through the upgrade: exit %v, %v, %q\n%s\niperf3 -s:\n%s", stream.desc, serr, jerr, res.Error, iperfIntervals(stream.stdout.Bytes()), srv)
		} else {
			t.Logf("stream: %.0f Mbit/s, %d retransmits, %d TCP timeouts in web",
				res.End.SumReceived.BitsPerSecond/1e6, res.End.SumSent.Retransmits, tcpTimeouts(t, web)-timeouts)
		}
		// Past the stream's end, for a late deletion to show.
		time.Sleep(2 * clusterTTL)
		w.stop(t, h2, h1, "through the upgrade")
		if got := c.hostLease(t, cli, h1.name); got != lease {
			t.Errorf("h1's lease after the upgrade = %x, want %x as before", got, lease)
		}
		log := h1.log()
		for _, want := range []string{"handed_over=true", "cluster host registered under the lease handed over", "handed over; exiting"} {
			if !strings.Contains(log, want) {
				t.Errorf("h1's log lacks %q", want)
			}
		}
		mustPingName(t, web, "db")
		mustPingName(t, db, "web")
	})

	t.Run("successor dies", func(t *testing.T) {
		w := c.watchHost(t, cli, h2, h1)
		old := h1.daemon
		ping := c.clusterPing(t, web, dbIP, "0.005", 600)
		time.Sleep(500 * time.Millisecond)
		helper := exec.Command(os.Args[0])
		helper.Env = append(os.Environ(), handoverHelperEnv+"=successor-dies", handoverDirEnv+"="+h1.state)
		out, err := helper.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "received") {
			t.Fatalf("successor that dies: %v\n%s", err, out)
		}
		h1.waitServed(t, old)
		r := ping.result(t)
		time.Sleep(2 * clusterTTL)
		w.stop(t, h2, h1, "through a failed upgrade")
		t.Logf("successor died mid-hand-over: %d sent, %d received, longest round trip %v", r.sent, r.received, r.maxRTT)
		checkNoLoss(t, "ping across hosts through a hand-over whose successor died", r)
		if got := c.hostLease(t, cli, h1.name); got != lease {
			t.Errorf("h1's lease after the failed hand-over = %x, want %x as before", got, lease)
		}
		if !strings.Contains(h1.log(), "resumed after a failed hand-over") {
			t.Errorf("h1's log does not say it resumed\n%s", h1.log())
		}
		mustPingName(t, web, "db")
		res := c.iperf(t, web, "db", 5201, "-t", "2")
		t.Logf("after resuming: %.0f Mbit/s", res.End.SumReceived.BitsPerSecond/1e6)
	})
}

// iperfIntervals is the per-interval summary of iperf3 -J output: when
// the stream moved, and how much.
func iperfIntervals(out []byte) string {
	var v struct {
		Intervals []struct {
			Sum struct {
				Start       float64 `json:"start"`
				Bytes       uint64  `json:"bytes"`
				Retransmits int     `json:"retransmits"`
			} `json:"sum"`
		} `json:"intervals"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return string(out)
	}
	var b strings.Builder
	for _, i := range v.Intervals {
		fmt.Fprintf(&b, "  %5.1fs: %d bytes, %d retransmits\n", i.Sum.Start, i.Sum.Bytes, i.Sum.Retransmits)
	}
	return b.String()
}
