package e2e

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

const internalAnnotation = "service.beta.kubernetes.io/azure-load-balancer-internal"

func service(ns, name string, typ corev1.ServiceType, annotations map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt(8080)}},
		},
	}
}

func TestServicesAsTenant(t *testing.T) {
	ctx := context.Background()
	alice := tenant(t, v1alpha1.TenantSpec{
		Namespaces: []string{"svc-a"},
		Services:   v1alpha1.ServicePolicy{LoadBalancer: v1alpha1.LoadBalancerInternalOnly},
	}, "svc-tenant-a")
	bob := tenant(t, v1alpha1.TenantSpec{Namespaces: []string{"svc-b"}}, "svc-tenant-b")

	t.Run("public load balancer refused", func(t *testing.T) {
		err := alice.Create(ctx, service("svc-a", "public", corev1.ServiceTypeLoadBalancer, nil))
		refused(t, err, "Service svc-a/public", "public IP", internalAnnotation, "rule service-load-balancer")
	})
	t.Run("dry run is refused the same way", func(t *testing.T) {
		err := alice.Create(ctx, service("svc-a", "public", corev1.ServiceTypeLoadBalancer, nil), client.DryRunAll)
		refused(t, err, "rule service-load-balancer")
	})
	t.Run("internal load balancer allowed in InternalOnly mode", func(t *testing.T) {
		admitted(t, alice.Create(ctx, service("svc-a", "internal", corev1.ServiceTypeLoadBalancer, map[string]string{internalAnnotation: "true"})))
	})
	t.Run("any load balancer refused in Deny mode", func(t *testing.T) {
		err := bob.Create(ctx, service("svc-b", "internal", corev1.ServiceTypeLoadBalancer, map[string]string{internalAnnotation: "true"}))
		refused(t, err, `tenant "svc-tenant-b"`)
	})
	t.Run("node port refused", func(t *testing.T) {
		refused(t, alice.Create(ctx, service("svc-a", "np", corev1.ServiceTypeNodePort, nil)), "rule service-node-port")
	})
	t.Run("external IPs refused", func(t *testing.T) {
		s := service("svc-a", "eip", corev1.ServiceTypeClusterIP, nil)
		s.Spec.ExternalIPs = []string{"192.0.2.10"}
		refused(t, alice.Create(ctx, s), "CVE-2020-8554", "spec.externalIPs[0]")
	})
	t.Run("update ClusterIP to LoadBalancer refused", func(t *testing.T) {
		s := service("svc-a", "grow", corev1.ServiceTypeClusterIP, nil)
		admitted(t, alice.Create(ctx, s))
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		refused(t, alice.Update(ctx, s), "rule service-load-balancer")
	})
	t.Run("update dropping the internal annotation refused", func(t *testing.T) {
		s := &corev1.Service{}
		if err := alice.Get(ctx, client.ObjectKey{Namespace: "svc-a", Name: "internal"}, s); err != nil {
			t.Fatal(err)
		}
		delete(s.Annotations, internalAnnotation)
		refused(t, alice.Update(ctx, s), "public IP")
	})
}

func TestImagesAsTenant(t *testing.T) {
	ctx := context.Background()
	alice := tenant(t, v1alpha1.TenantSpec{
		Namespaces: []string{"img-a"},
		Images:     v1alpha1.ImagePolicy{AllowedRepositories: []string{"myacr.azurecr.io/project1/*"}},
	}, "img-tenant-a")
	deployment := func(name, image string) *appsv1.Deployment {
		labels := map[string]string{"app": name}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "img-a"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
				},
			},
		}
	}
	admitted(t, alice.Create(ctx, deployment("own", "myacr.azurecr.io/project1/app:1.0")))
	refused(t, alice.Create(ctx, deployment("foreign", "myacr.azurecr.io/project2/app:1.0")),
		"Deployment img-a/foreign", "spec.template.spec.containers[0].image", "myacr.azurecr.io/project1/*", "rule image-repository")
	refused(t, alice.Create(ctx, deployment("hub", "nginx")), "docker.io/library/nginx")

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "debug-me", Namespace: "img-a"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "myacr.azurecr.io/project1/app:1.0"}}},
	}
	admitted(t, alice.Create(ctx, pod))
	// kubectl debug adds an ephemeral container through a subresource.
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: "busybox"}}}
	refused(t, alice.SubResource("ephemeralcontainers").Update(ctx, pod), "spec.ephemeralContainers[0].image")
}

