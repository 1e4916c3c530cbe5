package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

func port(id uint32, name string, rxF, rxB, txF, txB uint64, drops map[string]uint64) api.Port {
	return api.Port{ID: id, Name: name, Network: "default",
		Stats: api.PortCounters{RxFrames: rxF, RxBytes: rxB, TxFrames: txF, TxBytes: txB, Drops: drops}}
}

// fixedSamples are two readings two seconds apart: web sends 2,000
// frames (3 MB) and receives 1,000; db is idle; cache dropped 40
// mac_limit and 10 storm; new appeared in between.
func fixedSamples() (sample, sample) {
	t0 := time.Date(2026, 12, 6, 15, 30, 0, 0, time.UTC)
	prev := sample{at: t0, ports: []api.Port{
		port(1, "web", 100, 10_000, 50, 5_000, nil),
		port(2, "db", 7, 700, 7, 700, nil),
		port(3, "cache", 0, 0, 0, 0, map[string]uint64{"mac_limit": 10}),
	}}
	cur := sample{at: t0.Add(2 * time.Second), ports: []api.Port{
		port(1, "web", 2_100, 3_010_000, 1_050, 105_000, nil),
		port(2, "db", 7, 700, 7, 700, nil),
		port(3, "cache", 0, 0, 0, 0, map[string]uint64{"mac_limit": 50, "storm": 10}),
		port(4, "new", 5, 500, 0, 0, nil),
	}}
	return prev, cur
}

func TestRates(t *testing.T) {
	prev, cur := fixedSamples()
	rows := rates(prev, cur)
	by := map[string]rateRow{}
	for _, r := range rows {
		by[r.name] = r
	}
	if r := by["web"]; r.rxFrames != 1000 || r.rxByte != 1_500_000 || r.txFrames != 500 || r.txByte != 50_000 {
		t.Errorf("web = %+v, want rx 1000 frames/s 1.5 MB/s, tx 500 frames/s 50 kB/s", r)
	}
	if r := by["cache"]; r.drops != 25 || r.dropBy["mac_limit"] != 20 || r.dropBy["storm"] != 5 {
		t.Errorf("cache = %+v, want 25 drops/s: mac_limit 20, storm 5", r)
	}
	if r := by["new"]; !r.fresh || r.rxFrames != 0 {
		t.Errorf("new = %+v, want fresh with no rate", r)
	}
}

func TestRenderTop(t *testing.T) {
	prev, cur := fixedSamples()
	lines := renderTop(rates(prev, cur), topView{drops: true}, cur.at, 100, 0, "")
	got := strings.Join(lines, "\n")
	t.Logf("\n%s", got)
	want := []string{
		"tapswitch top - 15:30:02 - 4 ports - sort: bytes",
		"rx 1.00k frames/s 1.50MB/s  tx 500 frames/s 50.0kB/s  drops 25/s",
		"PORT                     NETWORK       RX FR/s   RX B/s  TX FR/s   TX B/s  DROPS/s",
		"web                      default         1.00k    1.50M      500    50.0k        0",
		"  drops/s: mac_limit=20 storm=5.0",
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("renderTop() lacks %q", w)
		}
	}
	// Busiest first: web, then the idle ones by name.
	order := []string{"web", "cache", "db", "new"}
	last := -1
	for _, name := range order {
		i := strings.Index(got, "\n"+name+" ")
		if i < last {
			t.Errorf("port %s drawn out of order (bytes, then name)", name)
		}
		last = i
	}
}

func TestRenderTopNarrow(t *testing.T) {
	prev, cur := fixedSamples()
	for _, width := range []int{20, 40, 60, 80} {
		lines := renderTop(rates(prev, cur), topView{}, cur.at, width, 0, "")
		for _, l := range lines {
			if len(l) > width {
				t.Errorf("width %d: line %q is %d characters", width, l, len(l))
			}
		}
		table := strings.Join(lines, "\n")
		if width >= 40 && (!strings.Contains(table, "RX B/s") || !strings.Contains(table, "DROPS/s") || !strings.Contains(table, "\nweb ")) {
			t.Errorf("width %d: no name, byte rates or drops:\n%s", width, table)
		}
		if width < 70 && strings.Contains(table, "RX FR/s") {
			t.Errorf("width %d: frame rates drawn on a narrow terminal:\n%s", width, table)
		}
	}
}

func TestRenderTopShort(t *testing.T) {
	prev, cur := fixedSamples()
	lines := renderTop(rates(prev, cur), topView{}, cur.at, 100, 6, "")
	if len(lines) > 6 {
		t.Errorf("height 6: %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[len(lines)-1], "more ports") {
		t.Errorf("height 6: last line %q, want how many ports did not fit", lines[len(lines)-1])
	}
}

func TestSortByName(t *testing.T) {
	prev, cur := fixedSamples()
	rows := rates(prev, cur)
	sortRows(rows, topView{sort: 3})
	var names []string
	for _, r := range rows {
		names = append(names, r.name)
	}
	if got := strings.Join(names, " "); got != "cache db new web" {
		t.Errorf("sorted by name: %s", got)
	}
}

func TestSI(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{{0, "0"}, {0.5, "0.5"}, {950, "950"}, {1000, "1.00k"}, {12_345, "12.3k"}, {999_999, "1.00M"}, {4.5e9, "4.50G"}, {2e15, "2000T"}} {
		if got := si(tt.v); got != tt.want {
			t.Errorf("si(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestFormatEvent(t *testing.T) {
	ev := api.Event{Seq: 3, Time: time.Date(2026, 12, 6, 15, 30, 0, 0, time.UTC), Type: api.EventPortMACLimit,
		Port: "web", Network: "front", Netns: "a", Reason: "mac_limit", Counts: map[string]int64{"drops": 120, "limit": 8}}
	got := formatEvent(ev)
	for _, w := range []string{" port.mac_limit web (network=front, netns=a, drops=120, limit=8, reason=mac_limit)"} {
		if !strings.HasSuffix(got, w) {
			t.Errorf("formatEvent() = %q, want it to end %q", got, w)
		}
	}
}

func TestEventsQuery(t *testing.T) {
	now := time.Date(2026, 12, 6, 15, 30, 0, 0, time.UTC)
	q, err := eventsQuery("10m", "", []string{"type=port", "network=front", "type=network.create"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Since.Equal(now.Add(-10*time.Minute)) || strings.Join(q.Types, ",") != "port,network.create" || q.Networks[0] != "front" {
		t.Errorf("eventsQuery = %+v", q)
	}
	q, err = eventsQuery("", "2026-12-06T15:00:00Z", nil, now)
	if err != nil || q.Since.IsZero() {
		t.Errorf("a past --until without --since = %+v, %v; want a replay from the start", q, err)
	}
	for _, bad := range [][]string{{"type"}, {"colour=red"}, {"type="}} {
		if _, err := eventsQuery("", "", bad, now); err == nil {
			t.Errorf("--filter %q accepted", bad)
		}
	}
	if _, err := eventsQuery("yesterday", "", nil, now); err == nil {
		t.Error("--since yesterday accepted")
	}
}

// TestRenderTopKeys: the header lists the keys when drawing on a
// terminal only, not in the tables printed for scripts.
func TestRenderTopKeys(t *testing.T) {
	at := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)
	if h := renderTop(nil, topView{}, at, 100, 0, "")[0]; strings.Contains(h, "q quit") {
		t.Errorf("printed table's header %q lists the keys", h)
	}
	if h := renderTop(nil, topView{keys: true}, at, 100, 0, "")[0]; !strings.Contains(h, "q quit") {
		t.Errorf("drawn header %q lacks the keys", h)
	}
}
