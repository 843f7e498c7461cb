package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// checkNamespace protects the tenant label of namespaces: only cluster
// admins and the guard itself may set, change or remove it, so a tenant
// cannot move a namespace into another tenant or out of tenancy.
func (e *Engine) checkNamespace(req Request, ns *corev1.Namespace) []Violation {
	if e.IsAdmin(req.User) {
		return nil
	}
	newValue, newSet := ns.Labels[tenantLabel]
	oldValue, oldSet := "", false
	if old, ok := req.OldObject.(*corev1.Namespace); ok && req.Operation == Update {
		oldValue, oldSet = old.Labels[tenantLabel]
	}
	if newSet == oldSet && newValue == oldValue {
		return nil
	}
	field := fmt.Sprintf("metadata.labels[%s]", tenantLabel)
	var what string
	switch {
	case !oldSet:
		what = fmt.Sprintf("setting the tenant label to %q", newValue)
	case !newSet:
		what = fmt.Sprintf("removing the tenant label %q", oldValue)
	default:
		what = fmt.Sprintf("changing the tenant label from %q to %q", oldValue, newValue)
	}
	return []Violation{{
		Rule: RuleNamespaceLabel, Field: field, Value: newValue,
		Message: fmt.Sprintf("%s decides which tenant owns the namespace; only cluster admins (%v) and the guard may do it, not %q", what, e.cfg.AdminGroups, req.User.Name),
		Instead: "leave the label as it is; ask the platform team to add the namespace to your Tenant's spec.namespaces.",
	}}
}
