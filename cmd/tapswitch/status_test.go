package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/api"
)

func TestWriteClusterStatus(t *testing.T) {
	s := api.Status{Cluster: &api.ClusterStatus{
		Host: "h1", Advertise: "10.0.0.1", Hosts: 3,
		Endpoints: []string{"http://10.0.0.10:2379", "http://10.0.0.11:2379", "http://10.0.0.12:2379"},
		Connected: true, Since: time.Now().Add(-time.Minute),
		Avoided: []string{"http://10.0.0.11:2379"},
	}}
	var b bytes.Buffer
	writeClusterStatus(&b, s)
	out := b.String()
	for _, want := range []string{
		"cluster host:\th1 (10.0.0.1), 3 host(s)\n",
		"cluster store:\thttp://10.0.0.10:2379,http://10.0.0.11:2379,http://10.0.0.12:2379, connected since ",
		"store members avoided:\thttp://10.0.0.11:2379 (not answering as healthy; calls go to the others)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("writeClusterStatus:\n%s\nlacks %q", out, want)
		}
	}

	// Every member answering: no such line.
	s.Cluster.Avoided = nil
	b.Reset()
	writeClusterStatus(&b, s)
	if strings.Contains(b.String(), "avoided") {
		t.Errorf("writeClusterStatus with no member avoided:\n%s", b.String())
	}
}