func TestNamespaceLabelIsProtected(t *testing.T) {
	ctx := context.Background()
	alice := tenant(t, v1alpha1.TenantSpec{Namespaces: []string{"ns-a"}}, "ns-tenant-a")
	// Give alice rights to edit namespaces, so the request reaches the guard.
	cr := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "namespace-editor"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "update", "patch", "create"}}},
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ns-tenant-a-namespace-editor"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "ns-tenant-a-devs"}},
	}
	for _, o := range []client.Object{cr, crb} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() error {
		ns := &corev1.Namespace{}
		return alice.Get(ctx, client.ObjectKey{Name: "ns-a"}, ns)
	})
	ns := &corev1.Namespace{}
	if err := alice.Get(ctx, client.ObjectKey{Name: "ns-a"}, ns); err != nil {
		t.Fatal(err)
	}
	moved := ns.DeepCopy()
	moved.Labels[v1alpha1.TenantLabel] = "someone-else"
	refused(t, alice.Update(ctx, moved), `changing the tenant label from "ns-tenant-a" to "someone-else"`)
	out := ns.DeepCopy()
	delete(out.Labels, v1alpha1.TenantLabel)
	refused(t, alice.Update(ctx, out), "removing the tenant label")
	other := ns.DeepCopy()
	other.Labels["team"] = "blue"
	admitted(t, alice.Update(ctx, other))
	refused(t, alice.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns-a-new",
		Labels: map[string]string{v1alpha1.TenantLabel: "ns-tenant-a"}}}), "setting the tenant label")

	// A cluster admin may move it.
	if err := admin.Get(ctx, client.ObjectKey{Name: "ns-a"}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels[v1alpha1.TenantLabel] = "svc-tenant-b"
	admitted(t, admin.Update(ctx, ns))
}

func TestSystemNamespacesAreUntouched(t *testing.T) {
	ctx := context.Background()
	// Even a namespace labelled as a tenant's is left alone when excluded.
	s := service("kube-system", "public-lb", corev1.ServiceTypeLoadBalancer, nil)
	admitted(t, admin.Create(ctx, s))
}

func TestTenantObjectsAreValidated(t *testing.T) {
	ctx := context.Background()
	bad := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: v1alpha1.TenantSpec{
		Namespaces: []string{"kube-system"},
		Ingress:    v1alpha1.IngressPolicy{AllowedHostPatterns: []string{"("}},
	}}
	refused(t, admin.Create(ctx, bad), "kube-system", "spec.ingress.allowedHostPatterns[0]", "is not a regular expression")
}

// TestNewNamespaceIsGuardedAtOnce creates a tenant namespace and at once a
// NodePort in it, before the guard's informer may have seen the namespace.
func TestNewNamespaceIsGuardedAtOnce(t *testing.T) {
	ctx := context.Background()
	tenant(t, v1alpha1.TenantSpec{Namespaces: []string{"fresh-0"}}, "fresh")
	for i := 1; i <= 5; i++ {
		ns := fmt.Sprintf("fresh-%d", i)
		namespace(t, ns, "fresh")
		refused(t, admin.Create(ctx, service(ns, "np", corev1.ServiceTypeNodePort, nil)), "rule service-node-port")
	}
}

// TestNamespaceStatusCannotMoveTheLabel: the status and finalize
// subresources of a namespace can change its labels too.
func TestNamespaceStatusCannotMoveTheLabel(t *testing.T) {
	ctx := context.Background()
	tenant(t, v1alpha1.TenantSpec{Namespaces: []string{"st-a"}}, "st-tenant")
	cr := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "namespace-status-editor"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"namespaces/status", "namespaces/finalize"}, Verbs: []string{"update", "patch"}},
		},
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "st-namespace-status-editor"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "status-editor"}},
	}
	for _, o := range []client.Object{cr, crb} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	editor := userClient(t, "status-editor")
	ns := &corev1.Namespace{}
	eventually(t, func() error { return editor.Get(ctx, client.ObjectKey{Name: "st-a"}, ns) })
	moved := ns.DeepCopy()
	moved.Labels[v1alpha1.TenantLabel] = "elsewhere"
	refused(t, editor.Status().Update(ctx, moved), "tenant label")
	out := ns.DeepCopy()
	delete(out.Labels, v1alpha1.TenantLabel)
	refused(t, editor.SubResource("finalize").Update(ctx, out), "tenant label")
}
