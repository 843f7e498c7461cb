package policy_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// BenchmarkPodDecision is one decision on a Pod with five containers, all
// allowed, in a tenant namespace.
func BenchmarkPodDecision(b *testing.B) {
	view := policy.NewSnapshot()
	tn, err := policy.CompileTenant(&v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "project1"}, Spec: v1alpha1.TenantSpec{
		Namespaces: []string{"p1"},
		Images: v1alpha1.ImagePolicy{AllowedRepositories: []string{
			"docker.io/library/*", "myacr.azurecr.io/project1/*", "myacr.azurecr.io/shared/**",
		}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	view.SetTenant(tn)
	view.SetNamespace("p1", map[string]string{v1alpha1.TenantLabel: "project1"})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "p1"}}
	for i, img := range []string{"myacr.azurecr.io/project1/api:1.0", "nginx:1.27", "myacr.azurecr.io/shared/base/sidecar:3",
		"myacr.azurecr.io/project1/worker@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b", "myacr.azurecr.io/project1/log:2"} {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: fmt.Sprint("c", i), Image: img})
	}
	req := policy.Request{Operation: policy.Create, Object: pod, Kind: corev1.SchemeGroupVersion.WithKind("Pod"), Namespace: "p1", Name: "p",
		User: policy.User{Name: "alice", Groups: []string{"project1-devs"}}}
	// Pods name the same images over and over; the engine remembers parsed
	// references. "first-sight" is a new engine each time: every reference
	// is parsed.
	b.Run("seen-images", func(b *testing.B) {
		engine := policy.NewEngine(config.Default())
		b.ReportAllocs()
		for b.Loop() {
			if d := engine.Evaluate(req, view); !d.Allowed() {
				b.Fatal(d.Violations)
			}
		}
	})
	b.Run("first-sight", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d := policy.NewEngine(config.Default()).Evaluate(req, view); !d.Allowed() {
				b.Fatal(d.Violations)
			}
		}
	})
}

// BenchmarkIngressDecision decides on an Ingress with a new host in a
// cluster of `ingresses` Ingresses spread over 1,000 tenants (two
// namespaces each), excluding the claim write. Its cost must not grow with
// the cluster.
func BenchmarkIngressDecision(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("ingresses=%d", n), func(b *testing.B) {
			engine := policy.NewEngine(config.Default())
			view := policy.NewSnapshot()
			const tenants = 1000
			for t := 0; t < tenants; t++ {
				name := fmt.Sprintf("t%04d", t)
				tn, err := policy.CompileTenant(&v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.TenantSpec{
					Namespaces: []string{name + "-a", name + "-b"},
					Ingress:    v1alpha1.IngressPolicy{AllowedHosts: []string{"*." + name + ".example.com", "*.shared.example.com"}},
				}})
				if err != nil {
					b.Fatal(err)
				}
				view.SetTenant(tn)
				view.SetNamespace(name+"-a", map[string]string{v1alpha1.TenantLabel: name})
				view.SetNamespace(name+"-b", map[string]string{v1alpha1.TenantLabel: name})
			}
			for i := 0; i < n; i++ {
				t := fmt.Sprintf("t%04d", i%tenants)
				ns := t + "-a"
				ing := ingressObj(ns, fmt.Sprintf("i%d", i), fmt.Sprintf("app%d.%s.example.com", i, t))
				if d := view.Apply(engine, ingressRequest(ing)); !d.Allowed() {
					b.Fatal(d.Violations)
				}
			}
			req := ingressRequest(ingressObj("t0007-b", "new", "new.t0007.example.com"))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if d := engine.Evaluate(req, view); !d.Allowed() || len(d.Claims) != 1 {
					b.Fatal(d.Violations)
				}
			}
		})
	}
}

func ingressObj(ns, name, host string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.IngressSpec{
			TLS: []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: name}},
			Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}},
			}}}},
		},
	}
}

func ingressRequest(ing *networkingv1.Ingress) policy.Request {
	return policy.Request{Operation: policy.Create, Object: ing, Kind: networkingv1.SchemeGroupVersion.WithKind("Ingress"),
		Namespace: ing.Namespace, Name: ing.Name, User: policy.User{Name: "dev"}}
}
