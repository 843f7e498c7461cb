package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tenantguard/tenantguard/internal/loadtest"
)

// Errors the input can give; the command exits 2 for all of them.
var (
	errNotReport = errors.New("not a load test report (want the report.json that go run ./hack/loadtest writes)")
	errNoBatches = errors.New("the report has no measured batches (the run stopped before measuring; run the load tool again)")
)

// decodeReport reads one report.json.
func decodeReport(r io.Reader) (*loadtest.Report, error) {
	dec := json.NewDecoder(r)
	var rep *loadtest.Report
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotReport, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the report", errNotReport)
	}
	// Every report the load tool writes has a start time and its levels.
	if rep == nil || rep.Started == "" && len(rep.Levels) == 0 && len(rep.Batches) == 0 {
		return nil, errNotReport
	}
	return rep, nil
}

// side is one side of the comparison and its colour.
type side struct{ name, colour string }

// sides in the order they are drawn and listed. Okabe-Ito vermillion and
// blue stay apart for colour-blind readers too.
var sides = []side{
	{loadtest.Guard, "#D55E00"},
	{loadtest.None, "#0072B2"},
}

// chart is what the SVG shows: one panel per workload, sharing the x axis.
type chart struct {
	command, commit, machine string
	x                        axis
	panels                   []panel
}

// panel is one workload: every batch's p50 and p99 on each side, and the
// lines through their medians per level. Its y axis is its own, so that a
// fast workload is not flattened by a slow one.
type panel struct {
	workload string
	y        axis
	points   []point
	medians  []series
}

// point is one batch's p50 or p99.
type point struct {
	side, stat    string // stat is "p50" or "p99"
	level, batch  int
	ingresses, ms float64
}

// series is the median per level of one side's p50 or p99.
type series struct {
	side, stat string
	ingresses  []float64
	ms         []float64
}

// axis runs from 0 to max with ticks at multiples of step.
type axis struct {
	max, step float64
	ticks     []float64
	decimals  int
}

// newChart lays out a report. Batches without operations measured nothing
// and are left out. A batch on a side other than guard or none, or with a
// negative count or latency, is an error.
func newChart(rep *loadtest.Report) (*chart, error) {
	c := &chart{command: rep.Command, commit: rep.Commit, machine: machine(rep)}
	byWorkload := map[string][]loadtest.Batch{}
	var workloads []string
	var maxIngresses float64
	for i, b := range rep.Batches {
		if !slices.ContainsFunc(sides, func(s side) bool { return s.name == b.Side }) {
			return nil, fmt.Errorf("batches[%d]: side %q: want %s or %s", i, b.Side, loadtest.Guard, loadtest.None)
		}
		if b.Ingresses < 0 || b.P50Ms < 0 || b.P99Ms < 0 {
			return nil, fmt.Errorf("batches[%d]: negative ingresses or latency", i)
		}
		if b.Ops <= 0 {
			continue
		}
		if _, ok := byWorkload[b.Workload]; !ok {
			workloads = append(workloads, b.Workload)
		}
		byWorkload[b.Workload] = append(byWorkload[b.Workload], b)
		maxIngresses = max(maxIngresses, float64(b.Ingresses))
	}
	if len(workloads) == 0 {
		return nil, errNoBatches
	}
	// The load tool's workloads in the order they run, then any others.
	slices.SortStableFunc(workloads, func(a, b string) int {
		ia, ib := slices.Index(loadtest.Workloads, a), slices.Index(loadtest.Workloads, b)
		switch {
		case ia >= 0 && ib >= 0:
			return ia - ib
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		}
		return strings.Compare(a, b)
	})
	var err error
	if c.x, err = niceAxis(maxIngresses, 1, 5); err != nil {
		return nil, fmt.Errorf("existing Ingresses: %w", err)
	}
	for _, w := range workloads {
		p, err := newPanel(w, byWorkload[w])
		if err != nil {
			return nil, fmt.Errorf("workload %q: %w", w, err)
		}
		c.panels = append(c.panels, p)
	}
	return c, nil
}

