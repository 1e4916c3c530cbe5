package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/fdb"
)

// fakeSource is a Source whose snapshot a test sets.
type fakeSource struct {
	mu  sync.Mutex
	s   Snapshot
	err error
}

func (f *fakeSource) MetricsSnapshot(ctx context.Context) (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s, f.err
}

func (f *fakeSource) set(fn func(s *Snapshot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.s)
}

// twoPorts is a daemon with network front: its gateway, a port web with
// a published port, and a port api.
func twoPorts() Snapshot {
	return Snapshot{
		Ports: []Port{
			{Name: "tsw-0000abcd", Network: "front", Kind: api.KindGateway, MACLimit: -1},
			{Name: "web", Network: "front", Kind: api.KindContainer, MACs: 1, MACLimit: 1024,
				Stats:     api.PortCounters{RxFrames: 10, RxBytes: 1000, TxFrames: 20, TxBytes: 2000, Drops: map[string]uint64{"src_mac": 3}},
				Published: []api.PublishedCounters{{Publish: "8080:80/tcp", Active: 2, Total: 7, Refused: map[string]uint64{"source_limit": 4}, BytesToTarget: 100, BytesToClient: 200}}},
			{Name: "api", Network: "front", Kind: api.KindContainer, MACLimit: 1024},
		},
		Networks: []Network{{Name: "front", FDBEntries: 2, FDBLimit: 8192,
			FDB: fdb.Stats{Learned: 5, Moves: 1, Expired: 3, LimitDrops: 0, PortLimitDrops: 9},
			DNS: &api.DNSCounters{Answered: 11, Forwarded: 4, Refused: api.DNSRefused{Interface: 2}}}},
		Restore:  Restore{Duration: 1500 * time.Millisecond, RestoredPorts: 2, DroppedPorts: 1, FirstForward: -1},
		FDBudget: FDBudget{Used: 12, Limit: 917504, Refused: 1},
	}
}

// scrape gets url and parses the text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the scrape of %s: %v", url, err)
	}
	return mfs
}

