package main

import (
	"fmt"
	"io"
	"time"
)

// progress tells, on stderr, where a run is: one line as each step (a
// test of a pass, or a step of -scale) begins, with the time spent and
// an estimate of the time left. Lines are never overwritten, so that the
// results and notes logged between them stay, and so that a log file or
// a CI job shows the same as a terminal.
type progress struct {
	w     io.Writer
	total int
	// perStep is the estimate of a step before any has finished: the
	// test's duration, plus the tool's start and stop and the pause.
	perStep time.Duration
	start   time.Time
	now     func() time.Time
	// started counts the steps begun.
	started int
}

func newProgress(w io.Writer, total int, perStep time.Duration) *progress {
	return &progress{w: w, total: total, perStep: perStep, start: time.Now(), now: time.Now}
}

// step announces the next step. Once one has finished, the time left is
// the mean time of the finished steps (set-up, teardown and pauses
// included) times the steps left, this one included.
func (p *progress) step(format string, args ...any) {
	elapsed := p.now().Sub(p.start)
	left := time.Duration(p.total-p.started) * p.perStep
	if p.started > 0 {
		left = elapsed / time.Duration(p.started) * time.Duration(p.total-p.started)
	}
	p.started++
	fmt.Fprintf(p.w, "[%d/%d] %s (elapsed %s, about %s left)\n",
		p.started, p.total, fmt.Sprintf(format, args...), roundDuration(elapsed), roundDuration(left))
}

// done says how long the whole took.
func (p *progress) done(what string) {
	fmt.Fprintf(p.w, "[%d/%d] %s in %s\n", p.started, p.total, what, roundDuration(p.now().Sub(p.start)))
}

// roundDuration shows whole seconds: 1m5s, 42s.
func roundDuration(d time.Duration) string {
	return d.Round(time.Second).String()
}
