package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
)

// ing is an Ingress of class nginx with one rule per host, all on path.
func ing(ns, name, path string, hostNames ...string) *networkingv1.Ingress {
	class := "nginx"
	prefix := networkingv1.PathTypePrefix
	i := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       networkingv1.IngressSpec{IngressClassName: &class},
	}
	for _, h := range hostNames {
		i.Spec.Rules = append(i.Spec.Rules, networkingv1.IngressRule{Host: h, IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: path, PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}},
		}})
	}
	return i
}

func httpRoute(ns, name string, hostNames ...string) *gatewayv1.HTTPRoute {
	r := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	for _, h := range hostNames {
		r.Spec.Hostnames = append(r.Spec.Hostnames, gatewayv1.Hostname(h))
	}
	return r
}

func claimOf(t *testing.T, host string, match v1alpha1.HostMatch) (*v1alpha1.HostClaim, error) {
	t.Helper()
	hc := &v1alpha1.HostClaim{}
	err := admin.Get(context.Background(), client.ObjectKey{Name: hosts.ClaimName(hosts.MustParse(host, match))}, hc)
	return hc, err
}

func TestHostOwnershipAsTenants(t *testing.T) {
	ctx := context.Background()
	alice := tenant(t, v1alpha1.TenantSpec{
		Namespaces: []string{"host-a1", "host-a2"},
		Ingress:    v1alpha1.IngressPolicy{AllowedHosts: []string{"shop.example.com", "*.shared.example.com"}},
	}, "hosts-a")
	bob := tenant(t, v1alpha1.TenantSpec{
		Namespaces: []string{"host-b"},
		Ingress:    v1alpha1.IngressPolicy{AllowedHosts: []string{"shop.example.com", "*.shared.example.com"}},
	}, "hosts-b")

	t.Run("the field report: another tenant's host is refused, naming the owner", func(t *testing.T) {
		admitted(t, alice.Create(ctx, ing("host-a1", "shop", "/", "shop.example.com")))
		refused(t, bob.Create(ctx, ing("host-b", "shop", "/", "shop.example.com")),
			`host "shop.example.com" belongs to namespace "host-a1" of tenant "hosts-a"`, "rule host-ownership", "Instead:")
		hc, err := claimOf(t, "shop.example.com", v1alpha1.HostMatchExact)
		if err != nil || hc.Spec.Namespace != "host-a1" || hc.Spec.Tenant != "hosts-a" {
			t.Fatalf("claim of shop.example.com: %+v, %v", hc.Spec, err)
		}
		eventually(t, func() error {
			hc, _ := claimOf(t, "shop.example.com", v1alpha1.HostMatchExact)
			if len(hc.Status.Objects) != 1 || hc.Status.Objects[0].Name != "shop" {
				return fmt.Errorf("claim status lists %v, want the Ingress shop", hc.Status.Objects)
			}
			return nil
		})
	})
	t.Run("same tenant, other namespace refused", func(t *testing.T) {
		refused(t, alice.Create(ctx, ing("host-a2", "shop", "/other", "shop.example.com")), `namespace "host-a1"`)
	})
	t.Run("same namespace: same host and path refused, another path allowed", func(t *testing.T) {
		refused(t, alice.Create(ctx, ing("host-a1", "shop-typo", "/", "shop.example.com")), `path "/" on host "shop.example.com" is already served by Ingress "shop"`)
		admitted(t, alice.Create(ctx, ing("host-a1", "acme-solver", "/.well-known/acme-challenge/token", "shop.example.com")))
	})
	t.Run("TLS hosts count", func(t *testing.T) {
		i := ing("host-b", "tls-grab", "/", "b1.shared.example.com")
		i.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: "stolen"}}
		refused(t, bob.Create(ctx, i), "shop.example.com", "host-a1")
	})
	t.Run("annotation hosts count", func(t *testing.T) {
		i := ing("host-b", "alias-grab", "/", "b2.shared.example.com")
		i.Annotations = map[string]string{"nginx.ingress.kubernetes.io/server-alias": "shop.example.com"}
		refused(t, bob.Create(ctx, i), "shop.example.com")
		i = ing("host-b", "agic-grab", "/", "b3.shared.example.com")
		i.Annotations = map[string]string{"appgw.ingress.kubernetes.io/hostname-extension": "shop.example.com"}
		refused(t, bob.Create(ctx, i), "shop.example.com")
	})
	t.Run("Ingress wildcard blocks the names it matches, one label deep", func(t *testing.T) {
		admitted(t, alice.Create(ctx, ing("host-a1", "wild", "/", "*.w1.shared.example.com")))
		refused(t, bob.Create(ctx, ing("host-b", "x", "/", "x.w1.shared.example.com")), `overlaps "*.w1.shared.example.com"`)
		admitted(t, bob.Create(ctx, ing("host-b", "deep", "/", "y.x.w1.shared.example.com")))
	})
	t.Run("a name blocks a later wildcard over it", func(t *testing.T) {
		admitted(t, bob.Create(ctx, ing("host-b", "first", "/", "n.w2.shared.example.com")))
		refused(t, alice.Create(ctx, ing("host-a1", "wild2", "/", "*.w2.shared.example.com")), "n.w2.shared.example.com")
	})
	t.Run("Gateway API wildcard matches any depth", func(t *testing.T) {
		admitted(t, alice.Create(ctx, httpRoute("host-a1", "gw-wild", "*.g.shared.example.com")))
		refused(t, bob.Create(ctx, ing("host-b", "gdeep", "/", "deep.x.g.shared.example.com")), `overlaps "*.g.shared.example.com"`)
		refused(t, bob.Create(ctx, httpRoute("host-b", "gw-wild2", "*.x.g.shared.example.com")), "host-a1")
	})
	t.Run("HTTPRoute cannot take an Ingress's host", func(t *testing.T) {
		refused(t, bob.Create(ctx, httpRoute("host-b", "shop-route", "shop.example.com")), `namespace "host-a1"`)
	})
	t.Run("multi-host Ingress with one foreign host is refused and claims nothing", func(t *testing.T) {
		refused(t, bob.Create(ctx, ing("host-b", "multi", "/", "m1.shared.example.com", "m2.shared.example.com", "shop.example.com")), "shop.example.com")
		for _, h := range []string{"m1.shared.example.com", "m2.shared.example.com"} {
			if _, err := claimOf(t, h, v1alpha1.HostMatchExact); !apierrors.IsNotFound(err) {
				t.Errorf("claim of %s left behind: %v", h, err)
			}
		}
	})
	t.Run("dry run claims nothing", func(t *testing.T) {
		admitted(t, bob.Create(ctx, ing("host-b", "dry", "/", "dry.shared.example.com"), client.DryRunAll))
		if _, err := claimOf(t, "dry.shared.example.com", v1alpha1.HostMatchExact); !apierrors.IsNotFound(err) {
			t.Fatalf("dry run left a claim: %v", err)
		}
	})
	t.Run("a host is freed after its last user is deleted, then claimable", func(t *testing.T) {
		for _, name := range []string{"shop", "acme-solver"} {
			if err := alice.Delete(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "host-a1"}}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, func() error {
			if _, err := claimOf(t, "shop.example.com", v1alpha1.HostMatchExact); !apierrors.IsNotFound(err) {
				return fmt.Errorf("claim still there (grace period %s): %v", gracePeriod, err)
			}
			return nil
		})
		eventually(t, func() error { return bob.Create(ctx, ing("host-b", "shop", "/", "shop.example.com")) })
		hc, err := claimOf(t, "shop.example.com", v1alpha1.HostMatchExact)
		if err != nil || hc.Spec.Namespace != "host-b" {
			t.Fatalf("new claim: %+v %v", hc.Spec, err)
		}
	})
}

