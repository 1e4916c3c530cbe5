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

	"github.com/tapswitch/tapswitch/internal/namespace"
)

// offloadsBase is what the switch asks of every TAP: it never needs a
// checksum or a segment computed in userspace, because frames go from
// one TAP to another unchanged. USO is asked for too and dropped on
// kernels before 6.2, which refuse unknown flags.
const (
	offloadsBase = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	offloadsUSO  = offloadsBase | unix.TUN_F_USO4 | unix.TUN_F_USO6
)

type device struct {
	queues []Queue
	fds    []*rawFD
	// nl is a netlink socket in the device's namespace, kept to delete
	// the link on Close.
	nl       *netlink.Handle
	index    int
	name     string
	mac      net.HardwareAddr
	offloads uint
}

var _ Device = (*device)(nil)

func (d *device) Queues() []Queue       { return d.queues }
func (d *device) Name() string          { return d.name }
func (d *device) MAC() net.HardwareAddr { return d.mac }
func (d *device) Offloads() uint        { return d.offloads }

// Close deletes the link, then closes the queues. Deleting the link
// unregisters the device once, where closing queue after queue waits for
// a grace period per queue (measured: 14 ms against 20 to 30 ms for two
// queues). The kernel takes the device out of its namespace within about
// a millisecond and only then waits for the grace period before the
// delete returns; Close returns as soon as the device is gone from the
// namespace and leaves the rest of the teardown to a goroutine, so a
// detach takes what the user sees, not what the kernel's bookkeeping
// takes. The device's descriptors are no longer used by then.
func (d *device) Close() error {
	for _, f := range d.fds {
		if !f.shutdown() {
			return os.ErrClosed
		}
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

func (d *device) closeFDs() error {
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

func create(cfg Config) (_ Device, err error) {
	if cfg.Name == "" || len(cfg.Name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("interface name %q: must be 1 to %d characters", cfg.Name, unix.IFNAMSIZ-1)
	}
	nq := cfg.Queues
	if nq == 0 {
		nq = 1
	}
	if nq < 0 || nq > MaxQueues {
		return nil, fmt.Errorf("TAP %s: %d queues: must be 1 to %d", cfg.Name, nq, MaxQueues)
	}
	var (
		fds []int
		h   *netlink.Handle
	)
	defer func() {
		if err != nil {
			// Closing every descriptor of a non-persistent TAP removes it.
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
		if err != nil && h != nil {
			h.Close()
		}
	}()
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if nq > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	err = inNetns(cfg.Netns, func() error {
		var err error
		// A netlink socket made here keeps talking to this namespace
		// after the thread leaves it.
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		if _, err := h.LinkByName(cfg.Name); err == nil {
			return fmt.Errorf("%s: %w in the namespace (choose another with --ifname)", cfg.Name, ErrExists)
		}
		// Every queue is opened here: a TUNSETIFF finds or makes the
		// device in the namespace the descriptor was opened in.
		for range nq {
			// O_NONBLOCK lets a reader wait in poll(2) where Close can
			// wake it, and lets the kernel build small frames' buffers
			// in place on write (tun_can_build_skb).
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open /dev/net/tun: %w", err)
			}
			fds = append(fds, fd)
			ifr, err := unix.NewIfreq(cfg.Name)
			if err != nil {
				return err
			}
			ifr.SetUint16(flags)
			if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
				return fmt.Errorf("create TAP %s: %w", cfg.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	offloads := uint(offloadsUSO)
	if err := unix.IoctlSetInt(fds[0], unix.TUNSETOFFLOAD, offloadsUSO); err != nil {
		offloads = offloadsBase
		if err := unix.IoctlSetInt(fds[0], unix.TUNSETOFFLOAD, offloadsBase); err != nil {
			return nil, fmt.Errorf("TAP %s: set offloads: %w", cfg.Name, err)
		}
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
	d := &device{name: cfg.Name, mac: link.Attrs().HardwareAddr, offloads: offloads, nl: h, index: link.Attrs().Index}
	for i, fd := range fds {
		r, err := newRawFD(fd)
		if err != nil {
			for _, f := range d.fds {
				f.Close()
			}
			d.nl = nil
			// The rest are closed by the deferred cleanup.
			fds = fds[i:]
			return nil, fmt.Errorf("TAP %s: %w", cfg.Name, err)
		}
		d.fds = append(d.fds, r)
		d.queues = append(d.queues, r)
	}
	return d, nil
}

// inNetns runs fn inside the namespace at path, or right here when path is
// empty: the daemon's own namespace needs no thread switch.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return namespace.Do(path, fn)
}
