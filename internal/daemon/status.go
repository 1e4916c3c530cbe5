package daemon

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/version"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// Status implements apiserver.Backend.
func (d *Daemon) Status() api.Status {
	d.mu.Lock()
	nets, ports := len(d.nets), 0
	for _, p := range d.ports {
		if p.kind != api.KindGateway {
			ports++
		}
	}
	var ov api.Status
	d.overlayStatusLocked(&ov)
	d.mu.Unlock()
	first := -1.0
	if ns := d.firstForward.Load(); ns >= 0 {
		first = ms(time.Duration(ns))
	}
	return api.Status{
		Version:        version.String(),
		PID:            os.Getpid(),
		StartedAt:      d.cfg.Started,
		Goroutines:     runtime.NumGoroutine(),
		OpenFDs:        openFDs(),
		RSSBytes:       rssBytes(),
		Networks:       nets,
		Ports:          ports,
		RestoredPorts:  d.restored,
		DroppedPorts:   d.dropped,
		RestoreMs:      ms(d.ready),
		FirstForwardMs: first,
		Cluster:        ov.Cluster,
		Tunnel:         ov.Tunnel,
	}
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// openFDs counts the process's open file descriptors, the one used to
// count them left out; -1 if /proc cannot say.
func openFDs() int {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return -1
	}
	return len(names) - 1
}

// rssBytes is the process's resident set size (VmRSS), or 0 if /proc
// cannot say.
func rssBytes() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// Polling intervals of watchFirstForward: fine while a restarted daemon
// is expected to take its traffic back, coarse after, when only a daemon
// nobody sends through is still waiting.
const (
	firstForwardPoll     = time.Millisecond
	firstForwardSlowPoll = 100 * time.Millisecond
	firstForwardFastFor  = 10 * time.Second
)

// watchFirstForward records when the switch first forwards a frame (a
// port's tx counter leaves zero), for Status. It reads the counters the
// forwarding path keeps anyway, so the path itself pays nothing; the
// price is the polling interval, a millisecond of resolution. It ends
// with the first frame, or when the daemon stops.
func (d *Daemon) watchFirstForward() {
	defer close(d.watchDone)
	t := time.NewTimer(0)
	defer t.Stop()
	var ports []*vswitch.Port
	for i := 0; ; i++ {
		select {
		case <-d.stopWatch:
			return
		case <-t.C:
		}
		// The port list changes only with attach and detach; reading it
		// every few polls keeps the switch's lock out of the loop.
		if i%16 == 0 {
			ports = d.sw.Ports()
		}
		for _, p := range ports {
			if p.Counters().TxFrames > 0 {
				d.firstForward.Store(int64(time.Since(d.cfg.Started)))
				d.log.Info("first frame forwarded", "since_start", time.Since(d.cfg.Started))
				return
			}
		}
		if time.Since(d.cfg.Started) < firstForwardFastFor {
			t.Reset(firstForwardPoll)
		} else {
			t.Reset(firstForwardSlowPoll)
		}
	}
}
