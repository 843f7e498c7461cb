package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantguard/tenantguard/internal/loadtest"
)

// sampleReport has two levels, three workloads and two sides with three
// batches each, whose latencies depend only on their place, and one batch
// that ran nothing.
func sampleReport() *loadtest.Report {
	rep := &loadtest.Report{
		Command: `go run ./hack/loadtest -levels 0,2000 <&> "quoted"` + "\x01",
		Commit:  "3d8ed11",
		Machine: loadtest.Machine{CPUs: 8, MemoryGiB: 31.3, OS: "linux/amd64"},
		Started: "2026-12-02T04:00:00Z", BatchesPerSide: 3, Levels: []int{0, 2000},
	}
	for li, level := range rep.Levels {
		for wi, w := range loadtest.Workloads {
			for i := range 3 {
				for si, side := range []string{loadtest.Guard, loadtest.None} {
					p50 := float64(1+wi) + float64(li) + float64(i)/10 + float64(1-si)
					rep.Batches = append(rep.Batches, loadtest.Batch{
						Level: level, Workload: w, Side: side, Index: i, Ingresses: level + 10*i, Ops: 100,
						P50Ms: p50, P95Ms: 2 * p50, P99Ms: 3*p50 + float64(i),
					})
				}
			}
		}
	}
	rep.Batches = append(rep.Batches, loadtest.Batch{Level: 2000, Workload: loadtest.NoHost, Side: loadtest.Guard, Index: 3, Ingresses: 9000})
	return rep
}

// svgPanel is what the SVG says about one panel.
type svgPanel struct {
	workload   string
	x, y, w, h float64 // the plot area
	points     []svgPoint
	medians    int
}

type svgPoint struct {
	class  string
	cx, cy float64
}

// parseSVG decodes every token of the document, failing the test if it is
// not well-formed XML, and collects the panels.
func parseSVG(t testing.TB, data []byte) []svgPanel {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var panels []svgPanel
	var point string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %v\n%s", err, data)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		a := attrs(se)
		class := a["class"]
		switch {
		case se.Name.Local == "g" && class == "panel":
			panels = append(panels, svgPanel{workload: a["data-workload"]})
		case len(panels) == 0:
		case se.Name.Local == "rect" && class == "plot-area":
			p := &panels[len(panels)-1]
			p.x, p.y, p.w, p.h = num(t, a["x"]), num(t, a["y"]), num(t, a["width"]), num(t, a["height"])
		case se.Name.Local == "g" && strings.HasPrefix(class, "point "):
			point = class
		case se.Name.Local == "circle":
			if point == "" {
				t.Fatalf("a circle outside a point in panel %q", panels[len(panels)-1].workload)
			}
			p := &panels[len(panels)-1]
			p.points = append(p.points, svgPoint{point, num(t, a["cx"]), num(t, a["cy"])})
			point = ""
		case se.Name.Local == "polyline" && strings.HasPrefix(class, "median "):
			panels[len(panels)-1].medians++
		}
	}
	return panels
}

func attrs(se xml.StartElement) map[string]string {
	m := map[string]string{}
	for _, a := range se.Attr {
		m[a.Name.Local] = a.Value
	}
	return m
}

func num(t testing.TB, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("coordinate %q: %v", s, err)
	}
	return v
}

func render(t testing.TB, rep *loadtest.Report) (*chart, []byte) {
	t.Helper()
	c, err := newChart(rep)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.writeSVG(&b); err != nil {
		t.Fatal(err)
	}
	return c, b.Bytes()
}

