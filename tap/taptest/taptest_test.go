package taptest

import (
	"errors"
	"testing"

	"github.com/tapswitch/tapswitch/tap"
)

// The in-memory Maker answers as tap.Kernel does: names unique per
// namespace, persistent devices that stay after Release and come back
// with Open, and the errors tap documents.
func TestMakerLikeTheKernel(t *testing.T) {
	var m Maker
	cfg := tap.Config{Name: "eth0", Persist: true, Alias: "mine"}
	d, err := m.Create(cfg)
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	if _, err := m.Create(cfg); !errors.Is(err, tap.ErrExists) {
		t.Fatalf("second Create() = %v, want ErrExists", err)
	}
	if _, err := m.Open(cfg); !errors.Is(err, tap.ErrInUse) {
		t.Fatalf("Open() of a held TAP = %v, want ErrInUse", err)
	}
	mac := d.MAC().String()
	if err := d.Release(); err != nil {
		t.Fatalf("Release() = %v", err)
	}
	if err := d.Release(); err == nil {
		t.Fatal("second Release() = nil, want an error")
	}
	d, err = m.Open(cfg)
	if err != nil || d.MAC().String() != mac {
		t.Fatalf("Open() after Release = %v (MAC %v), want the same device (MAC %s)", err, d, mac)
	}
	if err := d.Close(); err != nil || m.Exists("", "eth0") {
		t.Fatalf("Close() = %v, exists %v; want the device gone", err, m.Exists("", "eth0"))
	}
	if _, err := m.Open(cfg); !errors.Is(err, tap.ErrNotFound) {
		t.Fatalf("Open() after Close = %v, want ErrNotFound", err)
	}
	// A stale persistent TAP of the same maker is replaced; another's
	// is not.
	d, _ = m.Create(cfg)
	d.Release()
	if _, err := m.Create(cfg); err != nil {
		t.Fatalf("Create() over a stale TAP of ours = %v", err)
	}
	other := tap.Config{Name: "eth1", Persist: true, Alias: "theirs"}
	d, _ = m.Create(other)
	d.Release()
	if _, err := m.Create(tap.Config{Name: "eth1", Alias: "mine"}); !errors.Is(err, tap.ErrExists) {
		t.Fatalf("Create() over another's TAP = %v, want ErrExists", err)
	}
	// A device not persistent goes with Release.
	d, _ = m.Create(tap.Config{Name: "eth2"})
	d.Release()
	if m.Exists("", "eth2") {
		t.Fatal("a TAP that is not persistent outlived Release")
	}
	// Remove breaks an open device's reads.
	d, _ = m.Create(tap.Config{Name: "eth3"})
	m.Remove("", "eth3")
	bufs, sizes := [][]byte{make([]byte, 128)}, []int{0}
	if _, err := d.Queues()[0].Read(bufs, sizes, 64); !errors.Is(err, ErrRemoved) {
		t.Fatalf("Read() after Remove = %v, want ErrRemoved", err)
	}
}
