package tap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/namespace"
)

// offloadsBase is what the switch asks of every TAP: it never needs a
// checksum or a segment computed in userspace, because frames go from
// one TAP to another unchanged. USO is asked for too and dropped on
// kernels before 6.2, which refuse unknown flags.
const (
	offloadsBase = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	offloadsUSO  = offloadsBase | unix.TUN_F_USO4 | unix.TUN_F_USO6
)

type tapDevice struct {
	queues []device.Queue
	fds    []*rawFD
	// nl is a netlink socket in the device's namespace, kept to delete
	// the link on Close.
	nl    *netlink.Handle
	index int
	name  string
	mac   net.HardwareAddr
	caps  device.Caps
	// movable: see Config.Movable.
	movable bool
}

var _ Device = (*tapDevice)(nil)

func (d *tapDevice) Queues() []device.Queue { return d.queues }
func (d *tapDevice) Name() string           { return d.name }
func (d *tapDevice) MAC() net.HardwareAddr  { return d.mac }
func (d *tapDevice) Caps() device.Caps      { return d.caps }

// Close deletes the link, then closes the queues. Deleting the link
// unregisters the device once, where closing queue after queue waits for
// a grace period per queue (measured: 14 ms against 20 to 30 ms for two
// queues). The kernel takes the device out of its namespace within about
// a millisecond and only then waits for the grace period before the
// delete returns; Close returns as soon as the device is gone from the
// namespace and leaves the rest of the teardown to a goroutine, so a
// detach takes what the user sees, not what the kernel's bookkeeping
// takes. The device's descriptors are no longer used by then.
func (d *tapDevice) Close() error {
	for _, f := range d.fds {
		if !f.shutdown() {
			return os.ErrClosed
		}
	}
	if d.movable {
		// A TAP with no queue left and not persistent is removed by
		// the kernel, in whatever namespace it is now.
		err := unix.IoctlSetInt(d.fds[0].fd, unix.TUNSETPERSIST, 0)
		if d.nl != nil {
			d.nl.Close()
		}
		if err != nil {
			err = fmt.Errorf("TAP %s: clear persistence: %w", d.name, err)
		}
		return errors.Join(err, d.closeFDs())
	}
	if d.nl == nil {
		return d.closeFDs()
	}
	polled := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		err := d.nl.LinkDel(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: d.index}})
		if err != nil && !errors.Is(err, unix.ENODEV) {
			err = fmt.Errorf("delete TAP %s: %w", d.name, err)
		} else {
			err = nil
		}
		d.nl.Close()
		// The poll below reads a queue's descriptor: close none before
		// it is over.
		<-polled
		done <- errors.Join(err, d.closeFDs())
	}()
	gone := waitDetached(d.fds[0].fd, time.Second)
	close(polled)
	if gone {
		return nil
	}
	return <-done
}

func (d *tapDevice) closeFDs() error {
	var errs []error
	for _, f := range d.fds {
		if err := f.closeFDs(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// waitDetached polls until the queue fd is no longer attached to a
// device (TUNGETIFF fails once the kernel has taken the device out of
// its namespace), up to limit.
func waitDetached(fd int, limit time.Duration) bool {
	var ifr [unix.IFNAMSIZ + 24]byte
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNGETIFF, uintptr(unsafe.Pointer(&ifr[0])))
		if errno != 0 {
			return true
		}
		time.Sleep(50 * time.Microsecond)
	}
	return false
}

// Release closes the queues and leaves the device, if persistent, where
// it is.
func (d *tapDevice) Release() error {
	for _, f := range d.fds {
		if !f.shutdown() {
			return os.ErrClosed
		}
	}
	if d.nl != nil {
		d.nl.Close()
	}
	return d.closeFDs()
}

// checkConfig returns the number of queues cfg asks for.
func checkConfig(cfg Config) (int, error) {
	if cfg.Name == "" || len(cfg.Name) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q: must be 1 to %d characters", cfg.Name, unix.IFNAMSIZ-1)
	}
	nq := cfg.Queues
	if nq == 0 {
		nq = 1
	}
	if nq < 0 || nq > MaxQueues {
		return 0, fmt.Errorf("TAP %s: %d queues: must be 1 to %d", cfg.Name, nq, MaxQueues)
	}
	return nq, nil
}

// tapFlags are the TUNSETIFF flags of every queue of a device.
func tapFlags(multiQueue, napi bool) uint16 {
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if multiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	if napi {
		flags |= unix.IFF_NAPI
	}
	return flags
}

// openQueues opens nq queues of the TAP name in the calling thread's
// namespace: a TUNSETIFF finds or makes the device in the namespace the
// descriptor was opened in. first is added to the first queue's flags.
// On failure every queue opened is closed again.
func openQueues(name string, nq int, flags, first uint16) ([]int, error) {
	var fds []int
	fail := func(err error) ([]int, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, err
	}
	for i := range nq {
		// O_NONBLOCK lets a reader wait in poll(2) where Close can
		// wake it, and lets the kernel build small frames' buffers
		// in place on write (tun_can_build_skb).
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail(fmt.Errorf("open /dev/net/tun: %w", err))
		}
		fds = append(fds, fd)
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return fail(err)
		}
		f := flags
		if i == 0 {
			f |= first
		}
		ifr.SetUint16(f)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fail(err)
		}
	}
	return fds, nil
}

