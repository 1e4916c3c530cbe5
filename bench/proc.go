package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// verbose makes every command line show on stderr (-v).
var verbose bool

// logf prints progress to stderr so that stdout carries only the report.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func debugf(format string, args ...any) {
	if verbose {
		logf("  "+format, args...)
	}
}

// command builds a child that is insulated from the terminal: a Ctrl-C
// reaches only this program, which then stops its children in the order
// teardown needs (daemon before namespaces), instead of all of them at once.
// An interrupted run kills the child through ctx.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	setProcAttr(cmd)
	debugf("$ %s", commandLine(name, args))
	return cmd
}

func commandLine(name string, args []string) string {
	return strings.Join(append([]string{name}, args...), " ")
}

// run runs a command to completion and returns its stdout. The error
// carries stderr, which is where ip, iperf3 and the tapswitch CLI say why.
func run(ctx context.Context, name string, args ...string) (string, error) {
	return runWatched(ctx, "", nil, name, args...)
}

// runInput is run with stdin fed from input, for `ip -batch -`.
func runInput(ctx context.Context, input, name string, args ...string) (string, error) {
	return runWatched(ctx, input, nil, name, args...)
}

// runWatched is runInput with watch, when not nil, called alongside the
// command (see runCmd).
func runWatched(ctx context.Context, input string, watch watcher, name string, args ...string) (string, error) {
	cmd := command(ctx, name, args...)
	if input != "" {
		cmd.Stdin = strings.NewReader(input)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := runCmd(cmd, watch); err != nil {
		if ctx.Err() != nil {
			return stdout.String(), fmt.Errorf("%s: %w", commandLine(name, args), ctx.Err())
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "no output"
		}
		return stdout.String(), fmt.Errorf("%s: %w: %s", commandLine(name, args), err, msg)
	}
	return stdout.String(), nil
}

// A watcher looks at a child while it runs, as the CPU accounting does
// (see cpuWatch). pid is the child's; exited is closed once the child has
// exited and been reaped, after which the pid may belong to another
// process.
type watcher func(pid int, exited <-chan struct{})

// runCmd runs cmd to completion like cmd.Run, with watch, when not nil,
// called alongside it; it returns once both are done, so whatever watch
// wrote is the caller's to read.
func runCmd(cmd *exec.Cmd, watch watcher) error {
	if watch == nil {
		return cmd.Run()
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { watch(cmd.Process.Pid, exited) })
	err := cmd.Wait()
	close(exited)
	wg.Wait()
	return err
}

// watchAll returns a watcher that runs each of ws side by side, the nil
// ones left out, and returns once all have.
func watchAll(ws ...watcher) watcher {
	return func(pid int, exited <-chan struct{}) {
		var wg sync.WaitGroup
		for _, w := range ws {
			if w != nil {
				wg.Go(func() { w(pid, exited) })
			}
		}
		wg.Wait()
	}
}

// tailBuffer keeps the last max bytes written to it. A background daemon
// may log for the whole run; only its last words explain a failure.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}

// proc is a background child: a server or the daemon under test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	output *tailBuffer
	done   chan struct{}
	err    error // valid once done is closed
}

func startProc(name string, args ...string) (*proc, error) {
	p := &proc{
		name:   commandLine(name, args),
		cmd:    exec.Command(name, args...),
		output: &tailBuffer{max: 64 << 10},
		done:   make(chan struct{}),
	}
	setProcAttr(p.cmd)
	debugf("$ %s &", p.name)
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the child to exit by itself.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stop asks the child to exit with SIGTERM and kills it if it has not
// after grace. Only a kill is an error: servers such as iperf3 exit non-zero
// on SIGTERM by design; callers that care about the exit status (the daemon)
// read p.err themselves.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s (pid %d): %w", p.name, p.pid(), err)
	}
	if p.wait(grace) {
		return nil
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("stop %s (pid %d): still running %v after SIGTERM; killed", p.name, p.pid(), grace)
}

// sleep waits d unless the run is interrupted first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
