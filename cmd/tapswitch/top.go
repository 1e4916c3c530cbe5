package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tapswitch/tapswitch/api"
)

// top draws with plain ANSI sequences on a terminal put in raw mode by
// golang.org/x/term (kept by the Go team, already in the module graph,
// and nothing more than raw mode and the size): a table redrawn once a
// second needs no widget library, and without one the command stays a
// few hundred lines that any terminal (tmux, a serial console, a dumb
// ssh client) draws the same.

func newTop(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show live per-port frame, byte and drop rates",
		Long: `Show every port's receive and transmit rates (frames and bytes a second)
and its drops a second, refreshed each --interval, busiest first. It reads
the ports' counters (GET /v1/ports) and shows their change.

Keys: q or Ctrl-C quits; d shows or hides the drops by reason; s changes
the order (bytes, frames, drops, name); a shows or hides the networks'
gateway ports.

Not on a terminal, or with -n or --once, it prints one table per interval
instead of drawing, for scripts: --once prints one table of the rates
over one interval, -n N prints N.`,
		Example: `  tapswitch top
  tapswitch top --once
  tapswitch top -n 5 --interval 2s --drops`,
		Args: cobra.NoArgs,
	}
	v := topView{}
	var interval time.Duration
	var count int
	var once bool
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between two readings of the counters")
	cmd.Flags().IntVarP(&count, "count", "n", 0, "print N tables, one per interval, then exit (0: for ever: drawing on a terminal, else a table per interval)")
	cmd.Flags().BoolVar(&once, "once", false, "print one table of the rates over one interval and exit (as -n 1)")
	cmd.Flags().BoolVar(&v.drops, "drops", false, "show each port's drops by reason")
	cmd.Flags().BoolVarP(&v.all, "all", "a", false, "show the networks' gateway ports too")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if interval < 100*time.Millisecond {
			return fmt.Errorf("--interval %s: must be at least 100ms", interval)
		}
		if count < 0 {
			return fmt.Errorf("--count %d: must be 0 or more", count)
		}
		if once {
			if cmd.Flags().Changed("count") && count != 1 {
				return fmt.Errorf("--once prints one table and -n %d asks for %d: give one of them", count, count)
			}
			count = 1
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		t := &topper{c: g.client(), view: v, interval: interval}
		in, out := int(os.Stdin.Fd()), int(os.Stdout.Fd())
		if count == 0 && term.IsTerminal(in) && term.IsTerminal(out) && cmd.OutOrStdout() == os.Stdout {
			return t.interactive(ctx, in, out)
		}
		err := t.batch(ctx, cmd.OutOrStdout(), count)
		if err != nil {
			return g.advise(cmd, err, "")
		}
		return nil
	}
	return cmd
}

// topView is what top shows and how.
type topView struct {
	// drops shows the drops by reason under each port.
	drops bool
	// all shows the gateways too.
	all bool
	// sort is the order: one of topSorts.
	sort int
	// keys shows which keys do what, when drawing on a terminal.
	keys bool
}

// topSorts are the orders top cycles through.
var topSorts = []string{"bytes", "frames", "drops", "name"}

// sample is one reading of the ports' counters.
type sample struct {
	at    time.Time
	ports []api.Port
}

// rateRow is one port's rates between two samples.
type rateRow struct {
	name, network    string
	rxFrames, rxByte float64
	txFrames, txByte float64
	drops            float64
	// dropBy are the drops a second by reason, those that rose only.
	dropBy map[string]float64
	// fresh: the port was not in the earlier sample, so its rates are
	// since the later one only (zero).
	fresh bool
}