// sample is the value of the series of family name whose labels include
// want, and whether there is one.
func sample(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if have[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func labelNames(m *dto.Metric) []string {
	var out []string
	for _, l := range m.GetLabel() {
		out = append(out, l.GetName())
	}
	slices.Sort(out)
	return out
}

// A scrape through the handler has every metric of the README with its
// type and labels, the values of the source, and moves with it; a port
// that goes is gone from the next scrape.
func TestScrape(t *testing.T) {
	src := &fakeSource{s: twoPorts()}
	m := New("v1.2.3", nil)
	m.SetSource(src)
	m.Attached(3 * time.Millisecond)
	m.Attached(40 * time.Millisecond)
	m.Detached(2 * time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	mfs := scrape(t, srv.URL+"/metrics")

	web := map[string]string{"network": "front", "port": "web", "kind": "container"}
	pub := map[string]string{"network": "front", "port": "web", "publish": "8080:80/tcp"}
	front := map[string]string{"network": "front"}
	with := func(l map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range l {
			out[a] = b
		}
		return out
	}
	for _, c := range []struct {
		name   string
		typ    dto.MetricType
		labels []string
		want   map[string]string
		value  float64
	}{
		{"tapswitch_port_rx_frames_total", dto.MetricType_COUNTER, []string{"kind", "network", "port"}, web, 10},
		{"tapswitch_port_rx_bytes_total", dto.MetricType_COUNTER, []string{"kind", "network", "port"}, web, 1000},
		{"tapswitch_port_tx_frames_total", dto.MetricType_COUNTER, []string{"kind", "network", "port"}, web, 20},
		{"tapswitch_port_tx_bytes_total", dto.MetricType_COUNTER, []string{"kind", "network", "port"}, web, 2000},
		{"tapswitch_port_dropped_frames_total", dto.MetricType_COUNTER, []string{"kind", "network", "port", "reason"}, with(web, "reason", "src_mac"), 3},
		{"tapswitch_port_dropped_frames_total", dto.MetricType_COUNTER, []string{"kind", "network", "port", "reason"}, with(web, "reason", "storm"), 0},
		{"tapswitch_port_macs", dto.MetricType_GAUGE, []string{"kind", "network", "port"}, web, 1},
		{"tapswitch_port_mac_limit", dto.MetricType_GAUGE, []string{"kind", "network", "port"}, web, 1024},
		{"tapswitch_published_open_connections", dto.MetricType_GAUGE, []string{"network", "port", "publish"}, pub, 2},
		{"tapswitch_published_connections_total", dto.MetricType_COUNTER, []string{"network", "port", "publish"}, pub, 7},
		{"tapswitch_published_failed_connections_total", dto.MetricType_COUNTER, []string{"network", "port", "publish"}, pub, 0},
		{"tapswitch_published_refused_connections_total", dto.MetricType_COUNTER, []string{"network", "port", "publish", "reason"}, with(pub, "reason", "source_limit"), 4},
		{"tapswitch_published_refused_connections_total", dto.MetricType_COUNTER, []string{"network", "port", "publish", "reason"}, with(pub, "reason", "descriptors"), 0},
		{"tapswitch_published_idle_closed_connections_total", dto.MetricType_COUNTER, []string{"network", "port", "publish"}, pub, 0},
		{"tapswitch_published_dropped_datagrams_total", dto.MetricType_COUNTER, []string{"network", "port", "publish"}, pub, 0},
		{"tapswitch_published_bytes_total", dto.MetricType_COUNTER, []string{"direction", "network", "port", "publish"}, with(pub, "direction", "to_client"), 200},
		{"tapswitch_fdb_entries", dto.MetricType_GAUGE, []string{"network"}, front, 2},
		{"tapswitch_fdb_entries_limit", dto.MetricType_GAUGE, []string{"network"}, front, 8192},
		{"tapswitch_fdb_learned_total", dto.MetricType_COUNTER, []string{"network"}, front, 5},
		{"tapswitch_fdb_moved_total", dto.MetricType_COUNTER, []string{"network"}, front, 1},
		{"tapswitch_fdb_aged_total", dto.MetricType_COUNTER, []string{"network"}, front, 3},
		{"tapswitch_fdb_limit_drops_total", dto.MetricType_COUNTER, []string{"network", "reason"}, with(front, "reason", "mac_limit"), 9},
		{"tapswitch_fdb_limit_drops_total", dto.MetricType_COUNTER, []string{"network", "reason"}, with(front, "reason", "fdb_full"), 0},
		{"tapswitch_dns_answers_total", dto.MetricType_COUNTER, []string{"network"}, front, 11},
		{"tapswitch_dns_forwarded_queries_total", dto.MetricType_COUNTER, []string{"network"}, front, 4},
		{"tapswitch_dns_not_forwarded_queries_total", dto.MetricType_COUNTER, []string{"network"}, front, 0},
		{"tapswitch_dns_rate_limited_total", dto.MetricType_COUNTER, []string{"network"}, front, 0},
		{"tapswitch_dns_refused_total", dto.MetricType_COUNTER, []string{"network", "reason"}, with(front, "reason", "interface"), 2},
		{"tapswitch_restore_duration_seconds", dto.MetricType_GAUGE, nil, nil, 1.5},
		{"tapswitch_restore_ports", dto.MetricType_GAUGE, []string{"outcome"}, map[string]string{"outcome": "dropped"}, 1},
		{"tapswitch_fd_budget_used", dto.MetricType_GAUGE, nil, nil, 12},
		{"tapswitch_fd_budget_limit", dto.MetricType_GAUGE, nil, nil, 917504},
		{"tapswitch_fd_budget_refused_total", dto.MetricType_COUNTER, nil, nil, 1},
		{"tapswitch_build_info", dto.MetricType_GAUGE, []string{"version"}, map[string]string{"version": "v1.2.3"}, 1},
		{"tapswitch_attach_duration_seconds", dto.MetricType_HISTOGRAM, nil, nil, 2},
		{"tapswitch_detach_duration_seconds", dto.MetricType_HISTOGRAM, nil, nil, 1},
		{"tapswitch_metrics_incomplete_scrapes_total", dto.MetricType_COUNTER, nil, nil, 0},
		{"tapswitch_metrics_refused_connections_total", dto.MetricType_COUNTER, nil, nil, 0},
	} {
		mf := mfs[c.name]
		if mf == nil {
			t.Errorf("%s: not in the scrape", c.name)
			continue
		}
		if mf.GetType() != c.typ {
			t.Errorf("%s: type %v, want %v", c.name, mf.GetType(), c.typ)
		}
		if got := labelNames(mf.GetMetric()[0]); !slices.Equal(got, c.labels) {
			t.Errorf("%s: labels %v, want %v", c.name, got, c.labels)
		}
		if v, ok := sample(mfs, c.name, c.want); !ok || v != c.value {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.want, v, ok, c.value)
		}
	}
	// Every drop reason of the switch, for every port, zeros included.
	if n := len(mfs["tapswitch_port_dropped_frames_total"].GetMetric()); n != 3*len(dropReasons) || len(dropReasons) < 19 {
		t.Errorf("%d drop series for 3 ports and %d reasons", n, len(dropReasons))
	}
	if _, ok := mfs["tapswitch_first_forward_seconds"]; ok {
		t.Error("tapswitch_first_forward_seconds before any frame was forwarded")
	}
	for _, prefix := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_open_fds", "process_resident_memory_bytes"} {
		if mfs[prefix] == nil {
			t.Errorf("%s: not in the scrape (Go and process collectors)", prefix)
		}
	}

	// Values move; a port that goes is gone.
	src.set(func(s *Snapshot) {
		s.Ports[1].Stats.RxFrames = 15
		s.Ports = slices.Delete(s.Ports, 2, 3)
		s.Restore.FirstForward = 25 * time.Millisecond
	})
	mfs = scrape(t, srv.URL+"/metrics")
	if v, _ := sample(mfs, "tapswitch_port_rx_frames_total", web); v != 15 {
		t.Errorf("web's rx frames after a change = %v, want 15", v)
	}
	if _, ok := sample(mfs, "tapswitch_port_rx_frames_total", map[string]string{"port": "api"}); ok {
		t.Error("port api is still scraped after it went")
	}
	if v, ok := sample(mfs, "tapswitch_first_forward_seconds", nil); !ok || v != 0.025 {
		t.Errorf("tapswitch_first_forward_seconds = %v (found %v), want 0.025", v, ok)
	}
}

// The metrics pass client_golang's linter (promtool check metrics' rules):
// names, units, _total on counters, help on each.
func TestLint(t *testing.T) {
	m := New("v1", nil)
	m.SetSource(&fakeSource{s: twoPorts()})
	m.Attached(time.Millisecond)
	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// Every one of the daemon's own is tapswitch_ and has a help text.
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	own := 0
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
			continue
		}
		own++
		if !strings.HasPrefix(name, "tapswitch_") || mf.GetHelp() == "" {
			t.Errorf("%s: want a tapswitch_ name and a help text (help %q)", name, mf.GetHelp())
		}
	}
	if own < 30 {
		t.Errorf("%d metrics of the daemon's own, want the README's", own)
	}
}

