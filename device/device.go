package device

// Headroom is the room a caller keeps in front of offset in every buffer
// it hands to Read or Write: the virtio net header goes in the last
// VnetHdrLen bytes of it, and a device that wraps frames (a tunnel's outer
// headers) may use the rest.
const Headroom = 64

// Device is one port's way in and out of the switch.
type Device interface {
	// Queues are the device's queues, fixed for its life; at least one.
	// The switch reads each queue from one goroutine and writes a frame
	// on the queue numbered like the one it came in on (modulo the
	// count), so both directions of a flow meet on one worker.
	Queues() []Queue
	// Caps says which frames the device takes on Write beyond whole
	// frames with their checksums filled in.
	Caps() Caps
	// Close makes pending and later Reads and Writes fail with an error
	// wrapping os.ErrClosed, and lets the device go.
	Close() error
}

// Queue is one queue of a Device.
//
// For frame i of a batch, bufs[i][offset-VnetHdrLen:offset] holds its
// virtio net header and bufs[i][offset:] the Ethernet frame; offset is at
// least Headroom.
type Queue interface {
	// Read waits for at least one frame, then reads as many as are
	// queued, up to len(bufs) and BatchSize, each into bufs[i] with its
	// length in sizes[i] (the frame's, header not counted), and returns
	// how many it read. A device without offloads reads a zero header.
	// A frame longer than the room in bufs[i] is cut short and comes
	// with sizes[i] equal to that room (len(bufs[i])-offset). Read is
	// called by one goroutine at a time.
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	// Write sends every frame of bufs, each bufs[i][offset:] to the end
	// of the slice, and returns how many it sent before an error. The
	// switch gives a device only the super-frames and partial checksums
	// its Caps allow. Write may be called from many goroutines at once.
	Write(bufs [][]byte, offset int) (int, error)
	// BatchSize is the most frames one Read returns.
	BatchSize() int
}

// PollQueue is a Queue the switch can wait on with epoll together with
// the same queue of every other port: Fd is for waiting only, and TryRead
// is Read that returns 0 at once when nothing is queued.
type PollQueue interface {
	Queue
	Fd() int
	TryRead(bufs [][]byte, sizes []int, offset int) (int, error)
}

// Releaser is a Device that can also let go of its queues while leaving
// the device itself in place (a persistent TAP), for a restarted daemon to
// take back.
type Releaser interface {
	Device
	Release() error
}

// Caps are what a device takes on Write. The zero value is a device that
// takes only whole frames with their checksums filled in, no longer than
// MTU.
type Caps struct {
	// GSO is the set of super-frame types the device takes whole.
	GSO GSOSet
	// Csum: the device takes frames with a checksum left to fill in
	// (VnetFlagNeedsCsum).
	Csum bool
	// MTU is the largest IP packet the device takes in one frame; the
	// switch cuts a super-frame for it into segments that fit. 0 means
	// no limit of its own (a super-frame's segment size is used).
	MTU int
}

// GSOSet is a set of GSO types, bit 1<<t for type t (GSOTCPv4, ...).
type GSOSet uint32

// GSO sets.
const (
	GSOSetTCPv4 GSOSet = 1 << GSOTCPv4
	GSOSetTCPv6 GSOSet = 1 << GSOTCPv6
	GSOSetUDPL4 GSOSet = 1 << GSOUDPL4
	// GSOSetUDP is UDP fragmentation offload (UFO), which Linux still
	// takes from a writer for virtio's sake but never hands a reader
	// that did not ask for it.
	GSOSetUDP GSOSet = 1 << GSOUDP
	GSOSetTCP        = GSOSetTCPv4 | GSOSetTCPv6
)

// Has reports whether the set holds GSO type t (the ECN bit ignored).
func (s GSOSet) Has(t uint8) bool { return s&(1<<(t&^GSOECN&31)) != 0 }

// Takes reports whether a device with these caps takes, as it is, a frame
// with header bytes flags and gsoType: a plain frame always; a partial
// checksum if Csum; a super-frame if its type is in GSO.
func (c Caps) Takes(flags, gsoType uint8) bool {
	if gsoType != GSONone && !c.GSO.Has(gsoType) {
		return false
	}
	return flags&VnetFlagNeedsCsum == 0 || c.Csum
}
