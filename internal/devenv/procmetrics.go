package devenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are the metric families a replica serves on /metrics.
type Metrics map[string]*dto.MetricFamily

// Metrics reads replica i's /metrics.
func (p *ProcGuards) Metrics(ctx context.Context, i int) (Metrics, error) {
	return ScrapeMetrics(ctx, p.MetricsURL(i))
}

// ScrapeMetrics reads a Prometheus text endpoint.
func ScrapeMetrics(ctx context.Context, url string) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("scrape %s: %s: %s", url, resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return Metrics(families), nil
}

// Sum adds the values of the counters or gauges called name whose labels
// include every one of labels.
func (m Metrics) Sum(name string, labels map[string]string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, s := range f.GetMetric() {
		if !hasLabels(s, labels) {
			continue
		}
		switch {
		case s.Counter != nil:
			sum += s.GetCounter().GetValue()
		case s.Gauge != nil:
			sum += s.GetGauge().GetValue()
		case s.Untyped != nil:
			sum += s.GetUntyped().GetValue()
		}
	}
	return sum
}

// ByLabel is Sum grouped by the value of label.
func (m Metrics) ByLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	f := m[name]
	if f == nil {
		return out
	}
	for _, s := range f.GetMetric() {
		var v string
		for _, l := range s.GetLabel() {
			if l.GetName() == label {
				v = l.GetValue()
			}
		}
		switch {
		case s.Counter != nil:
			out[v] += s.GetCounter().GetValue()
		case s.Gauge != nil:
			out[v] += s.GetGauge().GetValue()
		}
	}
	return out
}

func hasLabels(s *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range s.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}
