package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// scaleRow is one line of the scale table.
type scaleRow struct {
	what, value, target, result string
}

// verdict says whether a stated target was met. The word is plain so the
// table reads at a glance; a miss is in capitals because it is the line
// someone has to act on.
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

func msValue(v float64) string { return fmt.Sprintf("%.1f ms", v) }

// cell is a measurement as a table cell.
func cell(m *measurement) string {
	switch {
	case m == nil:
		return "-"
	case !m.ok():
		return "error"
	}
	return formatValue(m.Unit, m.Value)
}

// rows lays out the scale figures, with the target each is held to.
func (r *scaleResult) rows() []scaleRow {
	var rows []scaleRow
	latency := func(what string, l *latencySummary, target float64) {
		if l == nil {
			rows = append(rows, scaleRow{what, "-", "", ""})
			return
		}
		rows = append(rows, scaleRow{
			what:   fmt.Sprintf("%s (n=%d)", what, l.N),
			value:  fmt.Sprintf("median %s, p90 %s, max %s", msValue(l.Median), msValue(l.P90), msValue(l.Max)),
			target: fmt.Sprintf("median < %.0f ms", target),
			result: verdict(l.Median < target),
		})
	}
	latency("attach, API call", r.Attach, attachTargetMs)
	latency("detach, API call", r.Detach, detachTargetMs)
	if r.CLIAttachMs > 0 {
		v := msValue(r.CLIAttachMs)
		if r.APIAttachMs > 0 {
			v += fmt.Sprintf(" (API, same state: %s)", msValue(r.APIAttachMs))
		}
		rows = append(rows, scaleRow{"attach, CLI end to end (n=1)", v, "", "for reference"})
	}

	if m := r.Memory; m != nil {
		rows = append(rows,
			scaleRow{fmt.Sprintf("daemon memory, %d ports, table empty", m.Ports), fmt.Sprintf("VmRSS %.1f MiB", m.RSSBeforeMiB), "", ""},
			scaleRow{
				what:   fmt.Sprintf("daemon memory, %d ports, %d MACs", m.Ports, m.MACs),
				value:  fmt.Sprintf("VmRSS %.1f MiB (VmHWM %.1f MiB)", m.RSSMiB, m.HWMMiB),
				target: fmt.Sprintf("VmRSS < %.0f MiB", memoryTargetMiB),
				result: verdict(m.RSSMiB > 0 && m.RSSMiB < memoryTargetMiB),
			},
			scaleRow{
				what:   "learned MACs (API)",
				value:  fmt.Sprintf("%d of limit %d; %d sources sent in %d frames", m.MACs, m.MACLimit, m.FillMACs, m.FillFrames),
				target: fmt.Sprintf("table full (%d)", m.MACLimit),
				result: verdict(m.MACLimit > 0 && m.MACs >= m.MACLimit),
			})
	}

	if a := r.Aggregate; a != nil {
		rows = append(rows,
			scaleRow{fmt.Sprintf("TCP, %d pairs at once, bridge", a.Pairs), cell(a.Bridge), "", ""},
			scaleRow{fmt.Sprintf("TCP, %d pairs at once, tapswitch", a.Pairs), cell(a.Tapswitch), "", ""})
		if a.Ratio > 0 {
			rows = append(rows, scaleRow{"  tapswitch/bridge", formatRatio(a.Ratio, false), "", ""})
		}
	}

	if p := r.Pair; p != nil {
		many := "TCP 1 stream, many ports"
		if r.Memory != nil {
			many = fmt.Sprintf("TCP 1 stream, %d ports, %d MACs", r.Memory.Ports, r.Memory.MACs)
		}
		rows = append(rows,
			scaleRow{"TCP 1 stream, 2 ports", cell(p.Few), "", ""},
			scaleRow{many, cell(p.Many), "", ""})
		what := "  many ports/2 ports"
		if p.FewAgain != nil {
			rows = append(rows, scaleRow{"TCP 1 stream, 2 ports again", cell(p.FewAgain), "", ""})
			what = "  many ports/2 ports (mean)"
		}
		if p.Ratio > 0 {
			rows = append(rows, scaleRow{
				what:   what,
				value:  formatRatio(p.Ratio, false),
				target: fmt.Sprintf(">= %.2fx", crowdedMinRatio),
				result: verdict(p.Ratio >= crowdedMinRatio),
			})
		}
		if p.Many != nil && p.Many.ok() {
			flooded := float64(p.IdleTxFrames) > floodedShare*float64(p.ReceiverFrames)
			result := "not flooded"
			if flooded {
				result = "FLOODED"
			}
			rows = append(rows, scaleRow{
				what:   fmt.Sprintf("  idle port %s meanwhile", p.IdlePort),
				value:  fmt.Sprintf("tx %d frames, drops %d (receiver: tx %d)", p.IdleTxFrames, p.IdleDrops, p.ReceiverFrames),
				target: "unicast once learned",
				result: result,
			})
		}
	}
	return rows
}

// writeScaleTable prints the -scale report.
func (r *report) writeScaleTable(w io.Writer) error {
	r.writeMachine(w)
	fmt.Fprintf(w, "duration: %d s per iperf3 run, %s in all; scale suite: %d namespaces, one tapswitchd\n\n",
		r.SecondsPerTest, (time.Duration(r.ElapsedSeconds) * time.Second).String(), r.Scale.Namespaces)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tvalue\ttarget\tresult")
	for _, row := range r.Scale.rows() {
		// Every row has every cell, empty or not: a row with fewer would
		// end tabwriter's column block and misalign the rows after it.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.what, row.value, row.target, row.result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Padding for the empty cells at the end of a row is trailing blanks.
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	if len(r.Scale.Errors) > 0 {
		fmt.Fprintln(w)
		for _, e := range r.Scale.Errors {
			fmt.Fprintf(w, "failed: %s\n", e)
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
	}
	return nil
}

// driftNote warns when the two 2-port runs of -bracket differ by more
// than the bridge passes of the comparison may.
func (p *scalePair) driftNote() string {
	if p == nil || p.Few == nil || p.FewAgain == nil || !p.Few.ok() || !p.FewAgain.ok() {
		return ""
	}
	lo, hi := min(p.Few.Value, p.FewAgain.Value), max(p.Few.Value, p.FewAgain.Value)
	if lo <= 0 || hi/lo-1 <= driftTolerance {
		return ""
	}
	return fmt.Sprintf("the two 2-port runs differ by %.0f%%; the machine was not steady, treat the many/2 ratio with care", (hi/lo-1)*100)
}
