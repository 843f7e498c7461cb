// Command plot draws the report of a load test run (go run ./hack/loadtest)
// as one self-contained SVG: p50 and p99 latency against the Ingresses
// that existed when each batch started.
//
//	go run ./hack/loadtest/plot -in .tenantguard/loadtest/report.json -out docs/loadtest-latency.svg
//
// There is one panel per workload. Each panel shows, for the guard side
// (webhooks registered) and the none side (no webhooks), every batch's p50
// as a filled dot and its p99 as a hollow dot, and lines through the
// medians per level: the median p50 (solid) and p99 (dashed) of that
// side's batches at the level, at the median of their Ingresses. The
// panels share the x axis; each has its own y axis from 0, so a fast
// workload is not flattened by a slow one. Batches that ran no operations
// are left out.
//
// -out defaults to latency.svg next to the report; -out - writes to
// standard output. The command exits 2 when the input is missing or is not
// a report with measured batches, and 1 when the chart cannot be written.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command, returning its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("plot", flag.ContinueOnError)
	fl.SetOutput(stderr)
	in := fl.String("in", ".tenantguard/loadtest/report.json", "the report.json the load tool wrote")
	out := fl.String("out", "", "the SVG to write (default latency.svg next to the report; - for standard output)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "plot: unexpected arguments %q (flags only; see -h)\n", fl.Args())
		return 2
	}
	if *out == "" {
		*out = filepath.Join(filepath.Dir(*in), "latency.svg")
	}

	c, err := load(*in)
	if err != nil {
		fmt.Fprintln(stderr, "plot:", err)
		return 2
	}
	var svg bytes.Buffer
	if err := c.writeSVG(&svg); err != nil {
		fmt.Fprintln(stderr, "plot:", err)
		return 1
	}
	if *out == "-" {
		if _, err := stdout.Write(svg.Bytes()); err != nil {
			fmt.Fprintln(stderr, "plot:", err)
			return 1
		}
		return 0
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(stderr, "plot:", err)
		return 1
	}
	if err := os.WriteFile(*out, svg.Bytes(), 0o644); err != nil {
		fmt.Fprintln(stderr, "plot:", err)
		return 1
	}
	fmt.Fprintf(stderr, "plot: wrote %s (%d panels)\n", *out, len(c.panels))
	return 0
}

// load reads and lays out the report at path.
func load(path string) (*chart, error) {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: run go run ./hack/loadtest first, or point -in at its report.json", path)
	}
	if err != nil {
		return nil, err
	}
	defer file.Close()
	rep, err := decodeReport(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c, err := newChart(rep)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
