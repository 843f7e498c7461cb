package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TenantLabel on a Namespace names the Tenant it belongs to. Only cluster
// admins and the guard itself may set, change or remove it.
const TenantLabel = "tenantguard.dev/tenant"

// Tenant declares one project sharing the cluster: who administers it, which
// namespaces it has, and what it may create in them.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=tnt
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="a Tenant's name is at most 63 characters: it is the value of the tenantguard.dev/tenant label"
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Namespaces",type=integer,JSONPath=`.status.namespaceCount`
// +kubebuilder:printcolumn:name="Hosts",type=integer,JSONPath=`.status.claimedHosts`
// +kubebuilder:printcolumn:name="LoadBalancer",type=string,JSONPath=`.spec.services.loadBalancer`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Tenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the tenant may do.
	Spec TenantSpec `json:"spec,omitempty"`
	// Status is what the guard observed and did.
	// +optional
	Status TenantStatus `json:"status,omitempty"`
}

// TenantSpec is the desired state of a tenant.
type TenantSpec struct {
	// Owners administer the tenant's namespaces.
	// +optional
	// +listType=atomic
	Owners []Owner `json:"owners,omitempty"`

	// OwnerRole is the ClusterRole bound to the owners in every namespace of
	// the tenant. Empty means the guard's tenant-admin role
	// (tenantguard-tenant-admin): workloads, Services, Ingresses, routes,
	// Secrets, ConfigMaps and RoleBindings in the namespace, nothing
	// cluster-scoped.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	OwnerRole string `json:"ownerRole,omitempty"`

	// Namespaces that belong to the tenant. A namespace is a tenant namespace
	// when it carries the label tenantguard.dev/tenant=<tenant name>; the
	// tenant controller sets that label on every namespace listed here.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceQuota is how many namespaces the tenant may have in all, those
	// listed in namespaces included. While it has fewer, an owner may create
	// a namespace whose name starts with one of namespacePrefixes, and the
	// guard labels it for the tenant. Unset means owners may not create
	// namespaces; listed namespaces are never refused by the quota.
	// +optional
	// +kubebuilder:validation:Minimum=0
	NamespaceQuota *int32 `json:"namespaceQuota,omitempty"`

	// NamespacePrefixes are the prefixes of the names of namespaces owners
	// may create. Empty means "<tenant name>-".
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=62
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9][-a-z0-9]*$`
	NamespacePrefixes []string `json:"namespacePrefixes,omitempty"`

	// DeletionPolicy says what happens to the tenant's namespaces when the
	// Tenant is deleted: Retain (default) keeps each namespace and everything
	// in it and removes only the tenant label and the objects the guard
	// manages; Delete deletes the namespaces. A namespace removed from
	// namespaces is always kept.
	// +optional
	// +kubebuilder:default=Retain
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// Ingress says which hosts and classes the tenant's Ingresses and Gateway
	// API routes may use.
	// +optional
	Ingress IngressPolicy `json:"ingress,omitempty"`

	// Services says which Service types that create cloud resources the
	// tenant may use.
	// +optional
	Services ServicePolicy `json:"services,omitempty"`

	// Images says which container images the tenant's pods may run.
	// +optional
	Images ImagePolicy `json:"images,omitempty"`

	// Registry gives the tenant rights in the registry gateway.
	// +optional
	Registry RegistryPolicy `json:"registry,omitempty"`

	// Resources are the quota, limit range and network defaults applied to
	// every namespace of the tenant.
	// +optional
	Resources ResourceDefaults `json:"resources,omitempty"`
}

// DeletionPolicy says what happens to a tenant's namespaces when the Tenant
// is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

const (
	// DeletionRetain keeps the namespaces and their contents (default).
	DeletionRetain DeletionPolicy = "Retain"
	// DeletionDelete deletes the namespaces with the Tenant.
	DeletionDelete DeletionPolicy = "Delete"
)

// OwnerKind is the kind of subject that owns a tenant.
// +kubebuilder:validation:Enum=User;Group;ServiceAccount
type OwnerKind string

// Owner kinds.
const (
	OwnerUser           OwnerKind = "User"
	OwnerGroup          OwnerKind = "Group"
	OwnerServiceAccount OwnerKind = "ServiceAccount"
)

// Owner is a user, group or service account that administers a tenant.
// +kubebuilder:validation:XValidation:rule="self.kind == 'ServiceAccount' ? has(self.__namespace__) && size(self.__namespace__) > 0 : !has(self.__namespace__) || size(self.__namespace__) == 0",message="namespace is set for a ServiceAccount owner, and only for one"
type Owner struct {
	// Kind is User, Group or ServiceAccount.
	Kind OwnerKind `json:"kind"`
	// Name of the user, group or service account.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of a ServiceAccount; empty for users and groups.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// HostOwnershipMode says what owns a host claimed by the tenant.
// +kubebuilder:validation:Enum=Namespace;Object
type HostOwnershipMode string

const (
	// HostOwnershipNamespace: the first namespace to use a host owns it; other
	// objects in that namespace may serve other paths on it.
	HostOwnershipNamespace HostOwnershipMode = "Namespace"
	// HostOwnershipObject: the first object to use a host owns it; no other
	// object may use it, even in the same namespace.
	HostOwnershipObject HostOwnershipMode = "Object"
)

// IngressPolicy limits the hosts and classes of Ingresses and Gateway API
// routes.
type IngressPolicy struct {
	// AllowedHosts are exact host names (shop.example.com) and wildcards
	// (*.shop.example.com, which admits any name below shop.example.com and
	// wildcards no wider than itself). Empty means the tenant may not use
	// any host.
	// +optional
	// +listType=set
	AllowedHosts []string `json:"allowedHosts,omitempty"`

	// AllowedHostPatterns are regular expressions (RE2) a host name must match
	// as a whole. They admit exact names only, never a wildcard host.
	// +optional
	// +listType=set
	AllowedHostPatterns []string `json:"allowedHostPatterns,omitempty"`

	// AllowedClasses are the IngressClass names the tenant may use. Empty
	// means any class.
	// +optional
	// +listType=set
	AllowedClasses []string `json:"allowedClasses,omitempty"`

	// HostOwnership is Namespace (default: a host belongs to the first
	// namespace that uses it) or Object (a host belongs to the first object).
	// +optional
	// +kubebuilder:default=Namespace
	HostOwnership HostOwnershipMode `json:"hostOwnership,omitempty"`

	// AllowDefaultBackend lets the tenant set an Ingress defaultBackend, which
	// catches traffic for every host the controller serves. Off by default.
	// +optional
	AllowDefaultBackend bool `json:"allowDefaultBackend,omitempty"`
}

// LoadBalancerMode says whether a tenant may create Services of type
// LoadBalancer.
// +kubebuilder:validation:Enum=Deny;InternalOnly;Allow
type LoadBalancerMode string

const (
	// LoadBalancerDeny refuses every LoadBalancer Service (default).
	LoadBalancerDeny LoadBalancerMode = "Deny"
	// LoadBalancerInternalOnly admits a LoadBalancer Service only with the
	// cloud's internal load balancer annotation.
	LoadBalancerInternalOnly LoadBalancerMode = "InternalOnly"
	// LoadBalancerAllow admits any LoadBalancer Service, public ones included.
	LoadBalancerAllow LoadBalancerMode = "Allow"
)

// ServicePolicy limits Services that create cloud resources or expose nodes.
type ServicePolicy struct {
	// LoadBalancer is Deny (default), InternalOnly or Allow.
	// +optional
	// +kubebuilder:default=Deny
	LoadBalancer LoadBalancerMode `json:"loadBalancer,omitempty"`

	// AllowNodePort lets the tenant create Services of type NodePort, which
	// open a port on every node. Off by default.
	// +optional
	AllowNodePort bool `json:"allowNodePort,omitempty"`

	// AllowedExternalNames are the hosts an ExternalName Service may point to:
	// exact names or *.suffix wildcards. Empty means ExternalName Services
	// are refused.
	// +optional
	// +listType=set
	AllowedExternalNames []string `json:"allowedExternalNames,omitempty"`

	// AllowPrivateLink allows an internal LoadBalancer Service to create an
	// Azure Private Link Service (service.beta.kubernetes.io/azure-pls-create),
	// which can publish the service to other networks and subscriptions;
	// default false.
	// +optional
	AllowPrivateLink bool `json:"allowPrivateLink,omitempty"`
}

// ImagePolicy limits the images a tenant's pods may run.
type ImagePolicy struct {
	// AllowedRepositories are image repository patterns:
	// registry/path/app (exact), registry/path/* (one level below path) or
	// registry/path/** (any depth below path). References are normalised
	// first: nginx is docker.io/library/nginx. Empty means no image is
	// allowed.
	// +optional
	// +listType=set
	AllowedRepositories []string `json:"allowedRepositories,omitempty"`

	// RequireDigestNamespaces are namespaces of the tenant in which every
	// image must be pinned by digest (@sha256:...), as production should be.
	// +optional
	// +listType=set
	RequireDigestNamespaces []string `json:"requireDigestNamespaces,omitempty"`
}

// RegistryAction is a right on a registry repository.
// +kubebuilder:validation:Enum=pull;push;delete
type RegistryAction string

// Registry actions, as in the distribution token scope.
const (
	ActionPull   RegistryAction = "pull"
	ActionPush   RegistryAction = "push"
	ActionDelete RegistryAction = "delete"
)

// RegistryPolicy gives a tenant rights in the registry gateway.
type RegistryPolicy struct {
	// Repositories the tenant may use, with the actions allowed on each.
	// +optional
	// +listType=atomic
	Repositories []RepositoryGrant `json:"repositories,omitempty"`

	// ImmutableTags are tag patterns (* matches any run of characters:
	// v*, release-*, or * for every tag) that, once pushed to one of the
	// tenant's repositories, can be neither moved to another digest nor
	// deleted.
	// +optional
	// +listType=set
	ImmutableTags []string `json:"immutableTags,omitempty"`
}

// RepositoryGrant is a set of rights on repositories matching a pattern.
type RepositoryGrant struct {
	// Pattern is a repository name (project1/app), project1/* (one level
	// below project1) or project1/** (any depth below project1).
	// +kubebuilder:validation:MinLength=1
	Pattern string `json:"pattern"`
	// Actions allowed on matching repositories.
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	Actions []RegistryAction `json:"actions"`
}

// NetworkIsolation is the default network policy of tenant namespaces.
// +kubebuilder:validation:Enum=None;Tenant
type NetworkIsolation string

const (
	// NetworkIsolationNone leaves network traffic alone.
	NetworkIsolationNone NetworkIsolation = "None"
	// NetworkIsolationTenant admits ingress traffic only from namespaces of
	// the same tenant (and from namespaces the cluster admin exempts).
	NetworkIsolationTenant NetworkIsolation = "Tenant"
)

// ResourceDefaults are applied to every namespace of a tenant.
type ResourceDefaults struct {
	// Quota is the ResourceQuota of each namespace.
	// +optional
	Quota *corev1.ResourceQuotaSpec `json:"quota,omitempty"`
	// LimitRange is the LimitRange of each namespace.
	// +optional
	LimitRange *corev1.LimitRangeSpec `json:"limitRange,omitempty"`
	// NetworkIsolation is None (default) or Tenant.
	// +optional
	// +kubebuilder:default=None
	NetworkIsolation NetworkIsolation `json:"networkIsolation,omitempty"`
	// AllowedIngressNamespaces are namespaces, besides the tenant's own and
	// the ingress controller's, whose pods may reach the tenant's pods under
	// Tenant network isolation.
	// +optional
	// +listType=set
	AllowedIngressNamespaces []string `json:"allowedIngressNamespaces,omitempty"`
}

// TenantStatus is what the guard observed.
type TenantStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, and the reasons it is not.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Namespaces of the tenant: those listed in the spec and those an owner
	// created, sorted.
	// +optional
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceCount is len(namespaces), for kubectl get.
	// +optional
	NamespaceCount int32 `json:"namespaceCount,omitempty"`
	// ClaimedHosts is the number of HostClaims the tenant holds.
	// +optional
	ClaimedHosts int32 `json:"claimedHosts,omitempty"`
	// Refusals is how many requests of the tenant the guard refused since
	// the spec last changed; the controller resets it when it observes a
	// new generation.
	// +optional
	Refusals int64 `json:"refusals,omitempty"`
	// RefusalsSince is when the refusal count started.
	// +optional
	RefusalsSince *metav1.Time `json:"refusalsSince,omitempty"`
	// Audit is the last periodic audit's summary for the tenant: the
	// violations its namespaces already hold (objects from before the
	// guard, or admitted while it was not asked).
	// +optional
	Audit *TenantAudit `json:"audit,omitempty"`
}

// TenantAudit summarises the violations the periodic audit found in a
// tenant's namespaces.
type TenantAudit struct {
	// Time of the audit that last changed this summary (an audit that
	// finds the same leaves it alone).
	Time metav1.Time `json:"time"`
	// Violations found.
	Violations int32 `json:"violations"`
	// Rules counts the violations by rule.
	// +optional
	Rules map[string]int32 `json:"rules,omitempty"`
	// Findings are the first violations found (at most 20), one line
	// each: object, field, message, rule.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	Findings []string `json:"findings,omitempty"`
}

// TenantList is a list of Tenants.
//
// +kubebuilder:object:root=true
type TenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Tenant `json:"items"`
}
