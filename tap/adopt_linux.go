package tap

import (
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tunGetDevNetns is TUNGETDEVNETNS (Linux 5.2): a descriptor of the
// namespace the queue's device is in, to check that a queue handed over
// is the device it is said to be and not one of the same name elsewhere.
const tunGetDevNetns = 0x54e3

var (
	_ Exporter = (*tapDevice)(nil)
	_ Pauser   = (*tapDevice)(nil)
)

// PauseReads implements Pauser.
func (d *tapDevice) PauseReads() {
	for _, f := range d.fds {
		f.paused.Store(true)
	}
}

// ResumeReads implements Pauser.
func (d *tapDevice) ResumeReads() {
	for _, f := range d.fds {
		f.paused.Store(false)
	}
}

// ExportQueues implements Exporter.
func (d *tapDevice) ExportQueues() ([]int, error) {
	var out []int
	for _, f := range d.fds {
		if !f.acquire() {
			closeAll(out)
			return nil, fmt.Errorf("TAP %s: %w", d.name, os.ErrClosed)
		}
		fd, err := unix.FcntlInt(uintptr(f.fd), unix.F_DUPFD_CLOEXEC, 0)
		f.release()
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("TAP %s: duplicate queue descriptor: %w", d.name, err)
		}
		out = append(out, fd)
	}
	return out, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func adoptFDs(cfg Config, fds []int) (_ Device, err error) {
	if len(fds) == 0 {
		return nil, fmt.Errorf("TAP %s: no queue descriptors to adopt", cfg.Name)
	}
	if len(fds) > MaxQueues {
		closeAll(fds)
		return nil, fmt.Errorf("TAP %s: %d queue descriptors: at most %d", cfg.Name, len(fds), MaxQueues)
	}
	var want unix.Stat_t
	if cfg.Netns != "" {
		if err := unix.Stat(cfg.Netns, &want); err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("TAP %s: %w", cfg.Name, err)
		}
	} else if err := unix.Stat("/proc/thread-self/ns/net", &want); err != nil {
		closeAll(fds)
		return nil, fmt.Errorf("TAP %s: %w", cfg.Name, err)
	}
	for _, fd := range fds {
		if err := checkQueue(fd, cfg.Name, want); err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("TAP %s: adopt queue: %w", cfg.Name, err)
		}
	}
	var h *netlink.Handle
	err = inNetns(cfg.Netns, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		return nil
	})
	if err != nil {
		closeAll(fds)
	}
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

// checkQueue makes sure fd is an attached queue of a TAP called name,
// with a virtio net header, whose device is in the namespace want, and
// makes it non-blocking and close-on-exec as the device's own are.
func checkQueue(fd int, name string, want unix.Stat_t) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		// EBADFD: a queue no longer attached, as after the device was
		// deleted; EINVAL or ENOTTY: not a TUN/TAP descriptor.
		return fmt.Errorf("descriptor %d is not an attached TAP queue: %w", fd, err)
	}
	if got := ifr.Name(); got != name {
		return fmt.Errorf("descriptor %d is a queue of %s", fd, got)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_TAP == 0 || flags&unix.IFF_VNET_HDR == 0 {
		return fmt.Errorf("descriptor %d: %s is not a TAP with a virtio net header (flags %#x)", fd, name, flags)
	}
	nsfd, err := unix.IoctlRetInt(fd, tunGetDevNetns)
	if err != nil {
		return fmt.Errorf("descriptor %d: namespace of its device: %w", fd, err)
	}
	var got unix.Stat_t
	err = unix.Fstat(nsfd, &got)
	unix.Close(nsfd)
	if err != nil {
		return fmt.Errorf("descriptor %d: namespace of its device: %w", fd, err)
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		return fmt.Errorf("descriptor %d: %s is in another network namespace", fd, name)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return err
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	return err
}
