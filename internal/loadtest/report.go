package loadtest

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	// Command and Commit are set by the caller, for the record.
	Command        string  `json:"command,omitempty"`
	Commit         string  `json:"commit,omitempty"`
	Machine        Machine `json:"machine"`
	Started        string  `json:"started"`
	Seconds        float64 `json:"seconds"`
	Tenants        int     `json:"tenants"`
	Objects        int     `json:"objects"`
	Workers        int     `json:"workers"`
	BatchesPerSide int     `json:"batchesPerSide"`
	Levels         []int   `json:"levels"`
	Deadline       string  `json:"deadline"`
	// Rows summarise each level, workload and side; Ratios compare the
	// sides; Batches are the raw measurements.
	Rows     []Row        `json:"rows"`
	Fills    []Fill       `json:"fills"`
	Ratios   []Ratio      `json:"ratios"`
	Batches  []Batch      `json:"batches"`
	Verified Verification `json:"verified"`

	started time.Time
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int     `json:"cpus"`
	MemoryGiB float64 `json:"memoryGiB"`
	OS        string  `json:"os"`
}

// Fill is the filling of the cluster up to a level: Ingresses created
// through the guard, not measured.
type Fill struct {
	Level     int     `json:"level"`
	Ingresses int     `json:"ingresses"`
	Seconds   float64 `json:"seconds"`
}

// Batch is one batch of one workload on one side.
type Batch struct {
	Level    int    `json:"level"`
	Workload string `json:"workload"`
	Side     string `json:"side"`
	// Index is the batch number; Position 0 ran first of its pair.
	Index    int `json:"index"`
	Position int `json:"position"`
	// Ingresses in the cluster when the batch started.
	Ingresses  int     `json:"ingresses"`
	Ops        int     `json:"ops"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"opsPerSecond"`
	P50Ms      float64 `json:"p50Ms"`
	P95Ms      float64 `json:"p95Ms"`
	P99Ms      float64 `json:"p99Ms"`
	// The guard's processes, all replicas together: CPU time used during
	// the batch, resident memory at its end.
	GuardCPUSeconds float64 `json:"guardCPUSeconds"`
	GuardRSSMiB     float64 `json:"guardRSSMiB"`
	// GuardRSSMaxMiB is the resident memory of the largest replica.
	GuardRSSMaxMiB float64 `json:"guardRSSMaxMiB"`
	// Admissions the guard answered and API requests it made during the
	// batch (rest_client_requests_total, by method).
	Admissions  float64            `json:"admissions"`
	APIRequests map[string]float64 `json:"apiRequests"`
	// WebhookAPIRequests are the part the webhook made while deciding
	// (tenantguard_webhook_api_requests_total), apart from informers,
	// controllers and leader election.
	WebhookAPIRequests map[string]float64 `json:"webhookAPIRequests"`
	FirstError         string             `json:"firstError,omitempty"`

	lat []time.Duration
}

// Row summarises the batches of one level, workload and side.
type Row struct {
	Level      int     `json:"level"`
	Ingresses  int     `json:"ingresses"`
	Workload   string  `json:"workload"`
	Side       string  `json:"side"`
	Ops        int     `json:"ops"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"opsPerSecond"`
	P50Ms      float64 `json:"p50Ms"`
	P95Ms      float64 `json:"p95Ms"`
	P99Ms      float64 `json:"p99Ms"`
	MeanMs     float64 `json:"meanMs"`
	MaxMs      float64 `json:"maxMs"`
	// GuardCPUMsPerOp is the guard's CPU time per operation of the batches.
	GuardCPUSeconds float64 `json:"guardCPUSeconds"`
	GuardCPUMsPerOp float64 `json:"guardCPUMsPerOp"`
	GuardRSSMiB     float64 `json:"guardRSSMiB"`
	GuardRSSMaxMiB  float64 `json:"guardRSSMaxMiB"`
	Admissions      float64 `json:"admissions"`
	// APIRequestsPerAdmission is the guard's API requests during the
	// batches divided by the admissions it answered (guard side only).
	APIRequests             map[string]float64 `json:"apiRequests"`
	APIRequestsPerAdmission float64            `json:"apiRequestsPerAdmission"`
	// WebhookAPIRequestsPerAdmission counts only the webhook's own.
	WebhookAPIRequests             map[string]float64 `json:"webhookAPIRequests"`
	WebhookAPIRequestsPerAdmission float64            `json:"webhookAPIRequestsPerAdmission"`
	// APIRequestsPerSecond is the guard's request rate; on the none side it
	// is its background (leader election, watches restarting).
	APIRequestsPerSecond float64 `json:"apiRequestsPerSecond"`
}

// Ratio compares the guard side with the none side of one level and
// workload.
type Ratio struct {
	Level      int     `json:"level"`
	Workload   string  `json:"workload"`
	P50        float64 `json:"p50"`
	P95        float64 `json:"p95"`
	P99        float64 `json:"p99"`
	Throughput float64 `json:"throughput"`
	// AddedP50Ms and AddedP95Ms are what the guard adds to each request.
	AddedP50Ms float64 `json:"addedP50Ms"`
	AddedP95Ms float64 `json:"addedP95Ms"`
}