// rates returns the rates of every port of cur between prev and cur. A
// port is known by its id, so one detached and attached again under the
// same name starts afresh.
func rates(prev, cur sample) []rateRow {
	dt := cur.at.Sub(prev.at).Seconds()
	before := make(map[uint32]api.Port, len(prev.ports))
	for _, p := range prev.ports {
		before[p.ID] = p
	}
	rows := make([]rateRow, 0, len(cur.ports))
	for _, p := range cur.ports {
		r := rateRow{name: p.Name, network: p.Network}
		b, ok := before[p.ID]
		if !ok || dt <= 0 || b.Name != p.Name {
			r.fresh = true
			rows = append(rows, r)
			continue
		}
		per := func(now, then uint64) float64 {
			if now < then {
				return 0
			}
			return float64(now-then) / dt
		}
		r.rxFrames, r.rxByte = per(p.Stats.RxFrames, b.Stats.RxFrames), per(p.Stats.RxBytes, b.Stats.RxBytes)
		r.txFrames, r.txByte = per(p.Stats.TxFrames, b.Stats.TxFrames), per(p.Stats.TxBytes, b.Stats.TxBytes)
		for reason, n := range p.Stats.Drops {
			if d := per(n, b.Stats.Drops[reason]); d > 0 {
				if r.dropBy == nil {
					r.dropBy = make(map[string]float64)
				}
				r.dropBy[reason] = d
				r.drops += d
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// sortRows orders rows as v says, busiest first, by name among equals.
func sortRows(rows []rateRow, v topView) {
	key := func(r rateRow) float64 {
		switch topSorts[v.sort] {
		case "frames":
			return r.rxFrames + r.txFrames
		case "drops":
			return r.drops
		case "name":
			return 0
		}
		return r.rxByte + r.txByte
	}
	slices.SortStableFunc(rows, func(a, b rateRow) int {
		if c := cmp.Compare(key(b), key(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
}

// column is one column of the table: its head, its width, and the
// narrowest terminal that shows it.
type column struct {
	head  string
	width int
	// minTerm is the terminal width under which the column is left out.
	minTerm int
	value   func(r rateRow) string
}

// topColumns are the table's columns after the port's name, in order.
// The name takes what is left, from 8 to 24 characters; on a narrow
// terminal the network and then the frame rates go first, so that the
// name, the byte rates and the drops fit in 40 columns.
var topColumns = []column{
	{"NETWORK", 12, 90, func(r rateRow) string { return r.network }},
	{"RX FR/s", 8, 70, func(r rateRow) string { return si(r.rxFrames) }},
	{"RX B/s", 8, 0, func(r rateRow) string { return si(r.rxByte) }},
	{"TX FR/s", 8, 70, func(r rateRow) string { return si(r.txFrames) }},
	{"TX B/s", 8, 0, func(r rateRow) string { return si(r.txByte) }},
	{"DROPS/s", 8, 0, func(r rateRow) string { return si(r.drops) }},
}

// renderTop draws one screen of top: a title line, a line of totals, the
// table's head and one line a port (and one of drops by reason under a
// dropping port, with v.drops), each at most width characters, at most
// height lines (0: no bound) with the last saying how many ports did not
// fit. status is a line for the user (an error), or "".
// keyHints is the header's list of keys, on a terminal only.
func keyHints(v topView) string {
	if !v.keys {
		return ""
	}
	return " - q quit, d drops, s sort, a all"
}

func renderTop(rows []rateRow, v topView, at time.Time, width, height int, status string) []string {
	width = max(width, 20)
	sortRows(rows, v)
	var tot rateRow
	for _, r := range rows {
		tot.rxFrames += r.rxFrames
		tot.rxByte += r.rxByte
		tot.txFrames += r.txFrames
		tot.txByte += r.txByte
		tot.drops += r.drops
	}
	lines := []string{
		fmt.Sprintf("tapswitch top - %s - %d ports - sort: %s%s", at.Format("15:04:05"), len(rows), topSorts[v.sort], keyHints(v)),
		fmt.Sprintf("rx %s frames/s %sB/s  tx %s frames/s %sB/s  drops %s/s",
			si(tot.rxFrames), si(tot.rxByte), si(tot.txFrames), si(tot.txByte), si(tot.drops)),
	}
	if status != "" {
		lines = append(lines, status)
	}
	var cols []column
	fixed := 0
	for _, c := range topColumns {
		if width >= c.minTerm {
			cols = append(cols, c)
			fixed += c.width + 1
		}
	}
	nameW := min(max(width-fixed, 8), 24)
	row := func(name string, cells []string) string {
		var b strings.Builder
		b.WriteString(pad(name, nameW))
		for i, c := range cols {
			b.WriteByte(' ')
			if i == 0 && c.head == "NETWORK" {
				b.WriteString(pad(cells[i], c.width))
			} else {
				b.WriteString(fmt.Sprintf("%*s", c.width, cells[i]))
			}
		}
		return b.String()
	}
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.head
	}
	lines = append(lines, "", row("PORT", heads))
	for i, r := range rows {
		if height > 0 && len(lines) >= height-1 && i < len(rows) {
			lines = append(lines, fmt.Sprintf("... %d more ports (a taller terminal shows them)", len(rows)-i))
			break
		}
		cells := make([]string, len(cols))
		for j, c := range cols {
			cells[j] = c.value(r)
		}
		lines = append(lines, row(r.name, cells))
		if v.drops && len(r.dropBy) > 0 {
			reasons := make([]string, 0, len(r.dropBy))
			for k := range r.dropBy {
				reasons = append(reasons, k)
			}
			slices.Sort(reasons)
			var b strings.Builder
			b.WriteString("  drops/s:")
			for _, k := range reasons {
				b.WriteString(" " + k + "=" + si(r.dropBy[k]))
			}
			lines = append(lines, b.String())
		}
	}
	if len(rows) == 0 {
		lines = append(lines, "(no ports attached)")
	}
	for i, l := range lines {
		if len(l) > width {
			lines[i] = l[:width]
		}
	}
	return lines
}

// pad cuts or pads s to exactly w characters (names are ASCII).
func pad(s string, w int) string {
	if len(s) > w {
		if w <= 1 {
			return s[:w]
		}
		return s[:w-1] + "~"
	}
	return s + strings.Repeat(" ", w-len(s))
}

// si writes a rate with an SI prefix in at most 6 characters: 0, 950,
// 1.2k, 12.3M, 4.5G.
func si(v float64) string {
	switch {
	case v <= 0:
		return "0"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v < 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	for _, u := range []string{"k", "M", "G", "T"} {
		v /= 1000
		if v < 999.95 || u == "T" {
			if v < 10 {
				return strconv.FormatFloat(v, 'f', 2, 64) + u
			}
			if v < 100 {
				return strconv.FormatFloat(v, 'f', 1, 64) + u
			}
			return strconv.FormatFloat(v, 'f', 0, 64) + u
		}
	}
	return "inf"
}

// topper reads the counters and shows the rates.
type topper struct {
	c        *api.Client
	view     topView
	interval time.Duration
}

// read takes a sample of the ports' counters.
func (t *topper) read(ctx context.Context) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, max(t.interval, 2*time.Second))
	defer cancel()
	list := t.c.Ports
	if t.view.all {
		list = t.c.AllPorts
	}
	ports, err := list(ctx)
	return sample{at: time.Now(), ports: ports}, err
}

// batch prints count tables, one per interval.
func (t *topper) batch(ctx context.Context, w io.Writer, count int) error {
	width := 120
	if cols, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && cols > 0 {
		width = cols
	}
	prev, err := t.read(ctx)
	if err != nil {
		return err
	}
	for i := 0; count == 0 || i < count; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(t.interval):
		}
		cur, err := t.read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		for _, l := range renderTop(rates(prev, cur), t.view, cur.at, width, 0, "") {
			if _, err := fmt.Fprintln(w, l); err != nil {
				return err
			}
		}
		prev = cur
	}
	return nil
}

// ANSI sequences top draws with.
const (
	altScreenOn  = "\x1b[?1049h"
	altScreenOff = "\x1b[?1049l"
	cursorHide   = "\x1b[?25l"
	cursorShow   = "\x1b[?25h"
	home         = "\x1b[H"
	clearEOL     = "\x1b[K"
	clearEOS     = "\x1b[J"
)

// interactive draws on the terminal until q, Ctrl-C or a signal, and
// gives the terminal back as it found it, whatever ends it.
func (t *topper) interactive(ctx context.Context, in, out int) error {
	old, err := term.MakeRaw(in)
	if err != nil {
		return fmt.Errorf("put the terminal in raw mode: %w (use --once or -n N to print instead)", err)
	}
	t.view.keys = true
	w := os.Stdout
	fmt.Fprint(w, altScreenOn+cursorHide)
	defer func() {
		fmt.Fprint(w, cursorShow+altScreenOff)
		term.Restore(in, old)
	}()
	keys := make(chan byte, 16)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := os.Stdin.Read(buf)
			for _, k := range buf[:n] {
				keys <- k
			}
			if err != nil {
				close(keys)
				return
			}
		}
	}()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)

	var prev, cur sample
	var rows []rateRow
	status := "reading counters..."
	draw := func() {
		width, height, err := term.GetSize(out)
		if err != nil {
			width, height = 80, 24
		}
		lines := renderTop(slices.Clone(rows), t.view, time.Now(), width, height, status)
		var b strings.Builder
		b.WriteString(home)
		for i, l := range lines {
			if i > 0 {
				b.WriteString("\r\n")
			}
			b.WriteString(l + clearEOL)
		}
		b.WriteString(clearEOS)
		io.WriteString(w, b.String())
	}
	refresh := func() {
		s, err := t.read(ctx)
		if err != nil {
			// Figures of a daemon that does not answer are not shown as
			// if live: the table empties until it answers again, and the
			// rates start afresh then.
			status = "tapswitch: cannot read the counters (" + err.Error() + "); is tapswitchd running? The table comes back when it answers."
			rows, cur = nil, sample{}
			return
		}
		status = ""
		prev, cur = cur, s
		if prev.at.IsZero() {
			prev = cur
		}
		rows = rates(prev, cur)
	}
	refresh()
	draw()
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			refresh()
		case <-winch:
		case k, ok := <-keys:
			if !ok {
				return nil
			}
			switch k {
			case 'q', 'Q', 3, 4: // Ctrl-C and Ctrl-D too: raw mode turns them into bytes
				return nil
			case 'd':
				t.view.drops = !t.view.drops
			case 's':
				t.view.sort = (t.view.sort + 1) % len(topSorts)
			case 'a':
				t.view.all = !t.view.all
				// A new set of ports: rates start again.
				cur = sample{}
				refresh()
			default:
				continue
			}
		}
		draw()
	}
}
