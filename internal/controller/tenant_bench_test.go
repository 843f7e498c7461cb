package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/controller"
	"github.com/tenantguard/tenantguard/internal/tenancy"
)

// counter counts the requests a rest.Config's clients send: watches
// (long-lived) apart from the rest.
type counter struct{ requests, watches atomic.Int64 }

func (c *counter) wrap(cfg *rest.Config) *rest.Config {
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.URL.Query().Get("watch") == "true" {
				c.watches.Add(1)
			} else {
				c.requests.Add(1)
			}
			return rt.RoundTrip(r)
		})
	}
	return cfg
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var benchRun atomic.Int64

// BenchmarkReconcileTenants reconciles 1,000 Tenants of 3 namespaces each
// (owners, quota, limit range, isolation policy) from scratch: a new
// controller starts with every Tenant already created and nothing else.
// It reports the time until all are Ready, the API requests the controller
// sent, and the process's memory; then the requests sent in one further
// minute in which nothing changes.
//
//	go test -run '^$' -bench ReconcileTenants -benchtime 1x -timeout 60m ./internal/controller/
//
// TENANTGUARD_BENCH_TENANTS changes the number of Tenants.
func BenchmarkReconcileTenants(b *testing.B) {
	tenants := 1000
	if v, err := strconv.Atoi(os.Getenv("TENANTGUARD_BENCH_TENANTS")); err == nil && v > 0 {
		tenants = v
	}
	for range b.N {
		b.StopTimer()
		run := benchRun.Add(1)
		names := make([]string, tenants)
		for i := range names {
			names[i] = fmt.Sprintf("bench%d-%d", run, i)
		}
		createAll(b, names)
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)

		var count counter
		b.StartTimer()
		start := time.Now()
		_, stop := runController(b, count.wrap(rest.CopyConfig(env.Config)), tenancy.Options{IngressNamespaces: []string{"ingress-nginx"}})
		waitAllReady(b, names)
		elapsed := time.Since(start)
		b.StopTimer()

		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(elapsed.Seconds(), "s-to-ready")
		b.ReportMetric(float64(count.requests.Load()), "requests")
		b.ReportMetric(float64(count.requests.Load())/float64(tenants), "requests/tenant")
		b.ReportMetric(float64(count.watches.Load()), "watches")
		b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(after.HeapInuse-min(after.HeapInuse, before.HeapInuse))/(1<<20), "controller-heap-MiB")
		b.ReportMetric(rssMiB(b), "rss-MiB")

		// Steady state: let the last events of the run drain, then count a
		// minute in which nothing changes.
		settle(&count)
		requests, watches := count.requests.Load(), count.watches.Load()
		time.Sleep(time.Minute)
		b.ReportMetric(float64(count.requests.Load()-requests), "steady-requests/min")
		b.ReportMetric(float64(count.watches.Load()-watches), "steady-watches/min")
		stop()
	}
}

// createAll creates the Tenants, a few at a time.
func createAll(b *testing.B, names []string) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	work := make(chan string)
	for range 8 {
		wg.Go(func() {
			for name := range work {
				errs <- admin.Create(context.Background(), benchTenant(name))
			}
		})
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchTenant(name string) *v1alpha1.Tenant {
	return &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.TenantSpec{
			Owners:     []v1alpha1.Owner{{Kind: v1alpha1.OwnerGroup, Name: name + "-devs"}},
			Namespaces: []string{name + "-a", name + "-b", name + "-c"},
			Resources: v1alpha1.ResourceDefaults{
				Quota: &corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("20")}},
				LimitRange: &corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
					Type: corev1.LimitTypeContainer, Default: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				}}},
				NetworkIsolation: v1alpha1.NetworkIsolationTenant,
			},
		},
	}
}

// waitAllReady polls, as the admin, until every named Tenant is Ready for
// its generation.
func waitAllReady(b *testing.B, names []string) {
	b.Helper()
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	deadline := time.Now().Add(45 * time.Minute)
	for {
		var list v1alpha1.TenantList
		if err := admin.List(context.Background(), &list); err != nil {
			b.Fatal(err)
		}
		ready := 0
		for _, t := range list.Items {
			c := meta.FindStatusCondition(t.Status.Conditions, controller.ConditionReady)
			if want[t.Name] && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == t.Generation {
				ready++
			}
		}
		if ready == len(names) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d tenants ready after 45 minutes", ready, len(names))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// settle waits until the counter has not moved for five seconds.
func settle(c *counter) {
	last := c.requests.Load()
	for quiet := 0; quiet < 10; {
		time.Sleep(500 * time.Millisecond)
		if now := c.requests.Load(); now != last {
			last, quiet = now, 0
			continue
		}
		quiet++
	}
}

// rssMiB is the resident set of this process (controller, its cache, and
// the benchmark's own client).
func rssMiB(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Logf("no RSS: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
