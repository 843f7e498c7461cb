package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HostMatch says which names a claimed host covers.
// +kubebuilder:validation:Enum=Exact;SingleLabel;AnyDepth
type HostMatch string

const (
	// HostMatchExact covers the host name itself.
	HostMatchExact HostMatch = "Exact"
	// HostMatchSingleLabel is an Ingress wildcard: *.example.com covers
	// a.example.com but not a.b.example.com.
	HostMatchSingleLabel HostMatch = "SingleLabel"
	// HostMatchAnyDepth is a Gateway API wildcard: *.example.com covers
	// a.example.com and a.b.example.com.
	HostMatchAnyDepth HostMatch = "AnyDepth"
)

// HostClaim records that a namespace owns a host name. The guard creates one
// when an Ingress or route first uses a host; its name is derived from the
// host, so the API server's name uniqueness decides races between replicas.
// The tenant controller deletes it when nothing in the owner namespace uses
// the host any more. Cluster admins may create one ahead of use to reserve a
// host for a tenant.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=hc
// +kubebuilder:validation:XValidation:rule="self.metadata.name.contains('.sha256-') ? size(self.spec.host) > 240 : self.metadata.name == (self.spec.match == 'Exact' ? 'host.' : (self.spec.match == 'SingleLabel' ? 'wildcard.' : 'wildcard-any.')) + (self.spec.host.startsWith('*.') ? self.spec.host.substring(2) : self.spec.host)",message="the name of a HostClaim is derived from its host: host.<name> (Exact), wildcard.<suffix> (SingleLabel) or wildcard-any.<suffix> (AnyDepth)"
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Host",type=string,JSONPath=`.spec.host`
// +kubebuilder:printcolumn:name="Match",type=string,JSONPath=`.spec.match`,priority=1
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.namespace`
// +kubebuilder:printcolumn:name="Tenant",type=string,JSONPath=`.spec.tenant`
// +kubebuilder:printcolumn:name="Objects",type=string,JSONPath=`.status.usedBy`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type HostClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec names the host and its owner.
	Spec HostClaimSpec `json:"spec"`
	// Status lists the objects that use the host.
	// +optional
	Status HostClaimStatus `json:"status,omitempty"`
}

// HostClaimSpec names a host and its owner. Host and match cannot change.
// +kubebuilder:validation:XValidation:rule="self.host == oldSelf.host && self.match == oldSelf.match",message="host and match are immutable; delete the claim and create another"
// +kubebuilder:validation:XValidation:rule="(has(self.__namespace__) && size(self.__namespace__) > 0) || (has(self.tenant) && size(self.tenant) > 0)",message="a claim needs an owner: set namespace, or tenant to reserve the host for a tenant"
type HostClaimSpec struct {
	// Host is the normalised host name (lower case, punycode, no trailing
	// dot), or a wildcard *.suffix.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`
	// Match is Exact for a name, SingleLabel for an Ingress wildcard and
	// AnyDepth for a Gateway API wildcard.
	Match HostMatch `json:"match"`
	// Namespace owns the host. Empty in a reservation that no namespace of
	// the tenant has used yet.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Tenant of the owner namespace; empty when that namespace belongs to no
	// tenant.
	// +optional
	Tenant string `json:"tenant,omitempty"`
	// Object owns the host when the tenant's host ownership mode is Object.
	// +optional
	Object *ObjectReference `json:"object,omitempty"`
	// Reserved claims were created by a cluster admin; they are never
	// released automatically.
	// +optional
	Reserved bool `json:"reserved,omitempty"`
}

// ObjectReference names an object in the owner namespace.
type ObjectReference struct {
	// Group of the object's kind ("networking.k8s.io", "gateway.networking.k8s.io").
	// +optional
	Group string `json:"group,omitempty"`
	// Kind of the object (Ingress, HTTPRoute, GRPCRoute, TLSRoute).
	Kind string `json:"kind"`
	// Name of the object.
	Name string `json:"name"`
}

// HostClaimStatus is what the tenant controller observed.
type HostClaimStatus struct {
	// CreateRevision is the resource version the claim was created at. When
	// two overlapping claims race (a wildcard and a name it covers), the one
	// created first wins; this keeps that order known after updates.
	// +optional
	CreateRevision string `json:"createRevision,omitempty"`
	// Objects in the owner namespace that use the host.
	// +optional
	// +listType=atomic
	Objects []ObjectReference `json:"objects,omitempty"`
	// UsedBy lists Objects for `kubectl get` (kind/name, the first few).
	// +optional
	UsedBy string `json:"usedBy,omitempty"`
	// UnusedSince is when the controller first saw no object using the host;
	// the claim is released a grace period later.
	// +optional
	UnusedSince *metav1.Time `json:"unusedSince,omitempty"`
}

// HostClaimList is a list of HostClaims.
//
// +kubebuilder:object:root=true
type HostClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HostClaim `json:"items"`
}
