package daemon

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/namespace"
)

func TestValidate(t *testing.T) {
	self := fmt.Sprintf("pid:%d", os.Getpid())
	d := &Daemon{}
	tests := []struct {
		name    string
		req     api.AttachRequest
		wantErr error  // class, nil for success
		errText string // substring of the message
	}{
		{name: "minimal", req: api.AttachRequest{Netns: self}},
		{name: "v4 and v6", req: api.AttachRequest{Netns: self, IPs: []string{"10.0.0.1/24", "fd00::1/64"}, MAC: "02:00:00:00:00:01", MTU: 9000}},
		{name: "no prefix length", req: api.AttachRequest{Netns: self, IPs: []string{"10.0.0.1"}}, wantErr: api.ErrInvalid, errText: "ADDR/LEN"},
		{name: "same address twice", req: api.AttachRequest{Netns: self, IPs: []string{"10.0.0.1/24", "10.0.0.1/16"}}, wantErr: api.ErrInvalid, errText: "given twice"},
		{name: "multicast address", req: api.AttachRequest{Netns: self, IPs: []string{"224.0.0.1/4"}}, wantErr: api.ErrInvalid, errText: "in 224.0.0.0/4"},
		{name: "multicast MAC", req: api.AttachRequest{Netns: self, MAC: "01:00:5e:00:00:01"}, wantErr: api.ErrInvalid, errText: "unicast"},
		{name: "bad MAC", req: api.AttachRequest{Netns: self, MAC: "zz"}, wantErr: api.ErrInvalid, errText: "six bytes"},
		{name: "MTU too small", req: api.AttachRequest{Netns: self, MTU: 10}, wantErr: api.ErrInvalid, errText: "MTU"},
		{name: "MTU too big", req: api.AttachRequest{Netns: self, MTU: 70000}, wantErr: api.ErrInvalid, errText: "MTU"},
		{name: "ifname too long", req: api.AttachRequest{Netns: self, Ifname: "abcdefghijklmnop"}, wantErr: api.ErrInvalid, errText: "interface name"},
		{name: "ifname with slash", req: api.AttachRequest{Netns: self, Ifname: "a/b"}, wantErr: api.ErrInvalid, errText: "interface name"},
		{name: "bad port name", req: api.AttachRequest{Netns: self, Name: "-x"}, wantErr: api.ErrInvalid, errText: "port name"},
		{name: "port name with a dot", req: api.AttachRequest{Netns: self, Name: "web.front"}, wantErr: api.ErrInvalid, errText: "DNS name"},
		{name: "port name ending in a hyphen", req: api.AttachRequest{Netns: self, Name: "web-"}, wantErr: api.ErrInvalid, errText: "port name"},
		{name: "port name too long", req: api.AttachRequest{Netns: self, Name: strings.Repeat("a", 64)}, wantErr: api.ErrInvalid, errText: "port name"},
		{name: "port name of 63", req: api.AttachRequest{Netns: self, Name: strings.Repeat("a", 63)}},
		{name: "port name with underscore", req: api.AttachRequest{Netns: self, Name: "web_1"}},
		{name: "publish", req: api.AttachRequest{Netns: self, Publish: []string{"8080:80", "127.0.0.1:5353:53/udp", "[::1]:8443:443/tcp"}}},
		{name: "publish bad spec", req: api.AttachRequest{Netns: self, Publish: []string{"8080"}}, wantErr: api.ErrInvalid, errText: "HOSTPORT:CONTAINERPORT"},
		{name: "publish twice", req: api.AttachRequest{Netns: self, Publish: []string{"8080:80", "8080:81"}}, wantErr: api.ErrInvalid, errText: "published twice"},
		{name: "publish tcp and udp", req: api.AttachRequest{Netns: self, Publish: []string{"8080:80", "8080:80/udp"}}},
		{name: "publish twice, one on every address", req: api.AttachRequest{Netns: self, Publish: []string{"127.0.0.1:8080:80", "8080:81"}}, wantErr: api.ErrInvalid, errText: "published twice"},
		{name: "link-local address", req: api.AttachRequest{Netns: self, IPs: []string{"169.254.0.9/16"}}, wantErr: api.ErrInvalid, errText: "in 169.254.0.0/16"},
		{name: "reserved address", req: api.AttachRequest{Netns: self, IPs: []string{"240.1.2.3/24"}}, wantErr: api.ErrInvalid, errText: "in 240.0.0.0/4"},
		{name: "IPv6 link-local address", req: api.AttachRequest{Netns: self, IPs: []string{"fe80::9/64"}}, wantErr: api.ErrInvalid, errText: "in fe80::/10"},
		{name: "ifname pattern", req: api.AttachRequest{Netns: self, Ifname: "eth%d"}, wantErr: api.ErrInvalid, errText: "interface name"},
		{name: "missing netns", req: api.AttachRequest{Netns: "no-such-netns-here"}, wantErr: api.ErrNotFound, errText: "not found"},
		{name: "not a netns", req: api.AttachRequest{Netns: "/etc/hostname"}, wantErr: api.ErrInvalid, errText: "not a namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := d.validate(tt.req)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("validate(%+v) = %v, want success", tt.req, err)
				}
				if s.ifname != "eth0" || s.network != api.DefaultNetwork || s.netnsPath == "" {
					t.Fatalf("validate(%+v) = %+v, want defaults eth0, %s and a resolved path", tt.req, s, api.DefaultNetwork)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("validate(%+v) = %v, want %v containing %q", tt.req, err, tt.wantErr, tt.errText)
			}
		})
	}
}

// TestValidateWraps checks that the daemon's errors keep the cause they
// got, under their class.
func TestValidateWraps(t *testing.T) {
	tests := []struct {
		req   api.AttachRequest
		class error
		cause error
	}{
		{api.AttachRequest{Netns: "no-such-netns-here"}, api.ErrNotFound, namespace.ErrNotFound},
		{api.AttachRequest{Netns: "/etc/hostname"}, api.ErrInvalid, namespace.ErrNotNetns},
	}
	for _, tt := range tests {
		if _, err := (&Daemon{}).validate(tt.req); !errors.Is(err, tt.class) || !errors.Is(err, tt.cause) {
			t.Errorf("validate(%+v) = %v, want it to wrap %v and %v", tt.req, err, tt.class, tt.cause)
		}
	}
}

// TestValidateNoName checks that a namespace no port name can be made
// from is refused with the reason that asks for a name.
func TestValidateNoName(t *testing.T) {
	req := api.AttachRequest{Netns: "/run/netns/é"}
	_, err := (&Daemon{}).validate(req)
	if !errors.Is(err, api.ErrInvalid) || api.ReasonOf(err) != api.ReasonPortNameRequired || !strings.Contains(err.Error(), `"/run/netns/é"`) {
		t.Fatalf("validate(%+v) = %v, want an ErrInvalid naming the netns, with reason %s", req, err, api.ReasonPortNameRequired)
	}
}

func TestDefaultName(t *testing.T) {
	for in, want := range map[string]string{
		"web":              "web",
		"pid:42":           "pid-42",
		"/proc/42/ns/net":  "pid-42",
		"/run/netns/db":    "db",
		"/var/run/netns/x": "x",
		"my.ns":            "my-ns",
		"-odd.":            "odd",
		"é":                "",
	} {
		if got := defaultName(in); got != want {
			t.Errorf("defaultName(%q) = %q, want %q", in, got, want)
		}
	}
}
