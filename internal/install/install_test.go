package install_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/install"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/manifest"
	"github.com/tenantguard/tenantguard/internal/tenancy"
)

// TestInstallOnARealAPIServer applies the rendered installation (the
// chart's defaults) to a real API server (no Gateway API installed), checks
// that tenant namespaces fail closed while the guard is unreachable and
// system namespaces do not, that the guard may keep its own certificate and
// no other Secret or webhook configuration, and then runs the guard under
// the rendered service account's identity: its RBAC must be enough to
// watch, claim, release and elect a leader.
func TestInstallOnARealAPIServer(t *testing.T) {
	ctx := context.Background()
	env := devenvtest.Start(t, devenv.Options{})
	admin, err := client.New(env.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ClaimGracePeriod.Duration = time.Second
	objs, err := install.Render(install.Options{Config: cfg, Image: "registry.example.com/tenantguard:test", Replicas: 2, CertValidity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	// The YAML is what users apply: it must read back as the same objects.
	var buf bytes.Buffer
	if err := install.WriteYAML(&buf, objs); err != nil {
		t.Fatal(err)
	}
	parsed, err := manifest.Parse("install.yaml", buf.Bytes())
	if err != nil {
		t.Fatalf("rendered YAML does not parse strictly: %v", err)
	}
	if len(parsed) != len(objs) {
		t.Fatalf("%d objects rendered, %d read back", len(objs), len(parsed))
	}

	for _, o := range parsed {
		obj := o.Object.(client.Object)
		if vwc, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration); ok {
			// The API server would dial the Service's cluster IP, which is
			// not on loopback here; call a closed loopback port instead, as
			// a cluster whose guard pods are all down.
			for i := range vwc.Webhooks {
				if vwc.Webhooks[i].ClientConfig.Service == nil {
					t.Fatalf("webhook %s does not call the Service", vwc.Webhooks[i].Name)
				}
				url := "https://127.0.0.1:1/validate"
				vwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: vwc.Webhooks[i].ClientConfig.CABundle}
			}
		}
		if mwc, ok := obj.(*admissionregistrationv1.MutatingWebhookConfiguration); ok {
			for i := range mwc.Webhooks {
				if mwc.Webhooks[i].ClientConfig.Service == nil {
					t.Fatalf("webhook %s does not call the Service", mwc.Webhooks[i].Name)
				}
				url := "https://127.0.0.1:1/mutate-namespace"
				mwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: mwc.Webhooks[i].ClientConfig.CABundle}
			}
		}
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatalf("apply %s %s: %v", o.GVK.Kind, obj.GetName(), err)
		}
		if c, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
			waitEstablished(t, admin, c.Name)
		}
	}

	// No guard pod runs here: tenant namespaces fail closed, kube-system not.
	for _, ns := range []string{"team-a", "team-b"} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{v1alpha1.TenantLabel: "team"}}}); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(ns string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{GenerateName: "s-", Namespace: ns}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	}
	if err := admin.Create(ctx, svc("team-a")); err == nil || !strings.Contains(err.Error(), "tenants.tenantguard.dev") {
		t.Fatalf("a tenant namespace must fail closed while the guard is down, got %v", err)
	}
	if err := admin.Create(ctx, svc("kube-system")); err != nil {
		t.Fatalf("kube-system must not depend on the guard: %v", err)
	}
	// Namespace creation by a user who may create namespaces (a tenant
	// owner with a namespaceQuota) fails closed too; an admin's did not
	// (team-a and team-b above).
	if err := admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "install-test-namespace-creator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: tenancy.NamespaceCreatorRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "owner"}},
	}); err != nil {
		t.Fatal(err)
	}
	asOwner := rest.CopyConfig(env.Config)
	asOwner.Impersonate = rest.ImpersonationConfig{UserName: "owner", Groups: []string{"system:authenticated"}}
	ownerClient, err := client.New(asOwner, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	// RBAC takes a moment to reach the authorizer; the webhook's refusal
	// comes after it.
	var nsErr error
	poll(t, func() error {
		nsErr = ownerClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-c"}}, client.DryRunAll)
		if apierrors.IsForbidden(nsErr) && !strings.Contains(nsErr.Error(), "namespaces-create.tenantguard.dev") {
			return nsErr
		}
		return nil
	})
	if nsErr == nil || !strings.Contains(nsErr.Error(), "namespaces-create.tenantguard.dev") {
		t.Fatalf("a non-admin's namespace must fail closed while the guard is down, got %v", nsErr)
	}

	// The guard may keep its own certificate and caBundle, and nothing else.
	guardUser := fmt.Sprintf("system:serviceaccount:%s:%s", cfg.GuardNamespace, cfg.GuardServiceAccount)
	for _, c := range []struct {
		attrs authorizationv1.ResourceAttributes
		want  bool
	}{
		{authorizationv1.ResourceAttributes{Namespace: cfg.GuardNamespace, Verb: "update", Resource: "secrets", Name: "tenantguard-webhook-tls"}, true},
		{authorizationv1.ResourceAttributes{Namespace: cfg.GuardNamespace, Verb: "create", Resource: "secrets"}, true},
		{authorizationv1.ResourceAttributes{Namespace: cfg.GuardNamespace, Verb: "get", Resource: "secrets", Name: "other"}, false},
		{authorizationv1.ResourceAttributes{Namespace: "team-a", Verb: "get", Resource: "secrets", Name: "tenantguard-webhook-tls"}, false},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "tenantguard"}, true},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "other"}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations", Name: "other"}, false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: guardUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + cfg.GuardNamespace}, ResourceAttributes: &c.attrs,
		}}
		if err := admin.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != c.want {
			t.Errorf("guard may %s %s %q in %q: %v, want %v", c.attrs.Verb, c.attrs.Resource, c.attrs.Name, c.attrs.Namespace, sar.Status.Allowed, c.want)
		}
	}

	// Run the guard as its service account, and point the webhook at it.
	if err := admin.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "tenantguard"}}); err != nil {
		t.Fatal(err)
	}
	asGuard := rest.CopyConfig(env.Config)
	asGuard.Impersonate = rest.ImpersonationConfig{
		UserName: guardUser,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + cfg.GuardNamespace, "system:authenticated"},
	}
	if err := admin.Create(ctx, &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: v1alpha1.TenantSpec{
		Namespaces: []string{"team-a", "team-b"}, Ingress: v1alpha1.IngressPolicy{AllowedHosts: []string{"*.team.example.com"}},
	}}); err != nil {
		t.Fatal(err)
	}
	g, err := env.StartGuard(ctx, devenv.GuardOptions{Config: cfg, Dir: t.TempDir(), RestConfig: asGuard, LeaderElection: true, AdoptInterval: time.Second})
	if err != nil {
		t.Fatalf("the guard cannot run with the rendered RBAC: %v", err)
	}
	defer g.Stop()

	ing := func(ns, name string) *networkingv1.Ingress {
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{{Host: "app.team.example.com"}}}}
	}
	poll(t, func() error { return admin.Create(ctx, ing("team-a", "app")) })
	if err := admin.Create(ctx, ing("team-b", "app")); err == nil || !strings.Contains(err.Error(), `namespace "team-a"`) {
		t.Fatalf("host ownership under the rendered RBAC: %v", err)
	}
	// The controller (leader-elected, status updates, deletes) releases the
	// host once its Ingress is gone.
	if err := admin.Delete(ctx, ing("team-a", "app")); err != nil {
		t.Fatal(err)
	}
	poll(t, func() error { return admin.Create(ctx, ing("team-b", "app")) })
	leases := &coordinationv1.LeaseList{}
	if err := admin.List(ctx, leases, client.InNamespace(cfg.GuardNamespace)); err != nil || len(leases.Items) == 0 {
		t.Fatalf("no leader election lease in %s: %v", cfg.GuardNamespace, err)
	}
}

func waitEstablished(t *testing.T, c client.Client, name string) {
	t.Helper()
	poll(t, func() error {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(context.Background(), client.ObjectKey{Name: name}, crd); err != nil {
			return err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("CRD %s not established", name)
	})
}

func poll(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after a minute: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRenderRefusesBadOptions(t *testing.T) {
	if _, err := install.Render(install.Options{Config: config.Default(), Replicas: 2}); err == nil {
		t.Error("no image accepted")
	}
	if _, err := install.Render(install.Options{Config: config.Default(), Image: "x", Replicas: 0}); err == nil {
		t.Error("zero replicas accepted")
	}
}
