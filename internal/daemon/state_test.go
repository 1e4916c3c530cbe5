package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/dns"
	"github.com/tapswitch/tapswitch/internal/ipam"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st, err := openState(dir)
	if err != nil {
		t.Fatal(err)
	}
	front := testNetwork(t, "10.20.0.0/24")
	web, err := front.subnet.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	back := testNetwork(t, "10.89.1.0/24")
	back.name, back.internal = "back", true
	d := &Daemon{
		log:   slog.New(slog.DiscardHandler),
		state: st,
		nets:  map[string]*network{"front": front, "back": back},
		ports: map[string]*port{
			"web": {kind: api.KindContainer, state: portState{
				Kind:       api.KindContainer,
				Request:    api.AttachRequest{Netns: "web", Network: "front", Name: "web", Publish: []string{"8080:80"}},
				Name:       "web",
				Network:    "front",
				MAC:        "02:00:00:00:00:01",
				Owned:      []string{web.String()},
				ResolvConf: "/etc/netns/web/resolv.conf",
			}},
			"api-back": {kind: api.KindContainer, state: portState{Name: "api-back", Network: "back", DNSName: "api"}},
			// Gateways are the networks': the file does not record them.
			"tsw-front": {kind: api.KindGateway, state: portState{Name: "tsw-front", Network: "front"}},
		},
	}
	d.saveLocked()

	got, err := st.load()
	if err != nil {
		t.Fatalf("load() = %v", err)
	}
	want := d.stateLocked()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("load() = %+v\nwant %+v", got, want)
	}
	if got.Version != stateVersion || len(got.Networks) != 2 || got.Networks[0].Name != "back" || !got.Networks[0].Internal {
		t.Fatalf("load() = %+v, want version %d and networks back (internal) and front, sorted", got, stateVersion)
	}
	// What a restarted daemon does with the saved subnet: the address is
	// still held, and the next one handed out is a new one.
	sub, err := ipam.RestoreSubnet(got.Networks[1].Subnet)
	if err != nil {
		t.Fatalf("RestoreSubnet(%+v) = %v", got.Networks[1].Subnet, err)
	}
	if err := sub.Reserve(web); !errors.Is(err, ipam.ErrInUse) {
		t.Fatalf("Reserve(%s) after restore = %v, want ErrInUse", web, err)
	}
	if next, _ := sub.Allocate(); next == web {
		t.Fatalf("Allocate() after restore = %s again", next)
	}
	if len(got.Ports) != 2 || got.Ports[0].Name != "api-back" || got.Ports[0].DNSName != "api" || got.Ports[1].Request.Publish[0] != "8080:80" {
		t.Fatalf("load() ports = %+v, want api-back (dns name api) and web (publishing 8080:80), sorted", got.Ports)
	}
	if fi, err := os.Stat(filepath.Join(dir, "state.json")); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("state.json: %v, mode %v; want it private", err, fi.Mode())
	}
}

