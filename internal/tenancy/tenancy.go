// Package tenancy is the pure core of the Tenant controller: the objects a
// Tenant should have in each of its namespaces and in the cluster, which
// namespaces it has, and the admission decisions about tenant namespaces
// (an owner creating one, two Tenants naming the same one). No I/O.
package tenancy

import (
	"slices"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// Labels and annotations the controller writes.
const (
	// ManagedLabel on an object names the Tenant it was made for. The
	// controller changes and deletes only objects that carry it.
	ManagedLabel = "tenantguard.dev/managed-for"
	// ListedAnnotation on a namespace says the controller labelled it
	// because the Tenant lists it, so that removing it from the list
	// releases it. A namespace labelled without it was created by an owner
	// (or labelled by an admin) and stays in the tenant.
	ListedAnnotation = "tenantguard.dev/listed"
	// Finalizer holds a Tenant until its namespaces are released.
	Finalizer = "tenantguard.dev/tenant"
)

// Names of the objects the controller manages.
const (
	// TenantAdminRole is the default ClusterRole of owners in their
	// namespaces.
	TenantAdminRole = "tenantguard-tenant-admin"
	// NamespaceCreatorRole lets owners create namespaces; the webhook
	// confines them to their prefixes and quota.
	NamespaceCreatorRole = "tenantguard-namespace-creator"

	OwnersBinding     = "tenantguard-owners"
	QuotaName         = "tenantguard"
	LimitRangeName    = "tenantguard"
	NetworkPolicyName = "tenantguard-tenant-isolation"
)

// Options are the cluster admin's settings for every tenant.
type Options struct {
	// IngressNamespaces are where the ingress controllers run; under
	// Tenant network isolation their pods may reach every tenant.
	IngressNamespaces []string
	// IngressCIDRs are address ranges outside the cluster's pods that may
	// reach every tenant under isolation: an ingress that sends traffic
	// straight to pods from its own subnet (Azure Application Gateway with
	// AGIC).
	IngressCIDRs []string
	// Excluded reports the namespaces the guard leaves alone (system
	// namespaces and its own, config.Config.Excluded). The controller never
	// gives one to a tenant, even if a Tenant admitted before the guard
	// lists it; nil means only the Kubernetes system namespaces.
	Excluded func(ns string) bool
}

// systemNamespaces never belong to a tenant, whatever the configuration.
var systemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// IsExcluded reports whether ns may not belong to any tenant.
func (o Options) IsExcluded(ns string) bool {
	return slices.Contains(systemNamespaces, ns) || (o.Excluded != nil && o.Excluded(ns))
}

// OwnerRole is the ClusterRole bound to the tenant's owners.
func OwnerRole(t *v1alpha1.Tenant) string {
	if t.Spec.OwnerRole != "" {
		return t.Spec.OwnerRole
	}
	return TenantAdminRole
}

// Prefixes are the prefixes of namespaces the tenant's owners may create.
func Prefixes(t *v1alpha1.Tenant) []string {
	if len(t.Spec.NamespacePrefixes) > 0 {
		return t.Spec.NamespacePrefixes
	}
	return []string{t.Name + "-"}
}

// Namespaces is the sorted set of the tenant's namespaces: those it lists and
// those labelled for it that it did not list (created by an owner).
// labelled are the existing namespaces labelled for the tenant; listed
// reports whether one of them carries ListedAnnotation, in which case it
// only stays while the Tenant lists it.
func Namespaces(t *v1alpha1.Tenant, labelled []string, listed func(ns string) bool) []string {
	out := slices.Clone(t.Spec.Namespaces)
	for _, ns := range labelled {
		if slices.Contains(t.Spec.Namespaces, ns) || (listed != nil && listed(ns)) {
			continue
		}
		out = append(out, ns)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// clusterName is a cluster-scoped object name for the tenant. Tenant names
// are at most 63 characters (they are label values), so it always fits.
func clusterName(tenant, suffix string) string { return "tenantguard:tenant:" + tenant + suffix }

// ViewerRoleName is the ClusterRole that lets owners read their Tenant.
func ViewerRoleName(tenant string) string { return clusterName(tenant, "") }

// NamespaceCreatorBindingName binds the owners to NamespaceCreatorRole.
func NamespaceCreatorBindingName(tenant string) string { return clusterName(tenant, ":namespaces") }
