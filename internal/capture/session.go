package capture

import (
	"context"
	"errors"
	"io"
	"time"

	vswitch "github.com/tapswitch/tapswitch/switch"
)

// End says why a capture ended.
type End string

// The ends of a capture.
const (
	EndCount   End = "count"        // the packet count was reached
	EndClient  End = "client"       // the client went away or asked to stop
	EndGone    End = "source_gone"  // the port was detached or the network removed
	EndStopped End = "daemon_stops" // the daemon is stopping
	EndError   End = "error"        // writing failed
)

// Stats are a capture's counts.
type Stats struct {
	// Packets is how many packets were written, segments counted one
	// by one.
	Packets uint64
	// Frames is how many frames the switch offered the capture (after
	// its port and filter), and Lost how many of those were lost
	// because the capture's reader had fallen behind.
	Frames, Lost uint64
	// Unsplit counts super-frames written whole (see Writer.Unsplit).
	Unsplit uint64
	End     End
	// Gone says what went, for EndGone.
	Gone string
}

// Session is one running capture: an observer and the Writer its
// records go to.
type Session struct {
	obs *vswitch.Observer
	cfg WriterConfig
	// alive reports why the captured port or network is gone, or nil.
	alive func() error
	// stop is closed when the daemon stops.
	stop <-chan struct{}
}

// aliveInterval is how often a session checks that its port or network
// is still there: a capture of a detached port ends within it.
const aliveInterval = 250 * time.Millisecond

// NewSession returns a session writing what obs sees, as cfg says, until
// alive returns an error or stop is closed. The session owns obs and
// closes it when Run returns.
func NewSession(obs *vswitch.Observer, cfg WriterConfig, alive func() error, stop <-chan struct{}) *Session {
	return &Session{obs: obs, cfg: cfg, alive: alive, stop: stop}
}

// Close ends the session without running it.
func (s *Session) Close() { s.obs.Close() }

// Run writes pcapng to w until ctx ends, the count is reached, the port
// or network goes or the daemon stops; flush, if set, is called after
// each burst of packets written, for a live reader. The records taken
// before the end are written first, unless the count is reached or a
// write fails.
func (s *Session) Run(ctx context.Context, w io.Writer, flush func()) (st Stats, err error) {
	defer func() {
		s.obs.Close()
		st.Frames, st.Lost = s.obs.Stats()
	}()
	wr, err := NewWriter(w, s.cfg)
	if err != nil {
		return Stats{End: EndError}, err
	}
	defer func() {
		st.Packets, st.Unsplit = wr.Written(), wr.Unsplit()
	}()
	if err := s.flush(wr, flush); err != nil {
		return Stats{End: EndClient}, err
	}
	tick := time.NewTicker(aliveInterval)
	defer tick.Stop()
	for {
		select {
		case r := <-s.obs.C():
			err := wr.Write(r)
			s.obs.Release(r)
			switch {
			case errors.Is(err, ErrCountReached):
				return Stats{End: EndCount}, s.flush(wr, flush)
			case err != nil:
				return Stats{End: EndClient}, err
			}
			if wr.limit > 0 && wr.written >= wr.limit {
				return Stats{End: EndCount}, s.flush(wr, flush)
			}
			if len(s.obs.C()) == 0 {
				if err := s.flush(wr, flush); err != nil {
					return Stats{End: EndClient}, err
				}
			}
		case <-ctx.Done():
			// A client that stopped still reads the end of the stream; one
			// that went away fails the first write.
			return Stats{End: EndClient}, s.drain(wr, flush)
		case <-s.stop:
			return Stats{End: EndStopped}, s.drain(wr, flush)
		case <-tick.C:
			if gone := s.alive(); gone != nil {
				return Stats{End: EndGone, Gone: gone.Error()}, s.drain(wr, flush)
			}
		}
	}
}

// drain writes the records already taken, then flushes.
func (s *Session) drain(wr *Writer, flush func()) error {
	s.obs.Close()
	for {
		select {
		case r := <-s.obs.C():
			err := wr.Write(r)
			s.obs.Release(r)
			if errors.Is(err, ErrCountReached) {
				return s.flush(wr, flush)
			}
			if err != nil {
				return err
			}
		default:
			return s.flush(wr, flush)
		}
	}
}

func (s *Session) flush(wr *Writer, flush func()) error {
	if err := wr.Flush(); err != nil {
		return err
	}
	if flush != nil {
		flush()
	}
	return nil
}