func newPanel(workload string, batches []loadtest.Batch) (panel, error) {
	p := panel{workload: workload}
	var maxMs float64
	for _, s := range sides {
		levels := map[int][]loadtest.Batch{}
		var order []int
		for _, b := range batches {
			if b.Side != s.name {
				continue
			}
			p.points = append(p.points,
				point{side: s.name, stat: "p50", level: b.Level, batch: b.Index, ingresses: float64(b.Ingresses), ms: b.P50Ms},
				point{side: s.name, stat: "p99", level: b.Level, batch: b.Index, ingresses: float64(b.Ingresses), ms: b.P99Ms})
			maxMs = max(maxMs, b.P50Ms, b.P99Ms)
			if _, ok := levels[b.Level]; !ok {
				order = append(order, b.Level)
			}
			levels[b.Level] = append(levels[b.Level], b)
		}
		if len(order) == 0 {
			continue
		}
		slices.Sort(order)
		p50, p99 := series{side: s.name, stat: "p50"}, series{side: s.name, stat: "p99"}
		for _, l := range order {
			var x, y50, y99 []float64
			for _, b := range levels[l] {
				x = append(x, float64(b.Ingresses))
				y50 = append(y50, b.P50Ms)
				y99 = append(y99, b.P99Ms)
			}
			mx := median(x)
			p50.ingresses, p50.ms = append(p50.ingresses, mx), append(p50.ms, median(y50))
			p99.ingresses, p99.ms = append(p99.ingresses, mx), append(p99.ms, median(y99))
		}
		p.medians = append(p.medians, p50, p99)
	}
	var err error
	if p.y, err = niceAxis(maxMs, 0, 8); err != nil {
		return panel{}, fmt.Errorf("latency: %w", err)
	}
	return p, nil
}

// machine is the subtitle: where and when the run happened.
func machine(rep *loadtest.Report) string {
	var parts []string
	if m := rep.Machine; m.CPUs > 0 || m.MemoryGiB > 0 {
		s := fmt.Sprintf("%d CPUs, %s GiB memory", m.CPUs, strconv.FormatFloat(m.MemoryGiB, 'f', -1, 64))
		if m.OS != "" {
			s += ", " + m.OS
		}
		parts = append(parts, s)
	}
	if rep.Started != "" {
		parts = append(parts, "started "+rep.Started)
	}
	if rep.BatchesPerSide > 0 {
		parts = append(parts, fmt.Sprintf("%d batches per workload and side at each level", rep.BatchesPerSide))
	}
	return strings.Join(parts, " · ")
}

// median of values; the mean of the middle two for an even count.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// niceAxis is an axis from 0 to at least top in at most maxIntervals
// steps of 1, 2, 2.5 or 5 times a power of ten, the smallest that fits, and
// at least minStep (1 for counts). An axis over nothing (top 0) runs to 1.
func niceAxis(top, minStep float64, maxIntervals int) (axis, error) {
	if math.IsNaN(top) || math.IsInf(top, 0) || top < 0 || maxIntervals < 1 {
		return axis{}, fmt.Errorf("range %v", top)
	}
	if top == 0 {
		top = 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(top/float64(maxIntervals))))
	var a axis
	n := 0
	for _, m := range []float64{1, 2, 2.5, 5, 10, 20} {
		step := max(m*mag, minStep)
		if steps := math.Ceil(top/step - 1e-9); steps <= float64(maxIntervals) {
			a, n = axis{max: steps * step, step: step}, int(steps)
			break
		}
	}
	if a.max <= 0 || math.IsInf(a.max, 0) {
		return axis{}, fmt.Errorf("range %v cannot be drawn", top)
	}
	for i := range n + 1 {
		a.ticks = append(a.ticks, float64(i)*a.step)
	}
	// As many decimals as the step needs: 0.25 has two.
	for a.decimals < 10 {
		scaled := a.step * math.Pow(10, float64(a.decimals))
		if math.Abs(scaled-math.Round(scaled)) < 1e-6*scaled {
			break
		}
		a.decimals++
	}
	return a, nil
}

