package e2e

// Metrics: tapswitchd --metrics serves Prometheus's text format, and a
// real Prometheus server (Debian's prometheus package, its own config,
// data directory and port, started and stopped here) scrapes it and
// answers a query for a port's counter, which moves with the traffic.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsWait bounds each wait for a scrape to show something: Prometheus
// scrapes every second here, and a loaded machine with race-built
// binaries can take some of them longer.
const metricsWait = 60 * time.Second

// newMetNetns is newNetns with this part's prefix for namespace names.
func (e *testEnv) newMetNetns(role string) string {
	e.t.Helper()
	return e.newNetnsNamed("met", role)
}

// freeLoopbackPort is a TCP port of 127.0.0.1 that nothing listens on.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// scrapeMetrics gets the daemon's /metrics at addr, parsed.
func scrapeMetrics(t *testing.T, addr string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	body, err := httpGet("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET http://%s/metrics: %v", addr, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse http://%s/metrics: %v\n%s", addr, err, body)
	}
	return mfs, body
}

// series reports the value of the series of family name with the labels
// of want, if there is one.
func series(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, m := range mfs[name].GetMetric() {
		match := 0
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match != len(want) {
			continue
		}
		if c := m.GetCounter(); c != nil {
			return c.GetValue(), true
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

// promServer is a Prometheus server of a test's own.
type promServer struct {
	t   *testing.T
	dir string
	url string
	p   *proc
}

// startPrometheus starts Prometheus scraping the daemon's metrics at
// target every second, with its configuration and data in a directory of
// its own and its web listener on a free loopback port; it is stopped by
// its pid and its directory removed when the test ends, whatever the
// outcome. It returns once Prometheus says it is ready.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "metprom")
	if err != nil {
		t.Fatal(err)
	}
	ps := &promServer{t: t, dir: dir}
	t.Cleanup(ps.stop)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tapswitch
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
	ps.url = "http://" + listen
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("prometheus",
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen,
		"--log.level=warn")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if ps.p, err = startProc(cmd); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	deadline := time.Now().Add(metricsWait)
	for {
		select {
		case <-ps.p.done:
			t.Fatalf("prometheus exited: %v\n%s", ps.p.err, ps.log())
		default:
		}
		if _, err := httpGet(ps.url + "/-/ready"); err == nil {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready on %s after %v\n%s", listen, metricsWait, ps.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (ps *promServer) log() string {
	b, _ := os.ReadFile(filepath.Join(ps.dir, "prometheus.log"))
	return "--- prometheus log ---\n" + string(b)
}

// stop sends SIGTERM to Prometheus, killing it if it has not exited
// within 10 s, and removes its directory.
func (ps *promServer) stop() {
	if ps.p != nil {
		select {
		case <-ps.p.done:
		default:
			ps.p.cmd.Process.Signal(syscall.SIGTERM)
			if err := ps.p.wait(10 * time.Second); err != nil && ps.p.cmd.ProcessState == nil {
				ps.p.kill()
			}
		}
		if ps.t.Failed() {
			ps.t.Log(ps.log())
		}
	}
	os.RemoveAll(ps.dir)
}

// query asks Prometheus for the instant value of expr, through its HTTP
// API; ok is false while the answer is empty.
func (ps *promServer) query(expr string) (v float64, ok bool) {
	ps.t.Helper()
	body, err := httpGet(ps.url + "/api/v1/query?" + url.Values{"query": {expr}}.Encode())
	if err != nil {
		ps.t.Fatalf("query %s: %v\n%s", expr, err, body)
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" || r.Data.ResultType != "vector" {
		ps.t.Fatalf("query %s: %v: %s", expr, err, body)
	}
	switch len(r.Data.Result) {
	case 0:
		return 0, false
	case 1:
	default:
		ps.t.Fatalf("query %s: %d series, want one: %s", expr, len(r.Data.Result), body)
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(s, 64)
	if err != nil {
		ps.t.Fatalf("query %s: value %q: %v", expr, s, err)
	}
	return v, true
}

// waitQuery polls expr until Prometheus answers with a value for which
// done is true, and returns it.
func (ps *promServer) waitQuery(expr string, done func(float64) bool, what string) float64 {
	ps.t.Helper()
	deadline := time.Now().Add(metricsWait)
	for {
		v, ok := ps.query(expr)
		if ok && done(v) {
			return v
		}
		if time.Now().After(deadline) {
			ps.t.Fatalf("Prometheus: %s = %v (answered %v) after %v; want %s", expr, v, ok, metricsWait, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestMetricsPrometheus: tapswitchd --metrics 127.0.0.1:PORT; two
// namespaces attached and pinging; the scrape passes promtool's checks;
// a real Prometheus scrapes the daemon every second, and a port's rx
// frames counter queried back through its HTTP API moves with more
// traffic. A detached port is gone from the next scrape.
func TestMetricsPrometheus(t *testing.T) {
	maddr := fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
	e := newEnvArgs(t, []string{"--metrics", maddr}, "prometheus", "promtool")
	e.mustCLI("network", "create", "metnet", "--subnet", "10.190.1.0/24")
	nsA, nsB := e.newMetNetns("a"), e.newMetNetns("b")
	const ipA, ipB = "10.190.1.10", "10.190.1.11"
	hostPort := freeLoopbackPort(t)
	e.attach(nsA, "--network", "metnet", "--name", "meta", "--ip", ipA+"/24")
	e.attach(nsB, "--network", "metnet", "--name", "metb", "--ip", ipB+"/24",
		"--publish", fmt.Sprintf("127.0.0.1:%d:8080", hostPort))
	mustPing(t, nsA, ipB)
	serveHTTPAt(t, nsPath(nsB), 8080, "metrics")
	if got, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); err != nil || got != "metrics" {
		t.Fatalf("GET the published port: %q, %v", got, err)
	}

	// The daemon's own scrape: the ports, with their labels.
	mfs, body := scrapeMetrics(t, maddr)
	meta := map[string]string{"network": "metnet", "port": "meta", "kind": "container"}
	if v, ok := series(mfs, "tapswitch_port_rx_frames_total", meta); !ok || v < 3 {
		t.Fatalf("tapswitch_port_rx_frames_total%v = %v (found %v), want the pings\n%s", meta, v, ok, body)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"tapswitch_port_tx_bytes_total", map[string]string{"port": "metb", "kind": "container"}},
		{"tapswitch_fdb_learned_total", map[string]string{"network": "metnet"}},
		{"tapswitch_published_connections_total", map[string]string{"port": "metb", "publish": fmt.Sprintf("127.0.0.1:%d:8080/tcp", hostPort)}},
		{"tapswitch_fd_budget_limit", nil},
		{"tapswitch_restore_duration_seconds", nil},
	} {
		if v, ok := series(mfs, c.name, c.labels); !ok || v <= 0 {
			t.Errorf("%s%v = %v (found %v), want more than 0", c.name, c.labels, v, ok)
		}
	}
	if _, ok := series(mfs, "tapswitch_port_dropped_frames_total", map[string]string{"port": "meta", "reason": "ip_spoof"}); !ok {
		t.Error("no tapswitch_port_dropped_frames_total{reason=ip_spoof} for port meta: every reason is exported, zeros included")
	}
	// promtool's own checks of the exposition (the Go runtime's metrics
	// are client_golang's and left to it).
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "tapswitch_") {
			problems = append(problems, l)
		}
	}
	if len(problems) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, strings.Join(problems, "\n"))
	}
	t.Logf("one scrape: %d bytes, %d families", len(body), len(mfs))

	// Prometheus, scraping every second.
	ps := startPrometheus(t, maddr)
	ps.waitQuery(`up{job="tapswitch"}`, func(v float64) bool { return v == 1 }, "1 (the daemon scraped)")
	q := `tapswitch_port_rx_frames_total{network="metnet",port="meta",kind="container"}`
	before := ps.waitQuery(q, func(v float64) bool { return v >= 3 }, "at least the 3 pings")
	const pings = 20
	if out, err := nsRun(nsA, "ping", "-n", "-c", strconv.Itoa(pings), "-i", "0.05", "-W", "2", ipB); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", ipB, nsA, err, out)
	}
	after := ps.waitQuery(q, func(v float64) bool { return v >= before+pings }, fmt.Sprintf("at least %v (%v and %d echo requests)", before+pings, before, pings))
	t.Logf("Prometheus: %s went from %v to %v after %d pings", q, before, after, pings)
	if n := ps.waitQuery(`tapswitch_attach_duration_seconds_count`, func(v float64) bool { return v >= 2 }, "2 attaches"); n != 2 {
		t.Errorf("tapswitch_attach_duration_seconds_count = %v, want 2", n)
	}
	if v, _ := ps.query(`histogram_quantile(0.5, tapswitch_attach_duration_seconds_bucket)`); v > 0 {
		t.Logf("Prometheus: median attach time %.1f ms (race-built daemon)", v*1000)
	}

	// Detached, metb is gone from the next scrape.
	e.mustCLI("detach", "metb")
	mfs, _ = scrapeMetrics(t, maddr)
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "port" && l.GetValue() == "metb" {
					t.Fatalf("%s still has port metb after its detach", name)
				}
			}
		}
	}
	if h := mfs["tapswitch_detach_duration_seconds"].GetMetric(); len(h) != 1 || h[0].GetHistogram().GetSampleCount() != 1 {
		t.Errorf("tapswitch_detach_duration_seconds after one detach: %v, want a count of 1", h)
	}
}

