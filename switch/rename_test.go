package vswitch

import (
	"errors"
	"testing"
)

func TestRenamePort(t *testing.T) {
	r := newRig(t, "a", "b")
	if err := r.sw.RenamePort(r.ports["a"], "b"); !errors.Is(err, ErrPortExists) {
		t.Errorf("RenamePort(a, b) = %v, want ErrPortExists", err)
	}
	if err := r.sw.RenamePort(r.ports["a"], "web"); err != nil {
		t.Fatalf("RenamePort(a, web) = %v", err)
	}
	if got := r.ports["a"].Name(); got != "web" {
		t.Errorf("Name() after the rename = %q, want web", got)
	}
	if p, err := r.sw.Port("web"); err != nil || p != r.ports["a"] {
		t.Errorf("Port(web) = %v, %v; want the renamed port", p, err)
	}
	if _, err := r.sw.Port("a"); !errors.Is(err, ErrNoPort) {
		t.Errorf("Port(a) after the rename = %v, want ErrNoPort", err)
	}
	if err := r.sw.RenamePort(r.ports["a"], "web"); err != nil {
		t.Errorf("RenamePort to its own name = %v, want nil", err)
	}
	// A new port may take the old name; the renamed one is removed by
	// its new.
	r.add(t, "n", "a")
	if err := r.sw.RemovePort(r.ports["b"]); err != nil {
		t.Fatal(err)
	}
	if err := r.sw.RenamePort(r.ports["b"], "x"); !errors.Is(err, ErrNoPort) {
		t.Errorf("RenamePort of a removed port = %v, want ErrNoPort", err)
	}
}

func TestRenameNetwork(t *testing.T) {
	r := newRig(t, "a")
	if _, err := r.sw.CreateNetwork("other"); err != nil {
		t.Fatal(err)
	}
	if err := r.sw.RenameNetwork("n", "other"); !errors.Is(err, ErrNetworkExists) {
		t.Errorf("RenameNetwork(n, other) = %v, want ErrNetworkExists", err)
	}
	if err := r.sw.RenameNetwork("none", "x"); !errors.Is(err, ErrNoNetwork) {
		t.Errorf("RenameNetwork(none, x) = %v, want ErrNoNetwork", err)
	}
	if err := r.sw.RenameNetwork("n", "front"); err != nil {
		t.Fatal(err)
	}
	if n, err := r.sw.Network("front"); err != nil || n != r.net || r.ports["a"].Network().Name() != "front" {
		t.Errorf("Network(front) = %v, %v; port a's network %q", n, err, r.ports["a"].Network().Name())
	}
	// The port still forwards to the renamed network's other ports.
	r.add(t, "front", "b")
	if err := r.sw.RemoveNetwork("front"); !errors.Is(err, ErrNetworkInUse) {
		t.Errorf("RemoveNetwork(front) with ports = %v, want ErrNetworkInUse", err)
	}
}