func TestHostRulesForTenantsEndToEnd(t *testing.T) {
	ctx := context.Background()
	carol := tenant(t, v1alpha1.TenantSpec{
		Namespaces: []string{"rules-c"},
		Ingress:    v1alpha1.IngressPolicy{AllowedHosts: []string{"*.c.example.com"}, AllowedClasses: []string{"nginx"}},
	}, "rules-c")
	refused(t, carol.Create(ctx, ing("rules-c", "elsewhere", "/", "www.example.org")), "rule host-allowlist")
	refused(t, carol.Create(ctx, ing("rules-c", "wide", "/", "*.example.com")), "wider")
	catchAll := ing("rules-c", "catch-all", "/", "")
	refused(t, carol.Create(ctx, catchAll), "rule catch-all")
	refused(t, carol.Create(ctx, httpRoute("rules-c", "no-hostnames")), "spec.hostnames")
	def := ing("rules-c", "default-backend", "/", "ok.c.example.com")
	def.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}
	refused(t, carol.Create(ctx, def), "spec.defaultBackend")
	class := "azure-application-gateway"
	other := ing("rules-c", "other-class", "/", "ok.c.example.com")
	other.Spec.IngressClassName = &class
	refused(t, carol.Create(ctx, other), "rule ingress-class")
	admitted(t, carol.Create(ctx, ing("rules-c", "ok", "/", "ok.c.example.com")))
	if _, err := claimOf(t, "ok.c.example.com", v1alpha1.HostMatchExact); err != nil {
		t.Fatalf("the claim is under the normalised name: %v", err)
	}
}

