package guard

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestTrimForCache: the cache keeps what the guard reads and drops the
// rest; objects of kinds the guard writes keep their annotations whole.
func TestTrimForCache(t *testing.T) {
	trim := trimForCache(allHostKinds())
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "p1", ManagedFields: managed, Annotations: map[string]string{
			lastApplied: `{"kind":"Ingress"}`, "nginx.ingress.kubernetes.io/server-alias": "www.example.com",
		}},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "shop.example.com"}}},
		Status: networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{
			Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "10.0.0.1"}}}},
	}
	out, err := trim(ing)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*networkingv1.Ingress)
	if got.ManagedFields != nil || got.Annotations[lastApplied] != "" || len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("Ingress not trimmed: %+v", got)
	}
	if got.Annotations["nginx.ingress.kubernetes.io/server-alias"] != "www.example.com" || got.Spec.Rules[0].Host != "shop.example.com" {
		t.Errorf("Ingress lost what the guard reads: %+v", got)
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "p1", ManagedFields: managed,
		Annotations: map[string]string{lastApplied: `{"kind":"Namespace"}`}}}
	out, err = trim(ns)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(*corev1.Namespace); got.ManagedFields != nil || got.Annotations[lastApplied] == "" {
		t.Errorf("a Namespace loses only its field managers: %+v", got.ObjectMeta)
	}
}
