package e2e

import (
	"testing"
	"time"
)

// TestIperf3 moves more than 1 GiB over TCP between two namespaces. The
// rate is logged, not asserted: speed is for benchmarks.
func TestIperf3(t *testing.T) {
	e := newEnv(t, "iperf3", "ss")
	nsA, nsB := e.newNetns("a"), e.newNetns("b")
	const ipA, ipB = "10.77.3.1/24", "10.77.3.2/24"
	e.attach(nsA, "--ip", ipA)
	portB := e.attach(nsB, "--ip", ipB)

	srv := e.startIperfServer(nsB, addr(ipB))

	// The server takes its byte count when the client says it is done,
	// before the last few MiB in flight are read: iperf3 reports
	// sum_received a little short of sum_sent even over loopback. Sending
	// 1100 MiB leaves ample room for that and still checks that 1 GiB
	// arrived.
	const (
		send = 1100 << 20
		want = 1 << 30
	)
	res := e.iperf(nsA, srv, "-n", "1100M")
	got := res.End.SumReceived
	if sent := res.End.SumSent.Bytes; sent < send {
		t.Errorf("iperf3 -c %s -n 1100M from %s: sent %d bytes, want >= %d", addr(ipB), nsA, sent, send)
	}
	if got.Bytes < want {
		t.Errorf("iperf3 -c %s -n 1100M from %s: received %d bytes, want >= %d", addr(ipB), nsA, got.Bytes, want)
	}
	t.Logf("iperf3 %s -> %s: %d bytes in %.2fs, %.2f Gbit/s", nsA, nsB, got.Bytes, got.Seconds, got.BitsPerSecond/1e9)

	// The switch's own count of what it wrote to the receiver's TAP, which
	// may be published a moment late.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := findPort(e.ports(), portB)
		if p == nil {
			t.Fatalf("tapswitch ports: no port %q", portB)
		}
		if p.Stats.TxBytes >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("tapswitch ports: port %s tx_bytes %d after iperf3, want >= %d", portB, p.Stats.TxBytes, want)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

}
