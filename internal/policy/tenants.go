package policy

import (
	"fmt"
	"strings"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// checkTenant refuses a Tenant whose patterns do not compile, that lists a
// namespace of another tenant, or that lists an excluded namespace.
func (e *Engine) checkTenant(t *v1alpha1.Tenant, view View) []Violation {
	var out []Violation
	if _, err := CompileTenant(t); err != nil {
		msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("tenant %q: ", t.Name))
		out = append(out, Violation{
			Rule: RuleTenantSpec, Field: "spec", Message: msg,
			Instead: "fix the entries named above; `kubectl explain tenant.spec` documents each field.",
		})
	}
	for i, ns := range t.Spec.Namespaces {
		field := fmt.Sprintf("spec.namespaces[%d]", i)
		if e.cfg.Excluded(ns) {
			out = append(out, Violation{
				Rule: RuleTenantSpec, Field: field, Value: ns,
				Message: fmt.Sprintf("namespace %q is excluded from the guard (a system namespace or the guard's own) and cannot belong to a tenant", ns),
				Instead: "give the tenant its own namespaces.",
			})
			continue
		}
		for _, other := range view.Tenants() {
			if other.Name == t.Name {
				continue
			}
			for _, theirs := range other.Spec.Namespaces {
				if theirs == ns {
					out = append(out, Violation{
						Rule: RuleTenantSpec, Field: field, Value: ns,
						Message: fmt.Sprintf("namespace %q already belongs to tenant %q", ns, other.Name),
						Instead: fmt.Sprintf("remove it from tenant %q first, or choose another namespace.", other.Name),
					})
				}
			}
		}
	}
	return out
}
