package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/audit"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// TestPreexistingCluster installs the guard into a cluster that already
// holds violations: the audit lists them, the guard claims hosts oldest
// object first without touching any object, and the later user of a host
// is left running and reported.
func TestPreexistingCluster(t *testing.T) {
	ctx := context.Background()
	crds, err := devenv.AllCRDs()
	if err != nil {
		t.Fatal(err)
	}
	old := devenvtest.Start(t, devenv.Options{CRDs: crds})
	c, err := client.New(old.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate := func(o client.Object) {
		t.Helper()
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	mustCreate(&v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "old-a"}, Spec: v1alpha1.TenantSpec{
		Namespaces: []string{"old-a"},
		Ingress:    v1alpha1.IngressPolicy{AllowedHosts: []string{"*.old.example.com"}},
		Images:     v1alpha1.ImagePolicy{AllowedRepositories: []string{"registry.example.com/a/*"}},
	}})
	for _, ns := range []string{"old-a", "old-b"} {
		mustCreate(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{v1alpha1.TenantLabel: "old-a"}}})
	}
	// old-b's Ingress comes first, so it owns the host; old-a's is the hijack.
	mustCreate(ing("old-b", "first", "/", "shared.old.example.com"))
	time.Sleep(1100 * time.Millisecond) // creationTimestamp has one-second resolution
	mustCreate(ing("old-a", "second", "/", "shared.old.example.com"))
	mustCreate(service("old-a", "public", corev1.ServiceTypeLoadBalancer, nil))
	labels := map[string]string{"app": "x"}
	mustCreate(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "foreign", Namespace: "old-a"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "evil.example.org/miner"}}},
		}},
	})

	res, err := audit.Run(ctx, c, policy.NewEngine(cfg))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range res.Findings {
		got = append(got, fmt.Sprintf("%s %s/%s %s", f.Kind, f.Namespace, f.Name, f.Rule))
	}
	want := []string{
		"Ingress old-a/second host-ownership",
		"Service old-a/public service-load-balancer",
		"Deployment old-a/foreign image-repository",
	}
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	g, err := old.StartGuard(ctx, devenv.GuardOptions{Config: cfg, Dir: t.TempDir(), AdoptInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	eventually(t, func() error {
		hc := &v1alpha1.HostClaim{}
		name := hosts.ClaimName(hosts.MustParse("shared.old.example.com", v1alpha1.HostMatchExact))
		if err := c.Get(ctx, client.ObjectKey{Name: name}, hc); err != nil {
			return err
		}
		if hc.Spec.Namespace != "old-b" {
			return fmt.Errorf("host claimed for %s, want old-b (oldest object)", hc.Spec.Namespace)
		}
		return nil
	})
	// Nothing was refused or removed: the later Ingress still serves.
	if err := c.Get(ctx, client.ObjectKey{Namespace: "old-a", Name: "second"}, &networkingv1.Ingress{}); err != nil {
		t.Fatalf("the conflicting Ingress must be left alone: %v", err)
	}
	eventually(t, func() error {
		events := &corev1.EventList{}
		if err := c.List(ctx, events, client.InNamespace("old-a")); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Reason == "HostConflict" && e.InvolvedObject.Name == "second" {
				return nil
			}
		}
		return fmt.Errorf("no HostConflict event on old-a/second yet")
	})
	// It can still be updated (its conflict predates the guard), but a
	// new Ingress with the host is refused.
	i := &networkingv1.Ingress{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "old-a", Name: "second"}, i); err != nil {
		t.Fatal(err)
	}
	i.Labels = map[string]string{"touched": "yes"}
	admitted(t, c.Update(ctx, i))
	refused(t, c.Create(ctx, ing("old-a", "third", "/x", "shared.old.example.com")), `namespace "old-b"`)

	// An admin reservation written by hand over a claimed host is reported.
	over := hosts.NewClaim(hosts.MustParse("*.old.example.com", v1alpha1.HostMatchSingleLabel), hosts.Owner{Tenant: "someone", Reserved: true})
	if err := c.Create(ctx, over); err != nil {
		t.Fatal(err)
	}
	res, err = audit.Run(ctx, c, policy.NewEngine(cfg))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range res.Findings {
		found = found || f.Kind == "HostClaim" && f.Name == over.Name && strings.Contains(f.Message, "overlaps the older claim host.shared.old.example.com")
	}
	if !found {
		t.Fatalf("the overlapping reservation is not reported: %v", res.Findings)
	}
}
