package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
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
// count times, in the background, with a timestamp on every line (-D)
// and a line for each request not answered before the next is sent
// (-O), which dates a request that is never answered.
func (c *clusterEnv) clusterPing(t *testing.T, ns, ip string, interval string, count int) *timedPing {
	t.Helper()
	out := &strings.Builder{}
	// -W 2: a reply that waited out the hand-over in a ring or in the
	// VXLAN socket still counts.
	cmd := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-D", "-O", "-i", interval, "-c", strconv.Itoa(count), "-W", "2", ip)
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("ping in %s: %v", ns, err)
	}
	c.procs = append(c.procs, p)
	return &timedPing{p: p, out: out, desc: fmt.Sprintf("ping -i %s -c %d %s from %s", interval, count, ip, ns)}
}

type timedPing struct {
	p    *proc
	out  *strings.Builder
	desc string
}

var (
	pingReplyRE    = regexp.MustCompile(`bytes from .* icmp_seq=(\d+)`)
	pingNoAnswerRE = regexp.MustCompile(`^\[(\d+)\.(\d+)\] no answer yet for icmp_seq=(\d+)`)
)

// timedPingResult is pingResult with, for each request never
// answered, when ping first noticed (about one interval after it was
// sent; the zero time if it did not say).
type timedPingResult struct {
	pingResult
	lostAt map[int]time.Time
}

func (p *timedPing) result(t *testing.T) timedPingResult {
	t.Helper()
	pr, out := pingSummary(t, p.p, p.desc, p.out.String)
	r := timedPingResult{pingResult: pr}
	seen := map[int]bool{}
	noAnswer := map[int]time.Time{}
	for _, line := range strings.Split(out, "\n") {
		if m := pingReplyRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			seen[n] = true
		} else if m := pingNoAnswerRE.FindStringSubmatch(line); m != nil {
			sec, _ := strconv.ParseInt(m[1], 10, 64)
			frac, _ := strconv.ParseFloat("0."+m[2], 64)
			n, _ := strconv.Atoi(m[3])
			if _, ok := noAnswer[n]; !ok {
				noAnswer[n] = time.Unix(sec, int64(frac*1e9))
			}
		}
	}
	r.lostAt = map[int]time.Time{}
	for i := 1; i <= r.sent; i++ {
		if !seen[i] {
			r.missing = append(r.missing, i)
			r.lostAt[i] = noAnswer[i]
		}
	}
	return r
}