// TestClaimOfARefusedObjectIsReleased: the webhook claims a host, then a
// later admission step (ResourceQuota, which runs after the webhooks)
// refuses the object. The claim is left without an object and is released
// after the grace period.
func TestClaimOfARefusedObjectIsReleased(t *testing.T) {
	ctx := context.Background()
	erin := tenant(t, v1alpha1.TenantSpec{
		Namespaces: []string{"quota-e"},
		Ingress:    v1alpha1.IngressPolicy{AllowedHosts: []string{"*.e.example.com"}},
	}, "quota-e")
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "no-ingresses", Namespace: "quota-e"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/ingresses.networking.k8s.io": resource.MustParse("0")}},
	}
	if err := admin.Create(ctx, quota); err != nil {
		t.Fatal(err)
	}
	// No quota controller runs here; set the status it would.
	quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard, Used: corev1.ResourceList{"count/ingresses.networking.k8s.io": resource.MustParse("0")}}
	if err := admin.Status().Update(ctx, quota); err != nil {
		t.Fatal(err)
	}
	var err error
	eventually(t, func() error {
		err = erin.Create(ctx, ing("quota-e", "over-quota", "/", "q.e.example.com"))
		if err == nil || !strings.Contains(err.Error(), "exceeded quota") {
			return fmt.Errorf("want the quota's refusal, got %v", err)
		}
		return nil
	})
	if _, err := claimOf(t, "q.e.example.com", v1alpha1.HostMatchExact); err != nil {
		t.Fatalf("the webhook should have claimed the host before the quota refused the object: %v", err)
	}
	eventually(t, func() error {
		if _, err := claimOf(t, "q.e.example.com", v1alpha1.HostMatchExact); !apierrors.IsNotFound(err) {
			return fmt.Errorf("orphan claim still there: %v", err)
		}
		return nil
	})
}

func TestNamespacesWithoutTenantOwnTheirHosts(t *testing.T) {
	ctx := context.Background()
	namespace(t, "legacy", "")
	admitted(t, admin.Create(ctx, ing("legacy", "old-site", "/", "legacy.example.net")))
	dave := tenant(t, v1alpha1.TenantSpec{
		Namespaces: []string{"rules-d"},
		Ingress:    v1alpha1.IngressPolicy{AllowedHosts: []string{"legacy.example.net"}},
	}, "rules-d")
	err := dave.Create(ctx, ing("rules-d", "take", "/", "legacy.example.net"))
	refused(t, err, `namespace "legacy"`)
	if strings.Contains(err.Error(), "tenant \"\"") {
		t.Errorf("message names an empty tenant: %v", err)
	}
}

// TestReservedHost: a cluster admin reserves a host for a tenant ahead of
// use. Another tenant is refused; the first namespace of the tenant that
// uses it becomes its owner; and a reservation is never released.
func TestReservedHost(t *testing.T) {
	ctx := context.Background()
	frank := tenant(t, v1alpha1.TenantSpec{
		Namespaces: []string{"res-f1", "res-f2"},
		Ingress:    v1alpha1.IngressPolicy{AllowedHosts: []string{"*.res.example.com"}},
	}, "res-f")
	grace := tenant(t, v1alpha1.TenantSpec{
		Namespaces: []string{"res-g"},
		Ingress:    v1alpha1.IngressPolicy{AllowedHosts: []string{"*.res.example.com"}},
	}, "res-g")
	n := hosts.MustParse("launch.res.example.com", v1alpha1.HostMatchExact)
	claim := hosts.NewClaim(n, hosts.Owner{Tenant: "res-f", Reserved: true})
	if err := admin.Create(ctx, claim); err != nil {
		t.Fatalf("an admin reserves a host: %v", err)
	}
	bad := hosts.NewClaim(hosts.MustParse("nobody.res.example.com", v1alpha1.HostMatchExact), hosts.Owner{})
	if err := admin.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "a claim needs an owner") {
		t.Fatalf("a claim without owner must be refused by the CRD: %v", err)
	}
	eventually(t, func() error {
		if _, ok := guard.Guard.View().Hosts().Owner(n); !ok {
			return fmt.Errorf("guard does not see the reservation yet")
		}
		return nil
	})
	refused(t, grace.Create(ctx, ing("res-g", "launch", "/", "launch.res.example.com")), `reserved for tenant "res-f"`)
	admitted(t, frank.Create(ctx, ing("res-f2", "launch", "/", "launch.res.example.com")))
	hc, err := claimOf(t, "launch.res.example.com", v1alpha1.HostMatchExact)
	if err != nil || hc.Spec.Namespace != "res-f2" || !hc.Spec.Reserved {
		t.Fatalf("the reservation is bound to the first namespace that uses it: %+v %v", hc.Spec, err)
	}
	refused(t, frank.Create(ctx, ing("res-f1", "launch", "/", "launch.res.example.com")), `namespace "res-f2"`)
	if err := frank.Delete(ctx, ing("res-f2", "launch", "/")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(gracePeriod + time.Second)
	if _, err := claimOf(t, "launch.res.example.com", v1alpha1.HostMatchExact); err != nil {
		t.Fatalf("a reserved claim must outlive its users: %v", err)
	}
}
