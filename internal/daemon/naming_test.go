package daemon

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

func TestGatewayName(t *testing.T) {
	form := regexp.MustCompile(`^tsw-[0-9a-f]{8}$`)
	tests := []struct {
		name           string
		dirA, netA     string
		dirB, netB     string
		wantSameAsEach bool
	}{
		{"same daemon, same network", "/var/lib/tapswitch", "front", "/var/lib/tapswitch", "front", true},
		{"path spelled differently", "/var/lib/tapswitch/", "front", "/var/lib//tapswitch", "front", true},
		{"other network", "/var/lib/tapswitch", "front", "/var/lib/tapswitch", "back", false},
		{"other state dir", "/var/lib/tapswitch", "front", "/tmp/tsw1/state", "front", false},
		// Without a separator "/a"+"bc" and "/ab"+"c" would collide.
		{"no shifting between dir and name", "/a", "bc", "/ab", "c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := GatewayName(tt.dirA, tt.netA), GatewayName(tt.dirB, tt.netB)
			for _, g := range []string{a, b} {
				if !form.MatchString(g) || len(g) > 15 {
					t.Fatalf("GatewayName = %q, want tsw- and 8 hex digits, at most 15 bytes", g)
				}
			}
			if (a == b) != tt.wantSameAsEach {
				t.Fatalf("GatewayName(%q, %q) = %q and GatewayName(%q, %q) = %q; want equal: %v", tt.dirA, tt.netA, a, tt.dirB, tt.netB, b, tt.wantSameAsEach)
			}
		})
	}
}

func TestTableName(t *testing.T) {
	tests := []struct {
		dir  string
		want string // a regexp
	}{
		{DefaultStateDir, `^tapswitch$`},
		{DefaultStateDir + "/", `^tapswitch$`},
		{"/tmp/tsw123/state", `^tapswitch-[0-9a-f]{8}$`},
		{"", `^tapswitch-[0-9a-f]{8}$`},
	}
	for _, tt := range tests {
		if got := TableName(tt.dir); !regexp.MustCompile(tt.want).MatchString(got) {
			t.Errorf("TableName(%q) = %q, want it to match %s", tt.dir, got, tt.want)
		}
	}
	// The table and the gateways of one daemon carry the same id.
	dir := "/tmp/tsw123/state"
	if id := strings.TrimPrefix(TableName(dir), "tapswitch-"); id != stateID(dir) {
		t.Errorf("TableName(%q) = tapswitch-%s, want tapswitch-%s", dir, id, stateID(dir))
	}
}

func TestCheckNetworkName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"front", true},
		{"default", true},
		{"a", true},
		{"net_1", true},
		{"Front-2", true},
		{strings.Repeat("n", 63), true},
		{strings.Repeat("n", 64), false},
		{"", false},
		{"-front", false},
		{"front-", false},
		{"my.net", false},
		{"sp ace", false},
		{`quo"te`, false},
	}
	for _, tt := range tests {
		err := checkNetworkName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("checkNetworkName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, api.ErrInvalid) {
			t.Errorf("checkNetworkName(%q) = %v, want an ErrInvalid", tt.name, err)
		}
	}
}

func TestConnectName(t *testing.T) {
	tests := []struct {
		port, network, want string
		ok                  bool
	}{
		{"api", "back", "api-back", true},
		{"pid-42", "default", "pid-42-default", true},
		{strings.Repeat("p", 40), strings.Repeat("n", 30), "", false},
	}
	for _, tt := range tests {
		got, err := connectName(tt.port, tt.network)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("connectName(%q, %q) = %q, %v; want %q, ok=%v", tt.port, tt.network, got, err, tt.want, tt.ok)
		}
		if err != nil && (!errors.Is(err, api.ErrInvalid) || api.ReasonOf(err) != api.ReasonPortNameRequired) {
			t.Errorf("connectName(%q, %q) = %v, want an ErrInvalid with reason %s", tt.port, tt.network, err, api.ReasonPortNameRequired)
		}
	}
}
