package tenancy

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	allVerbs  = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	readVerbs = []string{"get", "list", "watch"}
)

// TenantAdminClusterRole is the default role of a tenant's owners, bound in
// each of its namespaces by a RoleBinding. It covers what a project runs:
// workloads, Services, Ingresses, Gateway API routes, Secrets, ConfigMaps,
// and RoleBindings to share the namespace. It reads but does not write
// quotas, limit ranges and network policies (the Tenant sets those), and
// grants nothing cluster-scoped: bound in a namespace, it cannot.
func TenantAdminClusterRole() *rbacv1.ClusterRole {
	rule := func(group string, verbs []string, resources ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
	}
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: TenantAdminRole, Labels: map[string]string{"app.kubernetes.io/name": "tenantguard"}},
		Rules: []rbacv1.PolicyRule{
			rule("", allVerbs, "pods", "pods/exec", "pods/attach", "pods/portforward", "pods/ephemeralcontainers",
				"services", "configmaps", "secrets", "persistentvolumeclaims", "serviceaccounts",
				"replicationcontrollers", "replicationcontrollers/scale", "podtemplates"),
			rule("", readVerbs, "pods/log", "pods/status", "endpoints", "events", "resourcequotas", "limitranges", "namespaces"),
			rule("apps", allVerbs, "deployments", "deployments/scale", "statefulsets", "statefulsets/scale",
				"daemonsets", "replicasets", "replicasets/scale", "controllerrevisions"),
			rule("batch", allVerbs, "jobs", "cronjobs"),
			rule("autoscaling", allVerbs, "horizontalpodautoscalers"),
			rule("policy", allVerbs, "poddisruptionbudgets"),
			rule("networking.k8s.io", allVerbs, "ingresses"),
			// Network policies only add allowed traffic: a tenant's own could
			// open its namespaces to other tenants.
			rule("networking.k8s.io", readVerbs, "networkpolicies"),
			rule("discovery.k8s.io", readVerbs, "endpointslices"),
			rule("gateway.networking.k8s.io", allVerbs, "httproutes", "grpcroutes", "tlsroutes"),
			// The API server refuses a RoleBinding that grants more than its
			// author holds, so owners can share but not widen their rights.
			rule("rbac.authorization.k8s.io", allVerbs, "roles", "rolebindings"),
		},
	}
}

// NamespaceCreatorClusterRole lets the owners of a tenant with a
// namespaceQuota create namespaces. RBAC cannot limit creation by name, so
// the guard's namespace webhook must refuse every namespace outside the
// owner's prefixes and quota, and must fail closed.
func NamespaceCreatorClusterRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: NamespaceCreatorRole, Labels: map[string]string{"app.kubernetes.io/name": "tenantguard"}},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create"}}},
	}
}

// ControllerRules are the rights the tenant controller needs, for the
// guard's ClusterRole. It creates the owners' bindings through `bind` on
// the two roles it binds (not by holding their rights), and it can create
// cluster roles and bindings only with rights it holds itself: the API
// server's escalation check applies to it too. A Tenant's spec.ownerRole
// other than the default needs that role's name added to the bind rule.
func ControllerRules() []rbacv1.PolicyRule {
	write := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces", "resourcequotas", "limitranges"}, Verbs: write},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: write},
		{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings", "clusterroles", "clusterrolebindings"}, Verbs: write},
		{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{TenantAdminRole, NamespaceCreatorRole}},
		{APIGroups: []string{"tenantguard.dev"}, Resources: []string{"tenants"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
		{APIGroups: []string{"tenantguard.dev"}, Resources: []string{"tenants/status"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{"tenantguard.dev"}, Resources: []string{"hostclaims"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	}
}
