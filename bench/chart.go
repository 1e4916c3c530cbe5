package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// The chart of a comparison: one panel per row of the table (metric),
// one horizontal bar per system, in run order. Every axis starts at
// zero, so that bar lengths compare as the values do; each bar is
// labelled with its value and its ratio to the bridge, as in the table.
// Hand-written SVG: a few rectangles, lines and texts need no library.

// Layout, in SVG user units (pixels at 100%).
const (
	chartWidth   = 960
	chartMargin  = 16
	labelWidth   = 150 // system names, left of the bars
	barAreaWidth = 420
	barHeight    = 18
	rowHeight    = 26
	panelTitle   = 26 // the metric's name above its bars
	axisHeight   = 30 // ticks and their labels below the bars
	panelGap     = 18
	headerHeight = 54
)

// systemColors tells the systems apart; the bridge, the yardstick, is grey.
var systemColors = map[string]string{
	"bridge":    "#8c8c8c",
	"tapswitch": "#1f77b4",
	baseSystem:  "#9ecae1",
	"ovs":       "#2ca02c",
}

// otherColor is for a system not in systemColors.
const otherColor = "#9467bd"

// variantColors tell the variants of a run with -variant apart, in the
// order they ran: blues, tapswitch's colour first.
var variantColors = []string{"#1f77b4", "#6baed6", "#08519c", "#9ecae1", "#3182bd", "#c6dbef", "#084594"}

// systemColor is the colour of system's bars; variants are the nth of
// systems (each once, in run order) to be a variant.
func systemColor(system string, systems []string) string {
	if c, ok := systemColors[system]; ok {
		return c
	}
	if isVariantSystem(system) {
		var n int
		for _, s := range systems {
			if s == system {
				return variantColors[n%len(variantColors)]
			}
			if isVariantSystem(s) {
				n++
			}
		}
	}
	return otherColor
}

// chartPath is where the chart of the results at jsonPath goes: beside
// them, named like them.
func chartPath(jsonPath string) string {
	return strings.TrimSuffix(jsonPath, ".json") + ".svg"
}

// redrawChart draws the chart of the results in jsonPath, beside them.
func redrawChart(jsonPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	if err := r.writeChartFile(chartPath(jsonPath)); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	fmt.Printf("chart: %s\n", chartPath(jsonPath))
	return nil
}

