// Package policy is tenantguard's decision engine. It takes an object, the
// tenant of its namespace and the host ownership index, and returns a
// decision whose every violation says what was refused, why, and what to do
// instead. It does no I/O: the admission webhook, the offline check and the
// audit all call Engine.Evaluate with the same inputs.
package policy

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/hosts"
)

// Operation is what the request does to the object.
type Operation string

// Operations, as in admission.k8s.io/v1.
const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
	Delete Operation = "DELETE"
)

// User is who makes the request.
type User struct {
	Name   string
	Groups []string
}

// Request is one object to decide on.
type Request struct {
	Operation Operation
	// Object is the object as it would be stored (typed: *corev1.Service,
	// *networkingv1.Ingress, ...). OldObject is the stored object on UPDATE.
	Object    runtime.Object
	OldObject runtime.Object
	// Kind is the object's group, version and kind.
	Kind schema.GroupVersionKind
	// Namespace and Name of the object ("" namespace for cluster-scoped).
	Namespace string
	Name      string
	User      User
}

// View is what the engine reads about the cluster (or the bundle of
// manifests): which tenant a namespace belongs to, and who owns and uses
// which host.
type View interface {
	// TenantOf returns the tenant of a namespace, or nil.
	TenantOf(namespace string) *Tenant
	// Tenants returns every tenant.
	Tenants() []*Tenant
	// Hosts returns the host ownership index.
	Hosts() *hosts.Index
}

// Rule identifies a rule in findings and messages.
type Rule string

// The rules.
const (
	RuleLoadBalancer   Rule = "service-load-balancer"
	RuleNodePort       Rule = "service-node-port"
	RuleExternalIPs    Rule = "service-external-ips"
	RuleExternalName   Rule = "service-external-name"
	RuleImage          Rule = "image-repository"
	RuleImageDigest    Rule = "image-digest"
	RuleNamespaceLabel Rule = "namespace-tenant-label"
	RuleTenantSpec     Rule = "tenant-spec"
	RuleHostInvalid    Rule = "host-invalid"
	RuleHostAllowlist  Rule = "host-allowlist"
	RuleHostOwnership  Rule = "host-ownership"
	RuleHostPath       Rule = "host-path-conflict"
	RuleCatchAll       Rule = "catch-all"
	RuleIngressClass   Rule = "ingress-class"
	RuleAdminOnly      Rule = "admin-only"
	RuleHostLimit      Rule = "host-limit"
	RulePrivateLink    Rule = "service-private-link"
	// RuleAPIVersion is the offline check's: a manifest in an API version
	// the API server no longer serves.
	RuleAPIVersion Rule = "api-version-removed"
)

// Violation is one thing wrong with an object.
type Violation struct {
	Rule Rule `json:"rule"`
	// Field is the path of the offending field (spec.type).
	Field string `json:"field"`
	// Value is the offending value, when there is one.
	Value string `json:"value,omitempty"`
	// Message says what is refused and why, and Instead what to do.
	Message string `json:"message"`
	Instead string `json:"instead,omitempty"`
}

// String renders the violation as one line.
func (v Violation) String() string {
	s := fmt.Sprintf("%s: %s [rule %s]", v.Field, v.Message, v.Rule)
	if v.Instead != "" {
		s += " Instead: " + v.Instead
	}
	return s
}

// Finding is a violation in a named object, as the offline check and the
// audit report it.
type Finding struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Violation
}

// String renders a finding as one line: object, field, message, rule.
func (f Finding) String() string {
	return fmt.Sprintf("%s %s: %s", f.Kind, objectName(f.Kind, f.Namespace, f.Name), f.Violation)
}

