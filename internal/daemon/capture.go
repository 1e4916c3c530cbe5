package daemon

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/apiserver"
	"github.com/tapswitch/tapswitch/internal/capture"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// maxCaptures bounds the captures running at once. Each holds
// vswitch.DefaultObserverRecords whole frames, about 16 MiB, which it
// needs to write super-frames as the segments they stand for; four bound
// what captures take at about 65 MiB, and are more than one operator
// watches at a time.
const maxCaptures = 4

// captureSlots counts the running captures and ends them when the
// daemon stops.
type captureSlots struct {
	mu sync.Mutex
	n  int
	// stop is closed by EndCaptures; made on first use.
	stop chan struct{}
	// refused counts captures refused for want of a slot, lastLog is
	// when that was last logged.
	refused int
	lastLog time.Time
}

// stopChan returns the channel EndCaptures closes.
func (c *captureSlots) stopChan() chan struct{} {
	if c.stop == nil {
		c.stop = make(chan struct{})
	}
	return c.stop
}

var _ apiserver.Capturer = (*Daemon)(nil)

// EndCaptures ends every running capture, each with the frames it has
// taken written and its trailers sent, and refuses new ones: the daemon
// is stopping. The API server calls it when it shuts down, before it
// waits for its requests to end.
func (d *Daemon) EndCaptures() {
	c := &d.captures
	c.mu.Lock()
	defer c.mu.Unlock()
	stop := c.stopChan()
	select {
	case <-stop:
	default:
		close(stop)
	}
}

// OpenCapture implements apiserver.Capturer. A capture is no change: it
// takes no turn at the daemon's lock, and a detach or network removal
// goes ahead while it runs, ending it.
func (d *Daemon) OpenCapture(req api.CaptureRequest) (apiserver.CaptureRun, error) {
	var f *capture.Filter
	if req.Filter != "" {
		var err error
		if f, err = capture.Compile(req.Filter); err != nil {
			return nil, api.Errorf(api.ErrInvalid, api.ReasonBadFilter, "%w", err)
		}
	}
	var (
		n     *vswitch.Network
		sp    *vswitch.Port
		alive func() error
		what  string
	)
	if req.Port != "" {
		var err error
		if sp, err = d.sw.Port(req.Port); err != nil {
			return nil, classify(fmt.Errorf("capture: %w", err))
		}
		n, what = sp.Network(), "port "+sp.Name()
		alive = func() error {
			if p, err := d.sw.Port(sp.Name()); err != nil || p != sp {
				return fmt.Errorf("port %s was detached", sp.Name())
			}
			return nil
		}
	} else {
		var err error
		if n, err = d.sw.Network(req.Network); err != nil {
			return nil, classify(fmt.Errorf("capture: %w", err))
		}
		what = "network " + n.Name()
		alive = func() error {
			if m, err := d.sw.Network(n.Name()); err != nil || m != n {
				return fmt.Errorf("network %s was removed", n.Name())
			}
			return nil
		}
	}
	stop, err := d.takeCaptureSlot(what)
	if err != nil {
		return nil, err
	}
	cfg := vswitch.ObserverConfig{Port: sp}
	if f != nil {
		cfg.Match = f.Match
	}
	obs, err := n.Observe(cfg)
	if err != nil {
		d.releaseCaptureSlot()
		return nil, classify(fmt.Errorf("capture %s: %w", what, err))
	}
	wcfg := capture.WriterConfig{Port: sp, Network: n.Name(), SnapLen: req.SnapLen, Filter: f, Count: req.Count}
	if sp == nil {
		wcfg.Ports = n.Ports()
	}
	d.log.Info("capture started", "of", what, "filter", req.Filter, "count", req.Count, "snaplen", req.SnapLen)
	return &captureRun{d: d, what: what, s: capture.NewSession(obs, wcfg, alive, stop)}, nil
}

// takeCaptureSlot counts a capture in, or refuses it when maxCaptures
// run, logging refusals at most once every 10 s.
func (d *Daemon) takeCaptureSlot(what string) (<-chan struct{}, error) {
	c := &d.captures
	c.mu.Lock()
	defer c.mu.Unlock()
	stop := c.stopChan()
	select {
	case <-stop:
		return nil, fmt.Errorf("capture %s: tapswitchd is stopping: %w", what, context.Canceled)
	default:
	}
	if c.n >= maxCaptures {
		c.refused++
		if now := time.Now(); now.Sub(c.lastLog) >= 10*time.Second {
			d.log.Warn("captures refused: as many run as allowed", "max", maxCaptures, "refused", c.refused)
			c.refused, c.lastLog = 0, now
		}
		return nil, api.Errorf(api.ErrConflict, api.ReasonTooManyCaptures,
			"capture %s: %d captures are running, as many as tapswitchd runs at once; end one first", what, maxCaptures)
	}
	c.n++
	return stop, nil
}

func (d *Daemon) releaseCaptureSlot() {
	d.captures.mu.Lock()
	d.captures.n--
	d.captures.mu.Unlock()
}

// captureRun is an opened capture, holding its slot until it ends.
type captureRun struct {
	d    *Daemon
	what string
	s    *capture.Session
	once sync.Once
}

func (r *captureRun) release() { r.once.Do(r.d.releaseCaptureSlot) }

// Close implements apiserver.CaptureRun.
func (r *captureRun) Close() {
	r.s.Close()
	r.release()
}

// Run implements apiserver.CaptureRun.
func (r *captureRun) Run(ctx context.Context, w io.Writer, flush func()) (api.CaptureStats, error) {
	defer r.release()
	st, err := r.s.Run(ctx, w, flush)
	r.d.log.Info("capture ended", "of", r.what, "end", st.End, "gone", st.Gone, "packets", st.Packets,
		"frames", st.Frames, "lost", st.Lost, "unsegmented", st.Unsplit)
	return api.CaptureStats{Packets: st.Packets, Frames: st.Frames, Lost: st.Lost, End: string(st.End), Gone: st.Gone}, err
}
