package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// bridgeSystem is the baseline: a kernel bridge with a veth pair to each
// namespace, the way docker0 connects containers.
type bridgeSystem struct {
	prefix string // of every host link name, unique to this run
	bridge string
	// links are the host ends of the veth pairs, deleted at teardown in
	// case a namespace delete fails and leaves its peer behind.
	links   []string
	created bool
}

func newBridgeSystem(pid int) *bridgeSystem {
	// Interface names are at most 15 bytes; a pid is at most 7 digits.
	return newBridge(fmt.Sprintf("tsb%d", pid))
}

// newBridge names the bridge and its veth host ends after prefix, which
// must leave room for a suffix of a few bytes within the 15 allowed.
func newBridge(prefix string) *bridgeSystem {
	return &bridgeSystem{prefix: prefix, bridge: prefix + "br"}
}

func (s *bridgeSystem) name() string { return "bridge" }

// switchPID is 0: the kernel forwards in softirq context, mostly that of
// the sending process, so the bridge's cost shows in the softirq column
// and in the sender's.
func (s *bridgeSystem) switchPID() int { return 0 }

func (s *bridgeSystem) setup(ctx context.Context, tb *testbed) error {
	if err := s.create(ctx); err != nil {
		return err
	}
	for _, end := range []struct{ ns, cidr, suffix string }{
		{tb.nsA, addrA, "a"},
		{tb.nsB, addrB, "b"},
	} {
		if err := s.addEnd(ctx, end.ns, end.cidr, end.suffix); err != nil {
			return err
		}
	}
	return nil
}

// create makes the bridge and brings it up.
func (s *bridgeSystem) create(ctx context.Context) error {
	if _, err := run(ctx, "ip", "link", "add", s.bridge, "type", "bridge"); err != nil {
		return err
	}
	s.created = true
	_, err := run(ctx, "ip", "link", "set", s.bridge, "up")
	return err
}

// addEnd connects ns to the bridge with a veth pair whose host end is the
// prefix followed by suffix, and gives the namespace end, eth0, cidr.
func (s *bridgeSystem) addEnd(ctx context.Context, ns, cidr, suffix string) error {
	host := s.prefix + suffix
	// The peer is born inside the namespace under its final name, so
	// no rename can clash with a host interface called eth0.
	if _, err := run(ctx, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns); err != nil {
		return err
	}
	s.links = append(s.links, host)
	if _, err := run(ctx, "ip", "link", "set", host, "master", s.bridge, "up"); err != nil {
		return err
	}
	return configure(ctx, ns, "eth0", cidr)
}

func (s *bridgeSystem) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, l := range s.links {
		if linkExists(ctx, l) {
			if _, err := run(ctx, "ip", "link", "delete", l); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.links = nil
	if s.created {
		if _, err := run(ctx, "ip", "link", "delete", s.bridge); err != nil {
			errs = append(errs, err)
		}
		s.created = false
	}
	return errors.Join(errs...)
}

// linkExists reports whether the host namespace has a link called name.
func linkExists(ctx context.Context, name string) bool {
	_, err := run(ctx, "ip", "link", "show", "dev", name)
	return err == nil
}
