//go:build cgo && !windows

package capture

import (
	"fmt"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// compileSnap is the snap length the program is compiled for; libpcap
// puts it in the program's accepting return, which Match only compares
// with 0.
const compileSnap = 262144

// compile runs libpcap's own compiler (pcap_compile on a dead handle),
// so a filter means here exactly what it means to tcpdump.
func compile(expr string) ([]bpf.RawInstruction, error) {
	ins, err := pcap.CompileBPFFilter(layers.LinkTypeEthernet, compileSnap, expr)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrFilter, expr, err)
	}
	raw := make([]bpf.RawInstruction, len(ins))
	for i, in := range ins {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return raw, nil
}
