package metrics

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

// BenchmarkScrape is one scrape of a daemon of 1,000 ports on 10
// networks, through the handler, gzip off as Prometheus asks for it
// only when configured to: what a scrape costs the daemon, which runs
// off the data path.
func BenchmarkScrape(b *testing.B) {
	s := twoPorts()
	s.Ports = s.Ports[:0]
	for i := range 1000 {
		s.Ports = append(s.Ports, Port{Name: fmt.Sprintf("port%d", i), Network: fmt.Sprintf("net%d", i%10), Kind: api.KindContainer,
			MACLimit: 1024, Stats: api.PortCounters{RxFrames: 1e9, RxBytes: 1e12, TxFrames: 1e9, TxBytes: 1e12, Drops: map[string]uint64{"storm": 5}}})
	}
	m := New("v1", nil)
	m.SetSource(&fakeSource{s: s})
	h := m.Handler()
	var size int
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		size = w.Body.Len()
		io.Discard.Write(w.Body.Bytes())
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}