// A source that cannot answer in time leaves the daemon's metrics out
// and is counted; the Go and process metrics are still served.
func TestScrapeWithoutSource(t *testing.T) {
	src := &fakeSource{err: context.DeadlineExceeded}
	m := New("v1", nil)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	// Before the daemon runs.
	mfs := scrape(t, srv.URL+"/metrics")
	if mfs["tapswitch_port_rx_frames_total"] != nil || mfs["go_goroutines"] == nil || mfs["tapswitch_build_info"] == nil {
		t.Fatal("before the daemon runs: want build info and the Go metrics, and no port")
	}
	m.SetSource(src)
	mfs = scrape(t, srv.URL+"/metrics")
	if v, _ := sample(mfs, "tapswitch_metrics_incomplete_scrapes_total", nil); v != 1 || mfs["tapswitch_fdb_entries"] != nil || mfs["process_open_fds"] == nil {
		t.Fatalf("a scrape the daemon did not answer: incomplete %v; want 1, no daemon metrics, the process's", v)
	}
	src.set(func(s *Snapshot) { *s = twoPorts() })
	src.mu.Lock()
	src.err = nil
	src.mu.Unlock()
	mfs = scrape(t, srv.URL+"/metrics")
	if v, _ := sample(mfs, "tapswitch_metrics_incomplete_scrapes_total", nil); v != 1 || mfs["tapswitch_fdb_entries"] == nil {
		t.Fatal("the daemon's metrics are not back")
	}
}

