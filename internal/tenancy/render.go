package tenancy

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// NamespaceObjects are the objects the tenant should have in one of its
// namespaces: the owners' RoleBinding, the ResourceQuota, the LimitRange
// and the isolation NetworkPolicy, each when the Tenant asks for it.
func NamespaceObjects(t *v1alpha1.Tenant, ns string, opts Options) []client.Object {
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: managedLabels(t.Name)}
	}
	var out []client.Object
	if subjects := Subjects(t.Spec.Owners); len(subjects) > 0 {
		out = append(out, &rbacv1.RoleBinding{
			ObjectMeta: meta(OwnersBinding),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: OwnerRole(t)},
			Subjects:   subjects,
		})
	}
	if q := t.Spec.Resources.Quota; q != nil {
		out = append(out, &corev1.ResourceQuota{ObjectMeta: meta(QuotaName), Spec: *q.DeepCopy()})
	}
	if lr := t.Spec.Resources.LimitRange; lr != nil {
		spec := lr.DeepCopy()
		defaultLimitRange(spec)
		out = append(out, &corev1.LimitRange{ObjectMeta: meta(LimitRangeName), Spec: *spec})
	}
	if t.Spec.Resources.NetworkIsolation == v1alpha1.NetworkIsolationTenant {
		out = append(out, &networkingv1.NetworkPolicy{ObjectMeta: meta(NetworkPolicyName), Spec: isolation(t, opts)})
	}
	return out
}

// ClusterObjects are the tenant's cluster-scoped objects: a role that reads
// the Tenant itself and its binding to the owners, and, when owners may
// create namespaces, their binding to NamespaceCreatorRole.
func ClusterObjects(t *v1alpha1.Tenant) []client.Object {
	subjects := Subjects(t.Spec.Owners)
	if len(subjects) == 0 {
		return nil
	}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Labels: managedLabels(t.Name)}
	}
	viewer := ViewerRoleName(t.Name)
	out := []client.Object{
		&rbacv1.ClusterRole{
			ObjectMeta: meta(viewer),
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"tenants"},
				ResourceNames: []string{t.Name}, Verbs: readVerbs,
			}},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: meta(viewer),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: viewer},
			Subjects:   subjects,
		},
	}
	if q := t.Spec.NamespaceQuota; q != nil && *q > 0 {
		out = append(out, &rbacv1.ClusterRoleBinding{
			ObjectMeta: meta(NamespaceCreatorBindingName(t.Name)),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: NamespaceCreatorRole},
			Subjects:   subjects,
		})
	}
	return out
}

// Subjects are the owners as RBAC subjects, in the form the API server
// stores them.
func Subjects(owners []v1alpha1.Owner) []rbacv1.Subject {
	out := make([]rbacv1.Subject, 0, len(owners))
	for _, o := range owners {
		switch o.Kind {
		case v1alpha1.OwnerUser:
			out = append(out, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: o.Name})
		case v1alpha1.OwnerGroup:
			out = append(out, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: o.Name})
		case v1alpha1.OwnerServiceAccount:
			out = append(out, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: o.Name, Namespace: o.Namespace})
		}
	}
	return out
}

func managedLabels(tenant string) map[string]string {
	return map[string]string{ManagedLabel: tenant, "app.kubernetes.io/managed-by": "tenantguard"}
}

// isolation admits ingress traffic from the tenant's namespaces (its own
// included), the ingress controllers' namespaces and address ranges, and
// the namespaces the Tenant exempts; nothing from other tenants.
func isolation(t *v1alpha1.Tenant, opts Options) networkingv1.NetworkPolicySpec {
	from := []networkingv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.TenantLabel: t.Name}},
	}}
	others := append(slices.Clone(opts.IngressNamespaces), t.Spec.Resources.AllowedIngressNamespaces...)
	slices.Sort(others)
	if others = slices.Compact(others); len(others) > 0 {
		from = append(from, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: others,
			}},
		}})
	}
	for _, cidr := range opts.IngressCIDRs {
		from = append(from, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
	}
	return networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{},
		Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: from}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
	}
}

// defaultLimitRange applies the API server's defaults for container limits,
// so that the stored object compares equal to the rendered one and an
// unchanged tenant causes no writes.
func defaultLimitRange(spec *corev1.LimitRangeSpec) {
	for i := range spec.Limits {
		item := &spec.Limits[i]
		if item.Type != corev1.LimitTypeContainer {
			continue
		}
		if item.Default == nil {
			item.Default = corev1.ResourceList{}
		}
		if item.DefaultRequest == nil {
			item.DefaultRequest = corev1.ResourceList{}
		}
		for k, v := range item.Max {
			if _, ok := item.Default[k]; !ok {
				item.Default[k] = v.DeepCopy()
			}
		}
		for k, v := range item.Default {
			if _, ok := item.DefaultRequest[k]; !ok {
				item.DefaultRequest[k] = v.DeepCopy()
			}
		}
		for k, v := range item.Min {
			if _, ok := item.DefaultRequest[k]; !ok {
				item.DefaultRequest[k] = v.DeepCopy()
			}
		}
	}
}
