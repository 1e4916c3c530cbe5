package tap

import (
	"errors"
	"net"
	"net/netip"
)

// Errors from Create.
var (
	ErrExists      = errors.New("interface already exists")
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

// Config says how to create a TAP.
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
	// Queues is the number of queues (IFF_MULTI_QUEUE when above one).
	// The kernel keeps each flow on one queue, so one reader per queue
	// spreads flows over CPUs. 0 means 1.
	Queues int
	// Addrs are put on the interface, which is then set up.
	Addrs []netip.Prefix
}

// Queue is one queue of a TAP. Read and Write move one frame, preceded by
// its VnetHdrLen-byte virtio net header, per call. Read is for one
// goroutine at a time; Write may be called from many at once.
type Queue interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
}

// Device is an open TAP.
type Device interface {
	// Queues are the device's queues, fixed at creation.
	Queues() []Queue
	// Close makes pending and later Reads and Writes fail with
	// os.ErrClosed, then closes the queues, which removes the device.
	Close() error
	// Name is the interface name inside its namespace.
	Name() string
	// MAC is the interface's hardware address.
	MAC() net.HardwareAddr
	// Offloads reports the TUN_F_* offload flags the kernel accepted.
	Offloads() uint
}

// Create makes a TAP inside cfg.Netns, configures it, sets it up and
// returns it open. On any failure nothing is left in the namespace.
func Create(cfg Config) (Device, error) { return create(cfg) }