// Only GET and HEAD of /metrics are served.
func TestHandlerPaths(t *testing.T) {
	m := New("v1", nil)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/metrics", 200},
		{"HEAD", "/metrics", 200},
		{"POST", "/metrics", 405},
		{"GET", "/", 404},
		{"GET", "/debug/pprof/", 404},
		{"GET", "/api/v1/query", 404},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

func TestParseAddr(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"127.0.0.1:9469", "127.0.0.1:9469", ""},
		{"[::1]:9469", "[::1]:9469", ""},
		{":9469", "[::]:9469", ""},
		{"[::ffff:127.0.0.1]:9469", "127.0.0.1:9469", ""},
		{"9469", "", "want IP:PORT"},
		{"127.0.0.1", "", "want IP:PORT"},
		{"", "", "want IP:PORT"},
		{"localhost:9469", "", "not an IP address"},
		{"127.0.0.1:0", "", "from 1 to 65535"},
		{"127.0.0.1:65536", "", "from 1 to 65535"},
		{"127.0.0.1:http", "", "from 1 to 65535"},
		{"[fe80::1%eth0]:9469", "", "zone is not supported"},
		{"224.0.0.1:9469", "", "multicast"},
	} {
		got, err := ParseAddr(c.in)
		switch {
		case c.err == "" && (err != nil || got.String() != c.want):
			t.Errorf("ParseAddr(%q) = %v, %v; want %s", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseAddr(%q) = %v, %v; want an error saying %q", c.in, got, err, c.err)
		}
	}
}

// An address in use is refused, saying so.
func TestListenInUse(t *testing.T) {
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr, _ := ParseAddr(busy.Addr().String())
	if ln, err := Listen(addr); err == nil || !strings.Contains(err.Error(), "in use") {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("Listen(%s) on a busy port = %v, want an error saying it is in use", addr, err)
	}
}

// Past maxConns open connections, a new one is closed at once and
// counted; those open are served.
func TestConnectionLimit(t *testing.T) {
	ln, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	m := New("v1", nil)
	srv := m.Serve(ln)
	defer srv.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range maxConns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The server has accepted them all once one of them is answered.
	if _, err := io.WriteString(conns[0], "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(conns[0], buf); err != nil || string(buf) != "HTTP/1.1 200" {
		t.Fatalf("an admitted connection: %q, %v", buf, err)
	}
	for m.shed.Load() == 0 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("a connection over the limit: read = %v, want it closed", err)
		}
	}
	if n := m.shed.Load(); n != 1 {
		t.Fatalf("%d connections refused, want 1", n)
	}
	// One closed, a new one is served.
	conns[1].Close()
	for {
		resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("after a connection closed: %s", resp.Status)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FuzzParseAddr: whatever --metrics is given, ParseAddr returns an
// address it reads back the same, or an error that names the flag.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9469", "[::1]:9469", ":9469", "localhost:9469", "[fe80::1%eth0]:1", "1.2.3.4:0", "9469", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--metrics ") {
				t.Fatalf("ParseAddr(%q) = %v: the error does not name the flag", s, err)
			}
			return
		}
		if a.Port() == 0 || a.Addr().Zone() != "" || a.Addr().Is4In6() {
			t.Fatalf("ParseAddr(%q) = %v", s, a)
		}
		if b, err := ParseAddr(a.String()); err != nil || b != a {
			t.Fatalf("ParseAddr(%q) = %v, but ParseAddr(%q) = %v, %v", s, a, a.String(), b, err)
		}
	})
}

// The tunnel's and the cluster's metrics are there with --advertise and
// --cluster, and not without.
func TestScrapeOverlay(t *testing.T) {
	s := twoPorts()
	src := &fakeSource{s: s}
	m := New("v1", nil)
	m.SetSource(src)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	mfs := scrape(t, srv.URL+"/metrics")
	for _, name := range []string{"tapswitch_vxlan_dropped_total", "tapswitch_cluster_store_connected"} {
		if mfs[name] != nil {
			t.Errorf("%s scraped without a tunnel or a cluster", name)
		}
	}
	src.set(func(s *Snapshot) {
		s.Tunnel = &Tunnel{RxPackets: 5, TxPackets: 6, Dropped: map[string]uint64{"not_member": 3, "unknown_vni": 2}}
		s.Cluster = &Cluster{Connected: true, Hosts: 3}
	})
	mfs = scrape(t, srv.URL+"/metrics")
	for _, c := range []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"tapswitch_vxlan_dropped_total", map[string]string{"reason": "not_member"}, 3},
		{"tapswitch_vxlan_dropped_total", map[string]string{"reason": "unknown_vni"}, 2},
		{"tapswitch_vxlan_dropped_total", map[string]string{"reason": "malformed"}, 0},
		{"tapswitch_vxlan_packets_total", map[string]string{"direction": "tx"}, 6},
		{"tapswitch_vxlan_tx_errors_total", nil, 0},
		{"tapswitch_cluster_store_connected", nil, 1},
		{"tapswitch_cluster_hosts", nil, 3},
	} {
		if v, ok := sample(mfs, c.name, c.labels); !ok || v != c.value {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, v, ok, c.value)
		}
	}
}
