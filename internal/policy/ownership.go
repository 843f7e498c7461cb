package policy

import (
	"fmt"
	"slices"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
)

// checkHosts applies the host rules to an Ingress or route:
//
//   - every host must be a valid name;
//   - a tenant may use only hosts in its allowlist, classes in its list,
//     and no catch-all (a rule without host, a default backend, a TLS entry
//     without hosts, a route without hostnames);
//   - a host, or any host a wildcard matches, belongs to one namespace
//     (in Object mode, one object): another namespace using it is refused,
//     whatever the path and whether or not it has the same tenant;
//   - inside the owner namespace, two objects may not serve the same path
//     on the same host, unless one of them is an ingress-nginx canary.
//
// Hosts the namespace does not own yet are returned as claims, which the
// webhook makes atomically in the API server before admitting the object.
func (e *Engine) checkHosts(req Request, h *hosted, tenant *Tenant, exempt bool, view View, d *Decision) {
	d.Violations = append(d.Violations, h.invalid...)
	ns := req.Namespace
	objectMode := false
	if tenant != nil {
		objectMode = tenant.Spec.Ingress.HostOwnership == v1alpha1.HostOwnershipObject
		if !exempt {
			for _, v := range h.catchAll {
				if v.Field == "spec.defaultBackend" && tenant.Spec.Ingress.AllowDefaultBackend {
					continue
				}
				d.Violations = append(d.Violations, v)
			}
		}
		if h.isIngress && len(tenant.classes) > 0 && !tenant.classes[h.class] {
			v := Violation{Rule: RuleIngressClass, Field: h.classField, Value: h.class,
				Instead: fmt.Sprintf("set spec.ingressClassName to one of %v.", tenant.Spec.Ingress.AllowedClasses)}
			if h.class == "" {
				v.Field = "spec.ingressClassName"
				v.Message = fmt.Sprintf("the Ingress names no class, so the cluster default controller would serve it; tenant %q may use only the classes %v", tenant.Name, tenant.Spec.Ingress.AllowedClasses)
			} else {
				v.Message = fmt.Sprintf("ingress class %q is not one tenant %q may use (%v)", h.class, tenant.Name, tenant.Spec.Ingress.AllowedClasses)
			}
			d.Violations = append(d.Violations, v)
		}
	}

	owner := hosts.Owner{Namespace: ns}
	if tenant != nil {
		owner.Tenant = tenant.Name
	}
	if objectMode {
		ref := h.ref
		owner.Object = &ref
	}
	d.ClaimOwner = owner
	if len(h.uses) > e.cfg.MaxHostsPerObject {
		d.Violations = append(d.Violations, Violation{
			Rule: RuleHostLimit, Field: "spec", Value: fmt.Sprint(len(h.uses)),
			Message: fmt.Sprintf("the object names %d hosts; at most %d are allowed in one object", len(h.uses), e.cfg.MaxHostsPerObject),
			Instead: "split the hosts over several objects, or use a wildcard from your allowlist.",
		})
		return
	}
	ix := view.Hosts()
	for _, u := range h.uses {
		if tenant != nil && !tenant.hosts.Allows(u.Name) {
			d.Violations = append(d.Violations, allowlistViolation(u, tenant, h))
			continue
		}
		owned, conflict := false, false
		if o, ok := ix.Owner(u.Name); ok && o.Namespace == ns && !o.Pending && !hosts.Conflicts(o, owner) {
			owned = true
		}
		// Owners in the way: other namespaces, reservations (but one of this
		// tenant for exactly this name, which the claim binds), and in
		// Object mode other objects of this namespace.
		inTheWay := func(o hosts.Owner) bool {
			if o.Namespace == "" && o.Tenant != "" && o.Tenant == owner.Tenant && o.Name == u.Name {
				return false
			}
			return hosts.Conflicts(o, owner)
		}
		for _, o := range ix.Overlapping(u.Name, 4, inTheWay) {
			conflict = true
			d.Violations = append(d.Violations, e.ownershipViolation(u.Name, hostField(h, u), o, owner))
		}
		// A host owned elsewhere is never claimed, even when the conflict
		// predates the guard and an update is let through.
		if !owned && !conflict {
			d.Claims = append(d.Claims, u.Name)
			if d.claimFields == nil {
				d.claimFields = map[hosts.Name]string{}
			}
			d.claimFields[u.Name] = hostField(h, u)
		}
		d.Violations = append(d.Violations, e.pathConflicts(u, h, objectMode, ix)...)
	}
}

// hostField is where a host is first named in the object.
func hostField(h *hosted, u hosts.Use) string {
	return h.fields[u.Name]
}

func allowlistViolation(u hosts.Use, t *Tenant, h *hosted) Violation {
	v := Violation{Rule: RuleHostAllowlist, Field: hostField(h, u), Value: u.Name.String(),
		Instead: "use a host in your allowlist, or ask the platform team to add this one to spec.ingress.allowedHosts."}
	if u.Name.Wildcard() {
		v.Message = fmt.Sprintf("wildcard %q is wider than the hosts tenant %q may use (%s); a wildcard needs a matching *.domain entry", u.Name, t.Name, t.hosts)
	} else {
		v.Message = fmt.Sprintf("host %q is not among the hosts tenant %q may use (%s)", u.Name, t.Name, t.hosts)
	}
	return v
}

