package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want Mapping
		// canon is String's rendering of want.
		canon string
	}{
		{name: "default tcp", spec: "8080:80", want: Mapping{Proto: "tcp", HostPort: 8080, TargetPort: 80}, canon: "8080:80/tcp"},
		{name: "explicit tcp", spec: "8080:80/tcp", want: Mapping{Proto: "tcp", HostPort: 8080, TargetPort: 80}, canon: "8080:80/tcp"},
		{name: "udp", spec: "5353:53/udp", want: Mapping{Proto: "udp", HostPort: 5353, TargetPort: 53}, canon: "5353:53/udp"},
		{name: "IPv4 host", spec: "127.0.0.1:8080:80", want: Mapping{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, TargetPort: 80}, canon: "127.0.0.1:8080:80/tcp"},
		{name: "IPv4 wildcard", spec: "0.0.0.0:53:53/udp", want: Mapping{Proto: "udp", HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 53, TargetPort: 53}, canon: "0.0.0.0:53:53/udp"},
		{name: "IPv6 host", spec: "[::1]:8080:80/tcp", want: Mapping{Proto: "tcp", HostIP: netip.MustParseAddr("::1"), HostPort: 8080, TargetPort: 80}, canon: "[::1]:8080:80/tcp"},
		{name: "IPv6 wildcard", spec: "[::]:443:8443", want: Mapping{Proto: "tcp", HostIP: netip.MustParseAddr("::"), HostPort: 443, TargetPort: 8443}, canon: "[::]:443:8443/tcp"},
		{name: "IPv6 with zone", spec: "[fe80::1%eth0]:8080:80/udp", want: Mapping{Proto: "udp", HostIP: netip.MustParseAddr("fe80::1%eth0"), HostPort: 8080, TargetPort: 80}, canon: "[fe80::1%eth0]:8080:80/udp"},
		{name: "IPv4-mapped IPv6", spec: "[::ffff:10.0.0.1]:80:80", want: Mapping{Proto: "tcp", HostIP: netip.MustParseAddr("::ffff:10.0.0.1"), HostPort: 80, TargetPort: 80}, canon: "[::ffff:10.0.0.1]:80:80/tcp"},
		{name: "port bounds", spec: "65535:1", want: Mapping{Proto: "tcp", HostPort: 65535, TargetPort: 1}, canon: "65535:1/tcp"},
		{name: "leading zero", spec: "08080:080", want: Mapping{Proto: "tcp", HostPort: 8080, TargetPort: 80}, canon: "8080:80/tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSpec(tt.spec)
			if err != nil || got != tt.want {
				t.Fatalf("ParseSpec(%q) = %+v, %v, want %+v, nil", tt.spec, got, err, tt.want)
			}
			if s := got.String(); s != tt.canon {
				t.Fatalf("ParseSpec(%q).String() = %q, want %q", tt.spec, s, tt.canon)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		name string
		spec string
		// text is a substring of the message, which always starts by
		// quoting the spec and ends with the syntax.
		text string
	}{
		{name: "one port", spec: "80"},
		{name: "empty", spec: ""},
		{name: "only protocol", spec: "/udp"},
		{name: "unknown protocol", spec: "8080:80/sctp", text: `protocol "sctp" is not supported`},
		{name: "empty protocol", spec: "8080:80/", text: `protocol "" is not supported`},
		{name: "protocol in capitals", spec: "8080:80/TCP", text: `protocol "TCP"`},
		{name: "two protocols", spec: "8080:80/tcp/udp", text: `container port "80/tcp"`},
		{name: "host port zero", spec: "0:80", text: `host port "0" is not a number from 1 to 65535`},
		{name: "container port zero", spec: "8080:0", text: `container port "0" is not a number from 1 to 65535`},
		{name: "host port too big", spec: "65536:80", text: `host port "65536"`},
		{name: "negative port", spec: "-1:80", text: `host port "-1" is not a number`},
		{name: "port not a number", spec: "http:80", text: `host port "http"`},
		{name: "space", spec: " 8080:80", text: `host port " 8080"`},
		{name: "port range", spec: "8080-8081:80-81", text: "port ranges are not supported"},
		{name: "empty host", spec: ":8080:80", text: "empty host address"},
		{name: "host name", spec: "localhost:8080:80", text: `host address "localhost" is not an IPv4 address`},
		{name: "IPv6 without brackets", spec: "::1:8080:80", text: "put an IPv6 host address in brackets"},
		{name: "too many parts", spec: "1.2.3.4:5:6:7"},
		{name: "missing bracket", spec: "[::1:8080:80", text: "missing ]"},
		{name: "IPv4 in brackets", spec: "[127.0.0.1]:8080:80", text: "not an IPv6 address"},
		{name: "no colon after bracket", spec: "[::1]8080:80"},
		{name: "bracket and host", spec: "[::1]:10.0.0.1:8080:80"},
		{name: "one port after bracket", spec: "[::1]:80"},
		{name: "multicast host", spec: "224.0.0.1:8080:80", text: "multicast"},
		{name: "zone with slash", spec: "[fe80::1%a/b]:1:2", text: "protocol"},
		{name: "zone too long", spec: "[fe80::1%abcdefghijklmnop]:1:2", text: "not an interface name"},
		{name: "zone not UTF-8", spec: "[::%\xc3]:1:1", text: "not an interface name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSpec(tt.spec)
			if err == nil {
				t.Fatalf("ParseSpec(%q) = %+v, nil, want an error", tt.spec, got)
			}
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("ParseSpec(%q) = %v, want an error wrapping ErrInvalidSpec", tt.spec, err)
			}
			msg := err.Error()
			prefix := fmt.Sprintf("publish %q: ", tt.spec)
			suffix := "want [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]"
			if !strings.HasPrefix(msg, prefix) || !strings.HasSuffix(msg, suffix) || !strings.Contains(msg, tt.text) {
				t.Fatalf("ParseSpec(%q) = %q, want %q...%q...%q", tt.spec, msg, prefix, tt.text, suffix)
			}
		})
	}

	const want = `publish "80": want [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`
	if _, err := ParseSpec("80"); err == nil || err.Error() != want {
		t.Fatalf("ParseSpec(%q) = %v, want %q", "80", err, want)
	}
}

