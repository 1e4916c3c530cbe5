package tap

// Exporter is a Device whose queues can be handed to another process:
// the daemon's successor in a hand-over, or the service manager's file
// descriptor store, which keeps them across a crash. While any process
// holds a queue's descriptor the queue stays attached, so frames the
// namespace sends wait in its ring (Config.TxQueueLen frames) instead of
// being dropped.
type Exporter interface {
	// ExportQueues returns a duplicate of every queue's descriptor,
	// close-on-exec; the caller owns them. The device keeps its own.
	ExportQueues() ([]int, error)
}

// Pauser is a Device whose reads can be stopped while it stays open:
// before its queues are handed over, the daemon stops reading so that
// no frame is taken from a ring and then lost on the way out; frames
// wait in the rings for the next reader. Writes go on, so that what was
// read before goes out. The next daemon keeps the queues it adopts
// paused until every port is back, so that no frame is read before the
// port it goes to is there.
type Pauser interface {
	// PauseReads makes every later read find the queues empty, until
	// ResumeReads.
	PauseReads()
	// ResumeReads lets reads take frames again.
	ResumeReads()
}

// Adopt makes a Device of the queue descriptors fds, which another
// process opened on the TAP cfg.Name inside cfg.Netns and handed over
// (see Exporter). Only Netns and Name are read. Each descriptor must be
// a queue of a TAP with a virtio net header, attached to a device of
// that name in that namespace; the device's MAC, MTU, addresses and
// link state are left as they are, and its offloads set as Open does.
// Adopt owns fds from the call on: it closes them on failure.
func Adopt(cfg Config, fds []int) (Device, error) { return adoptFDs(cfg, fds) }