// number formats v with the axis's decimals and thousands separators:
// 2,000 or 0.5.
func number(v float64, decimals int) string {
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if frac != "" {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}

// The layout, in pixels.
const (
	marginX     = 20
	panelW      = 330 // one panel: y labels, plot area, gap
	yLabelW     = 64
	plotW       = 250
	plotTop     = 140
	plotH       = 260
	heightTotal = plotTop + plotH + 62
	dot         = 3.5
)

// writeSVG writes the chart as one self-contained SVG document.
func (c *chart) writeSVG(w io.Writer) error {
	var b bytes.Buffer
	width := 2*marginX + len(c.panels)*panelW
	const title = "p50 and p99 latency against existing Ingresses"
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12" fill="#222">`+"\n",
		width, heightTotal, width, heightTotal)
	fmt.Fprintf(&b, "<title>%s</title>\n", esc(title))
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", width, heightTotal)
	fmt.Fprintf(&b, `<text class="title" x="%d" y="28" font-size="18" font-weight="600">%s</text>`+"\n", marginX, esc(title))
	var run []string
	if c.command != "" {
		run = append(run, clip(c.command, 130))
	}
	if c.commit != "" {
		run = append(run, "commit "+clip(c.commit, 40))
	}
	if len(run) > 0 {
		fmt.Fprintf(&b, `<text class="command" x="%d" y="50" font-family="ui-monospace, Menlo, Consolas, monospace" font-size="11">%s</text>`+"\n",
			marginX, esc(strings.Join(run, " · ")))
	}
	if c.machine != "" {
		fmt.Fprintf(&b, `<text class="subtitle" x="%d" y="70" fill="#555">%s</text>`+"\n", marginX, esc(c.machine))
	}
	c.writeLegend(&b, marginX, 96)
	for i, p := range c.panels {
		c.writePanel(&b, p, marginX+i*panelW)
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// writeLegend draws each side's p50 (filled dot, solid median line) and p99
// (hollow dot, dashed median line) in a row.
func (c *chart) writeLegend(b *bytes.Buffer, x, y int) {
	b.WriteString(`<g class="legend">` + "\n")
	for _, s := range sides {
		for _, stat := range []string{"p50", "p99"} {
			fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" %s/>`, x, y, x+28, y, s.colour, lineStyle(stat))
			b.WriteString(marker(s.colour, stat, float64(x+14), float64(y)))
			fmt.Fprintf(b, `<text x="%d" y="%d" dominant-baseline="central">%s %s</text>`+"\n", x+34, y, esc(s.name), stat)
			x += 112
		}
		x += 16
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" dominant-baseline="central" fill="#555">dots: batches · lines: median per level</text>`+"\n", x, y)
	b.WriteString("</g>\n")
}

func (c *chart) writePanel(b *bytes.Buffer, p panel, left int) {
	x0, y0 := float64(left+yLabelW), float64(plotTop)
	px := func(v float64) float64 { return x0 + v/c.x.max*plotW }
	py := func(v float64) float64 { return y0 + plotH - v/p.y.max*plotH }

	fmt.Fprintf(b, `<g class="panel" data-workload="%s">`+"\n", esc(p.workload))
	fmt.Fprintf(b, `<text class="panel-title" x="%s" y="%d" text-anchor="middle" font-size="14" font-weight="600">%s</text>`+"\n",
		f(x0+plotW/2), plotTop-12, esc(p.workload))
	fmt.Fprintf(b, `<rect class="plot-area" x="%s" y="%s" width="%d" height="%d" fill="#fafafa" stroke="#999"/>`+"\n", f(x0), f(y0), plotW, plotH)

	// Grid and tick labels.
	for _, t := range p.y.ticks {
		y := py(t)
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e3e3e3"/>`, f(x0), f(y), f(x0+plotW), f(y))
		fmt.Fprintf(b, `<text class="y-tick" x="%s" y="%s" text-anchor="end" dominant-baseline="central" font-size="11">%s</text>`+"\n",
			f(x0-6), f(y), number(t, p.y.decimals))
	}
	for _, t := range c.x.ticks {
		x := px(t)
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e3e3e3"/>`, f(x), f(y0), f(x), f(y0+plotH))
		fmt.Fprintf(b, `<text class="x-tick" x="%s" y="%s" text-anchor="middle" font-size="11">%s</text>`+"\n",
			f(x), f(y0+plotH+16), number(t, c.x.decimals))
	}
	fmt.Fprintf(b, `<text class="axis-title" x="%s" y="%d" text-anchor="middle">existing Ingresses when the batch started</text>`+"\n",
		f(x0+plotW/2), plotTop+plotH+40)
	fmt.Fprintf(b, `<text class="axis-title" transform="translate(%d %s) rotate(-90)" text-anchor="middle">latency (ms)</text>`+"\n",
		left+10, f(y0+plotH/2))

	// Median lines under the dots, with a short mark at each median so a
	// single level still shows one.
	for _, s := range p.medians {
		colour := colourOf(s.side)
		var pts []string
		for i := range s.ms {
			x, y := px(s.ingresses[i]), py(s.ms[i])
			pts = append(pts, f(x)+","+f(y))
			fmt.Fprintf(b, `<line class="median-mark" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.5"><title>%s</title></line>`+"\n",
				f(x-9), f(y), f(x+9), f(y), colour,
				esc(fmt.Sprintf("%s %s median %s ms at %s Ingresses", s.side, s.stat, number(s.ms[i], 2), number(s.ingresses[i], 0))))
		}
		fmt.Fprintf(b, `<polyline class="median %s %s" points="%s" fill="none" stroke="%s" %s/>`+"\n",
			esc(s.side), s.stat, strings.Join(pts, " "), colour, lineStyle(s.stat))
	}
	for _, pt := range p.points {
		fmt.Fprintf(b, `<g class="point %s %s"><title>%s</title>%s</g>`+"\n", esc(pt.side), pt.stat,
			esc(fmt.Sprintf("%s %s %s ms, batch %d of level %s (%s Ingresses)",
				pt.side, pt.stat, number(pt.ms, 2), pt.batch, number(float64(pt.level), 0), number(pt.ingresses, 0))),
			marker(colourOf(pt.side), pt.stat, px(pt.ingresses), py(pt.ms)))
	}
	b.WriteString("</g>\n")
}

// marker is a filled dot for p50 and a hollow one for p99.
func marker(colour, stat string, x, y float64) string {
	if stat == "p50" {
		return fmt.Sprintf(`<circle cx="%s" cy="%s" r="%s" fill="%s" fill-opacity="0.8"/>`, f(x), f(y), f(dot), colour)
	}
	return fmt.Sprintf(`<circle cx="%s" cy="%s" r="%s" fill="#fff" fill-opacity="0.6" stroke="%s" stroke-width="1.5"/>`, f(x), f(y), f(dot), colour)
}

func lineStyle(stat string) string {
	if stat == "p50" {
		return `stroke-width="2"`
	}
	return `stroke-width="1.5" stroke-dasharray="5 3"`
}

func colourOf(side string) string {
	for _, s := range sides {
		if s.name == side {
			return s.colour
		}
	}
	return "#000"
}

// f formats a coordinate: two decimals at most, so the output is stable
// and small.
func f(v float64) string { return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64) }

// esc escapes text for XML; characters XML cannot hold become U+FFFD.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

// clip shortens s to n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
