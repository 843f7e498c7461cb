package policy

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"sort"
	"sync"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
)

// Snapshot is a View held in memory. The webhook keeps one up to date from
// informers, the offline check builds one from manifests, the audit from a
// listing of the cluster. It is safe for concurrent use.
type Snapshot struct {
	mu sync.RWMutex
	// tenants by name.
	tenants map[string]*Tenant
	// labels are the tenant labels of the namespaces whose objects are
	// known ("" for a known namespace without the label).
	labels map[string]string
	// listed maps a namespace to the tenant whose spec.namespaces lists it,
	// for namespaces whose object is not known (manifests checked offline).
	listed map[string]string
	index  *hosts.Index
}

// NewSnapshot returns an empty snapshot.
func NewSnapshot() *Snapshot {
	return &Snapshot{
		tenants: map[string]*Tenant{},
		labels:  map[string]string{},
		listed:  map[string]string{},
		index:   hosts.NewIndex(),
	}
}

// SetTenant adds or replaces a tenant.
func (s *Snapshot) SetTenant(t *Tenant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants[t.Name] = t
	s.relist()
}

// DeleteTenant removes a tenant.
func (s *Snapshot) DeleteTenant(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tenants, name)
	s.relist()
}

func (s *Snapshot) relist() {
	clear(s.listed)
	for _, t := range s.tenants {
		for _, ns := range t.Spec.Namespaces {
			s.listed[ns] = t.Name
		}
	}
}

// SetNamespace records a namespace and its labels.
func (s *Snapshot) SetNamespace(name string, labels map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.labels[name] = labels[v1alpha1.TenantLabel]
}

// KnowsNamespace reports whether the namespace's object has been recorded.
func (s *Snapshot) KnowsNamespace(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.labels[name]
	return ok
}

// DeleteNamespace forgets a namespace.
func (s *Snapshot) DeleteNamespace(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.labels, name)
}

// TenantOf returns the tenant of a namespace: the one its tenant label
// names, or, when the namespace object is not known, the tenant that lists
// it. A label that names no existing Tenant yields a tenant with an empty
// spec, which may do nothing: the guard fails closed for tenants.
func (s *Snapshot) TenantOf(namespace string) *Tenant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	name, known := s.labels[namespace]
	if !known {
		name = s.listed[namespace]
	}
	if name == "" {
		return nil
	}
	if t := s.tenants[name]; t != nil {
		return t
	}
	return &Tenant{Name: name, requireDigest: map[string]bool{}, classes: map[string]bool{},
		Spec: v1alpha1.TenantSpec{
			Ingress:  v1alpha1.IngressPolicy{HostOwnership: v1alpha1.HostOwnershipNamespace},
			Services: v1alpha1.ServicePolicy{LoadBalancer: v1alpha1.LoadBalancerDeny},
		}}
}

// Tenants returns every tenant, by name.
func (s *Snapshot) Tenants() []*Tenant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Hosts returns the host ownership index.
func (s *Snapshot) Hosts() *hosts.Index { return s.index }

// Apply evaluates req against the snapshot and, when it is allowed, records
// it as the API server would store it: its hosts are claimed for its
// namespace and its uses indexed. The offline check replays a bundle
// through Apply in order, so that later objects meet the earlier ones as
// they would in a cluster.
func (s *Snapshot) Apply(e *Engine, req Request) Decision {
	d := e.Evaluate(req, s)
	if !d.Allowed() || s.recordState(req.Object) {
		return d
	}
	if uses, ok := e.HostUses(req.Object, req.Namespace); ok {
		for _, n := range d.Claims {
			o := d.ClaimOwner
			o.Name = n
			s.index.SetOwner(o)
		}
		s.index.SetUses(objectKey(req), uses)
	}
	return d
}

// Record adds an object that already exists (in a cluster snapshot, or
// seen by the audit) without judging it: its hosts that nobody else owns
// are claimed for its namespace, in the order objects are recorded, and its
// uses are indexed whether or not it conflicts. It returns the decision the
// object would get if it were created now.
func (s *Snapshot) Record(e *Engine, req Request) Decision {
	d := e.Evaluate(req, s)
	if s.recordState(req.Object) {
		return d
	}
	uses, ok := e.HostUses(req.Object, req.Namespace)
	if !ok {
		return d
	}
	owner := hosts.Owner{Namespace: req.Namespace}
	if t := s.TenantOf(req.Namespace); t != nil {
		owner.Tenant = t.Name
	}
	inTheWay := func(o hosts.Owner) bool { return hosts.Conflicts(o, owner) }
	for _, u := range uses {
		free := len(s.index.Overlapping(u.Name, 1, inTheWay)) == 0
		if _, owned := s.index.Owner(u.Name); free && !owned {
			o := owner
			o.Name = u.Name
			s.index.SetOwner(o)
		}
	}
	s.index.SetUses(objectKey(req), uses)
	return d
}

// recordState records Tenants, Namespaces and HostClaims, the objects that
// make up the view rather than use it; it reports whether obj was one.
func (s *Snapshot) recordState(obj runtime.Object) bool {
	switch o := obj.(type) {
	case *v1alpha1.Tenant:
		if t, err := CompileTenant(o); err == nil {
			s.SetTenant(t)
		}
	case *corev1.Namespace:
		s.SetNamespace(o.Name, o.Labels)
	case *v1alpha1.HostClaim:
		s.index.SetOwner(hosts.OwnerOf(o))
	default:
		return false
	}
	return true
}

func objectKey(req Request) hosts.ObjectKey {
	return hosts.ObjectKey{Namespace: req.Namespace, Group: req.Kind.Group, Kind: req.Kind.Kind, Name: req.Name}
}