func TestMappingJSON(t *testing.T) {
	tests := []struct {
		name string
		m    Mapping
		json string
	}{
		{name: "all addresses", m: Mapping{Proto: "tcp", HostPort: 8080, TargetPort: 80}, json: `{"proto":"tcp","host_port":8080,"target_port":80}`},
		{name: "IPv4", m: Mapping{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 53, TargetPort: 5353}, json: `{"proto":"udp","host_ip":"127.0.0.1","host_port":53,"target_port":5353}`},
		{name: "IPv6", m: Mapping{Proto: "tcp", HostIP: netip.MustParseAddr("::1"), HostPort: 1, TargetPort: 65535}, json: `{"proto":"tcp","host_ip":"::1","host_port":1,"target_port":65535}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.m)
			if err != nil || string(b) != tt.json {
				t.Fatalf("json.Marshal(%v) = %s, %v, want %s", tt.m, b, err, tt.json)
			}
			var got Mapping
			if err := json.Unmarshal(b, &got); err != nil || got != tt.m {
				t.Fatalf("json.Unmarshal(%s) = %+v, %v, want %+v", b, got, err, tt.m)
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"80", "8080:80", "8080:80/udp", "127.0.0.1:8080:80", "[::1]:8080:80/tcp",
		"[fe80::1%eth0]:1:2", "[::ffff:1.2.3.4]:5:6/udp", "0:80", "8080-8081:80",
		"::1:8080:80", "[::1]8080:80", "1.2.3.4:5:6:7", "65535:65535/tcp/udp",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseSpec(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("ParseSpec(%q) = %v, want an error wrapping ErrInvalidSpec", s, err)
			}
			return
		}
		if m.HostPort == 0 || m.TargetPort == 0 || (m.Proto != "tcp" && m.Proto != "udp") {
			t.Fatalf("ParseSpec(%q) = %+v, want ports 1-65535 and tcp or udp", s, m)
		}
		canon := m.String()
		again, err := ParseSpec(canon)
		if err != nil || again != m {
			t.Fatalf("ParseSpec(%q) = %+v, %v, want %+v (from ParseSpec(%q))", canon, again, err, m, s)
		}
		if s2 := again.String(); s2 != canon {
			t.Fatalf("ParseSpec(%q).String() = %q, want %q", canon, s2, canon)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("json.Marshal(%+v) = %v", m, err)
		}
		var fromJSON Mapping
		if err := json.Unmarshal(b, &fromJSON); err != nil || fromJSON != m {
			t.Fatalf("json.Unmarshal(%s) = %+v, %v, want %+v", b, fromJSON, err, m)
		}
	})
}
