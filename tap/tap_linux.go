package tap

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/namespace"
)

// offloadsWanted is what the switch asks of every TAP: it never needs a
// checksum or a segment computed in userspace, because frames go from
// one TAP to another unchanged. USO is tried first and dropped on kernels
// before 6.2, which refuse unknown flags.
const (
	offloadsBase = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	offloadsUSO  = offloadsBase | unix.TUN_F_USO4 | unix.TUN_F_USO6
)

type device struct {
	f        *os.File
	name     string
	mac      net.HardwareAddr
	offloads uint
}

var _ Device = (*device)(nil)

func (d *device) Read(b []byte) (int, error)  { return d.f.Read(b) }
func (d *device) Write(b []byte) (int, error) { return d.f.Write(b) }
func (d *device) Close() error                { return d.f.Close() }
func (d *device) Name() string                { return d.name }
func (d *device) MAC() net.HardwareAddr       { return d.mac }
func (d *device) Offloads() uint              { return d.offloads }

func create(cfg Config) (_ Device, err error) {
	if cfg.Name == "" || len(cfg.Name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("interface name %q: must be 1 to %d characters", cfg.Name, unix.IFNAMSIZ-1)
	}
	var (
		fd       = -1
		h        *netlink.Handle
		offloads uint
	)
	defer func() {
		if err != nil && fd >= 0 {
			// Closing the only descriptor of a non-persistent TAP removes it.
			unix.Close(fd)
		}
		if h != nil {
			h.Close()
		}
	}()
	err = namespace.Do(cfg.Netns, func() error {
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
		// O_NONBLOCK puts the fd on the Go netpoller, so Close wakes a
		// blocked Read, and lets the kernel build small frames' skbs
		// in place on write (tun_can_build_skb).
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(cfg.Name)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("create TAP %s: %w", cfg.Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	offloads = offloadsUSO
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloadsUSO); err != nil {
		offloads = offloadsBase
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloadsBase); err != nil {
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
			// The switch guarantees uniqueness within a network; waiting
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
	f := os.NewFile(uintptr(fd), "/dev/net/tun:"+cfg.Name)
	if f == nil {
		return nil, errors.New("tap: invalid file descriptor")
	}
	return &device{f: f, name: cfg.Name, mac: link.Attrs().HardwareAddr, offloads: offloads}, nil
}
