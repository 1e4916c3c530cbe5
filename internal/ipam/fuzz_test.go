package ipam

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

// FuzzRestoreSubnet feeds arbitrary JSON, as a damaged state file might
// hold, to RestoreSubnet. It must never panic, must refuse with
// ErrInvalidState, and what it accepts must survive another save and
// restore unchanged.
func FuzzRestoreSubnet(f *testing.F) {
	f.Add([]byte(`{"prefix":"10.20.0.0/24","gateway":"10.20.0.1","allocated":["10.20.0.2","10.20.0.100"],"next":"10.20.0.3"}`))
	f.Add([]byte(`{"prefix":"10.20.0.0/31","gateway":"10.20.0.1","allocated":["10.20.0.0"]}`))
	f.Add([]byte(`{"prefix":"fd00::/64","gateway":"fd00::1","allocated":["fd00::2","fd00::ffff:ffff:ffff:ffff"],"next":"fd00::3"}`))
	f.Add([]byte(`{"prefix":"fd00::/120","gateway":"fd00::ff","allocated":[],"next":"fd00::ff"}`))
	f.Add([]byte(`{"prefix":"fd00::/127","gateway":"fd00::","allocated":["fd00::1"]}`))
	f.Add([]byte(`{"prefix":"10.20.0.0/24","gateway":"10.20.0.1","allocated":["10.20.0.2","10.20.0.2"]}`))
	f.Add([]byte(`{"prefix":"10.20.0.5/24","gateway":"10.20.0.255","allocated":["10.20.0.0"]}`))
	f.Add([]byte(`{"prefix":"::ffff:10.0.0.0/120","gateway":"fe80::1%eth0","next":"x"}`))
	f.Add([]byte(`{"prefix":"0.0.0.0/0","gateway":"0.0.0.1"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, data []byte) {
		var st SubnetState
		if json.Unmarshal(data, &st) != nil {
			return
		}
		s, err := RestoreSubnet(st)
		if err != nil {
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("RestoreSubnet(%+v) = %v, want it to wrap %v", st, err, ErrInvalidState)
			}
			return
		}
		got := s.Allocated()
		if len(got) != len(st.Allocated) {
			t.Fatalf("RestoreSubnet(%+v).Allocated() = %v, want the %d addresses saved", st, got, len(st.Allocated))
		}
		for _, str := range st.Allocated {
			if _, ok := slices.BinarySearchFunc(got, netip.MustParseAddr(str), netip.Addr.Compare); !ok {
				t.Fatalf("RestoreSubnet(%+v).Allocated() = %v, want it to hold %s", st, got, str)
			}
		}

		saved := s.State()
		r, err := RestoreSubnet(saved)
		if err != nil {
			t.Fatalf("RestoreSubnet(%+v), restoring a saved state, error: %v", saved, err)
		}
		if again := r.State(); !reflect.DeepEqual(again, saved) {
			t.Fatalf("RestoreSubnet(%+v).State() = %+v, want it unchanged", saved, again)
		}
		if r.Free() != s.Free() {
			t.Fatalf("Free() after restore = %d, want %d", r.Free(), s.Free())
		}
		a1, err1 := s.Allocate()
		a2, err2 := r.Allocate()
		if a1 != a2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("Allocate() after restore = %v, %v, want %v, %v", a2, err2, a1, err1)
		}
		if err1 == nil && (a1 == s.Gateway() || slices.Contains(got, a1) || s.checkHost(a1) != nil) {
			t.Fatalf("Allocate() = %v, which is the gateway, taken, or not a host address of %v", a1, s.Prefix())
		}
	})
}

// fuzzPrefixes are the subnets FuzzSubnetOps runs on: small enough to
// model every address, and covering each layout of reserved addresses.
var fuzzPrefixes = []netip.Prefix{
	pfx("10.0.0.0/31"),
	pfx("10.0.0.0/30"),
	pfx("10.0.0.0/29"),
	pfx("10.0.0.16/28"),
	pfx("10.0.1.0/24"),
	pfx("fd00::/127"),
	pfx("fd00::/126"),
	pfx("fd00::8/125"),
	pfx("fd00::100/120"),
}

// FuzzSubnetOps runs a byte string as a program of Allocate, Reserve and
// Release calls against a model that lists every address of the subnet.
// The subnet must agree with the model after every call: no address held
// twice, the gateway, network and broadcast addresses never handed out,
// and Allocate choosing the lowest free address at or after the cursor.
//
// Program: byte 0 picks the prefix, byte 1 the gateway among the host
// addresses; then each pair of bytes is an operation and its argument.
// Arguments of 240 and above name an address outside the subnet. Calls
// past the first 300 are ignored.
func FuzzSubnetOps(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 2, 1, 0, 0})
	f.Add([]byte{2, 2, 0, 0, 0, 0, 1, 7, 1, 0, 1, 3, 2, 2, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{4, 0, 1, 255, 1, 0, 1, 1, 1, 250, 0, 0, 2, 2, 0, 0})
	f.Add([]byte{7, 5, 0, 0, 0, 0, 0, 0, 2, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{3, 14, 1, 1, 1, 2, 1, 3, 0, 0, 0, 0, 2, 2, 0, 0, 1, 15, 1, 16, 2, 14})

	f.Fuzz(func(t *testing.T, prog []byte) { runSubnetOps(t, prog) })
}

// runSubnetOps is the body of FuzzSubnetOps.
func runSubnetOps(t testing.TB, prog []byte) {
	if len(prog) < 2 {
		return
	}
	// Enough calls to fill a /24 and wrap around it; longer programs
	// only slow the fuzzer down.
	const maxOps = 300
	prog = prog[:min(len(prog), 2+2*maxOps)]
	prefix := fuzzPrefixes[int(prog[0])%len(fuzzPrefixes)]

	// every lists the whole prefix; hosts the addresses a port may have.
	var every []netip.Addr
	for a := prefix.Addr(); a.IsValid() && prefix.Contains(a); a = a.Next() {
		every = append(every, a)
	}
	hosts := every
	if len(every) > 2 {
		hosts = every[1:]
		if prefix.Addr().Is4() {
			hosts = every[1 : len(every)-1]
		}
	}
	gw := hosts[int(prog[1])%len(hosts)]
	s, err := NewSubnet(prefix, gw)
	if err != nil {
		t.Fatalf("NewSubnet(%v, %v) error: %v", prefix, gw, err)
	}
	held := make(map[netip.Addr]bool)
	cursor := 0 // index into hosts where Allocate starts

	pick := func(arg byte) netip.Addr {
		if arg >= 240 {
			return lastAddr(prefix).Next()
		}
		return every[int(arg)%len(every)]
	}

	for pc := 2; pc+1 < len(prog); pc += 2 {
		switch op, arg := prog[pc]%3, prog[pc+1]; op {
		case 0:
			got, err := s.Allocate()
			want := -1
			for i := range hosts {
				j := (cursor + i) % len(hosts)
				if hosts[j] != gw && !held[hosts[j]] {
					want = j
					break
				}
			}
			if want < 0 {
				if !errors.Is(err, ErrFull) {
					t.Fatalf("Allocate() = %v, %v, want %v", got, err, ErrFull)
				}
				break
			}
			if err != nil || got != hosts[want] {
				t.Fatalf("Allocate() = %v, %v, want %v", got, err, hosts[want])
			}
			held[got] = true
			cursor = (want + 1) % len(hosts)
		case 1:
			a := pick(arg)
			err := s.Reserve(a)
			var want error
			switch {
			case !prefix.Contains(a):
				want = ErrOutOfRange
			case a == gw || !slices.Contains(hosts, a):
				want = ErrReserved
			case held[a]:
				want = ErrInUse
			}
			if !errors.Is(err, want) || (want == nil) != (err == nil) {
				t.Fatalf("Reserve(%v) = %v, want %v", a, err, want)
			}
			if err == nil {
				held[a] = true
			}
		case 2:
			a := pick(arg)
			s.Release(a)
			delete(held, a)
		}

		if got, want := s.Free(), uint64(len(hosts)-1-len(held)); got != want {
			t.Fatalf("Free() = %d, want %d", got, want)
		}
	}

	// Every call's result was checked against the model, so comparing the
	// whole set once at the end suffices.
	var want []netip.Addr
	for _, a := range hosts {
		if held[a] {
			want = append(want, a)
		}
	}
	if got := s.Allocated(); !slices.Equal(got, want) {
		t.Fatalf("Allocated() = %v, want %v", got, want)
	}

	r, err := RestoreSubnet(s.State())
	if err != nil {
		t.Fatalf("RestoreSubnet(%+v) error: %v", s.State(), err)
	}
	if got, want := r.State(), s.State(); !reflect.DeepEqual(got, want) {
		t.Fatalf("RestoreSubnet(State()).State() = %+v, want %+v", got, want)
	}
}
