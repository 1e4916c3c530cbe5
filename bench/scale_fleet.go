package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fleet is the set of namespaces the scale suite spreads its ports over.
// They are made and removed with one `ip -batch` each: a hundred separate
// `ip netns add` runs cost seconds of process start-up that measure
// nothing.
type fleet struct {
	names []string
	// created are the namespaces that exist and are ours to delete.
	created []string
}

func newFleet(pid, n int) *fleet {
	f := &fleet{}
	for i := range n {
		f.names = append(f.names, fmt.Sprintf("tsb-%d-s%03d", pid, i))
	}
	return f
}

func netnsPath(name string) string { return filepath.Join("/run/netns", name) }

func (f *fleet) create(ctx context.Context) error {
	var batch strings.Builder
	for _, ns := range f.names {
		if _, err := os.Stat(netnsPath(ns)); err == nil {
			return fmt.Errorf("netns %q already exists: left over from an earlier run? remove it with: ip netns delete %s", ns, ns)
		}
		fmt.Fprintf(&batch, "netns add %s\n", ns)
	}
	_, err := runInput(ctx, batch.String(), "ip", "-batch", "-")
	// A batch stops at its first failure with the earlier namespaces in
	// place, so what to delete is what exists, whatever ip said.
	for _, ns := range f.names {
		if _, serr := os.Stat(netnsPath(ns)); serr == nil {
			f.created = append(f.created, ns)
		}
	}
	if err != nil {
		return err
	}
	// Containers have lo up; a namespace with lo down is not what a
	// switch attaches to in practice.
	for _, ns := range f.names {
		if err := loopbackUp(netnsPath(ns)); err != nil {
			return fmt.Errorf("netns %s: set lo up: %w", ns, err)
		}
	}
	return nil
}

// destroy deletes every namespace create made; whatever links are still
// inside go with them. -force carries on past a failed line, so one
// stuck namespace does not keep the rest.
func (f *fleet) destroy() error {
	if len(f.created) == 0 {
		return nil
	}
	var batch strings.Builder
	for _, ns := range f.created {
		fmt.Fprintf(&batch, "netns delete %s\n", ns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := runInput(ctx, batch.String(), "ip", "-force", "-batch", "-")
	var left []string
	for _, ns := range f.created {
		if _, serr := os.Stat(netnsPath(ns)); serr == nil {
			left = append(left, ns)
		}
	}
	f.created = left
	if len(left) > 0 {
		return fmt.Errorf("%d namespaces left behind (%v); remove them with: ip netns delete NAME", len(left), err)
	}
	return nil
}

// scalePrefix is the /16 every namespace of the suite takes its address
// from: one broadcast domain, as on a container host's default network.
var scalePrefix = netip.MustParsePrefix("10.91.0.0/16")

// scaleAddr is namespace i's address in CIDR form. Addresses run on
// across /24 boundaries, skipping .0 and .255 of each /24, which some
// stacks treat as special even inside a larger prefix.
func scaleAddr(i int) string {
	base := scalePrefix.Addr().As4()
	base[2] = byte(i / 254)
	base[3] = byte(i%254 + 1)
	return netip.PrefixFrom(netip.AddrFrom4(base), scalePrefix.Bits()).String()
}