// wrapQueues turns the descriptors of a device's queues into rawFDs. On
// failure it closes them all.
func wrapQueues(fds []int) ([]*rawFD, error) {
	var out []*rawFD
	for i, fd := range fds {
		r, err := newRawFD(fd)
		if err != nil {
			for _, f := range out {
				f.closeFDs()
			}
			for _, fd := range fds[i:] {
				unix.Close(fd)
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// setOffloads asks for every offload the switch can use and reports
// what the device takes: what the kernel hands the reader, it takes
// from a writer too.
func setOffloads(fd int) (device.Caps, error) {
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloadsUSO); err == nil {
		return capsOf(offloadsUSO), nil
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloadsBase); err != nil {
		return device.Caps{}, err
	}
	return capsOf(offloadsBase), nil
}

// capsOf turns TUN_F_* offload flags into the device's Caps. The kernel
// takes UFO super-frames from a writer whatever the flags
// (virtio_net_hdr_to_skb), though no TAP here hands one over.
func capsOf(offloads uint) device.Caps {
	c := device.Caps{GSO: device.GSOSetUDP}
	c.Csum = offloads&unix.TUN_F_CSUM != 0
	if offloads&unix.TUN_F_TSO4 != 0 {
		c.GSO |= device.GSOSetTCPv4
	}
	if offloads&unix.TUN_F_TSO6 != 0 {
		c.GSO |= device.GSOSetTCPv6
	}
	if offloads&(unix.TUN_F_USO4|unix.TUN_F_USO6) == unix.TUN_F_USO4|unix.TUN_F_USO6 {
		c.GSO |= device.GSOSetUDPL4
	}
	return c
}

// stale reports whether link is a persistent TAP marked with alias that
// no process holds: one its maker left when it died before recording it.
func stale(link netlink.Link, alias string) bool {
	t, ok := link.(*netlink.Tuntap)
	return ok && alias != "" && t.Attrs().Alias == alias && t.Mode == netlink.TUNTAP_MODE_TAP &&
		!t.NonPersist && t.Queues == 0
}

func create(cfg Config) (_ Device, err error) {
	nq, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	var (
		fds []int
		h   *netlink.Handle
	)
	err = inNetns(cfg.Netns, func() error {
		var err error
		// A netlink socket made here keeps talking to this namespace
		// after the thread leaves it.
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		if link, err := h.LinkByName(cfg.Name); err == nil {
			if !stale(link, cfg.Alias) {
				return fmt.Errorf("%s: %w in the namespace", cfg.Name, ErrExists)
			}
			if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("remove stale TAP %s: %w", cfg.Name, err)
			}
		}
		// IFF_TUN_EXCL makes the first queue a new device, never one
		// that appeared since the check above.
		fds, err = openQueues(cfg.Name, nq, tapFlags(nq > 1, cfg.NAPI), unix.IFF_TUN_EXCL)
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("%s: %w in the namespace", cfg.Name, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create TAP %s: %w", cfg.Name, err)
		}
		return nil
	})
	d, err := adopt(cfg.Name, fds, h, err)
	if err != nil {
		return nil, err
	}
	d.movable = cfg.Movable
	defer func() {
		if err != nil {
			// Closing every descriptor of a TAP not yet persistent
			// removes it.
			h.Close()
			d.closeFDs()
		}
	}()
	if d.caps, err = setOffloads(d.fds[0].fd); err != nil {
		return nil, fmt.Errorf("TAP %s: set offloads: %w", cfg.Name, err)
	}
	link, err := h.LinkByName(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("TAP %s: %w", cfg.Name, err)
	}
	if cfg.MAC != nil {
		if err := h.LinkSetHardwareAddr(link, cfg.MAC); err != nil {
			return nil, fmt.Errorf("TAP %s: set MAC %s: %w", cfg.Name, cfg.MAC, err)
		}
	}
	if cfg.MTU != 0 {
		if err := h.LinkSetMTU(link, cfg.MTU); err != nil {
			return nil, fmt.Errorf("TAP %s: set MTU %d: %w", cfg.Name, cfg.MTU, err)
		}
	}
	qlen := cfg.TxQueueLen
	if qlen == 0 {
		qlen = DefaultTxQueueLen
	}
	if err := h.LinkSetTxQLen(link, qlen); err != nil {
		return nil, fmt.Errorf("TAP %s: set txqueuelen %d: %w", cfg.Name, qlen, err)
	}
	if cfg.Alias != "" {
		if err := h.LinkSetAlias(link, cfg.Alias); err != nil {
			return nil, fmt.Errorf("TAP %s: set alias: %w", cfg.Name, err)
		}
	}
	for _, p := range cfg.Addrs {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			// The switch keeps addresses unique within a network; waiting
			// for duplicate address detection only delays the first packet.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return nil, fmt.Errorf("TAP %s: add address %s: %w", cfg.Name, p, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("TAP %s: set up: %w", cfg.Name, err)
	}
	// Read back what the kernel holds, the random MAC included.
	link, err = h.LinkByName(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("TAP %s: %w", cfg.Name, err)
	}
	d.mac, d.index = link.Attrs().HardwareAddr, link.Attrs().Index
	if cfg.Persist {
		if err := unix.IoctlSetInt(d.fds[0].fd, unix.TUNSETPERSIST, 1); err != nil {
			return nil, fmt.Errorf("TAP %s: make persistent: %w", cfg.Name, err)
		}
	}
	d.queues = queuesOf(d.fds)
	return d, nil
}

func open(cfg Config) (_ Device, err error) {
	nq, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	var (
		fds []int
		h   *netlink.Handle
	)
	err = inNetns(cfg.Netns, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		link, err := h.LinkByName(cfg.Name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return fmt.Errorf("%s: %w in the namespace", cfg.Name, ErrNotFound)
			}
			return fmt.Errorf("%s: %w", cfg.Name, err)
		}
		t, ok := link.(*netlink.Tuntap)
		switch {
		case !ok || t.Mode != netlink.TUNTAP_MODE_TAP:
			return fmt.Errorf("%s: %w: the interface is not a TAP", cfg.Name, ErrNotFound)
		case t.NonPersist:
			return fmt.Errorf("%s: %w: the TAP is not persistent", cfg.Name, ErrNotFound)
		case t.Queues > 0:
			return fmt.Errorf("%s: %w (%d queues attached)", cfg.Name, ErrInUse, t.Queues)
		}
		// The queues must match how the device was made: several for a
		// multi-queue device, exactly one for the other kind.
		mq := t.Flags&netlink.TUNTAP_MULTI_QUEUE != 0
		if !mq {
			nq = 1
		}
		if fds, err = openQueues(cfg.Name, nq, tapFlags(mq, cfg.NAPI), 0); err != nil {
			return fmt.Errorf("open TAP %s: %w", cfg.Name, err)
		}
		// Had the device gone between the look-up and TUNSETIFF, the
		// kernel would have made a new one, not persistent: closing its
		// queues removes it again.
		ifr, err := unix.NewIfreq(cfg.Name)
		if err == nil {
			err = unix.IoctlIfreq(fds[0], unix.TUNGETIFF, ifr)
		}
		if err != nil || ifr.Uint16()&unix.IFF_PERSIST == 0 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			fds = nil
			return fmt.Errorf("%s: %w in the namespace", cfg.Name, ErrNotFound)
		}
		return nil
	})
	d, err := adopt(cfg.Name, fds, h, err)
	if err != nil {
		return nil, err
	}
	d.movable = cfg.Movable
	defer func() {
		if err != nil {
			d.Release()
		}
	}()
	if err := d.takeUp(h); err != nil {
		return nil, err
	}
	return d, nil
}

