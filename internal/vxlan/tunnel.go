package vxlan

import (
	"net"
	"net/netip"
	"os"

	"github.com/tapswitch/tapswitch/device"
)

// Tunnel is one network's port on an Endpoint: the frames of one VNI. It
// is a device.Device.
type Tunnel struct {
	ep  *Endpoint
	vni uint32
}

var _ device.Device = (*Tunnel)(nil)

// VNI returns the tunnel's VXLAN network identifier.
func (t *Tunnel) VNI() uint32 { return t.vni }

// Queues returns the tunnel's one queue.
func (t *Tunnel) Queues() []device.Queue { return []device.Queue{(*queue)(t)} }

// Caps: the tunnel takes TCP and UDP super-frames and partial checksums,
// and cuts them itself.
func (t *Tunnel) Caps() device.Caps {
	return device.Caps{GSO: device.GSOSetTCP | device.GSOSetUDPL4, Csum: true}
}

// Close closes the tunnel; its VNI is free again.
func (t *Tunnel) Close() error {
	t.ep.mu.Lock()
	defer t.ep.mu.Unlock()
	if t.ep.tunnels[t.vni] != t {
		return os.ErrClosed
	}
	delete(t.ep.tunnels, t.vni)
	return nil
}

// SetVTEPs sets the head-end replication list: where broadcast, multicast
// and unknown unicast go.
func (t *Tunnel) SetVTEPs(vteps []netip.Addr) {}

// SetRemote sets a static entry: frames to mac go to vtep. It does not age.
func (t *Tunnel) SetRemote(mac net.HardwareAddr, vtep netip.Addr) {}

// ForgetRemote removes mac's entry, static or learned.
func (t *Tunnel) ForgetRemote(mac net.HardwareAddr) {}

// ForgetVTEP removes every entry behind vtep.
func (t *Tunnel) ForgetVTEP(vtep netip.Addr) {}

// Remotes returns the tunnel's MAC table.
func (t *Tunnel) Remotes() []Remote { return nil }

// Stats returns the tunnel's counters.
func (t *Tunnel) Stats() TunnelStats { return TunnelStats{} }

type queue Tunnel

func (q *queue) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return 0, os.ErrClosed
}

func (q *queue) Write(bufs [][]byte, offset int) (int, error) {
	return 0, os.ErrClosed
}

func (q *queue) BatchSize() int { return 64 }
