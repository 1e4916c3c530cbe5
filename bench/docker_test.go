package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

func TestParseInspect(t *testing.T) {
	c, err := parseInspect("dbx-1-bridge-a", "4242 10.151.1.2 02:42:0A:97:01:02\n")
	if err != nil {
		t.Fatal(err)
	}
	want := container{name: "dbx-1-bridge-a", pid: 4242, ip: "10.151.1.2", mac: "02:42:0a:97:01:02"}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if got := strings.Join(c.enter(), " "); got != "nsenter --net=/proc/4242/ns/net" {
		t.Errorf("enter: %q", got)
	}
	for _, bad := range []string{
		"",
		"0 10.151.1.2 02:42:0a:97:01:02", // not running
		"4242",                           // on no network
		"4242 10.151.1.2 02:42:0a:97:01:02 10.1.1.1 02:42:0a:01:01:01", // on two
		"4242  02:42:0a:97:01:02",                                      // no address
		"4242 10.151.1.2 nomac",
	} {
		if _, err := parseInspect("x", bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestMountsUnder(t *testing.T) {
	info := `22 1 8:1 / / rw - ext4 /dev/vda rw
100 22 0:50 / /tmp/dbx-1/data/overlay2/abc/merged rw - overlay overlay rw
101 22 0:4 net:[4026532] /tmp/dbx-1/exec/netns/1a2b rw - nsfs nsfs rw
102 22 0:51 / /tmp/dbx-10/data rw - tmpfs tmpfs rw
103 22 0:52 / /tmp/dbx-1/with\040space rw - tmpfs tmpfs rw
104 22 0:53 / /tmp/dbx-1 rw - tmpfs tmpfs rw
`
	got := mountsUnder([]byte(info), "/tmp/dbx-1/")
	want := []string{"/tmp/dbx-1", "/tmp/dbx-1/with space", "/tmp/dbx-1/exec/netns/1a2b", "/tmp/dbx-1/data/overlay2/abc/merged"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestBusyboxTar(t *testing.T) {
	data, err := busyboxTar([]byte("ELF..."), []string{"sleep", "", "cat", "sleep", "busybox", "../x", "ls\n"})
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	links := map[string]string{}
	var files []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			links[h.Name] = h.Linkname
		case tar.TypeReg:
			body, _ := io.ReadAll(tr)
			if string(body) != "ELF..." || h.Mode&0o111 == 0 {
				t.Errorf("%s: %q mode %o", h.Name, body, h.Mode)
			}
			files = append(files, h.Name)
		}
	}
	if !slices.Equal(files, []string{"bin/busybox"}) {
		t.Errorf("files %q", files)
	}
	want := map[string]string{"bin/sleep": "busybox", "bin/cat": "busybox", "bin/ls": "busybox"}
	if len(links) != len(want) {
		t.Errorf("links %v, want %v", links, want)
	}
	for k, v := range want {
		if links[k] != v {
			t.Errorf("links %v, want %v", links, want)
		}
	}
}

func TestParsePortCounters(t *testing.T) {
	list := `[{"name":"dbx-a","mac":"02:AA:00:00:00:01","stats":{"rx_frames":7,"tx_frames":9}}]`
	wrapped := `{"ports":[{"name":"dbx-a","mac":"02:aa:00:00:00:01","stats":{"rx_frames":7,"tx_frames":9}}]}`
	for _, in := range []string{list, wrapped} {
		got, err := parsePortCounters([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if c := got["02:aa:00:00:00:01"]; c.RxFrames != 7 || c.TxFrames != 9 {
			t.Errorf("%s: %+v", in, got)
		}
	}
	if _, err := parsePortCounters([]byte("tapswitchd is not running")); err == nil {
		t.Error("no error for text")
	}
}

func TestCountersMoved(t *testing.T) {
	a := container{name: "a", mac: "02:00:00:00:00:0a"}
	b := container{name: "b", mac: "02:00:00:00:00:0b"}
	before := map[string]api.PortCounters{a.mac: {RxFrames: 10, TxFrames: 10}, b.mac: {RxFrames: 3, TxFrames: 3}}
	moved := map[string]api.PortCounters{a.mac: {RxFrames: 15, TxFrames: 16}, b.mac: {RxFrames: 9, TxFrames: 8}}
	if err := countersMoved(before, moved, []container{a, b}, 5); err != nil {
		t.Errorf("moved: %v", err)
	}
	oneWay := map[string]api.PortCounters{a.mac: {RxFrames: 15, TxFrames: 16}, b.mac: {RxFrames: 3, TxFrames: 8}}
	if err := countersMoved(before, oneWay, []container{a, b}, 5); err == nil || !strings.Contains(err.Error(), "b's tapswitch port") {
		t.Errorf("one way: %v", err)
	}
	gone := map[string]api.PortCounters{a.mac: {RxFrames: 15, TxFrames: 16}}
	if err := countersMoved(before, gone, []container{a, b}, 5); err == nil || !strings.Contains(err.Error(), "not on tapswitch") {
		t.Errorf("no port: %v", err)
	}
}

func TestDockerRunOrder(t *testing.T) {
	for _, c := range []struct {
		systems []string
		rounds  int
		bracket bool
		want    []string
	}{
		{dockerSystems, 2, false, []string{"bridge", "tapswitch", "bridge", "tapswitch"}},
		{dockerSystems, 1, true, []string{"bridge", "tapswitch", "bridge"}},
		{[]string{"bridge"}, 2, true, []string{"bridge", "bridge"}},
	} {
		if got := dockerRunOrder(c.systems, c.rounds, c.bracket); !slices.Equal(got, c.want) {
			t.Errorf("%v %d %v: got %v, want %v", c.systems, c.rounds, c.bracket, got, c.want)
		}
	}
}

func TestDockerFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-docker", "-t", "3"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.docker || cfg.rounds != 3 || !strings.Contains(cfg.jsonPath, "docker-") {
		t.Errorf("%+v", cfg)
	}
	cfg, err = parseFlags([]string{"-docker", "-only", "bridge", "-rounds", "1"})
	if err != nil || !slices.Equal(cfg.only, []string{"bridge"}) || cfg.rounds != 1 {
		t.Errorf("-only bridge: %+v %v", cfg, err)
	}
	for _, args := range [][]string{
		{"-docker", "-scale"},
		{"-docker", "-demo"},
		{"-docker", "-profile"},
		{"-docker", "-only", "ovs"},
		{"-docker", "-rounds", "0"},
		{"-docker", "-base-tapswitchd", "a", "-base-tapswitch", "b"},
		{"-rounds", "3"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestCleanupsRunLastFirst(t *testing.T) {
	var order []int
	var cl cleanups
	for i := range 3 {
		cl.add(func() error {
			order = append(order, i)
			if i == 1 {
				return errors.New("one failed")
			}
			return nil
		})
	}
	err := cl.run()
	if !slices.Equal(order, []int{2, 1, 0}) {
		t.Errorf("order %v", order)
	}
	if err == nil || !strings.Contains(err.Error(), "one failed") {
		t.Errorf("err %v", err)
	}
	if len(cl) != 0 || cl.run() != nil {
		t.Error("cleanups ran twice")
	}
}

func TestCgroupMounts(t *testing.T) {
	info := `22 1 8:1 / / rw - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
31 22 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
32 22 0:28 / /sys/fs/cgroup-not rw - tmpfs cgroup rw
`
	got := cgroupMounts([]byte(info))
	if want := []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
