package tenancy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// User is the author of an admission request.
type User struct {
	Name   string
	Groups []string
}

// Owns reports whether u is one of the tenant's owners: the user itself,
// one of its groups, or its service account.
func Owns(u User, t *v1alpha1.Tenant) bool {
	for _, o := range t.Spec.Owners {
		switch o.Kind {
		case v1alpha1.OwnerUser:
			if u.Name == o.Name {
				return true
			}
		case v1alpha1.OwnerGroup:
			if slices.Contains(u.Groups, o.Name) {
				return true
			}
		case v1alpha1.OwnerServiceAccount:
			if u.Name == "system:serviceaccount:"+o.Namespace+":"+o.Name {
				return true
			}
		}
	}
	return false
}

// NamespaceDecision is the answer to a user who is not a cluster admin
// creating a namespace.
type NamespaceDecision struct {
	// Allowed is false when the namespace is refused; Message says why and
	// what to do instead.
	Allowed bool
	Message string
	// Tenant the namespace belongs to; empty when the user owns no tenant,
	// in which case tenancy has no say and RBAC alone decides.
	Tenant string
	// Patch is a JSON patch that labels the namespace for Tenant; nil when
	// it already carries that label or no tenant applies.
	Patch []byte
}

// DecideNamespace decides whether user u may create namespace name (with
// labels), given every Tenant and, for each tenant name, the existing
// namespaces labelled for it.
//
// A tenant owner may create a namespace whose name starts with one of the
// prefixes of a tenant it owns (the longest matching prefix picks the
// tenant; the tenant label, if set, must name it), while the tenant has
// fewer namespaces than its namespaceQuota. Namespaces the Tenant lists but
// which do not exist yet are counted and always admitted. Every other
// namespace an owner creates is refused, and the refusal names the prefixes
// and the quota. A user who owns no tenant is left to RBAC.
func DecideNamespace(u User, name string, labels map[string]string, tenants []*v1alpha1.Tenant, labelled func(tenant string) []string) NamespaceDecision {
	var owned []*v1alpha1.Tenant
	for _, t := range tenants {
		if Owns(u, t) && t.DeletionTimestamp == nil {
			owned = append(owned, t)
		}
	}
	if len(owned) == 0 {
		return NamespaceDecision{Allowed: true}
	}
	want, wantSet := labels[v1alpha1.TenantLabel]

	// The tenant the namespace is for: one that lists it, else the one with
	// the longest matching prefix, else none.
	var pick *v1alpha1.Tenant
	best := -1
	for _, t := range owned {
		if wantSet && t.Name != want {
			continue
		}
		if slices.Contains(t.Spec.Namespaces, name) {
			pick, best = t, 1<<30
			break
		}
		for _, p := range Prefixes(t) {
			if strings.HasPrefix(name, p) && len(name) > len(p) && len(p) > best {
				pick, best = t, len(p)
			}
		}
	}
	if pick == nil {
		return NamespaceDecision{Message: refuseName(u, name, want, owned, labelled)}
	}
	d := NamespaceDecision{Allowed: true, Tenant: pick.Name, Patch: labelPatch(labels, pick.Name)}
	if slices.Contains(pick.Spec.Namespaces, name) {
		return d
	}
	used := len(Namespaces(pick, labelled(pick.Name), nil))
	if q := pick.Spec.NamespaceQuota; q == nil || used >= int(*q) {
		return NamespaceDecision{Tenant: pick.Name, Message: fmt.Sprintf(
			"namespace %q is refused: tenant %q has %s; delete a namespace you no longer need, or ask the platform team to raise spec.namespaceQuota of Tenant %q",
			name, pick.Name, quotaText(pick, used), pick.Name)}
	}
	return d
}

// refuseName explains which names the user may create.
func refuseName(u User, name, want string, owned []*v1alpha1.Tenant, labelled func(string) []string) string {
	var may []string
	for _, t := range owned {
		var ps []string
		for _, p := range Prefixes(t) {
			ps = append(ps, fmt.Sprintf("%q", p+"*"))
		}
		may = append(may, fmt.Sprintf("tenant %q: names %s, %s", t.Name, strings.Join(ps, " or "),
			quotaText(t, len(Namespaces(t, labelled(t.Name), nil)))))
	}
	why := fmt.Sprintf("its name does not start with a prefix of a tenant %s owns", u.Name)
	if want != "" {
		why = fmt.Sprintf("it is labelled for tenant %q, which %s does not own or whose prefixes its name does not start with", want, u.Name)
	}
	return fmt.Sprintf("namespace %q is refused: %s (%s); choose a name with one of those prefixes, or ask the platform team for the namespace",
		name, why, strings.Join(may, "; "))
}