func (r *report) writeChartFile(path string) error {
	var b bytes.Buffer
	if err := r.writeChart(&b); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// displayUnit picks the unit a panel's axis is drawn in, from the
// largest value on it, and what a raw value is divided by for it.
func displayUnit(unit string, max float64) (name string, div float64) {
	switch unit {
	case unitBits:
		switch {
		case max >= 1e9:
			return "Gbit/s", 1e9
		case max >= 1e6:
			return "Mbit/s", 1e6
		}
		return "kbit/s", 1e3
	case unitPackets:
		if max >= 1e6 {
			return "Mpps", 1e6
		}
		return "kpps", 1e3
	case unitMicros:
		return "us", 1
	}
	return unit, 1
}

// niceStep is a round tick interval (1, 2 or 5 times a power of ten)
// that divides [0, max] into about four.
func niceStep(max float64) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// chartRow is one bar: a system's value for a metric.
type chartRow struct {
	system string
	value  float64   // mean of its good passes; 0 when none
	passes int       // good passes
	vals   []float64 // each good pass's value, when more than one
	failed bool      // ran, and no pass measured it
}

func (r *report) chartRows(mt metric) []chartRow {
	var rows []chartRow
	for _, sys := range systemsInOrder(r.Systems) {
		vals, mean := passValues(r.Systems, sys, mt.Key)
		var good []float64
		for _, v := range vals {
			if v > 0 {
				good = append(good, v)
			}
		}
		row := chartRow{system: sys, value: mean, passes: len(good), failed: len(good) == 0}
		if len(good) > 1 {
			row.vals = good
		}
		rows = append(rows, row)
	}
	return rows
}

type svgWriter struct {
	b   *bytes.Buffer
	err error
}

func (s *svgWriter) printf(format string, args ...any) {
	fmt.Fprintf(s.b, format, args...)
}

// text writes a text element; content is escaped.
func (s *svgWriter) text(x, y float64, attrs, content string) {
	var esc bytes.Buffer
	if err := xml.EscapeText(&esc, []byte(content)); err != nil && s.err == nil {
		s.err = err
	}
	s.printf(`<text x="%.1f" y="%.1f"%s>%s</text>`+"\n", x, y, attrs, esc.String())
}

// writeChart draws the comparison's rows as an SVG image.
func (r *report) writeChart(w io.Writer) error {
	if len(r.Metrics) == 0 || len(r.Systems) == 0 {
		return errors.New("chart: no comparison in these results")
	}
	systems := systemsInOrder(r.Systems)
	panelHeight := panelTitle + len(systems)*rowHeight + axisHeight
	height := headerHeight + len(r.Metrics)*(panelHeight+panelGap) + 2*chartMargin
	var body bytes.Buffer
	s := &svgWriter{b: &body}
	s.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	s.printf(`<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
	title := "Side by side: " + strings.Join(systems, ", ")
	if r.Setting != "" {
		title += ", " + r.Setting
	}
	s.text(chartMargin, chartMargin+14, ` class="title" font-size="16" font-weight="bold"`, title)
	sub := fmt.Sprintf("%s UTC, %d s per test, %d CPUs, Linux %s", r.Date.UTC().Format("2006-01-02 15:04"), r.SecondsPerTest, r.Machine.NProc, r.Machine.Kernel)
	if r.hasBaseline() {
		sub += "; ratios are to the bridge (the mean of its passes)"
		if r.hasSystem(peer) {
			sub += " and to ovs"
		}
	}
	if len(systems) < len(r.Systems) {
		sub += "; a bar of several passes is their mean, marks across it each pass"
	}
	s.text(chartMargin, chartMargin+34, ` class="subtitle" fill="#444444"`, sub)

	x0 := float64(chartMargin + labelWidth)
	y := float64(chartMargin + headerHeight)
	for _, mt := range r.Metrics {
		rows := r.chartRows(mt)
		max := 0.0
		for _, row := range rows {
			max = math.Max(max, row.value)
		}
		unitName, div := displayUnit(mt.Unit, max)
		step := niceStep(max / div)
		axisMax := step * math.Ceil(max/div/step)
		if axisMax == 0 {
			axisMax = step
		}
		scale := barAreaWidth / axisMax // pixels per display unit
		heading := fmt.Sprintf("%s (%s)", mt.Label, unitName)
		if mt.LowerIsBetter {
			heading += ", lower is better"
		} else {
			heading += ", higher is better"
		}
		s.text(chartMargin, y+16, ` class="metric" font-weight="bold"`, heading)
		top := y + panelTitle
		axisY := top + float64(len(rows)*rowHeight)
		// The axis first, under the bars: a line at zero up the bars,
		// grid lines, ticks and their values below them.
		s.printf(`<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000"/>`+"\n", x0, top-2, x0, axisY)
		s.printf(`<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000"/>`+"\n", x0, axisY, x0+barAreaWidth, axisY)
		for v := 0.0; v <= axisMax+step/1e6; v += step {
			tx := x0 + v*scale
			if v > 0 {
				s.printf(`<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd"/>`+"\n", tx, top-2, tx, axisY)
			}
			s.printf(`<line class="tick" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000"/>`+"\n", tx, axisY, tx, axisY+4)
			s.text(tx, axisY+16, ` class="tick-label" text-anchor="middle"`, trimFloat(v))
		}
		s.text(x0+barAreaWidth+24, axisY+16, ` class="unit" fill="#444444"`, unitName)
		base, hasBase := baselineValue(r.Systems, mt.Key)
		_, ovs := passValues(r.Systems, peer, mt.Key)
		for i, row := range rows {
			ry := top + float64(i*rowHeight)
			s.text(chartMargin, ry+barHeight-5, ` class="system"`, row.system)
			if row.failed {
				s.text(x0+4, ry+barHeight-5, ` class="value" fill="#d62728"`, "failed: no value")
				continue
			}
			width := row.value / div * scale
			color := systemColor(row.system, systems)
			s.printf(`<rect class="bar" data-system="%s" data-metric="%s" x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"/>`+"\n",
				row.system, mt.Key, x0, ry, width, barHeight, color)
			// A bar that is a mean shows its passes as marks across it.
			for _, v := range row.vals {
				px := x0 + v/div*scale
				s.printf(`<line class="pass" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000" stroke-width="2"/>`+"\n", px, ry-3, px, ry+barHeight+3)
			}
			label := formatValue(mt.Unit, row.value)
			switch {
			case row.system == baseline && row.passes > 1:
				label += fmt.Sprintf(", mean of %d passes", row.passes)
			case row.system != baseline && hasBase:
				label += fmt.Sprintf(", %.2f× bridge", row.value/base)
			}
			if row.system != baseline && row.system != peer && ovs > 0 {
				label += fmt.Sprintf(", %.2f× ovs", row.value/ovs)
			}
			if row.system != baseline && row.passes > 1 {
				label += fmt.Sprintf(" (mean of %d passes)", row.passes)
			}
			s.text(x0+width+6, ry+barHeight-5, ` class="value"`, label)
		}
		y += float64(panelHeight + panelGap)
	}
	s.printf("</svg>\n")
	if s.err != nil {
		return fmt.Errorf("chart: %w", s.err)
	}
	_, err := w.Write(body.Bytes())
	return err
}

// trimFloat writes a tick value without trailing zeros: 2.5, 10, 0.25.
func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