// ownershipViolation refuses name, named at field, because o owns it (or
// a host it overlaps) and requester may not use it. The index path of
// checkHosts and ClaimRefused both build their refusal here, so that one
// conflict reads the same whichever step finds it.
func (e *Engine) ownershipViolation(name hosts.Name, field string, o hosts.Owner, requester hosts.Owner) Violation {
	if o.Namespace != "" && o.Namespace == requester.Namespace && o.Object != nil {
		return Violation{
			Rule: RuleHostOwnership, Field: field, Value: name.String(),
			Message: fmt.Sprintf("host %q belongs to %s %q in this namespace: tenant %q gives each host to one object", o.Name, o.Object.Kind, o.Object.Name, requester.Tenant),
			Instead: fmt.Sprintf("add your paths to %s %q, or use another host.", o.Object.Kind, o.Object.Name),
		}
	}
	who := e.describeOwner(o, requester.Tenant)
	var what string
	if o.Name == name {
		what = fmt.Sprintf("host %q belongs to %s", name, who)
	} else {
		what = fmt.Sprintf("host %q overlaps %q, which belongs to %s", name, o.Name, who)
	}
	if o.Reserved && o.Namespace == "" {
		what = fmt.Sprintf("host %q is reserved for tenant %q", o.Name, o.Tenant)
	}
	return Violation{
		Rule: RuleHostOwnership, Field: field, Value: name.String(),
		Message: what + "; a host is served from one namespace only, so that no Ingress or route can take over another's traffic",
		Instead: fmt.Sprintf("use another host; if the owner no longer needs %q, its owners delete what uses it and it is released %s later (HostClaim %s).",
			o.Name, e.cfg.ClaimGracePeriod.Duration, hosts.ClaimName(o.Name)),
	}
}

// ClaimRefused turns a claim the API server refused into the denial: d is
// the decision whose Claims were being made, c the conflict the claimer
// met. The violation is the one the ownership index would have given for
// the same owner (same field, owner, redaction and release hint); a claim
// made at the same moment by another request adds that a retry may pass.
func (e *Engine) ClaimRefused(d Decision, c *hosts.ConflictError) Decision {
	field, ok := d.claimFields[c.Name]
	if !ok {
		field = "spec" // a name the decision did not claim; never from the webhook
	}
	v := e.ownershipViolation(c.Name, field, c.Owner, d.ClaimOwner)
	if c.Concurrent {
		v.Message += fmt.Sprintf("; %q was claimed at the same moment by another request, which may yet withdraw", c.Owner.Name)
		v.Instead = "retry in a moment; if it is refused again, " + v.Instead
	}
	return Decision{Violations: []Violation{v}, Warnings: d.Warnings}
}

// describeOwner names the owner for a message; with RedactOwnerNamespace,
// the namespace of another tenant, or of no tenant, is not shown.
func (e *Engine) describeOwner(o hosts.Owner, requesterTenant string) string {
	sameTenant := requesterTenant != "" && o.Tenant == requesterTenant
	switch {
	case o.Tenant == "":
		if e.cfg.RedactOwnerNamespace {
			return "another namespace"
		}
		return fmt.Sprintf("namespace %q", o.Namespace)
	case e.cfg.RedactOwnerNamespace && !sameTenant:
		return fmt.Sprintf("tenant %q", o.Tenant)
	default:
		return fmt.Sprintf("namespace %q of tenant %q", o.Namespace, o.Tenant)
	}
}

// pathConflicts finds other objects of the namespace that serve the same
// path on the same host (in Object mode, that use the host at all).
func (e *Engine) pathConflicts(u hosts.Use, h *hosted, objectMode bool, ix *hosts.Index) []Violation {
	var out []Violation
	for _, other := range ix.Uses(u.Name, u.Namespace) {
		if other.Object == h.ref {
			continue
		}
		if objectMode {
			out = append(out, Violation{
				Rule: RuleHostPath, Field: hostField(h, u), Value: u.Name.String(),
				Message: fmt.Sprintf("host %q is already used by %s %q in this namespace, and the tenant gives each host to one object", u.Name, other.Object.Kind, other.Object.Name),
				Instead: fmt.Sprintf("add your paths to %s %q, or use another host.", other.Object.Kind, other.Object.Name),
			})
			continue
		}
		if u.Canary != other.Canary {
			continue // a canary and its primary share host and path by design
		}
		for _, p := range u.Paths {
			if slices.Contains(other.Paths, p) {
				out = append(out, Violation{
					Rule: RuleHostPath, Field: hostField(h, u), Value: u.Name.String() + p,
					Message: fmt.Sprintf("path %q on host %q is already served by %s %q in this namespace; a second object on the same host and path would take its traffic", p, u.Name, other.Object.Kind, other.Object.Name),
					Instead: fmt.Sprintf("serve another path, change %s %q instead, or mark this Ingress as its canary (%s: \"true\").", other.Object.Kind, other.Object.Name, CanaryAnnotation),
				})
				break
			}
		}
	}
	return out
}