func TestChartHasAPanelPerWorkloadAndAPointPerBatchAndStatistic(t *testing.T) {
	rep := sampleReport()
	c, svg := render(t, rep)
	panels := parseSVG(t, svg)

	var workloads []string
	for _, p := range panels {
		workloads = append(workloads, p.workload)
	}
	if !slices.Equal(workloads, loadtest.Workloads) {
		t.Fatalf("panels %q, want %q", workloads, loadtest.Workloads)
	}
	for _, p := range panels {
		// 2 levels × 2 sides × 3 batches, a p50 and a p99 each; the batch
		// without operations is left out.
		if len(p.points) != 24 {
			t.Errorf("%s: %d points, want 24", p.workload, len(p.points))
		}
		counts := map[string]int{}
		for _, pt := range p.points {
			counts[pt.class]++
			if pt.cx < p.x-0.01 || pt.cx > p.x+p.w+0.01 || pt.cy < p.y-0.01 || pt.cy > p.y+p.h+0.01 {
				t.Errorf("%s: %s point at (%v, %v) outside the plot area", p.workload, pt.class, pt.cx, pt.cy)
			}
		}
		for _, class := range []string{"point guard p50", "point guard p99", "point none p50", "point none p99"} {
			if counts[class] != 6 {
				t.Errorf("%s: %d %q, want 6", p.workload, counts[class], class)
			}
		}
		// A p50 and a p99 median line for each side.
		if p.medians != 4 {
			t.Errorf("%s: %d median lines, want 4", p.workload, p.medians)
		}
	}

	// The axes cover the data.
	for i, p := range c.panels {
		var maxP99 float64
		for _, b := range rep.Batches {
			if b.Workload == p.workload && b.Ops > 0 {
				maxP99 = max(maxP99, b.P99Ms)
				if float64(b.Ingresses) > c.x.max {
					t.Errorf("x axis ends at %v, below %d Ingresses", c.x.max, b.Ingresses)
				}
			}
		}
		if maxP99 > p.y.max || p.y.ticks[0] != 0 {
			t.Errorf("%s: y axis %v, want 0 to at least %v", p.workload, p.y.ticks, maxP99)
		}
		if p.y.max > 2*maxP99 {
			t.Errorf("%s: y axis ends at %v, far above the largest p99 %v", p.workload, p.y.max, maxP99)
		}
		// The largest p99 is drawn at its height.
		top := slices.MinFunc(panels[i].points, func(a, b svgPoint) int { return int(a.cy - b.cy) })
		if want := panels[i].y + panels[i].h*(1-maxP99/p.y.max); top.cy-want > 0.01 || want-top.cy > 0.01 {
			t.Errorf("%s: highest point at y %v, want %v", p.workload, top.cy, want)
		}
	}

	for _, want := range []string{"p50 and p99 latency against existing Ingresses", "commit 3d8ed11",
		"8 CPUs, 31.3 GiB memory", "&lt;&amp;&gt;", "latency (ms)", "existing Ingresses when the batch started", "2,000"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestChartIsDeterministic(t *testing.T) {
	_, a := render(t, sampleReport())
	_, b := render(t, sampleReport())
	if !bytes.Equal(a, b) {
		t.Error("two renderings of the same report differ")
	}
}

func TestMediansPerLevelAndSide(t *testing.T) {
	c, _ := render(t, sampleReport())
	p := c.panels[0] // ingress-new-host: guard p50 is 2 + level index + batch/10
	s := p.medians[0]
	if s.side != loadtest.Guard || s.stat != "p50" {
		t.Fatalf("first median series is %s %s, want guard p50", s.side, s.stat)
	}
	if !slices.Equal(s.ingresses, []float64{10, 2010}) || !slices.Equal(s.ms, []float64{2.1, 3.1}) {
		t.Errorf("guard p50 medians at %v: %v, want at [10 2010]: [2.1 3.1]", s.ingresses, s.ms)
	}
}

func TestDecodeAndLayOutRejectBadInput(t *testing.T) {
	good, err := json.Marshal(sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in string
		want     error // nil: any error
	}{
		{"malformed", `{"batches": [`, errNotReport},
		{"not an object", `[1, 2]`, errNotReport},
		{"null", `null`, errNotReport},
		{"empty object", `{}`, errNotReport},
		{"another document", `{"apiVersion": "v1", "kind": "List"}`, errNotReport},
		{"trailing data", string(good) + `{}`, errNotReport},
		{"wrong type", `{"started": "x", "batches": [{"p50Ms": "fast"}]}`, errNotReport},
		{"no batches", `{"started": "2026-12-02T04:00:00Z", "levels": [0], "batches": []}`, errNoBatches},
		{"nothing measured", `{"started": "x", "batches": [{"workload": "no-host", "side": "guard", "ops": 0}]}`, errNoBatches},
		{"unknown side", `{"started": "x", "batches": [{"workload": "no-host", "side": "both", "ops": 1}]}`, nil},
		{"negative latency", `{"started": "x", "batches": [{"workload": "no-host", "side": "none", "ops": 1, "p99Ms": -1}]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := decodeReport(strings.NewReader(tc.in))
			if err == nil {
				_, err = newChart(rep)
			}
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good, err := json.Marshal(sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	report := write("report.json", string(good))
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"missing", []string{"-in", filepath.Join(dir, "nope.json")}, 2, "does not exist: run go run ./hack/loadtest first"},
		{"malformed", []string{"-in", write("bad.json", "{")}, 2, "not a load test report"},
		{"empty", []string{"-in", write("empty.json", `{"started": "x", "levels": [0]}`)}, 2, "no measured batches"},
		{"argument", []string{"-in", report, "extra"}, 2, "unexpected arguments"},
		{"flag", []string{"-nope"}, 2, "flag provided but not defined"},
		{"default out", []string{"-in", report}, 0, "latency.svg"},
		{"out", []string{"-in", report, "-out", filepath.Join(dir, "docs", "chart.svg")}, 0, "chart.svg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.stderr)
			}
		})
	}
	for _, name := range []string{"latency.svg", "docs/chart.svg"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		parseSVG(t, data)
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"-in", report, "-out", "-"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if len(parseSVG(t, stdout.Bytes())) != 3 {
		t.Error("-out - did not write the chart to standard output")
	}
}

func TestNiceAxis(t *testing.T) {
	for _, tc := range []struct {
		top, minStep float64
		intervals    int
		want         []float64
		decimals     int
	}{
		{0, 1, 5, []float64{0, 1}, 0},
		{3, 1, 5, []float64{0, 1, 2, 3}, 0},
		{2010, 1, 5, []float64{0, 500, 1000, 1500, 2000, 2500}, 0},
		{5000, 1, 5, []float64{0, 1000, 2000, 3000, 4000, 5000}, 0},
		{10900, 1, 5, []float64{0, 2500, 5000, 7500, 10000, 12500}, 0},
		{104.2, 0, 8, []float64{0, 20, 40, 60, 80, 100, 120}, 0},
		{14.2, 0, 8, []float64{0, 2, 4, 6, 8, 10, 12, 14, 16}, 0},
		{17, 0, 8, []float64{0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5}, 1},
		{0.9, 0, 8, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}, 1},
		{0.07, 0, 8, []float64{0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07}, 2},
	} {
		a, err := niceAxis(tc.top, tc.minStep, tc.intervals)
		if err != nil {
			t.Errorf("niceAxis(%v): %v", tc.top, err)
			continue
		}
		if len(a.ticks) != len(tc.want) || a.decimals != tc.decimals || a.max != a.ticks[len(a.ticks)-1] {
			t.Errorf("niceAxis(%v) = %v, %d decimals; want %v, %d", tc.top, a.ticks, a.decimals, tc.want, tc.decimals)
			continue
		}
		for i := range a.ticks {
			if d := a.ticks[i] - tc.want[i]; d > 1e-9 || d < -1e-9 {
				t.Errorf("niceAxis(%v) = %v, want %v", tc.top, a.ticks, tc.want)
				break
			}
		}
	}
}

func TestNumber(t *testing.T) {
	for _, tc := range []struct {
		v        float64
		decimals int
		want     string
	}{
		{0, 0, "0"},
		{999, 0, "999"},
		{2000, 0, "2,000"},
		{1234567, 0, "1,234,567"},
		{12500.5, 1, "12,500.5"},
		{0.25, 2, "0.25"},
		{-4000, 0, "-4,000"},
	} {
		if got := number(tc.v, tc.decimals); got != tc.want {
			t.Errorf("number(%v, %d) = %q, want %q", tc.v, tc.decimals, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// FuzzChart: any input either is refused with an error or gives a
// well-formed SVG.
func FuzzChart(f *testing.F) {
	good, err := json.Marshal(sampleReport())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"started": "x", "batches": [{"workload": "no-host", "side": "none", "ops": 1, "p99Ms": 1.79e308}]}`))
	f.Add([]byte(`{"started": "x", "batches": [{"workload": "\u0000<", "side": "none", "ops": 1, "ingresses": 9223372036854775807, "p99Ms": 1e-300}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := decodeReport(bytes.NewReader(data))
		if err != nil {
			return
		}
		c, err := newChart(rep)
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := c.writeSVG(&b); err != nil {
			t.Fatal(err)
		}
		parseSVG(t, b.Bytes())
	})
}
