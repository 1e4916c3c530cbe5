package capture

import (
	"errors"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// needCompiler skips t in a build without libpcap's compiler.
func needCompiler(t testing.TB) {
	t.Helper()
	if _, err := Compile("icmp"); errors.Is(err, ErrNoCompiler) {
		t.Skip(err)
	}
}

func TestFilter(t *testing.T) {
	needCompiler(t)
	icmp := ping(t, macA, macB, ipA, ipB, false, 1)
	_, tcp := tcpSuper(t, 100, 1448)
	tests := []struct {
		expr      string
		icmp, tcp bool
	}{
		{"icmp", true, false},
		{"tcp port 5201", false, true},
		{"tcp port 80", false, false},
		{"host 10.180.0.3", true, true},
		{"src host 10.180.0.3", false, false},
		{"tcp[tcpflags] & tcp-push != 0", false, true},
		{"ether dst " + macB.String(), true, true},
		{"not ip", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			f, err := Compile(tt.expr)
			if err != nil {
				t.Fatalf("Compile() = %v", err)
			}
			if got := f.Match(icmp); got != tt.icmp {
				t.Errorf("Match(ICMP echo) = %v, want %v", got, tt.icmp)
			}
			if got := f.Match(tcp); got != tt.tcp {
				t.Errorf("Match(TCP to 5201) = %v, want %v", got, tt.tcp)
			}
		})
	}
}

func TestFilterRefused(t *testing.T) {
	needCompiler(t)
	for _, expr := range []string{"", "  ", "tcp prot 80", "host", "icmp\x00", strings.Repeat("icmp or ", 200) + "icmp", "port 99999"} {
		f, err := Compile(expr)
		if err == nil || !errors.Is(err, ErrFilter) {
			t.Errorf("Compile(%.20q) = %v, %v; want an ErrFilter", expr, f, err)
		}
	}
	_, err := Compile("tcp prot 80")
	if !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("Compile(tcp prot 80) = %v, want libpcap's syntax error", err)
	}
}

// A filter runs on the forwarding path: it must allocate nothing.
func TestFilterAllocatesNothing(t *testing.T) {
	needCompiler(t)
	f, err := Compile("tcp port 5201 and host 10.180.0.3")
	if err != nil {
		t.Fatal(err)
	}
	_, frame := tcpSuper(t, 1000, 1448)
	if n := testing.AllocsPerRun(100, func() { f.Match(frame) }); n != 0 {
		t.Fatalf("Match allocates %v times per frame, want 0", n)
	}
}

// FuzzCompile gives the compiler any expression: it refuses it with an
// ErrFilter, or yields a program that runs on any frame.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"icmp", "tcp port 80", "tcp[13] & 2 != 0", "ether host 02:00:00:00:00:01", "(", "ip6 and udp", "len > 100", "vlan and arp"} {
		f.Add(s, []byte{})
	}
	frame := ping(f, macA, layers.EthernetBroadcast, ipA, ipB, false, 1)
	f.Add("icmp", frame)
	f.Fuzz(func(t *testing.T, expr string, pkt []byte) {
		flt, err := Compile(expr)
		if err != nil {
			if !errors.Is(err, ErrFilter) {
				t.Fatalf("Compile(%q) = %v, not an ErrFilter", expr, err)
			}
			return
		}
		flt.Match(pkt)
		flt.Match(frame)
	})
}

func BenchmarkFilterMatch(b *testing.B) {
	needCompiler(b)
	f, err := Compile("tcp port 5201")
	if err != nil {
		b.Fatal(err)
	}
	_, frame := tcpSuper(b, 1400, 1448)
	b.ReportAllocs()
	for b.Loop() {
		f.Match(frame)
	}
}
