package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

// TestClusterEtcdMembers runs two hosts' tapswitchd on an etcd cluster of
// three members (10.231.0.10, .11 and .12 on the underlay), each daemon
// given all three URLs. Killing etcd's leader (SIGKILL, by its pid)
// during a TCP stream from a container on h1 to one on h2 leaves the
// stream going, every second of it; the hosts stay connected to the
// store throughout (their lease TTL the default), and afterwards a cluster network created on h2 appears on h1,
// its ports get addresses and reach each other by name. tapswitch status
// names the store's three URLs and says it is connected. With two members
// killed (no quorum) status and network create say that etcd has no
// leader; with one back, a network created on h1 appears on h2.
func TestClusterEtcdMembers(t *testing.T) {
	const (
		haNet     = "haone"
		haSubnet  = "10.241.30.0/24"
		afterNet  = "hatwo"
		afterSub  = "10.241.31.0/24"
		streamFor = 20
	)
	// The default TTL (10s), not the harness's short one: the hosts'
	// leases are renewed every third of it, and the store counts itself
	// cut off after two thirds without an answer, longer than an
	// election. (With 3s it is 2s, which an election may outlast: the
	// store then says "not connected" for the moment.)
	c := newCluster(t, clusterOptions{hosts: 2, etcdMembers: 3, args: func(int) []string {
		return []string{"--cluster-ttl", "10s"}
	}})
	h1, h2 := c.host(1), c.host(2)
	urls := c.etcds.URLs()

	// Each host's status names the store's members and says connected.
	storeConnected := func(h *clusterHost) string {
		s := h.status(t)
		switch {
		case s.Cluster == nil:
			return "no cluster in status"
		case !slices.Equal(s.Cluster.Endpoints, urls):
			return fmt.Sprintf("store endpoints %v, want %v", s.Cluster.Endpoints, urls)
		case !s.Cluster.Connected:
			return fmt.Sprintf("store not connected: %+v", s.Cluster)
		case s.Cluster.Hosts != 2:
			return fmt.Sprintf("%d hosts, want 2", s.Cluster.Hosts)
		}
		return ""
	}
	statusNamesStore := func(h *clusterHost) {
		t.Helper()
		out := h.mustCLI(t, "status")
		want := "cluster store:"
		i := strings.Index(out, want)
		line, _, _ := strings.Cut(out[max(i, 0):], "\n")
		if i < 0 || !strings.Contains(line, strings.Join(urls, ",")) || !strings.Contains(line, ", connected since") {
			t.Errorf("%s: tapswitch status has no line %q with %s, connected since ...:\n%s", h.name, want, strings.Join(urls, ","), out)
		}
		t.Logf("%s: %s", h.name, strings.Join(strings.Fields(line), " "))
	}
	for _, h := range c.hosts {
		poll(t, h.name+"'s store connected", func() string { return storeConnected(h) })
		statusNamesStore(h)
	}

	h1.mustCLI(t, "network", "create", haNet, "--subnet", haSubnet, "--scope", "cluster")
	poll(t, haNet+" on h2", func() string {
		if n := h2.network(t, haNet); n == nil || n.Scope != api.ScopeCluster {
			return fmt.Sprintf("network %+v", n)
		}
		return ""
	})
	src := c.container(t, h1, "src", haNet)
	dst := c.container(t, h2, "dst", haNet)
	poll(t, "ping dst from src", func() string {
		if out, err := pingName(src, "dst"); err != nil {
			return fmt.Sprintf("%v\n%s", err, out)
		}
		return ""
	})
	c.iperfServer(t, dst, containerAddr(t, dst), 5201)

	// A paced stream, so that a second the leader's death slowed
	// would show against the others.
	stream := c.startIperf(t, src, "dst", 5201, "-t", fmt.Sprint(streamFor), "-b", "200M", "--get-server-output")
	time.Sleep(5 * time.Second)
	since := map[string]time.Time{}
	for _, h := range c.hosts {
		since[h.name] = h.status(t).Cluster.Since
	}
	l := c.etcds.Leader()
	leader := c.etcds.Member(l)
	pid := leader.Pid()
	killed := time.Now()
	leader.Kill()
	nl := c.etcds.Leader()
	t.Logf("etcd leader %s (pid %d) killed; %s leads %v after", leader.Name(), pid, c.etcds.Member(nl).Name(), time.Since(killed).Round(time.Millisecond))
	// Through the rest of the stream the hosts stay in the store: poll
	// their status until the stream ends, and note any moment one was
	// not connected.
	var notConnected []string
	for time.Since(killed) < time.Duration(streamFor-7)*time.Second {
		for _, h := range c.hosts {
			if why := storeConnected(h); why != "" {
				notConnected = append(notConnected, fmt.Sprintf("%s at +%v: %s", h.name, time.Since(killed).Round(time.Millisecond), why))
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	res := stream.result(t, time.Minute)
	secs := serverSeconds(t, stream, res)
	var rates []float64
	var seconds []string
	gap := 0
	for _, iv := range secs {
		seconds = append(seconds, fmt.Sprintf("%.0f-%.0fs %.1f MB", iv.start, iv.end, iv.bytes/1e6))
		if iv.bytes == 0 {
			gap++
		}
		// The first second (TCP's start) and a short last one are
		// not the stream's pace.
		if iv.end-iv.start > 0.9 && iv.start > 0 {
			rates = append(rates, iv.bytes/(iv.end-iv.start))
		}
	}
	t.Logf("received by second (iperf3 -s): %s", strings.Join(seconds, ", "))
	slices.Sort(rates)
	ratio := 0.0
	if len(rates) > 0 && rates[len(rates)/2] > 0 {
		ratio = rates[0] / rates[len(rates)/2]
	}
	t.Logf("iperf3 -t %d -b 200M src -> dst across the leader's death at +5s: %d bytes in %.1fs at %.2f Gbit/s, %d retransmits, %d seconds without bytes, slowest second / median second %.2f",
		streamFor, res.End.SumReceived.Bytes, res.End.SumReceived.Seconds, res.gbps(), res.End.SumSent.Retransmits, gap, ratio)
	if len(secs) < streamFor-1 {
		t.Errorf("the server reported %d seconds of a %d-second stream; want them all", len(secs), streamFor)
	}
	if gap > 0 {
		t.Errorf("the stream received nothing for %d seconds when etcd's leader was killed; want it unaffected", gap)
	}
	if ratio < 0.5 {
		t.Errorf("the stream's slowest second had %.2f of the median second's bytes; want it unaffected by the leader's death", ratio)
	}
	if len(notConnected) > 0 {
		t.Errorf("a host's status showed the store not connected after the leader's death:\n%s", strings.Join(notConnected, "\n"))
	}
	for _, h := range c.hosts {
		for _, line := range strings.Split(h.log(), "\n") {
			if strings.Contains(line, "cluster store disconnected") || strings.Contains(line, "cluster store connected") || strings.Contains(line, "lease lost") {
				t.Logf("%s: %s", h.name, line)
			}
		}
	}
	for _, h := range c.hosts {
		poll(t, h.name+"'s store connected after the leader's death", func() string { return storeConnected(h) })
		if s := h.status(t).Cluster.Since; !s.Equal(since[h.name]) {
			t.Errorf("%s: store connected since %v, before the leader's death since %v: it was cut off meanwhile", h.name, s, since[h.name])
		}
	}

	// Changes go on: a network created on h2 appears on h1; ports on
	// both get addresses and reach each other.
	h2.mustCLI(t, "network", "create", afterNet, "--subnet", afterSub, "--scope", "cluster")
	took := poll(t, afterNet+" on h1", func() string {
		if n := h1.network(t, afterNet); n == nil || n.Scope != api.ScopeCluster {
			return fmt.Sprintf("network %+v", n)
		}
		return ""
	})
	t.Logf("%s, created on h2 with etcd's leader dead, listed on h1 after %v", afterNet, took.Round(time.Millisecond))
	one := c.container(t, h1, "one", afterNet)
	two := c.container(t, h2, "two", afterNet)
	if a, b := containerAddr(t, one), containerAddr(t, two); a == b {
		t.Errorf("one and two both have address %s", a)
	}
	poll(t, "ping two from one", func() string {
		if out, err := pingName(one, "two"); err != nil {
			return fmt.Sprintf("%v\n%s", err, out)
		}
		return ""
	})
	for _, h := range c.hosts {
		statusNamesStore(h)
	}

	// The killed member comes back and catches up; the hosts never
	// notice.
	leader.Restart()
	c.etcds.WaitHealthy()
	for _, h := range c.hosts {
		if why := storeConnected(h); why != "" {
			t.Errorf("%s with every etcd member back: %s", h.name, why)
		}
	}

	// Two members of three gone: no quorum. Status and a change that
	// needs the store say that etcd has no leader, and what it needs;
	// with one member back, changes go on.
	down := []int{c.etcds.Leader()}
	down = append(down, c.etcds.Followers()[0])
	for _, i := range down {
		c.etcds.Member(i).Kill()
	}
	t.Logf("etcd members %s and %s killed: no quorum", c.etcds.Member(down[0]).Name(), c.etcds.Member(down[1]).Name())
	poll(t, "h1's status says etcd has no leader", func() string {
		if s := h1.status(t); s.Cluster == nil || s.Cluster.Connected || !strings.Contains(s.Cluster.LastError, "etcd has no leader") {
			return fmt.Sprintf("cluster %+v", s.Cluster)
		}
		return ""
	})
	out := h1.mustCLI(t, "status")
	if !strings.Contains(out, "not connected") || !strings.Contains(out, "a majority of its members must be up") {
		t.Errorf("tapswitch status on h1 without quorum does not say \"not connected\" and what etcd needs:\n%s", out)
	}
	t.Logf("tapswitch status on h1 without quorum:\n%s", out)
	r := h1.cli(t, "network", "create", "hathree", "--subnet", "10.241.32.0/24", "--scope", "cluster")
	t.Logf("network create --scope cluster without quorum: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	if r.code == 0 || !strings.Contains(r.stderr, "has no leader") {
		t.Errorf("network create --scope cluster without quorum: exit %d, %q; want a failure saying etcd has no leader", r.code, r.stderr)
	}
	c.etcds.Member(down[1]).Restart()
	for _, h := range c.hosts {
		poll(t, h.name+"'s store connected with quorum back", func() string { return storeConnected(h) })
	}
	h1.mustCLI(t, "network", "create", "hathree", "--subnet", "10.241.32.0/24", "--scope", "cluster")
	poll(t, "hathree on h2", func() string {
		if n := h2.network(t, "hathree"); n == nil {
			return "absent"
		}
		return ""
	})
}

// serverSecond is what iperf3 -s received in one interval.
type serverSecond struct {
	start, end float64
	bytes      float64
}

// serverLine is an interval line of iperf3 -s's text output, such as
// "[  5]   1.00-2.00   sec  23.8 MBytes   200 Mbits/sec".
var serverLine = regexp.MustCompile(`^\[\s*\d+\]\s+([\d.]+)-([\d.]+)\s+sec\s+([\d.]+)\s+([KMG]?)Bytes\s`)

// serverSeconds reads the receiver's intervals from the client's
// --get-server-output: as JSON when the server writes JSON (iperf3 -s
// -J), else (as iperfServer starts it) from the server's text, which
// iperf3 (3.12) passes on as it is.
func serverSeconds(t *testing.T, r *clusterIperf, res *iperfRun) []serverSecond {
	t.Helper()
	var secs []serverSecond
	for _, iv := range res.ServerOutput.Intervals {
		secs = append(secs, serverSecond{start: iv.Sum.Start, end: iv.Sum.End, bytes: float64(iv.Sum.Bytes)})
	}
	if len(secs) > 0 {
		return secs
	}
	var out struct {
		Text string `json:"server_output_text"`
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &out); err != nil {
		t.Fatalf("%s: %v", r.desc, err)
	}
	unit := map[string]float64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
	for _, line := range strings.Split(out.Text, "\n") {
		m := serverLine.FindStringSubmatch(line)
		if m == nil || strings.Contains(line, "receiver") || strings.Contains(line, "sender") {
			continue
		}
		start, _ := strconv.ParseFloat(m[1], 64)
		end, _ := strconv.ParseFloat(m[2], 64)
		n, _ := strconv.ParseFloat(m[3], 64)
		secs = append(secs, serverSecond{start: start, end: end, bytes: n * unit[m[4]]})
	}
	if len(secs) == 0 {
		t.Fatalf("%s: no intervals in the server's output:\n%s", r.desc, out.Text)
	}
	return secs
}

// silentSeconds counts the receiver's intervals that carried no bytes,
// but for a last one of under half a second (iperf3's tail, which may
// end before the stream's last bytes).
func silentSeconds(secs []serverSecond) int {
	n := 0
	for _, s := range secs {
		if s.bytes == 0 && s.end-s.start >= 0.5 {
			n++
		}
	}
	return n
}