// TestMetricsUpgrade: a daemon resumed after a failed hand-over serves
// its new self's metrics; tapswitchd --upgrade with the same --metrics
// takes the metrics listener over from the running daemon, so the port
// is never free nor in use by the wrong daemon, and serves the restored
// ports' metrics there.
func TestMetricsUpgrade(t *testing.T) {
	maddr := fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
	e := newEnvArgs(t, []string{"--metrics", maddr})
	e.mustCLI("network", "create", "metup", "--subnet", "10.190.2.0/24")
	ns := e.newMetNetns("u")
	e.attach(ns, "--network", "metup", "--name", "metu", "--ip", "10.190.2.10/24")
	mustPing(t, ns, "10.190.2.1")
	mfs, _ := scrapeMetrics(t, maddr)
	if v, _ := series(mfs, "tapswitch_restore_ports", map[string]string{"outcome": "restored"}); v != 0 {
		t.Fatalf("a fresh daemon restored %v ports", v)
	}
	// A successor that gives up (its --socket unusable: under a regular
	// file): the running daemon resumes, made anew, and its metrics are
	// the new one's, on the listener it kept.
	old := e.daemon
	args := e.daemonCommand("--upgrade")
	args[slices.Index(args, "--socket")+1] = filepath.Join(e.logPath, "sock")
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err == nil {
		t.Fatalf("tapswitchd --upgrade with an unusable --socket succeeded\n%s", out)
	}
	e.waitServed(old)
	mfs, _ = scrapeMetrics(t, maddr)
	if v, _ := series(mfs, "tapswitch_restore_ports", map[string]string{"outcome": "restored"}); v != 1 {
		t.Fatalf("after a failed hand-over: tapswitch_restore_ports{outcome=restored} = %v, want 1 (the daemon resumed)", v)
	}
	if _, ok := series(mfs, "tapswitch_port_rx_frames_total", map[string]string{"port": "metu"}); !ok {
		t.Fatal("after a failed hand-over: no metrics of port metu")
	}

	e.upgrade()
	mfs, body := scrapeMetrics(t, maddr)
	if v, _ := series(mfs, "tapswitch_restore_ports", map[string]string{"outcome": "restored"}); v != 1 {
		t.Fatalf("after --upgrade: tapswitch_restore_ports{outcome=restored} = %v, want 1 (the new daemon answers)\n%s", v, body)
	}
	mustPing(t, ns, "10.190.2.1")
	mfs, _ = scrapeMetrics(t, maddr)
	if v, _ := series(mfs, "tapswitch_port_rx_frames_total", map[string]string{"port": "metu"}); v < 3 {
		t.Fatalf("after --upgrade: metu's rx frames = %v, want the pings since", v)
	}
	if !strings.Contains(e.daemonLog(), "serving metrics") || strings.Contains(e.daemonLog(), "metrics listener handed over not used") {
		t.Errorf("the new daemon did not serve on the listener handed over\n%s", e.daemonLog())
	}
}
