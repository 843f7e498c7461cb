package guard

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
)

// countRequests makes cfg count every API request its clients send in
// tenantguard_webhook_api_requests_total{method}: the webhook's own calls
// (host claims, namespace reads), apart from the informers' and the
// controllers', whose calls client-go's rest_client_requests_total mixes.
func countRequests(cfg *rest.Config, reg prometheus.Registerer) *rest.Config {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantguard_webhook_api_requests_total",
		Help: "API requests the webhook made while deciding admission requests (host claims and namespace reads), by HTTP method.",
	}, []string{"method"})
	reg.MustRegister(requests)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			requests.WithLabelValues(r.Method).Inc()
			return rt.RoundTrip(r)
		})
	})
	return cfg
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
