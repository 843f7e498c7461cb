package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tenantguard/tenantguard/internal/policy"
)

// Metrics are the webhook's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	decisions  *prometheus.CounterVec
	violations *prometheus.CounterVec
	claims     *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	edge       *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantguard_admission_decisions_total",
			Help: "Admission requests answered, by tenant (empty for none), the rule of the first violation (empty when allowed or refused for no rule) and result (allowed, denied).",
		}, []string{"tenant", "rule", "result"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantguard_admission_violations_total",
			Help: "Violations found in refused admission requests, by rule.",
		}, []string{"rule"}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantguard_host_claims_total",
			Help: "Host claim attempts made while admitting objects, by result (created, conflict, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantguard_admission_duration_seconds",
			Help:    "Time to answer an admission request, claims included, by kind.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
		edge: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantguard_webhook_edge_refusals_total",
			Help: "Calls the webhook refused before deciding them, by reason (no_uid, too_large, busy, timeout, error, method).",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.decisions, m.violations, m.claims, m.duration, m.edge)
	return m
}

func (m *Metrics) observe(req admission.Request, v verdict, d time.Duration) {
	if m == nil {
		return
	}
	result := "allowed"
	if v.denied {
		result = "denied"
	}
	m.decisions.WithLabelValues(v.tenant, string(v.rule), result).Inc()
	m.duration.WithLabelValues(req.Kind.Kind).Observe(d.Seconds())
}

func (m *Metrics) recordViolations(vs []policy.Violation) {
	if m == nil {
		return
	}
	for _, v := range vs {
		m.violations.WithLabelValues(string(v.Rule)).Inc()
	}
}

func (m *Metrics) recordClaim(result string) {
	if m == nil {
		return
	}
	m.claims.WithLabelValues(result).Inc()
}

func (m *Metrics) recordEdgeRefusal(reason string) {
	if m == nil {
		return
	}
	m.edge.WithLabelValues(reason).Inc()
}
