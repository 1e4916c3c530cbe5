// Package taptest makes in-memory TAPs for tests of code that makes TAPs
// (the daemon's attach, connect and restore), without root: a Maker that
// behaves like tap.Kernel as far as its callers can tell — names unique
// per namespace, persistent devices that outlive Release and come back
// with Open, the errors tap documents — and lets a test make any call
// fail.
package taptest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/device/devicetest"
	"github.com/tapswitch/tapswitch/tap"
)

// Caps are what an in-memory TAP takes: what a real one takes on a kernel
// with USO.
var Caps = device.Caps{GSO: device.GSOSetTCP | device.GSOSetUDPL4 | device.GSOSetUDP, Csum: true}

// Maker is an in-memory tap.Maker. The zero value is ready to use.
type Maker struct {
	// FailCreate and FailOpen, if set, are asked before each Create and
	// Open; an error they return is returned, and nothing is made.
	FailCreate func(cfg tap.Config) error
	FailOpen   func(cfg tap.Config) error

	mu      sync.Mutex
	links   map[key]*link
	nextMAC byte
}

var _ tap.Maker = (*Maker)(nil)

// key names an interface: its namespace, by identity (one namespace
// reached through two paths, a pin and /proc/PID/ns/net, is one), and its
// name.
type key struct{ netns, name string }

// keyOf is the key of interface name in the namespace at netns; "" is the
// caller's own namespace, as for tap.Config.Netns.
func keyOf(netns, name string) (key, error) {
	if netns == "" {
		return key{"", name}, nil
	}
	fi, err := os.Stat(netns)
	if err != nil {
		return key{}, fmt.Errorf("network namespace %s: %w", netns, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return key{netns, name}, nil
	}
	return key{fmt.Sprintf("ns:%d:%d", st.Dev, st.Ino), name}, nil
}

// link is an interface as the kernel would hold it.
type link struct {
	mac     net.HardwareAddr
	persist bool
	alias   string
	cfg     tap.Config
	// open is the device holding its queues, or nil.
	open *Device
}

// Device is an in-memory TAP: a devicetest.Device with a name and a MAC.
type Device struct {
	*devicetest.Device
	m      *Maker
	k      key
	mac    net.HardwareAddr
	closed bool
}

var _ tap.Device = (*Device)(nil)

// Name implements tap.Device.
func (d *Device) Name() string { return d.k.name }

// MAC implements tap.Device.
func (d *Device) MAC() net.HardwareAddr { return d.mac }

// Close implements tap.Device: the device is gone, persistent or not.
func (d *Device) Close() error { return d.end(true) }

// Release implements tap.Device: a persistent device stays for Open.
func (d *Device) Release() error { return d.end(false) }

func (d *Device) end(remove bool) error {
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if d.closed {
		return fmt.Errorf("TAP %s: %w", d.k.name, errClosed)
	}
	d.closed = true
	d.Device.Close()
	if l := m.links[d.k]; l != nil && l.open == d {
		l.open = nil
		if remove || !l.persist {
			delete(m.links, d.k)
		}
	}
	return nil
}

var errClosed = errors.New("already closed")

// Create implements tap.Maker.
func (m *Maker) Create(cfg tap.Config) (tap.Device, error) {
	if cfg.Name == "" || len(cfg.Name) > 15 {
		return nil, fmt.Errorf("interface name %q: must be 1 to 15 characters", cfg.Name)
	}
	if m.FailCreate != nil {
		if err := m.FailCreate(cfg); err != nil {
			return nil, err
		}
	}
	k, err := keyOf(cfg.Netns, cfg.Name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.links == nil {
		m.links = make(map[key]*link)
	}
	if l, ok := m.links[k]; ok {
		// A stale persistent TAP of the same maker is replaced, as
		// tap.Create does.
		if !(l.persist && l.open == nil && cfg.Alias != "" && l.alias == cfg.Alias) {
			return nil, fmt.Errorf("%s: %w in the namespace", cfg.Name, tap.ErrExists)
		}
	}
	mac := cfg.MAC
	if mac == nil {
		m.nextMAC++
		mac = net.HardwareAddr{0x02, 0x7a, 0x70, 0, 0, m.nextMAC}
	}
	l := &link{mac: mac, persist: cfg.Persist, alias: cfg.Alias, cfg: cfg}
	m.links[k] = l
	return m.openLocked(k, l, cfg.Queues), nil
}

// Open implements tap.Maker.
func (m *Maker) Open(cfg tap.Config) (tap.Device, error) {
	if m.FailOpen != nil {
		if err := m.FailOpen(cfg); err != nil {
			return nil, err
		}
	}
	k, err := keyOf(cfg.Netns, cfg.Name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.links[k]
	switch {
	case !ok:
		return nil, fmt.Errorf("%s: %w in the namespace", cfg.Name, tap.ErrNotFound)
	case !l.persist:
		return nil, fmt.Errorf("%s: %w: the TAP is not persistent", cfg.Name, tap.ErrNotFound)
	case l.open != nil:
		return nil, fmt.Errorf("%s: %w", cfg.Name, tap.ErrInUse)
	}
	// A real TAP's queues take their mode when they attach.
	l.cfg.NAPI = cfg.NAPI
	return m.openLocked(k, l, cfg.Queues), nil
}

func (m *Maker) openLocked(k key, l *link, queues int) *Device {
	d := &Device{Device: devicetest.New(devicetest.Config{Queues: max(queues, 1), Caps: Caps}), m: m, k: k, mac: l.mac}
	l.open = d
	return d
}

// Device returns the open device name in netns, or nil.
func (m *Maker) Device(netns, name string) *Device {
	k, _ := keyOf(netns, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.links[k]; l != nil {
		return l.open
	}
	return nil
}

// Exists reports whether an interface name is in netns, open or left
// persistent.
func (m *Maker) Exists(netns, name string) bool {
	k, _ := keyOf(netns, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.links[k]
	return ok
}

// Config returns the configuration the interface name in netns was
// created with (its addresses, MTU, persistence), with the NAPI of the
// last Open since, and whether it exists.
func (m *Maker) Config(netns, name string) (tap.Config, bool) {
	k, _ := keyOf(netns, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.links[k]
	if !ok {
		return tap.Config{}, false
	}
	return l.cfg, true
}

// ErrRemoved is what an open device's reads and writes return once
// Remove took its interface away.
var ErrRemoved = errors.New("taptest: interface removed")

// Remove deletes an interface as `ip link del` would: an open device's
// reads and writes fail with ErrRemoved from then on.
func (m *Maker) Remove(netns, name string) {
	k, _ := keyOf(netns, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.links[k]; l != nil {
		if l.open != nil {
			l.open.Device.Break(ErrRemoved)
		}
		delete(m.links, k)
	}
}

// Links returns how many interfaces exist, open or persistent.
func (m *Maker) Links() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.links)
}
