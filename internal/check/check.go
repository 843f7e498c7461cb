// Package check runs the policy engine over manifests, offline, for CI
// pipelines: the same rules as the admission webhook, applied to the
// objects in the order they would be applied, so that a bundle that
// conflicts with itself (two Ingresses with one host) or with a snapshot of
// the cluster is caught before it reaches the cluster.
package check

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/manifest"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// Finding is one violation in one object of the bundle, with its place.
type Finding struct {
	File string `json:"file"`
	Line int    `json:"line"`
	policy.Finding
}

// String renders a finding as one line: file:line: object: message.
func (f Finding) String() string {
	return fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Finding)
}

// Options say who applies the bundle, and where objects without a
// namespace go.
type Options struct {
	Engine *policy.Engine
	// User applies the bundle: its name and groups decide the exemptions
	// and whether it may change namespace labels, as in the cluster.
	User policy.User
	// DefaultNamespace for namespaced objects without one (kubectl -n).
	DefaultNamespace string
}

// Result is the outcome of a check.
type Result struct {
	Findings []Finding `json:"findings"`
	// Checked counts the objects judged; Skipped those of kinds that have
	// no rules.
	Checked int `json:"checked"`
	Skipped int `json:"skipped"`
}

// Run checks bundle against tenants and a cluster snapshot (both may be
// empty). Tenants must all be Tenant objects; the snapshot holds what the
// cluster already has (Namespaces, Tenants, HostClaims, Ingresses, routes)
// and is recorded without being judged.
func Run(opts Options, tenants, cluster, bundle []manifest.Object) (Result, error) {
	view := policy.NewSnapshot()
	for _, o := range tenants {
		t, ok := o.Object.(*v1alpha1.Tenant)
		if !ok {
			return Result{}, &manifest.Error{File: o.File, Line: o.Line, Err: fmt.Errorf("%s is not a Tenant; --tenants takes Tenant objects", o.GVK.Kind)}
		}
		compiled, err := policy.CompileTenant(t)
		if err != nil {
			return Result{}, &manifest.Error{File: o.File, Line: o.Line, Err: err}
		}
		view.SetTenant(compiled)
	}

	existing := map[string]runtime.Object{}
	for _, o := range sortedByAge(cluster) {
		req, ok := request(o, opts, nil)
		if !ok {
			continue
		}
		view.Record(opts.Engine, req)
		existing[key(o, req)] = req.Object
	}

	var res Result
	for _, o := range bundle {
		req, ok := request(o, opts, existing)
		if !ok {
			res.Skipped++
			continue
		}
		res.Checked++
		if o.Removed != nil {
			res.Findings = append(res.Findings, removedVersion(o, req))
		}
		if f, ok := adminOnly(o, req, opts); ok {
			res.Findings = append(res.Findings, f)
			continue
		}
		d := view.Apply(opts.Engine, req)
		if d.Allowed() {
			existing[key(o, req)] = req.Object
		}
		for _, f := range d.Findings(o.GVK.Kind, req.Namespace, req.Name) {
			res.Findings = append(res.Findings, Finding{File: o.File, Line: o.Line, Finding: f})
		}
	}
	return res, nil
}

// removedVersion reports an object written in an API version the API
// server no longer serves. It is judged as its replacement as well, so
// that what it would do (a catch-all, another's host) is reported too.
func removedVersion(o manifest.Object, req policy.Request) Finding {
	r := o.Removed
	instead := fmt.Sprintf("write it as apiVersion: %s.", r.To.GroupVersion())
	if r.To.Kind == "Ingress" {
		instead = fmt.Sprintf("write it as apiVersion: %s: spec.backend becomes spec.defaultBackend, serviceName and servicePort become service.name and service.port.number (or .name), and each path needs a pathType.", r.To.GroupVersion())
	}
	return Finding{File: o.File, Line: o.Line, Finding: policy.Finding{Kind: r.From.Kind, Namespace: req.Namespace, Name: req.Name, Violation: policy.Violation{
		Rule: policy.RuleAPIVersion, Field: "apiVersion", Value: r.From.GroupVersion().String(),
		Message: fmt.Sprintf("%s %s is not served since Kubernetes %s, so the API server refuses it; it was checked as %s", r.From.GroupVersion(), r.From.Kind, r.Since, r.To.GroupVersion()),
		Instead: instead,
	}}}
}

// adminOnly refuses Tenants and HostClaims in a bundle applied by someone
// who is not a cluster admin: in a cluster RBAC would refuse them, and
// here they would rewrite the rules the rest of the bundle is checked
// against.
func adminOnly(o manifest.Object, req policy.Request, opts Options) (Finding, bool) {
	switch o.Object.(type) {
	case *v1alpha1.Tenant, *v1alpha1.HostClaim:
	default:
		return Finding{}, false
	}
	if opts.Engine.IsAdmin(opts.User) {
		return Finding{}, false
	}
	return Finding{File: o.File, Line: o.Line, Finding: policy.Finding{Kind: o.GVK.Kind, Name: req.Name, Violation: policy.Violation{
		Rule: policy.RuleAdminOnly, Field: "kind",
		Message: fmt.Sprintf("a %s changes the rules every tenant is held to; only cluster admins may create one, and it is not applied to this check", o.GVK.Kind),
		Instead: "give existing Tenants with --tenants, and the cluster's claims with --cluster; or check as an admin (--group system:masters).",
	}}}, true
}

// request builds the policy request for o: a CREATE, or an UPDATE when an
// object with the same kind, namespace and name exists.
func request(o manifest.Object, opts Options, existing map[string]runtime.Object) (policy.Request, bool) {
	if o.Object == nil {
		return policy.Request{}, false
	}
	m, err := meta.Accessor(o.Object)
	if err != nil {
		return policy.Request{}, false
	}
	if !clusterScoped(o.Object) && m.GetNamespace() == "" {
		m.SetNamespace(opts.DefaultNamespace)
	}
	req := policy.Request{
		Operation: policy.Create, Object: o.Object, Kind: o.GVK,
		Namespace: m.GetNamespace(), Name: m.GetName(), User: opts.User,
	}
	if old, ok := existing[key(o, req)]; ok {
		req.Operation, req.OldObject = policy.Update, old
	}
	return req, true
}

func key(o manifest.Object, req policy.Request) string {
	return o.GVK.GroupKind().String() + "/" + req.Namespace + "/" + req.Name
}

func clusterScoped(obj runtime.Object) bool {
	switch obj.(type) {
	case *v1alpha1.Tenant, *v1alpha1.HostClaim, *corev1.Namespace:
		return true
	}
	return false
}

// sortedByAge orders snapshot objects oldest first (creationTimestamp), as
// the cluster received them; objects without a timestamp keep file order
// after those with one.
func sortedByAge(objs []manifest.Object) []manifest.Object {
	out := slices.Clone(objs)
	slices.SortStableFunc(out, func(a, b manifest.Object) int {
		ta, tb := created(a), created(b)
		switch {
		case ta == 0 && tb == 0:
			return 0
		case ta == 0:
			return 1
		case tb == 0:
			return -1
		case ta < tb:
			return -1
		case ta > tb:
			return 1
		}
		return 0
	})
	return out
}

func created(o manifest.Object) int64 {
	if o.Object == nil {
		return 0
	}
	m, err := meta.Accessor(o.Object)
	if err != nil {
		return 0
	}
	if t := m.GetCreationTimestamp(); !t.IsZero() {
		return t.Unix()
	}
	return 0
}
