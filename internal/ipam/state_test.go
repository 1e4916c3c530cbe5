package ipam

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestStateJSON(t *testing.T) {
	s := newSubnet(t, "10.20.0.0/24", "")
	for range 2 {
		if _, err := s.Allocate(); err != nil {
			t.Fatalf("Allocate() error: %v", err)
		}
	}
	if err := s.Reserve(addr("10.20.0.100")); err != nil {
		t.Fatalf("Reserve() error: %v", err)
	}
	got, err := json.Marshal(s.State())
	if err != nil {
		t.Fatalf("json.Marshal(State()) error: %v", err)
	}
	want := `{"prefix":"10.20.0.0/24","gateway":"10.20.0.1","allocated":["10.20.0.2","10.20.0.3","10.20.0.100"],"next":"10.20.0.4"}`
	if string(got) != want {
		t.Fatalf("json.Marshal(State()) = %s, want %s", got, want)
	}
}

func TestStateRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		gateway string
		ops     func(*Subnet)
	}{
		{"empty v4", "10.20.0.0/24", "", func(*Subnet) {}},
		{"v4 after wrap", "10.20.0.0/29", "10.20.0.6", func(s *Subnet) {
			allocateAll(s, 5)
			s.Release(addr("10.20.0.2"))
			s.Release(addr("10.20.0.4"))
			s.Allocate() // .2, wrapped; the next is .4
		}},
		{"v4 /31", "10.20.0.0/31", "", func(s *Subnet) { s.Allocate() }},
		{"v6 /64 static and automatic", "fd00:1::/64", "", func(s *Subnet) {
			s.Reserve(addr("fd00:1::beef"))
			allocateAll(s, 3)
		}},
		{"v6 /48", "fd00:1::/48", "fd00:1::ffff", func(s *Subnet) { allocateAll(s, 2) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSubnet(t, tt.prefix, tt.gateway)
			tt.ops(s)
			st := s.State()
			b, err := json.Marshal(st)
			if err != nil {
				t.Fatalf("json.Marshal(State()) error: %v", err)
			}
			var loaded SubnetState
			if err := json.Unmarshal(b, &loaded); err != nil {
				t.Fatalf("json.Unmarshal(%s) error: %v", b, err)
			}
			r, err := RestoreSubnet(loaded)
			if err != nil {
				t.Fatalf("RestoreSubnet(%+v) error: %v", loaded, err)
			}
			if got := r.State(); !reflect.DeepEqual(got, st) {
				t.Fatalf("RestoreSubnet(%+v).State() = %+v, want %+v", loaded, got, st)
			}
			if r.Free() != s.Free() {
				t.Fatalf("Free() after restore = %d, want %d", r.Free(), s.Free())
			}
			// The restored subnet continues where the saved one would have.
			want, wantErr := s.Allocate()
			got, err := r.Allocate()
			if got != want || (err == nil) != (wantErr == nil) {
				t.Fatalf("Allocate() after restore = %v, %v, want %v, %v", got, err, want, wantErr)
			}
		})
	}
}

func TestRestoreSubnetWithoutNext(t *testing.T) {
	r, err := RestoreSubnet(SubnetState{Prefix: "10.20.0.0/24", Gateway: "10.20.0.1", Allocated: []string{"10.20.0.3"}})
	if err != nil {
		t.Fatalf("RestoreSubnet() error: %v", err)
	}
	if got, err := r.Allocate(); err != nil || got != addr("10.20.0.2") {
		t.Fatalf("Allocate() = %v, %v, want 10.20.0.2", got, err)
	}
}

func TestRestoreSubnetErrors(t *testing.T) {
	valid := SubnetState{Prefix: "10.20.0.0/24", Gateway: "10.20.0.1", Allocated: []string{"10.20.0.2"}, Next: "10.20.0.3"}
	tests := []struct {
		name    string
		edit    func(*SubnetState)
		wantErr error // besides ErrInvalidState
		wantMsg string
	}{
		{"empty prefix", func(st *SubnetState) { st.Prefix = "" }, nil, `subnet ""`},
		{"bad prefix", func(st *SubnetState) { st.Prefix = "10.20.0.0/33" }, nil, "ParsePrefix"},
		{"prefix not a network address", func(st *SubnetState) { st.Prefix = "10.20.0.9/24" }, ErrInvalidSubnet, "did you mean 10.20.0.0/24?"},
		{"prefix too small", func(st *SubnetState) { st.Prefix = "10.20.0.1/32" }, ErrInvalidSubnet, "too few"},
		{"no gateway", func(st *SubnetState) { st.Gateway = "" }, nil, "no gateway recorded"},
		{"bad gateway", func(st *SubnetState) { st.Gateway = "10.20.0.256" }, nil, "gateway: ParseAddr"},
		{"gateway outside", func(st *SubnetState) { st.Gateway = "10.21.0.1" }, ErrInvalidGateway, "not in 10.20.0.0/24"},
		{"bad allocated address", func(st *SubnetState) { st.Allocated = []string{"10.20.0.x"} }, nil, "allocated address: ParseAddr"},
		{"allocated twice", func(st *SubnetState) { st.Allocated = []string{"10.20.0.2", "10.20.0.2"} }, ErrInUse, "allocated address 10.20.0.2"},
		{"allocated gateway", func(st *SubnetState) { st.Allocated = []string{"10.20.0.1"} }, ErrReserved, "is the gateway"},
		{"allocated broadcast", func(st *SubnetState) { st.Allocated = []string{"10.20.0.255"} }, ErrReserved, "is the broadcast address"},
		{"allocated outside", func(st *SubnetState) { st.Allocated = []string{"10.21.0.2"} }, ErrOutOfRange, "not in"},
		{"bad next", func(st *SubnetState) { st.Next = "next" }, nil, "next address: ParseAddr"},
		{"next is the network address", func(st *SubnetState) { st.Next = "10.20.0.0" }, nil, "next address 10.20.0.0 is not a host address of 10.20.0.0/24"},
		{"next outside", func(st *SubnetState) { st.Next = "10.21.0.3" }, nil, "is not a host address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := valid
			st.Allocated = append([]string(nil), valid.Allocated...)
			tt.edit(&st)
			s, err := RestoreSubnet(st)
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("RestoreSubnet(%+v) = %v, %v, want error %v", st, s, err, ErrInvalidState)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("RestoreSubnet(%+v) = %v, want it to wrap %v", st, err, tt.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantMsg) || !strings.HasSuffix(msg, "; correct or remove this network in the state file") {
				t.Fatalf("RestoreSubnet(%+v) error = %q, want it to contain %q and say how to fix the state file", st, msg, tt.wantMsg)
			}
		})
	}
}
