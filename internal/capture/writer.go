package capture

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapswitch/tapswitch/device"
	"github.com/tapswitch/tapswitch/segment"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// DefaultSnapLen is tcpdump's: whole frames of any real MTU.
const DefaultSnapLen = 262144

// segRoom holds the largest segment a Splitter writes: a frame the size
// of the largest the switch forwards, which a frame with a partial
// checksum and no GSO can be.
const segRoom = 65536 + 1024

// Direction is which way a packet crossed its port, as the pcapng
// packet's flags record it.
type Direction uint8

const (
	// Inbound: a frame the port sent into the switch.
	Inbound Direction = iota + 1
	// Outbound: a frame the switch sent to the port, unicast or flooded.
	Outbound
)

func (d Direction) String() string {
	switch d {
	case Inbound:
		return "in"
	case Outbound:
		return "out"
	}
	return "?"
}

// Writer writes records as pcapng. It is not safe for concurrent use.
//
// Each port is an interface of the file, named after the port, added
// the first time one of its packets is written (pcapng allows interface
// blocks anywhere before their first packet). A capture of one port
// writes each frame on that port's interface: inbound if the port sent
// it, outbound if it was sent to it, unicast or flooded. A capture of a
// network writes each frame once, on the interface of the port it came
// in on, inbound; where it went is in the packet's comment ("to web",
// "flooded"), as is a drop and its reason in both kinds.
type Writer struct {
	ng *pcapgo.NgWriter
	// port is the port captured; nil for a whole network.
	port *vswitch.Port
	snap int
	// filter re-checks each segment of a super-frame: the switch ran it
	// on the super-frame, whose lengths, sequence numbers and flags are
	// not every segment's.
	filter *Filter
	// ifaces maps a port to its interface number in the file.
	ifaces map[*vswitch.Port]int

	split segment.Splitter
	seg   []byte
	// written counts the packets written; limit, when not 0, is where
	// the Writer stops.
	written, limit uint64
	// unsplit counts super-frames written whole because the segmenter
	// refused them.
	unsplit uint64
}

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Port is the port captured, nil for a network: Network is then its
	// name, which the file's first interface takes when Ports is empty.
	Port    *vswitch.Port
	Network string
	// Ports are the interfaces written at the start, in this order, so
	// that a reader lists them before any packet; others are added as
	// their first packet comes.
	Ports []*vswitch.Port
	// SnapLen bounds the bytes kept of each packet; 0 means
	// DefaultSnapLen.
	SnapLen int
	// Filter, if set, is the filter the switch ran, re-run on segments.
	Filter *Filter
	// Count, if not 0, is how many packets to write.
	Count uint64
	// Application names the program in the section header.
	Application string
}

// ErrCountReached is returned by Write once the Writer has written
// WriterConfig.Count packets.
var ErrCountReached = errors.New("capture: packet count reached")

// NewWriter writes a pcapng section header and the interfaces of
// cfg.Ports to w.
func NewWriter(w io.Writer, cfg WriterConfig) (*Writer, error) {
	if cfg.SnapLen <= 0 {
		cfg.SnapLen = DefaultSnapLen
	}
	wr := &Writer{port: cfg.Port, snap: cfg.SnapLen, filter: cfg.Filter, limit: cfg.Count,
		ifaces: make(map[*vswitch.Port]int), seg: make([]byte, segRoom)}
	ports := cfg.Ports
	if cfg.Port != nil {
		ports = []*vswitch.Port{cfg.Port}
	}
	var first pcapgo.NgInterface
	if len(ports) > 0 {
		first = wr.iface(ports[0])
	} else {
		first = wr.ifaceNamed(cfg.Network, fmt.Sprintf("network %s (no ports yet)", cfg.Network))
	}
	app := cfg.Application
	if app == "" {
		app = "tapswitchd"
	}
	ng, err := pcapgo.NewNgWriterInterface(w, first, pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: app},
	})
	if err != nil {
		return nil, err
	}
	wr.ng = ng
	if len(ports) > 0 {
		wr.ifaces[ports[0]] = 0
		for _, p := range ports[1:] {
			if _, err := wr.ifaceOf(p); err != nil {
				return nil, err
			}
		}
	}
	return wr, nil
}

func (w *Writer) iface(p *vswitch.Port) pcapgo.NgInterface {
	desc := fmt.Sprintf("tapswitch port %s (id %d) of network %s", p.Name(), p.ID(), p.Network().Name())
	return w.ifaceNamed(p.Name(), desc)
}