// takeUp makes an existing TAP's device, opened again or handed over,
// what the switch expects whoever had it last: the header size and
// offloads are the device's and survived, and are set again; its MAC,
// index and queues are read back.
func (d *tapDevice) takeUp(h *netlink.Handle) error {
	if err := unix.IoctlSetPointerInt(d.fds[0].fd, unix.TUNSETVNETHDRSZ, device.VnetHdrLen); err != nil {
		return fmt.Errorf("TAP %s: set virtio net header size: %w", d.name, err)
	}
	caps, err := setOffloads(d.fds[0].fd)
	if err != nil {
		return fmt.Errorf("TAP %s: set offloads: %w", d.name, err)
	}
	d.caps = caps
	link, err := h.LinkByName(d.name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return fmt.Errorf("%s: %w in the namespace", d.name, ErrNotFound)
		}
		return fmt.Errorf("TAP %s: %w", d.name, err)
	}
	d.mac, d.index = link.Attrs().HardwareAddr, link.Attrs().Index
	d.queues = queuesOf(d.fds)
	return nil
}

func queuesOf(raw []*rawFD) []device.Queue {
	q := make([]device.Queue, len(raw))
	for i, r := range raw {
		q[i] = r
	}
	return q
}

// inNetns runs fn inside the namespace at path, or right here when path is
// empty: the daemon's own namespace needs no thread switch.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return namespace.Do(path, fn)
}

// adopt makes a device of the queue descriptors fds of TAP name and the
// netlink handle h of its namespace, once opening them ended with err;
// on an error it closes h and returns the error.
func adopt(name string, fds []int, h *netlink.Handle, err error) (*tapDevice, error) {
	if err != nil {
		if h != nil {
			h.Close()
		}
		return nil, err
	}
	raw, err := wrapQueues(fds)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("TAP %s: %w", name, err)
	}
	return &tapDevice{name: name, fds: raw, nl: h}, nil
}
