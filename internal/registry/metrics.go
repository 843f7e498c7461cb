package registry

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics counts requests by listener, method and status. Each Server has
// its own registry (no global state).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	inflight *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantguard_registry_requests_total",
			Help: "Requests answered by the registry gateway, by listener (registry, token), method and status code.",
		}, []string{"listener", "method", "code"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantguard_registry_requests_in_flight",
			Help: "Requests being served, by listener.",
		}, []string{"listener"}),
	}
	m.reg.MustRegister(m.requests, m.inflight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// countPasswordChecks exports the login checks' bcrypt work.
func (m *metrics) countPasswordChecks(checks func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tenantguard_registry_password_checks_total",
		Help: "bcrypt password checks made by the token endpoint (one per login not answered from the login cache or refused by the login throttle).",
	}, func() float64 { return float64(checks()) }))
}

func (m *metrics) instrument(listener string, h http.Handler) http.Handler {
	inflight := m.inflight.WithLabelValues(listener)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Inc()
		defer inflight.Dec()
		rec := &codeRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		method := r.Method
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			method = "other"
		}
		m.requests.WithLabelValues(listener, method, strconv.Itoa(rec.code)).Inc()
	})
}

func (m *metrics) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	return mux
}

type codeRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (c *codeRecorder) WriteHeader(code int) {
	if !c.wroteHeader {
		c.code, c.wroteHeader = code, true
	}
	c.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *codeRecorder) Unwrap() http.ResponseWriter { return c.ResponseWriter }