func quotaText(t *v1alpha1.Tenant, used int) string {
	if t.Spec.NamespaceQuota == nil {
		return fmt.Sprintf("%d namespaces and no namespaceQuota (owners may not create namespaces)", used)
	}
	return fmt.Sprintf("%d of its namespaceQuota of %d namespaces", used, *t.Spec.NamespaceQuota)
}

// labelPatch labels a new namespace for the tenant, as a JSON patch.
func labelPatch(labels map[string]string, tenant string) []byte {
	if labels[v1alpha1.TenantLabel] == tenant {
		return nil
	}
	var op any
	if labels == nil {
		op = map[string]any{"op": "add", "path": "/metadata/labels", "value": map[string]string{v1alpha1.TenantLabel: tenant}}
	} else {
		path := "/metadata/labels/" + strings.ReplaceAll(strings.ReplaceAll(v1alpha1.TenantLabel, "~", "~0"), "/", "~1")
		op = map[string]any{"op": "add", "path": path, "value": tenant}
	}
	b, _ := json.Marshal([]any{op}) // plain maps and strings always marshal
	return b
}

// Conflict is a namespace a Tenant names that another tenant has.
type Conflict struct {
	Field     string // spec.namespaces[i]
	Namespace string
	Tenant    string // the tenant that has it
	Message   string
}

// Conflicts are the namespaces t lists that belong to another tenant: one
// that another Tenant lists, or one labelled for another tenant that still
// exists. labelOf returns a namespace's tenant label ("" when unlabelled or
// unknown). The admission webhook refuses a Tenant with conflicts; the
// controller reports them in status and leaves those namespaces alone.
func Conflicts(t *v1alpha1.Tenant, tenants []*v1alpha1.Tenant, labelOf func(ns string) string) []Conflict {
	var out []Conflict
	for i, ns := range t.Spec.Namespaces {
		holder := ""
		for _, o := range tenants {
			if o.Name != t.Name && slices.Contains(o.Spec.Namespaces, ns) && (holder == "" || older(o, tenants, holder)) {
				holder = o.Name
			}
		}
		if l := labelOf(ns); holder == "" && l != "" && l != t.Name && exists(tenants, l) {
			holder = l
		}
		if holder == "" {
			continue
		}
		out = append(out, Conflict{
			Field: fmt.Sprintf("spec.namespaces[%d]", i), Namespace: ns, Tenant: holder,
			Message: fmt.Sprintf("namespace %q already belongs to tenant %q; remove it from Tenant %q first, or choose another namespace", ns, holder, holder),
		})
	}
	return out
}

func exists(tenants []*v1alpha1.Tenant, name string) bool {
	return slices.ContainsFunc(tenants, func(t *v1alpha1.Tenant) bool { return t.Name == name })
}

// older reports whether o was created before the tenant named other.
func older(o *v1alpha1.Tenant, tenants []*v1alpha1.Tenant, other string) bool {
	for _, t := range tenants {
		if t.Name == other {
			return Before(o, t)
		}
	}
	return true
}

// Holder is the tenant that has namespace ns: the one its tenant label
// names, if that Tenant exists; else the first Tenant that lists it; else
// none.
func Holder(ns, label string, tenants []*v1alpha1.Tenant) string {
	if label != "" && exists(tenants, label) {
		return label
	}
	var first *v1alpha1.Tenant
	for _, t := range tenants {
		if slices.Contains(t.Spec.Namespaces, ns) && (first == nil || Before(t, first)) {
			first = t
		}
	}
	if first == nil {
		return ""
	}
	return first.Name
}

// Before orders Tenants by creation, then name: when two Tenants list the
// same namespace (one admitted before the guard ran), the first one has it.
func Before(a, b *v1alpha1.Tenant) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}