func (w *Writer) ifaceNamed(name, desc string) pcapgo.NgInterface {
	in := pcapgo.NgInterface{
		Name:                name,
		Description:         desc,
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkTypeEthernet,
		SnapLength:          uint32(w.snap),
		TimestampResolution: 9,
	}
	if w.filter != nil {
		in.Filter = w.filter.String()
	}
	return in
}

// ifaceOf returns p's interface number, adding it to the file first if
// it has none.
func (w *Writer) ifaceOf(p *vswitch.Port) (int, error) {
	if id, ok := w.ifaces[p]; ok {
		return id, nil
	}
	id, err := w.ng.AddInterface(w.iface(p))
	if err != nil {
		return 0, err
	}
	w.ifaces[p] = id
	return id, nil
}

// Written is how many packets were written.
func (w *Writer) Written() uint64 { return w.written }

// Unsplit is how many super-frames were written whole, unsegmented,
// because the segmenter refused their headers.
func (w *Writer) Unsplit() uint64 { return w.unsplit }

// Flush writes out what is buffered.
func (w *Writer) Flush() error { return w.ng.Flush() }

// Write writes the packets of one record: one, or a super-frame's
// segments. It returns ErrCountReached once the count is reached,
// possibly partway through a super-frame.
func (w *Writer) Write(r *vswitch.Record) error {
	if w.limit > 0 && w.written >= w.limit {
		return ErrCountReached
	}
	iface, dir, comment := w.place(r)
	id, err := w.ifaceOf(iface)
	if err != nil {
		return err
	}
	opts := pcapgo.NgPacketOptions{Flags: &pcapgo.NgEpbFlags{Direction: dir.flag(), Reception: reception(r.Frame)}}
	if comment != "" {
		opts.Comments = []string{comment}
	}
	whole := len(r.Frame) == r.Len
	if !whole || r.Hdr == (device.VnetHdr{}) {
		return w.packet(r.Time, id, r.Frame, r.Len, opts)
	}
	// A super-frame, or a frame whose checksum is left to fill in: the
	// packets the wire would carry.
	if err := w.split.Reset(r.Hdr, r.Frame, 0); err != nil {
		w.unsplit++
		opts.Comments = append(opts.Comments, "written whole, not segmented: "+err.Error())
		return w.packet(r.Time, id, r.Frame, r.Len, opts)
	}
	many := w.split.Segments() > 1
	for {
		n, err := w.split.Next(w.seg)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		seg := w.seg[:n]
		if many && w.filter != nil && !w.filter.Match(seg) {
			continue
		}
		if err := w.packet(r.Time, id, seg, n, opts); err != nil {
			return err
		}
	}
}

// packet writes one packet, cut to the snap length.
func (w *Writer) packet(t time.Time, iface int, data []byte, length int, opts pcapgo.NgPacketOptions) error {
	if w.limit > 0 && w.written >= w.limit {
		return ErrCountReached
	}
	if len(data) > w.snap {
		data = data[:w.snap]
	}
	ci := gopacket.CaptureInfo{Timestamp: t, CaptureLength: len(data), Length: length, InterfaceIndex: iface}
	if err := w.ng.WritePacketWithOptions(ci, data, opts); err != nil {
		return err
	}
	w.written++
	return nil
}

// place says on which port's interface a record is written, which way,
// and with what comment.
func (w *Writer) place(r *vswitch.Record) (*vswitch.Port, Direction, string) {
	var fate string
	switch {
	case r.Dropped:
		fate = "dropped: " + r.Reason.String()
	case r.Out != nil:
		fate = "to " + r.Out.Name()
	default:
		fate = "flooded"
	}
	if w.port == nil {
		return r.In, Inbound, fate
	}
	if r.In == w.port {
		return w.port, Inbound, fate
	}
	if r.Out == nil {
		return w.port, Outbound, "flooded from " + r.In.Name()
	}
	return w.port, Outbound, "from " + r.In.Name()
}

func (d Direction) flag() pcapgo.NgEpbFlag {
	if d == Outbound {
		return pcapgo.NgEpbFlagDirectionOutbound
	}
	return pcapgo.NgEpbFlagDirectionInbound
}

// reception is the reception type of the flags word, from the
// destination MAC.
func reception(frame []byte) pcapgo.NgEpbFlag {
	switch {
	case len(frame) < 6:
		return pcapgo.NgEpbFlagReceptionTypeNotSpecified
	case frame[0]&1 == 0:
		return pcapgo.NgEpbFlagReceptionTypeUnicast
	case frame[0]&frame[1]&frame[2]&frame[3]&frame[4]&frame[5] == 0xff:
		return pcapgo.NgEpbFlagReceptionTypeBroadcast
	}
	return pcapgo.NgEpbFlagReceptionTypeMulticast
}