type key struct {
	level          int
	workload, side string
}

func newReport(o Options) *Report {
	return &Report{
		Machine: Machine{CPUs: runtime.NumCPU(), MemoryGiB: round(float64(memTotal())/(1<<30), 1), OS: runtime.GOOS + "/" + runtime.GOARCH},
		Started: time.Now().UTC().Format(time.RFC3339),
		Tenants: o.Tenants, Objects: o.Objects, Workers: o.Workers, BatchesPerSide: o.Batches,
		Levels: o.Levels, Deadline: o.Deadline.String(),
		started: time.Now(),
	}
}

// fill computes a batch's figures from its latencies and the samples
// taken before and after it.
func (b *Batch) fill(lat []time.Duration, elapsed time.Duration, errs int, before, after sample) {
	b.lat = lat
	b.Ops, b.Errors = len(lat), errs
	b.Seconds = elapsed.Seconds()
	if b.Seconds > 0 {
		b.Throughput = round(float64(len(lat))/b.Seconds, 1)
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	b.P50Ms, b.P95Ms, b.P99Ms = ms(percentile(sorted, 0.50)), ms(percentile(sorted, 0.95)), ms(percentile(sorted, 0.99))
	b.GuardCPUSeconds = round((after.cpu - before.cpu).Seconds(), 2)
	b.GuardRSSMiB = round(float64(after.rss)/(1<<20), 1)
	b.GuardRSSMaxMiB = round(float64(after.rssMax)/(1<<20), 1)
	b.Admissions = after.admissions - before.admissions
	b.APIRequests = delta(before.requests, after.requests)
	b.WebhookAPIRequests = delta(before.webhook, after.webhook)
}

// delta is after minus before, per key, leaving out keys that did not grow.
func delta(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// finish computes the rows and ratios from the batches.
func (r *Report) finish() {
	r.Seconds = round(time.Since(r.started).Seconds(), 1)
	r.Rows, r.Ratios = nil, nil
	rows := map[key]*Row{}
	var order []key
	lat := map[key][]time.Duration{}
	for _, b := range r.Batches {
		k := key{b.Level, b.Workload, b.Side}
		row := rows[k]
		if row == nil {
			row = &Row{Level: b.Level, Ingresses: b.Ingresses, Workload: b.Workload, Side: b.Side,
				APIRequests: map[string]float64{}, WebhookAPIRequests: map[string]float64{}}
			rows[k] = row
			order = append(order, k)
		}
		row.Ops += b.Ops
		row.Errors += b.Errors
		row.Seconds += b.Seconds
		row.GuardCPUSeconds += b.GuardCPUSeconds
		row.GuardRSSMiB = max(row.GuardRSSMiB, b.GuardRSSMiB)
		row.GuardRSSMaxMiB = max(row.GuardRSSMaxMiB, b.GuardRSSMaxMiB)
		row.Admissions += b.Admissions
		for m, v := range b.APIRequests {
			row.APIRequests[m] += v
		}
		for m, v := range b.WebhookAPIRequests {
			row.WebhookAPIRequests[m] += v
		}
		lat[k] = append(lat[k], b.lat...)
	}
	for _, k := range order {
		row := rows[k]
		sorted := lat[k]
		slices.Sort(sorted)
		row.P50Ms, row.P95Ms, row.P99Ms = ms(percentile(sorted, 0.50)), ms(percentile(sorted, 0.95)), ms(percentile(sorted, 0.99))
		if len(sorted) > 0 {
			var sum time.Duration
			for _, d := range sorted {
				sum += d
			}
			row.MeanMs = ms(sum / time.Duration(len(sorted)))
			row.MaxMs = ms(sorted[len(sorted)-1])
		}
		if row.Seconds > 0 {
			row.Throughput = round(float64(row.Ops)/row.Seconds, 1)
		}
		if row.Ops > 0 {
			row.GuardCPUMsPerOp = round(row.GuardCPUSeconds*1000/float64(row.Ops), 3)
		}
		total := sum(row.APIRequests)
		if row.Side == Guard && row.Admissions > 0 {
			row.APIRequestsPerAdmission = round(total/row.Admissions, 3)
			row.WebhookAPIRequestsPerAdmission = round(sum(row.WebhookAPIRequests)/row.Admissions, 3)
		}
		if row.Seconds > 0 {
			row.APIRequestsPerSecond = round(total/row.Seconds, 2)
		}
		row.Seconds = round(row.Seconds, 2)
		row.GuardCPUSeconds = round(row.GuardCPUSeconds, 2)
		r.Rows = append(r.Rows, *row)
	}
	for _, k := range order {
		if k.side != Guard {
			continue
		}
		g, n := rows[k], rows[key{k.level, k.workload, None}]
		if n == nil {
			continue
		}
		r.Ratios = append(r.Ratios, Ratio{
			Level: k.level, Workload: k.workload,
			P50: ratio(g.P50Ms, n.P50Ms), P95: ratio(g.P95Ms, n.P95Ms), P99: ratio(g.P99Ms, n.P99Ms),
			Throughput: ratio(g.Throughput, n.Throughput),
			AddedP50Ms: round(g.P50Ms-n.P50Ms, 2), AddedP95Ms: round(g.P95Ms-n.P95Ms, 2),
		})
	}
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round(a/b, 2)
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// WriteTable writes the rows and ratios as aligned text.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "level\tingresses\tworkload\tside\tops\terrors\tp50 ms\tp95 ms\tp99 ms\tops/s\tguard CPU ms/op\tguard RSS MiB (largest replica)\tAPI req/admission\twebhook's own\t")
	for _, row := range r.Rows {
		perAdm, own := "-", "-"
		if row.Side == Guard {
			perAdm = strconv.FormatFloat(row.APIRequestsPerAdmission, 'f', 2, 64) + " (" + methods(row.APIRequests, row.Admissions) + ")"
			own = strconv.FormatFloat(row.WebhookAPIRequestsPerAdmission, 'f', 2, 64) + " (" + methods(row.WebhookAPIRequests, row.Admissions) + ")"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.1f\t%.3f\t%.1f (%.1f)\t%s\t%s\t\n",
			row.Level, row.Ingresses, row.Workload, row.Side, row.Ops, row.Errors, row.P50Ms, row.P95Ms, row.P99Ms,
			row.Throughput, row.GuardCPUMsPerOp, row.GuardRSSMiB, row.GuardRSSMaxMiB, perAdm, own)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "level\tworkload\tp50 guard/none\tp95 guard/none\tp99 guard/none\tthroughput guard/none\tadded p50 ms\tadded p95 ms\t")
	for _, q := range r.Ratios {
		fmt.Fprintf(tw, "%d\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", q.Level, q.Workload, q.P50, q.P95, q.P99, q.Throughput, q.AddedP50Ms, q.AddedP95Ms)
	}
	return tw.Flush()
}

// methods is "POST 1.00, GET 0.02" per admission.
func methods(reqs map[string]float64, admissions float64) string {
	if admissions == 0 || len(reqs) == 0 {
		return "none"
	}
	var out string
	for _, m := range slices.Sorted(maps.Keys(reqs)) {
		if out != "" {
			out += " "
		}
		out += fmt.Sprintf("%s %.2f", m, reqs[m]/admissions)
	}
	return out
}

// WriteJSON writes the whole report.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteRowsCSV writes one line per level, workload and side.
func (r *Report) WriteRowsCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"level", "ingresses", "workload", "side", "ops", "errors", "seconds", "ops_per_second",
		"p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms", "guard_cpu_seconds", "guard_cpu_ms_per_op", "guard_rss_mib",
		"guard_rss_max_mib", "admissions", "api_requests", "api_requests_per_admission", "api_requests_per_second",
		"webhook_api_requests", "webhook_api_requests_per_admission"})
	for _, row := range r.Rows {
		_ = cw.Write([]string{itoa(row.Level), itoa(row.Ingresses), row.Workload, row.Side, itoa(row.Ops), itoa(row.Errors),
			ftoa(row.Seconds), ftoa(row.Throughput), ftoa(row.P50Ms), ftoa(row.P95Ms), ftoa(row.P99Ms), ftoa(row.MeanMs), ftoa(row.MaxMs),
			ftoa(row.GuardCPUSeconds), ftoa(row.GuardCPUMsPerOp), ftoa(row.GuardRSSMiB), ftoa(row.GuardRSSMaxMiB),
			ftoa(row.Admissions), ftoa(sum(row.APIRequests)), ftoa(row.APIRequestsPerAdmission), ftoa(row.APIRequestsPerSecond),
			ftoa(sum(row.WebhookAPIRequests)), ftoa(row.WebhookAPIRequestsPerAdmission)})
	}
	cw.Flush()
	return cw.Error()
}

// WriteBatchesCSV writes one line per batch, for plots against cluster
// size and time.
func (r *Report) WriteBatchesCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"level", "workload", "side", "batch", "position", "ingresses", "ops", "errors", "seconds",
		"ops_per_second", "p50_ms", "p95_ms", "p99_ms", "guard_cpu_seconds", "guard_rss_mib", "guard_rss_max_mib", "admissions", "api_requests",
		"webhook_api_requests"})
	for _, b := range r.Batches {
		_ = cw.Write([]string{itoa(b.Level), b.Workload, b.Side, itoa(b.Index), itoa(b.Position), itoa(b.Ingresses), itoa(b.Ops),
			itoa(b.Errors), ftoa(b.Seconds), ftoa(b.Throughput), ftoa(b.P50Ms), ftoa(b.P95Ms), ftoa(b.P99Ms),
			ftoa(b.GuardCPUSeconds), ftoa(b.GuardRSSMiB), ftoa(b.GuardRSSMaxMiB), ftoa(b.Admissions), ftoa(sum(b.APIRequests)),
			ftoa(sum(b.WebhookAPIRequests))})
	}
	cw.Flush()
	return cw.Error()
}

func itoa(i int) string     { return strconv.Itoa(i) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
