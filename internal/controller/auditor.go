package controller

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/audit"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// maxStatusFindings bounds the findings a Tenant's status lists.
const maxStatusFindings = 20

// NewViolationsGauge is tenantguard_violations{tenant,rule}: what the last
// audit found. Register it once per process; auditors of later leader
// terms share it.
func NewViolationsGauge(reg prometheus.Registerer) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tenantguard_violations",
		Help: "Violations the cluster holds, as the last periodic audit found them, by tenant (empty for namespaces of no tenant) and rule.",
	}, []string{"tenant", "rule"})
	reg.MustRegister(g)
	return g
}

// Auditor runs `tenantguard audit` on a schedule inside serve, on the
// leader, as Gatekeeper's audit does for its constraints: the violations
// the cluster already holds become a gauge and a summary in each Tenant's
// status. It never changes or removes an object.
type Auditor struct {
	// Reader lists the cluster (from the API server: the audit reads kinds
	// the guard does not cache, such as Pods).
	Reader client.Reader
	// Client writes Tenant status.
	Client   client.Client
	Engine   *policy.Engine
	Interval time.Duration
	Gauge    *prometheus.GaugeVec
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Start runs an audit every Interval until ctx ends.
func (a *Auditor) Start(ctx context.Context) error {
	for {
		if err := a.Pass(ctx); err != nil && ctx.Err() == nil {
			log.FromContext(ctx).Error(err, "periodic audit")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(a.Interval):
		}
	}
}

// Pass runs one audit and publishes it.
func (a *Auditor) Pass(ctx context.Context) error {
	res, err := audit.Run(ctx, a.Reader, a.Engine)
	if err != nil {
		return err
	}
	tenants := &v1alpha1.TenantList{}
	if err := a.Reader.List(ctx, tenants); err != nil {
		return err
	}
	tenantOf := map[string]string{}
	for _, t := range tenants.Items {
		for _, ns := range t.Status.Namespaces {
			tenantOf[ns] = t.Name
		}
		for _, ns := range t.Spec.Namespaces {
			tenantOf[ns] = t.Name
		}
	}
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	summaries := map[string]*v1alpha1.TenantAudit{}
	for _, t := range tenants.Items {
		summaries[t.Name] = &v1alpha1.TenantAudit{Time: metav1.NewTime(now)}
	}
	counts := map[[2]string]float64{}
	for _, f := range res.Findings {
		tenant := tenantOf[f.Namespace]
		if f.Kind == "Tenant" {
			tenant = f.Name
		}
		counts[[2]string{tenant, string(f.Rule)}]++
		s := summaries[tenant]
		if s == nil {
			continue
		}
		s.Violations++
		if s.Rules == nil {
			s.Rules = map[string]int32{}
		}
		s.Rules[string(f.Rule)]++
		if len(s.Findings) < maxStatusFindings {
			s.Findings = append(s.Findings, f.String())
		}
	}
	if a.Gauge != nil {
		a.Gauge.Reset()
		for k, n := range counts {
			a.Gauge.WithLabelValues(k[0], k[1]).Set(n)
		}
	}
	for name, s := range summaries {
		if err := a.writeStatus(ctx, name, s); err != nil {
			log.FromContext(ctx).Info("could not write the audit into a Tenant's status; next pass", "tenant", name, "error", err.Error())
		}
	}
	return nil
}

// writeStatus records s in the Tenant's status, with the resourceVersion
// it read, so the tenant controller's writes are never lost.
func (a *Auditor) writeStatus(ctx context.Context, name string, s *v1alpha1.TenantAudit) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		t := &v1alpha1.Tenant{}
		if err := a.Reader.Get(ctx, client.ObjectKey{Name: name}, t); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		if old := t.Status.Audit; old != nil && old.Violations == s.Violations && maps.Equal(old.Rules, s.Rules) && slices.Equal(old.Findings, s.Findings) {
			return nil // unchanged: no write, the time of the last change stays
		}
		t.Status.Audit = s
		return a.Client.Status().Update(ctx, t)
	})
}
