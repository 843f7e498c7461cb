package controller_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/controller"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// TestAuditorPublishesViolations: a public LoadBalancer that predates the
// guard in a tenant's namespace becomes a gauge sample and a summary in the
// Tenant's status; once it is gone, both say so.
func TestAuditorPublishesViolations(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "audited")
	tn := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "audited"}, Spec: v1alpha1.TenantSpec{Namespaces: []string{"audited"}}}
	if err := admin.Create(ctx, tn); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "audited"}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels = map[string]string{v1alpha1.TenantLabel: "audited"}
	if err := admin.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "audited", Name: "public"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := admin.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	gauge := controller.NewViolationsGauge(prometheus.NewRegistry())
	a := &controller.Auditor{Reader: admin, Client: admin, Engine: policy.NewEngine(config.Default()), Gauge: gauge}
	if err := a.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	got := &v1alpha1.Tenant{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "audited"}, got); err != nil {
		t.Fatal(err)
	}
	s := got.Status.Audit
	if s == nil || s.Violations != 1 || len(s.Findings) != 1 || !strings.Contains(s.Findings[0], "audited/public") {
		t.Fatalf("audit summary %+v, want the public load balancer", s)
	}
	var rule string
	for r := range s.Rules {
		rule = r
	}
	if n := testutil.ToFloat64(gauge.WithLabelValues("audited", rule)); n != 1 {
		t.Fatalf("tenantguard_violations{tenant=audited,rule=%s} = %v, want 1", rule, n)
	}

	if err := admin.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := a.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(ctx, client.ObjectKey{Name: "audited"}, got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Audit == nil || got.Status.Audit.Violations != 0 {
		t.Fatalf("after the fix the summary is %+v, want no violations", got.Status.Audit)
	}
	if n := testutil.CollectAndCount(gauge); n != 0 {
		t.Fatalf("%d gauge samples after the fix, want none", n)
	}
}
