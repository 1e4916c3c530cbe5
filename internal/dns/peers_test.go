package dns

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"

	mdns "github.com/miekg/dns"
)

// TestPeers: a server answers an asker the names of the other networks
// Config.Peers says it is on, as NAME and NAME.NETWORK, its own names
// first; an asker on no other network gets none of them.
func TestPeers(t *testing.T) {
	up := startUpstream(t, false)
	back, err := NewRecords("back")
	if err != nil {
		t.Fatal(err)
	}
	set := func(r *Records, name string, addrs ...string) {
		var as []netip.Addr
		for _, a := range addrs {
			as = append(as, netip.MustParseAddr(a))
		}
		if err := r.Set(name, nil, as); err != nil {
			t.Fatalf("Set(%q) = %v", name, err)
		}
	}
	set(back, "db", "10.141.1.2", "fd41:0:0:1::2")
	// A name of both networks: the asker's own network answers it.
	set(back, "web", "10.141.1.3")
	var onBack atomic.Bool
	var asked atomic.Value
	s := startServer(t, Config{
		Records:   frontRecords(t),
		Subnets:   []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")},
		Upstreams: []netip.AddrPort{up.addr},
		Peers: func(a netip.Addr) []*Records {
			asked.Store(a)
			if onBack.Load() {
				return []*Records{back}
			}
			return nil
		},
	})
	tests := []struct {
		name      string
		onBack    bool
		qname     string
		qtype     uint16
		rcode     int
		want      []string
		forwarded bool
	}{
		{name: "peer short name A", onBack: true, qname: "db.", qtype: mdns.TypeA, want: []string{"10.141.1.2"}},
		{name: "peer short name AAAA", onBack: true, qname: "db.", qtype: mdns.TypeAAAA, want: []string{"fd41:0:0:1::2"}},
		{name: "peer NAME.NETWORK", onBack: true, qname: "DB.Back.", qtype: mdns.TypeA, want: []string{"10.141.1.2"}},
		{name: "peer PTR", onBack: true, qname: reverseName(t, "10.141.1.2"), qtype: mdns.TypePTR, want: []string{"db.back."}},
		{name: "own name first", onBack: true, qname: "web.", qtype: mdns.TypeA, want: []string{"10.20.0.2"}},
		{name: "peer's copy by its domain", onBack: true, qname: "web.back.", qtype: mdns.TypeA, want: []string{"10.141.1.3"}},
		{name: "unknown in peer domain", onBack: true, qname: "nope.back.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "unknown short name", onBack: true, qname: "nope.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "not on back: short name", qname: "db.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "not on back: NAME.NETWORK is not local", qname: "db.back.", qtype: mdns.TypeA, forwarded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			onBack.Store(tt.onBack)
			before := up.queries()
			r := query(t, "udp", s.Addr(), tt.qname, tt.qtype)
			qt := mdns.TypeToString[tt.qtype]
			if fwd := up.queries() > before; fwd != tt.forwarded {
				t.Fatalf("query %s %s forwarded = %v, want %v", qt, tt.qname, fwd, tt.forwarded)
			}
			if tt.forwarded {
				for _, v := range answerValues(r) {
					if v == "10.141.1.2" {
						t.Fatalf("query %s %s from an asker not on back = %v: back's address", qt, tt.qname, answerValues(r))
					}
				}
				return
			}
			if r.Rcode != tt.rcode {
				t.Fatalf("query %s %s rcode = %s, want %s", qt, tt.qname, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
			}
			if got := answerValues(r); !slices.Equal(got, tt.want) {
				t.Fatalf("query %s %s = %v, want %v", qt, tt.qname, got, tt.want)
			}
			if a, _ := asked.Load().(netip.Addr); a != netip.MustParseAddr("127.0.0.1") {
				t.Fatalf("Peers asked about %v, want the asker 127.0.0.1", a)
			}
		})
	}
}