// linkDrops is what the kernel dropped on dev in ns: its qdisc's drops
// and the link's TX and RX drops.
func linkDrops(t *testing.T, ns, dev string) string {
	t.Helper()
	q, _ := nsRun(ns, "tc", "-s", "qdisc", "show", "dev", dev)
	l, _ := nsRun(ns, "ip", "-s", "-j", "link", "show", "dev", dev)
	var links []struct {
		Stats struct {
			RX struct{ Dropped uint64 } `json:"rx"`
			TX struct{ Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	json.Unmarshal([]byte(l), &links)
	qdrops := regexp.MustCompile(`dropped (\d+)`).FindAllStringSubmatch(q, -1)
	var qd []string
	for _, m := range qdrops {
		qd = append(qd, m[1])
	}
	if len(links) != 1 {
		return fmt.Sprintf("qdisc dropped %v", qd)
	}
	return fmt.Sprintf("qdisc dropped %v, link rx dropped %d, tx dropped %d", qd, links[0].Stats.RX.Dropped, links[0].Stats.TX.Dropped)
}

// TestClusterUpgrade: tapswitchd --upgrade on a cluster host (h2, which
// receives the tunnel on two sockets, --vxlan-receivers 2) with
// containers web on h1 and db on h2:
//
//   - with a ping every 5 ms alone from web to db: no echo request is
//     lost (the frames wait in h2's TAP rings and in both its VXLAN
//     sockets, which the successor reads);
//   - under a TCP stream at full speed from web to db: the transfer is
//     whole and no second of the receiver's goes without bytes;
//   - with a successor given --vxlan-receivers 1, then 2 again: the
//     upgrade completes, the successor takes the sockets it was handed
//     and closes the surplus (what waited in that one is lost, so echo
//     requests may be lost, but only around the hand-over) or opens one
//     more into their group while the predecessor holds the port (no
//     request lost).
//
// Through each, h1's tapswitch peers never lacks h2, no record leaves
// etcd, and h2's lease is the same before and after. Then a successor
// that dies in the middle of the hand-over: h2 resumes with its sockets
// and its lease, loses no echo request, and forwards.
func TestClusterUpgrade(t *testing.T) {
	c := newCluster(t, clusterOptions{hosts: 2})
	h1, h2 := c.host(1), c.host(2)
	if receivers(h2.args) != 2 {
		t.Fatalf("h2's flags %v: want --vxlan-receivers 2, for the hand-over of two sockets", h2.args)
	}
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
	// Once h1 has read db's endpoint in the store, its DNS answers.
	poll(t, "web pings db by name", func() string {
		if out, err := pingName(web, "db", "-c", "1"); err != nil {
			return fmt.Sprintf("%v: %s", err, out)
		}
		return ""
	})
	dbIP := containerAddr(t, db)
	c.iperfServer(t, db, dbIP, 5201)
	cli := c.etcd.Client()
	lease := c.hostLease(t, cli, h2.name)

	// upgrade runs tapswitchd --upgrade on h2 with --vxlan-receivers
	// n, during 1 s of what runs meanwhile, and checks the cluster's
	// view of h2 throughout: it returns when the upgrade began and
	// ended.
	upgrade := func(t *testing.T, what string, n int, during func()) (time.Time, time.Time) {
		t.Helper()
		w := c.watchHost(t, cli, h1, h2)
		from := receivers(h2.args)
		h2.args = withReceivers(h2.args, n)
		oldPid := h2.daemon.cmd.Process.Pid
		before := storeSince(t, h2)
		time.Sleep(time.Second)
		start := time.Now()
		took := h2.upgrade(t)
		end := time.Now()
		// The successor carries on the predecessor's connection to the
		// store, so that it applies removals at once rather than after
		// a TTL (see cluster.Config.ConnectedSince).
		if after := storeSince(t, h2); !after.Equal(before) {
			t.Errorf("%s: h2's store connected since %v after the upgrade, want %v as before it", what, after, before)
		}
		t.Logf("%s: h2's tapswitchd %d (%d receiving sockets) handed over to %d (asked for %d); the old one exited %v after the new one started, the new one served %v after",
			what, oldPid, from, h2.daemon.cmd.Process.Pid, n, took.Round(time.Millisecond), end.Sub(start).Round(time.Millisecond))
		if during != nil {
			during()
		}
		// Past the run's end, for a late deletion to show.
		time.Sleep(2 * clusterTTL)
		w.stop(t, h1, h2, what)
		if got := c.hostLease(t, cli, h2.name); got != lease {
			t.Errorf("%s: h2's lease after the upgrade = %x, want %x as before", what, got, lease)
		}
		log := lastRun(t, h2)
		want := []string{
			fmt.Sprintf("receivers=%d ", n),
			fmt.Sprintf("handed_over=%d ", min(from, n)),
			fmt.Sprintf("opened_beside=%d", max(n-from, 0)),
			"cluster host registered under the lease handed over",
			"cluster store connected, carrying on the predecessor's session",
		}
		if from > n {
			want = append(want, "the surplus closed")
		}
		for _, s := range want {
			if !strings.Contains(log, s) {
				t.Errorf("%s: the new tapswitchd's log lacks %q:\n%s", what, s, log)
			}
		}
		mustPingName(t, web, "db")
		mustPingName(t, db, "web")
		return start, end
	}

	t.Run("ping alone", func(t *testing.T) {
		ping := c.clusterPing(t, web, dbIP, "0.005", 600)
		upgrade(t, "upgrade beside a ping", 2, nil)
		r := ping.result(t)
		t.Logf("ping: %d sent, %d received, longest round trip %v; web eth0: %s; db eth0: %s", r.sent, r.received, r.maxRTT, linkDrops(t, web, "eth0"), linkDrops(t, db, "eth0"))
		checkNoLoss(t, "ping across hosts through the upgrade", r.pingResult)
	})

	t.Run("under a stream", func(t *testing.T) {
		timeouts := tcpTimeouts(t, web)
		rcvbuf1, rcvbuf2 := udpRcvbufErrors(t, h1.ns), udpRcvbufErrors(t, h2.ns)
		backlog := softnetDrops(t)
		stream := c.startIperf(t, web, "db", 5201, "-t", "8", "--get-server-output")
		upgrade(t, "upgrade under a stream", 2, func() {
			res := stream.result(t, time.Minute)
			secs := serverSeconds(t, stream, res)
			silent := silentSeconds(secs)
			t.Logf("iperf3 -t 8 web -> db through the upgrade: %d bytes in %.1fs at %.2f Gbit/s, %d retransmits, %d TCP timeouts in web, %d of the receiver's %d seconds without bytes",
				res.End.SumReceived.Bytes, res.End.SumReceived.Seconds, res.gbps(), res.End.SumSent.Retransmits, tcpTimeouts(t, web)-timeouts, silent, len(secs))
			t.Logf("during the run: datagrams dropped for a full receive buffer: h1 %d, h2 %d; packets dropped for a full input backlog (all namespaces): %d",
				udpRcvbufErrors(t, h1.ns)-rcvbuf1, udpRcvbufErrors(t, h2.ns)-rcvbuf2, softnetDrops(t)-backlog)
			if silent > 0 {
				t.Errorf("the stream stalled through the upgrade: %d of the receiver's %d seconds carried no bytes\n%s", silent, len(secs), iperfIntervals(stream.stdout.Bytes()))
			}
			if sent, got := res.End.SumSent.Bytes, res.End.SumReceived.Bytes; sent == 0 || got < sent-sent/10 {
				t.Errorf("%s: %d bytes sent, %d received; want the transfer whole", stream.desc, sent, got)
			}
		})
	})

	t.Run("fewer receivers", func(t *testing.T) {
		ping := c.clusterPing(t, web, dbIP, "0.005", 600)
		start, end := upgrade(t, "upgrade to --vxlan-receivers 1", 1, nil)
		r := ping.result(t)
		t.Logf("ping: %d sent, %d received (%d lost), longest round trip %v", r.sent, r.received, len(r.missing), r.maxRTT)
		checkLossAround(t, r, start, end)
	})

	t.Run("more receivers", func(t *testing.T) {
		ping := c.clusterPing(t, web, dbIP, "0.005", 600)
		upgrade(t, "upgrade to --vxlan-receivers 2", 2, nil)
		r := ping.result(t)
		t.Logf("ping: %d sent, %d received, longest round trip %v", r.sent, r.received, r.maxRTT)
		checkNoLoss(t, "ping across hosts through the upgrade to more receiving sockets", r.pingResult)
	})

	t.Run("removal right after", func(t *testing.T) {
		// A network removed on h1 just after h2's upgrade goes from h2
		// as soon as the store tells it, as from a host that was never
		// upgraded: the successor's views are settled from the first.
		const gone = "upg-rm"
		h1.mustCLI(t, "network", "create", gone, "--subnet", "10.241.8.0/24", "--scope", "cluster")
		poll(t, gone+" on h2", func() string {
			if h2.network(t, gone) == nil {
				return "absent"
			}
			return ""
		})
		time.Sleep(time.Second)
		h2.upgrade(t)
		removed := time.Now()
		h1.mustCLI(t, "network", "rm", gone)
		poll(t, gone+" removed from h2", func() string {
			if h2.network(t, gone) != nil {
				return "still there"
			}
			return ""
		})
		t.Logf("h2, upgraded just before, removed %s %v after h1 did (the store's TTL is %v)", gone, time.Since(removed).Round(time.Millisecond), clusterTTL)
		if log := lastRun(t, h2); !strings.Contains(log, "cluster network removed here") {
			t.Errorf("the new tapswitchd's log does not say it removed %s:\n%s", gone, log)
		}
	})

	t.Run("successor dies", func(t *testing.T) {
		w := c.watchHost(t, cli, h1, h2)
		old := h2.daemon
		ping := c.clusterPing(t, web, dbIP, "0.005", 600)
		time.Sleep(500 * time.Millisecond)
		helper := exec.Command(os.Args[0])
		helper.Env = append(os.Environ(), handoverHelperEnv+"=successor-dies", handoverDirEnv+"="+h2.state)
		out, err := helper.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "received") {
			t.Fatalf("successor that dies: %v\n%s", err, out)
		}
		h2.waitServed(t, old)
		r := ping.result(t)
		time.Sleep(2 * clusterTTL)
		w.stop(t, h1, h2, "through a failed upgrade")
		t.Logf("successor died mid-hand-over: %d sent, %d received, longest round trip %v", r.sent, r.received, r.maxRTT)
		checkNoLoss(t, "ping across hosts through a hand-over whose successor died", r.pingResult)
		if got := c.hostLease(t, cli, h2.name); got != lease {
			t.Errorf("h2's lease after the failed hand-over = %x, want %x as before", got, lease)
		}
		if !strings.Contains(h2.log(), "resumed after a failed hand-over") {
			t.Errorf("h2's log does not say it resumed\n%s", h2.log())
		}
		mustPingName(t, web, "db")
		res := c.iperf(t, web, "db", 5201, "-t", "2")
		t.Logf("after resuming: %.0f Mbit/s", res.End.SumReceived.BitsPerSecond/1e6)
	})

	t.Run("removal owed through the upgrade", func(t *testing.T) {
		// A port detached while etcd is away leaves its endpoint and
		// address in the store, under the host's lease, until it
		// answers: the upgrade hands the removals over with the lease,
		// and the successor makes them once etcd is back.
		tmp := c.container(t, h2, "tmp", network)
		addr := containerAddr(t, tmp)
		poll(t, "web pings tmp by name", func() string {
			if out, err := pingName(web, "tmp", "-c", "1"); err != nil {
				return fmt.Sprintf("%v: %s", err, out)
			}
			return ""
		})
		if out, err := nsRun(web, "getent", "hosts", "tmp"); err != nil || !strings.Contains(out, addr) {
			t.Fatalf("getent hosts tmp in web = %v, %q; want %s", err, out, addr)
		}
		c.etcd.Stop()
		etcdUp := false
		defer func() {
			if !etcdUp {
				c.etcd.Restart()
			}
		}()
		poll(t, "h2's store unreachable", func() string {
			if s := h2.status(t); s.Cluster == nil || s.Cluster.Connected {
				return fmt.Sprintf("cluster %+v", s.Cluster)
			}
			return ""
		})
		h2.mustCLI(t, "detach", "tmp")
		h2.upgrade(t)
		if log := lastRun(t, h2); !strings.Contains(log, "removals owed to the cluster store taken over") || !strings.Contains(log, "count=2") {
			t.Errorf("the new tapswitchd's log does not say it took over 2 removals (tmp's endpoint and address):\n%s", log)
		}
		c.etcd.Restart()
		etcdUp = true
		// Once made, h1 no longer resolves tmp, and the address is free:
		// a port on h1 takes it.
		poll(t, "tmp gone from h1's DNS", func() string {
			if out, err := nsRun(web, "getent", "hosts", "tmp"); err == nil {
				return "tmp still resolves: " + strings.TrimSpace(out)
			}
			return ""
		})
		again := c.newContainerNetns(t, "again")
		poll(t, "h1 attaches a port at tmp's address "+addr, func() string {
			if r := h1.cli(t, "attach", again, "--name", "again", "--network", network, "--ip", addr+"/24"); r.code != 0 {
				return strings.TrimSpace(r.stderr)
			}
			return ""
		})
	})
}

// receivers returns the --vxlan-receivers of a daemon's flags, 1 if
// not given.
func receivers(args []string) int {
	if i := slices.Index(args, "--vxlan-receivers"); i >= 0 && i+1 < len(args) {
		n, _ := strconv.Atoi(args[i+1])
		return n
	}
	return 1
}

// withReceivers returns args with --vxlan-receivers n.
func withReceivers(args []string, n int) []string {
	args = slices.Clone(args)
	if i := slices.Index(args, "--vxlan-receivers"); i >= 0 && i+1 < len(args) {
		args[i+1] = strconv.Itoa(n)
		return args
	}
	return append(args, "--vxlan-receivers", strconv.Itoa(n))
}

// lastRun returns h's log from the start of the last tapswitchd
// --upgrade on.
func lastRun(t *testing.T, h *clusterHost) string {
	t.Helper()
	b, err := os.ReadFile(h.logPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if i := strings.LastIndex(s, "--- tapswitchd "); i >= 0 {
		s = s[i:]
	}
	return s
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

// upgradeWindow is how long around the hand-over (from the start of
// tapswitchd --upgrade until the new daemon serves) a lost echo request
// counts as lost to it: ping notices a loss an interval after the
// request, and the frames of the hand-over wait up to a few tens of
// milliseconds.
const upgradeWindow = 500 * time.Millisecond

// checkLossAround fails t if an echo request of r went unanswered
// other than around the hand-over (from start to end): with fewer
// receiving sockets, what waited in the one closed is lost, but nothing
// after.
func checkLossAround(t *testing.T, r timedPingResult, start, end time.Time) {
	t.Helper()
	if r.sent == 0 {
		t.Fatalf("ping across hosts through the upgrade: no echo request sent")
	}
	for _, seq := range r.missing {
		at := r.lostAt[seq]
		switch {
		case at.IsZero():
			t.Errorf("ping across hosts through the upgrade: icmp_seq %d unanswered, at a time ping did not say", seq)
		case at.After(start.Add(-upgradeWindow)) && at.Before(end.Add(upgradeWindow)):
			t.Logf("ping across hosts through the upgrade: icmp_seq %d unanswered, %v after the upgrade began (it took %v): around the hand-over", seq, at.Sub(start).Round(time.Millisecond), end.Sub(start).Round(time.Millisecond))
		default:
			t.Errorf("ping across hosts through the upgrade: icmp_seq %d unanswered, %v after the upgrade began (it took %v): outside the hand-over", seq, at.Sub(start).Round(time.Millisecond), end.Sub(start).Round(time.Millisecond))
		}
	}
}

// udpRcvbufErrors reads the UDP datagrams the kernel of namespace ns
// dropped for a full socket receive buffer (Udp RcvbufErrors): the
// VXLAN socket's, on a host.
func udpRcvbufErrors(t *testing.T, ns string) int {
	t.Helper()
	return procNetCounter(t, ns, "/proc/net/snmp", "Udp:", "RcvbufErrors")
}

// softnetDrops sums the packets the kernel dropped, over every CPU and
// every namespace, for a full input backlog (/proc/net/softnet_stat's
// second column): where frames written into a TAP faster than its
// namespace takes them are lost.
func softnetDrops(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			n, _ := strconv.ParseUint(f[1], 16, 64)
			sum += n
		}
	}
	return sum
}

// storeSince returns since when h's store has been connected, waiting
// until it is.
func storeSince(t *testing.T, h *clusterHost) time.Time {
	t.Helper()
	var since time.Time
	poll(t, h.name+"'s store connected", func() string {
		c := h.status(t).Cluster
		if c == nil || !c.Connected {
			return fmt.Sprintf("status: %+v", c)
		}
		since = c.Since
		return ""
	})
	return since
}
