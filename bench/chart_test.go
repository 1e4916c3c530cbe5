package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chartReport is a comparison with the bridge run twice (-bracket), a
// tapswitch at half the bridge's throughput and 1.5 times its RTT, and an
// Open vSwitch whose RTT test failed.
func chartReport() *report {
	pass := func(system string, n int, tcp, rtt float64, rttErr string) passResult {
		return passResult{System: system, Pass: n, Results: []measurement{
			{Metric: metricTCP1.Key, Value: tcp, Unit: unitBits},
			{Metric: metricRTTAvg.Key, Value: rtt, Unit: unitMicros, Error: rttErr},
		}}
	}
	r := &report{
		Date:           time.Date(2026, 12, 6, 15, 30, 0, 0, time.UTC),
		Machine:        machineInfo{NProc: 2, Kernel: "6.1.0"},
		SecondsPerTest: 3,
		Metrics:        []metric{metricTCP1, metricRTTAvg},
		Systems: []passResult{
			pass("bridge", 1, 9e9, 20, ""),
			pass("tapswitch", 1, 5e9, 30, ""),
			pass("ovs", 1, 7.5e9, 0, "sockperf: exit status 1"),
			pass("bridge", 2, 11e9, 20, ""),
		},
	}
	r.Ratios = computeRatios(r.Metrics, r.Systems)
	return r
}

type svgElement struct {
	name  string
	attrs map[string]string
	text  string
}

// parseSVG reads every element, failing t unless the document is
// well-formed XML with an svg root.
func parseSVG(t *testing.T, doc []byte) []svgElement {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	var out []svgElement
	var stack []int
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := svgElement{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			if len(out) == 0 && (e.name != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("chart's root element is %v, want svg in the SVG namespace", tok.Name)
			}
			out = append(out, e)
			stack = append(stack, len(out)-1)
		case xml.CharData:
			if len(stack) > 0 {
				out[stack[len(stack)-1]].text += string(tok)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	return out
}

func TestChart(t *testing.T) {
	var b bytes.Buffer
	if err := chartReport().writeChart(&b); err != nil {
		t.Fatal(err)
	}
	elems := parseSVG(t, b.Bytes())
	bars := map[string]float64{}
	var texts []string
	passMarks := 0
	for _, e := range elems {
		switch {
		case e.name == "rect" && e.attrs["class"] == "bar":
			w, err := strconv.ParseFloat(e.attrs["width"], 64)
			if err != nil {
				t.Fatalf("bar %v: width: %v", e.attrs, err)
			}
			bars[e.attrs["data-metric"]+"/"+e.attrs["data-system"]] = w
		case e.name == "line" && e.attrs["class"] == "pass":
			passMarks++
		case e.name == "text":
			texts = append(texts, e.text)
		}
	}
	// A bar per system and metric, the bridge's once (the mean of its
	// passes), none for the failed test.
	want := []string{"tcp_1_stream/bridge", "tcp_1_stream/tapswitch", "tcp_1_stream/ovs", "udp_rtt_avg/bridge", "udp_rtt_avg/tapswitch"}
	if len(bars) != len(want) {
		t.Errorf("bars %v, want %v", bars, want)
	}
	for _, k := range want {
		if bars[k] <= 0 {
			t.Errorf("bar %s: width %v, want one", k, bars[k])
		}
	}
	// Zero-based axes: lengths compare as the values do.
	for _, c := range []struct {
		a, b  string
		ratio float64
	}{
		{"tcp_1_stream/tapswitch", "tcp_1_stream/bridge", 0.5},
		{"tcp_1_stream/ovs", "tcp_1_stream/bridge", 0.75},
		{"udp_rtt_avg/tapswitch", "udp_rtt_avg/bridge", 1.5},
	} {
		if got := bars[c.a] / bars[c.b]; got < c.ratio-0.01 || got > c.ratio+0.01 {
			t.Errorf("width %s / width %s = %.3f, want %.2f", c.a, c.b, got, c.ratio)
		}
	}
	// The bridge ran twice: a mark for each pass on its two bars.
	if passMarks != 4 {
		t.Errorf("%d marks of passes, want 4 (the bridge's 2 passes on 2 bars)", passMarks)
	}
	all := strings.Join(texts, "\n")
	for _, w := range []string{
		"Side by side: bridge, tapswitch, ovs",
		"TCP 1 stream (Gbit/s), higher is better",
		"UDP RTT avg (us), lower is better",
		"10.00 Gbit/s, mean of 2 passes",
		"5.00 Gbit/s, 0.50× bridge",
		"7.50 Gbit/s, 0.75× bridge",
		"30.0 us, 1.50× bridge",
		"failed: no value",
		"Gbit/s", "us", "0",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("chart has no text %q; its texts:\n%s", w, all)
		}
	}
	// The throughput axis ends at a round value at or above the
	// largest, 10 Gbit/s: ticks 0, 2.5, ..., 10 or 0, 5, 10.
	if !slices10(texts) {
		t.Errorf("no tick at 10 Gbit/s among %q", texts)
	}
}

func slices10(texts []string) bool {
	for _, s := range texts {
		if s == "10" {
			return true
		}
	}
	return false
}

func TestChartNothingToDraw(t *testing.T) {
	if err := (&report{}).writeChart(io.Discard); err == nil {
		t.Error("writeChart of results without a comparison succeeded, want an error")
	}
}

func TestChartEscapes(t *testing.T) {
	r := chartReport()
	r.Machine.Kernel = `6.1 <"&">`
	var b bytes.Buffer
	if err := r.writeChart(&b); err != nil {
		t.Fatal(err)
	}
	parseSVG(t, b.Bytes())
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, 4, 8*time.Second)
	now := p.start
	p.now = func() time.Time { return now }
	p.step("pass 1 of 2, bridge: %s (test 1 of 2)", "TCP 1 stream")
	now = now.Add(10 * time.Second)
	p.step("pass 1 of 2, bridge: %s (test 2 of 2)", "UDP RTT avg")
	now = now.Add(10 * time.Second)
	p.done("all passes ended")
	want := "[1/4] pass 1 of 2, bridge: TCP 1 stream (test 1 of 2) (elapsed 0s, about 32s left)\n" +
		"[2/4] pass 1 of 2, bridge: UDP RTT avg (test 2 of 2) (elapsed 10s, about 30s left)\n" +
		"[2/4] all passes ended in 20s\n"
	if b.String() != want {
		t.Errorf("progress wrote\n%s\nwant\n%s", b.String(), want)
	}
}

func TestRedrawChart(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/run.json"
	if err := chartReport().writeJSON(path); err != nil {
		t.Fatal(err)
	}
	if err := redrawChart(path); err != nil {
		t.Fatalf("redrawChart(%s): %v", path, err)
	}
	b, err := os.ReadFile(dir + "/run.svg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("0.50× bridge")) {
		t.Errorf("chart redrawn from the JSON lacks tapswitch's ratio:\n%s", b)
	}
	parseSVG(t, b)
	if err := redrawChart(dir + "/missing.json"); err == nil {
		t.Error("redrawChart of a missing file succeeded")
	}
}