// objectName is namespace/name, or name alone for the cluster-scoped kinds
// the guard judges (the API server sends a Namespace's own name as the
// namespace of its review).
func objectName(kind, namespace, name string) string {
	switch kind {
	case "Namespace", "Tenant", "HostClaim":
		return name
	}
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// Findings turns a decision's violations into findings for an object.
func (d Decision) Findings(kind, namespace, name string) []Finding {
	out := make([]Finding, 0, len(d.Violations))
	for _, v := range d.Violations {
		out = append(out, Finding{Kind: kind, Namespace: namespace, Name: name, Violation: v})
	}
	return out
}

// key identifies a violation with its value, to tell violations an update
// introduces from those the stored object already had.
func (v Violation) key() string { return string(v.Rule) + "\x00" + v.Field + "\x00" + v.Value }

// Decision is the outcome for one request.
type Decision struct {
	Violations []Violation `json:"violations,omitempty"`
	// Warnings do not refuse the request (kubectl prints them).
	Warnings []string `json:"warnings,omitempty"`
	// Claims are the hosts the object uses that its namespace does not own
	// yet; the webhook claims them in the API server before admitting it.
	Claims []hosts.Name `json:"-"`
	// ClaimOwner is who the claims are for.
	ClaimOwner hosts.Owner `json:"-"`
	// claimFields says where each claimed name is first written in the
	// object, for ClaimRefused.
	claimFields map[hosts.Name]string
}

// Allowed reports whether the request may proceed.
func (d Decision) Allowed() bool { return len(d.Violations) == 0 }

// Message is the denial message: the object, then one line per violation.
func (d Decision) Message(kind, namespace, name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "tenantguard refused %s %s:", kind, objectName(kind, namespace, name))
	for _, v := range d.Violations {
		b.WriteString("\n- ")
		b.WriteString(v.String())
	}
	return b.String()
}

// Engine evaluates requests under one configuration.
type Engine struct {
	cfg  config.Config
	refs *refCache
}

// NewEngine returns an engine for cfg.
func NewEngine(cfg config.Config) *Engine { return &Engine{cfg: cfg, refs: &refCache{}} }

// Config returns the engine's configuration.
func (e *Engine) Config() config.Config { return e.cfg }

// Evaluate decides on one request. On UPDATE, violations the stored object
// already had (same rule, field and value) become warnings: an object that
// broke a rule before the guard was installed can still be changed, but no
// change may add a violation. The audit lists the old ones.
func (e *Engine) Evaluate(req Request, view View) Decision {
	if req.Operation == Delete || e.cfg.Excluded(req.Namespace) {
		return Decision{}
	}
	d := e.evaluate(req, req.Object, view)
	if req.Operation == Update && req.OldObject != nil && len(d.Violations) > 0 {
		before := e.evaluate(req, req.OldObject, view)
		old := map[string]bool{}
		for _, v := range before.Violations {
			old[v.key()] = true
		}
		kept := d.Violations[:0]
		for _, v := range d.Violations {
			if old[v.key()] {
				d.Warnings = append(d.Warnings, "kept from before: "+v.String())
				continue
			}
			kept = append(kept, v)
		}
		d.Violations = kept
	}
	return d
}

func (e *Engine) evaluate(req Request, obj runtime.Object, view View) Decision {
	var d Decision
	tenant := view.TenantOf(req.Namespace)
	exempt := e.exempt(req.User)
	if spec, path, ok := podSpecOf(obj); ok && tenant != nil && !exempt {
		d.Violations = append(d.Violations, e.checkImages(spec, path, req.Namespace, tenant)...)
	}
	switch o := obj.(type) {
	case *corev1.Service:
		if tenant != nil && !exempt {
			d.Violations = append(d.Violations, e.checkService(o, tenant)...)
			d.Warnings = append(d.Warnings, e.serviceWarnings(o)...)
		}
	case *corev1.Namespace:
		d.Violations = append(d.Violations, e.checkNamespace(req, o)...)
	case *v1alpha1.Tenant:
		d.Violations = append(d.Violations, e.checkTenant(o, view)...)
	default:
		if h, ok := e.hosted(obj, req.Namespace); ok {
			e.checkHosts(req, h, tenant, exempt, view, &d)
		}
	}
	return d
}

// exempt reports whether user is exempt from the Service, image and
// catch-all rules.
func (e *Engine) exempt(u User) bool {
	if slices.Contains(e.cfg.ExemptUsers, u.Name) {
		return true
	}
	for _, g := range u.Groups {
		if slices.Contains(e.cfg.ExemptGroups, g) {
			return true
		}
	}
	return false
}

// IsAdmin reports whether user may change tenancy: namespace labels,
// Tenants, HostClaims.
func (e *Engine) IsAdmin(u User) bool {
	if u.Name == fmt.Sprintf("system:serviceaccount:%s:%s", e.cfg.GuardNamespace, e.cfg.GuardServiceAccount) {
		return true
	}
	for _, g := range u.Groups {
		if slices.Contains(e.cfg.AdminGroups, g) {
			return true
		}
	}
	return false
}

// tenantLabel is the namespace label naming its tenant.
const tenantLabel = v1alpha1.TenantLabel