func TestStateLoad(t *testing.T) {
	tests := []struct {
		name    string
		body    string // "" means no file
		wantErr string // "" for success
		wantNet []string
	}{
		{name: "no file"},
		{name: "version 1", body: `{"version":1,"ports":[{"name":"a","network":"default"}]}`},
		{name: "version 2", body: `{"version":2,"networks":[{"name":"front","subnet":{"prefix":"10.20.0.0/24","gateway":"10.20.0.1","allocated":[]}}],"ports":[]}`, wantNet: []string{"front"}},
		{name: "version 3", body: `{"version":3,"networks":[],"ports":[{"name":"a","network":"default","ifname":"eth0","ips":["10.0.0.2/24"],"pin":"/x/netns/a"}]}`},
		{name: "future version", body: `{"version":4}`, wantErr: "version 4"},
		{name: "no version", body: `{}`, wantErr: "version 0"},
		{name: "damaged", body: `{"version":2,`, wantErr: "move it away"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := openState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if tt.body != "" {
				if err := os.WriteFile(st.path, []byte(tt.body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			doc, err := st.load()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("load(%s) = %v, want an error containing %q", tt.body, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("load(%s) = %v", tt.body, err)
			}
			var names []string
			for _, n := range doc.Networks {
				names = append(names, n.Name)
			}
			if !reflect.DeepEqual(names, tt.wantNet) {
				t.Fatalf("load(%s) networks = %v, want %v", tt.body, names, tt.wantNet)
			}
		})
	}
}

func TestWrittenByUs(t *testing.T) {
	dir := t.TempDir()
	d := &Daemon{log: slog.New(slog.DiscardHandler), cfg: Config{StateDir: "/var/lib/tapswitch-a"}}
	other := &Daemon{log: slog.New(slog.DiscardHandler), cfg: Config{StateDir: "/var/lib/tapswitch-b"}}
	ours := filepath.Join(dir, "ours", "resolv.conf")
	if err := dns.WriteResolvConfAs(ours, d.resolvOwner(), netip.MustParseAddr("10.20.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	// A tapswitchd from before files named their owner wrote this one.
	legacy := filepath.Join(dir, "legacy", "resolv.conf")
	if err := dns.WriteResolvConf(legacy, netip.MustParseAddr("10.20.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	anothers := filepath.Join(dir, "another", "resolv.conf")
	if err := dns.WriteResolvConfAs(anothers, other.resolvOwner(), netip.MustParseAddr("10.20.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "theirs", "resolv.conf")
	if err := os.MkdirAll(filepath.Dir(theirs), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(theirs, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want bool
	}{
		{ours, true},
		{legacy, true},
		{anothers, false},
		{theirs, false},
		{filepath.Join(dir, "missing", "resolv.conf"), false},
	}
	for _, tt := range tests {
		if got := d.writtenByUs(tt.path); got != tt.want {
			t.Errorf("writtenByUs(%s) = %v, want %v", tt.path, got, tt.want)
		}
	}
	for _, path := range []string{theirs, anothers} {
		d.removeResolvConf(path)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("removeResolvConf removed %s, which this daemon did not write: %v", path, err)
		}
	}
	for _, path := range []string{ours, legacy} {
		d.removeResolvConf(path)
		if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("removeResolvConf(%s): directory still there (%v), want it gone with the file", path, err)
		}
	}
}

// TestStateLeftoverTemp starts from a state directory as a daemon killed
// in the middle of writing its state leaves it: the last good state.json
// and a temporary file, whole or torn. The last good state is what loads,
// and the temporary files go.
func TestStateLeftoverTemp(t *testing.T) {
	good := `{"version":3,"networks":[{"name":"front","subnet":{"prefix":"10.20.0.0/24","gateway":"10.20.0.1","allocated":[]}}],"ports":[]}`
	tests := []struct {
		name  string
		temps []string
	}{
		{"torn", []string{`{"version":3,"networks":[{"name":"fro`}},
		{"empty", []string{""}},
		{"whole", []string{`{"version":3,"networks":[],"ports":[]}`}},
		{"several", []string{`{"vers`, "", `{"version":3,"networks":[],"ports":[]}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(good), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, body := range tt.temps {
				f, err := os.CreateTemp(dir, tempPattern)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString(body)
				f.Close()
			}
			st, err := openState(dir)
			if err != nil {
				t.Fatalf("openState() = %v", err)
			}
			doc, err := st.load()
			if err != nil {
				t.Fatalf("load() = %v", err)
			}
			if len(doc.Networks) != 1 || doc.Networks[0].Name != "front" {
				t.Fatalf("load() = %+v, want the last good state (network front)", doc)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, tempPattern)); len(left) != 0 {
				t.Fatalf("temporary files after openState: %v, want none", left)
			}
		})
	}
}

// TestWriteAtomicLeavesNoTemp checks that a write leaves state.json
// whole and no temporary file, and that a failed write keeps the old
// state.
func TestWriteAtomicLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for i := range 3 {
		if err := writeAtomic(path, stateDoc{Version: stateVersion, Ports: []portState{{Name: fmt.Sprint("p", i)}}}); err != nil {
			t.Fatalf("writeAtomic() = %v", err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, tempPattern)); len(left) != 0 {
		t.Fatalf("temporary files after writeAtomic: %v, want none", left)
	}
	// Nothing JSON can encode: the write fails before touching the file.
	if err := writeAtomic(path, map[string]any{"x": func() {}}); err == nil {
		t.Fatal("writeAtomic(unencodable) = nil, want an error")
	}
	st := &stateFile{path: path}
	doc, err := st.load()
	if err != nil || len(doc.Ports) != 1 || doc.Ports[0].Name != "p2" {
		t.Fatalf("load() after a failed write = %+v, %v; want the last good state (port p2)", doc, err)
	}
}
