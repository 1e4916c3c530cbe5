package tap

import (
	"errors"
	"net"
	"net/netip"

	"github.com/tapswitch/tapswitch/device"
)

// Errors from Create and Open.
var (
	ErrExists      = errors.New("interface already exists")
	ErrNotFound    = errors.New("no persistent TAP of that name")
	ErrInUse       = errors.New("the TAP's queues are held by another process")
	ErrUnsupported = errors.New("tap: not implemented on this operating system")
)

// DefaultTxQueueLen is the TAP's transmit queue length: how many frames the
// kernel holds for the switch to read before it drops. The kernel's default
// for a TAP (500) drops bursts a TCP sender builds up while the switch's
// reader is descheduled on a busy machine; 1000 matches a veth or
// an Ethernet NIC.
const DefaultTxQueueLen = 1000

// MaxQueues bounds Config.Queues; the kernel allows 256, but a reader
// per queue beyond the number of CPUs only adds threads.
const MaxQueues = 16

// Config says how to create a TAP, or which one to open.
type Config struct {
	// Netns is the path of the network namespace file to create the
	// device in (see namespace.Resolve). Empty means the caller's own
	// namespace, as for a network's gateway in the daemon's namespace.
	Netns string
	// Name is the interface name inside the namespace.
	Name string
	// MAC is the hardware address; nil keeps the kernel's random one.
	MAC net.HardwareAddr
	// MTU; 0 keeps the kernel's default (1500).
	MTU int
	// TxQueueLen; 0 means DefaultTxQueueLen.
	TxQueueLen int
	// NAPI makes the kernel take the frames the switch writes through a
	// NAPI poll of the queue and its GRO (IFF_NAPI), rather than straight
	// into the namespace's stack from the write. A write(2) cannot tell
	// the kernel that more frames follow (only the in-kernel sendmsg of
	// vhost can), so each write runs the poll for its one frame and GRO
	// merges nothing across writes: measured, it forwarded no faster,
	// and it is off unless asked for. The mode is a queue's, fixed when
	// the queue attaches: Create and Open set it, while queues handed
	// over (Adopt) keep the mode they were opened with.
	NAPI bool
	// Queues is the number of queues (IFF_MULTI_QUEUE when above one).
	// The kernel keeps each flow on one queue, so one reader per queue
	// spreads flows over CPUs. 0 means 1.
	Queues int
	// Addrs are put on the interface, which is then set up.
	Addrs []netip.Prefix
	// Persist keeps the device in its namespace when its descriptors
	// close (TUNSETPERSIST), for Open to take again; it is set once the
	// device is fully configured, so a Create that fails or is cut short
	// leaves nothing.
	Persist bool
	// Alias is put on the interface (IFLA_IFALIAS) to mark it as its
	// maker's. Create replaces a persistent TAP of the same name and
	// alias whose queues no process holds: one left by a maker that died
	// before it could record it.
	Alias string
	// Movable says another program may move the device to another
	// namespace and rename it (Docker does, with a network driver's
	// interface). Close then removes it wherever it is, by clearing its
	// persistence and closing its queues, rather than by deleting the
	// link through the namespace it was made or opened in, where its
	// index may since name another link.
	Movable bool
}

// Device is an open TAP: a port of the switch (device.Device) whose
// queues can be polled together (each is a device.PollQueue), with the
// interface's name and address.
//
// Close makes pending and later Reads and Writes fail with os.ErrClosed,
// then removes the device, persistent or not, and closes the queues; it
// returns once the device has left its namespace. Release makes them fail
// likewise and closes the queues, but leaves a persistent device in its
// namespace, as it is, for Open; a device that is not persistent goes
// with its last queue.
//
// Caps are what the kernel took of the offloads asked for (TUNSETOFFLOAD):
// partial checksums, TCP super-frames over IPv4 and IPv6, and UDP ones
// where the kernel has USO (6.2 and later).
type Device interface {
	device.Releaser
	// Name is the interface name inside its namespace.
	Name() string
	// MAC is the interface's hardware address.
	MAC() net.HardwareAddr
}

// Maker makes TAPs and opens persistent ones again: Kernel for real
// devices, taptest.Maker for in-memory ones in tests.
type Maker interface {
	Create(cfg Config) (Device, error)
	Open(cfg Config) (Device, error)
}

// Kernel makes real TAPs, with Create and Open.
var Kernel Maker = kernel{}

type kernel struct{}

func (kernel) Create(cfg Config) (Device, error) { return Create(cfg) }
func (kernel) Open(cfg Config) (Device, error)   { return Open(cfg) }

// Create makes a TAP inside cfg.Netns, configures it, sets it up and
// returns it open. On any failure nothing is left in the namespace. An
// interface of that name already there gives an error wrapping
// ErrExists, unless it is a stale persistent TAP of cfg.Alias (see
// Config.Alias), which is replaced.
func Create(cfg Config) (Device, error) { return create(cfg) }

// Open takes the persistent TAP cfg.Name inside cfg.Netns again, with
// cfg.Queues queues (one for a device made with one queue), and sets its
// virtio net header and offloads as Create does. Only Netns, Name, NAPI
// and Queues are read: the device's MAC, MTU, addresses, routes and link
// state are left as they are. A missing device, or one that is not a
// persistent TAP, gives an error wrapping ErrNotFound; one whose queues
// another process holds, ErrInUse.
func Open(cfg Config) (Device, error) { return open(cfg) }
