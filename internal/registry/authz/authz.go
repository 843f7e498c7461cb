// Package authz decides what an identity may do in the registry, from the
// registry rules of its tenant (Tenant.spec.registry): which of the actions a
// token request asks for are granted, and which tags are immutable.
//
// The rules:
//   - An identity belongs to one tenant. A tenant's rights on a repository
//     are the union of the actions of its grants whose pattern matches the
//     repository name (patterns as in package repository: project1/app,
//     project1/* one level, project1/** any depth, on "/" boundaries).
//     A robot account may carry a limit, a ceiling on those actions.
//   - A token request is granted the intersection of what it asks for and
//     what the identity may do, scope by scope; a scope with nothing allowed
//     is left out, never failing the request (Docker asks for pull,push and
//     expects a narrower grant). "*" asks for every action.
//   - registry:catalog:* is granted to any identity with a tenant; the
//     gateway filters the list to repositories the tenant may pull.
//   - A tag is immutable in a repository when it matches an immutable-tag
//     pattern of any tenant that has a grant on that repository, so a
//     repository shared by two tenants is protected by both.
//
// Rules are compiled once per change of the Tenants and are read-only
// afterwards, safe for concurrent use.
package authz

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/registry/scope"
	"github.com/tenantguard/tenantguard/internal/repository"
)

// Identity is an authenticated caller.
type Identity struct {
	// Subject names the caller in tokens and logs: robot:<name> or
	// system:serviceaccount:<namespace>:<name>.
	Subject string
	// Tenant is the tenant the caller acts for; empty means none.
	Tenant string
	// Limit, if not None, caps the caller's actions below its tenant's.
	Limit Actions
}

// Rules are the compiled registry rules of every tenant.
type Rules struct {
	tenants map[string]*tenantRules
	names   []string
	// Problems are grants and patterns that could not be compiled and were
	// skipped (so they grant nothing), one message each.
	Problems []string
}

type tenantRules struct {
	name      string
	grants    []grant
	immutable []TagPattern
}

type grant struct {
	pattern repository.Pattern
	actions Actions
}

// Compile compiles the registry rules of the tenants. Invalid patterns are
// skipped and reported in Problems; they never widen a grant.
func Compile(tenants []v1alpha1.Tenant) *Rules {
	r := &Rules{tenants: map[string]*tenantRules{}}
	for i := range tenants {
		t := &tenants[i]
		tr := &tenantRules{name: t.Name}
		for _, g := range t.Spec.Registry.Repositories {
			p, err := repository.ParsePattern(g.Pattern)
			if err != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("tenant %s: %v", t.Name, err))
				continue
			}
			// Registry paths are lower case and never hold "..": a pattern
			// that could not match one is a mistake worth reporting.
			prefix := strings.TrimSuffix(strings.TrimSuffix(g.Pattern, "/**"), "/*")
			if err := scope.ValidateRepository(prefix); err != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("tenant %s: pattern %s can never match a repository: %v", t.Name, g.Pattern, err))
				continue
			}
			var a Actions
			for _, act := range g.Actions {
				x := ParseAction(string(act))
				if x == None || x == All {
					r.Problems = append(r.Problems, fmt.Sprintf("tenant %s: pattern %s: action %q is not pull, push or delete", t.Name, g.Pattern, act))
					continue
				}
				a |= x
			}
			if a != None {
				tr.grants = append(tr.grants, grant{pattern: p, actions: a})
			}
		}
		for _, s := range t.Spec.Registry.ImmutableTags {
			p, err := ParseTagPattern(s)
			if err != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("tenant %s: %v", t.Name, err))
				continue
			}
			tr.immutable = append(tr.immutable, p)
		}
		if _, dup := r.tenants[t.Name]; dup {
			r.Problems = append(r.Problems, fmt.Sprintf("tenant %s is defined twice; the first definition is used", t.Name))
			continue
		}
		r.tenants[t.Name] = tr
		r.names = append(r.names, t.Name)
	}
	sort.Strings(r.names)
	return r
}

// HasTenant reports whether the tenant exists.
func (r *Rules) HasTenant(name string) bool {
	_, ok := r.tenants[name]
	return ok
}

// Allowed returns what the identity may do on the repository.
func (r *Rules) Allowed(id Identity, repo string) Actions {
	t, ok := r.tenants[id.Tenant]
	if !ok {
		return None
	}
	var a Actions
	for _, g := range t.grants {
		if g.pattern.Match(repo) {
			a |= g.actions
		}
	}
	if id.Limit != None {
		a &= id.Limit
	}
	return a
}

// Grant returns the part of the requested scopes the identity may have.
func (r *Rules) Grant(id Identity, requested []scope.Scope) []scope.Scope {
	var out []scope.Scope
	for _, s := range requested {
		if s.Class != "" {
			continue
		}
		switch {
		case s.Type == scope.TypeRepository:
			if scope.ValidateRepository(s.Name) != nil {
				continue
			}
			got := r.Allowed(id, s.Name) & ActionsOf(s.Actions)
			if got != None {
				out = append(out, scope.Repository(s.Name, got.Names()...))
			}
		case s.Type == scope.TypeRegistry && s.Name == scope.CatalogName && s.Has(scope.All):
			if r.HasTenant(id.Tenant) {
				out = append(out, scope.Catalog())
			}
		}
	}
	return out
}

// Explain says why the identity may not do the action on the repository and
// what it may do instead.
func (r *Rules) Explain(id Identity, repo string, want Actions) string {
	t, ok := r.tenants[id.Tenant]
	if !ok {
		if id.Tenant == "" {
			return fmt.Sprintf("%s belongs to no tenant, so it has no registry rights; a service account's namespace needs the label %s=<tenant>", id.Subject, v1alpha1.TenantLabel)
		}
		return fmt.Sprintf("tenant %q of %s does not exist (any more)", id.Tenant, id.Subject)
	}
	have := r.Allowed(id, repo)
	var grants []string
	for _, g := range t.grants {
		grants = append(grants, fmt.Sprintf("%s (%s)", g.pattern, g.actions))
	}
	rights := "none"
	if len(grants) > 0 {
		rights = strings.Join(grants, "; ")
	}
	missing := want &^ have
	msg := fmt.Sprintf("tenant %s may not %s %s", t.name, strings.Join(missing.Names(), "/"), repo)
	if have != None {
		msg += fmt.Sprintf(" (it may %s there)", have)
	}
	if id.Limit != None && r.Allowed(Identity{Tenant: id.Tenant}, repo).Has(missing) {
		return msg + fmt.Sprintf("; %s is limited to %s", id.Subject, id.Limit)
	}
	return msg + fmt.Sprintf("; its registry rights are: %s. Use a repository those patterns match, or ask a cluster admin to add a grant to spec.registry.repositories of Tenant %s", rights, t.name)
}

// Protection says which immutable-tag rule protects a tag.
type Protection struct {
	Tenant  string
	Pattern string
}

func (p Protection) String() string {
	return fmt.Sprintf("immutable tag pattern %q of tenant %s", p.Pattern, p.Tenant)
}

// ImmutableTag reports whether the tag is immutable in the repository, and
// by which rule.
func (r *Rules) ImmutableTag(repo, tag string) (Protection, bool) {
	for _, name := range r.names {
		t := r.tenants[name]
		if len(t.immutable) == 0 || !t.covers(repo) {
			continue
		}
		for _, p := range t.immutable {
			if p.Match(tag) {
				return Protection{Tenant: name, Pattern: p.String()}, true
			}
		}
	}
	return Protection{}, false
}

// HasImmutableTags reports whether any immutable-tag pattern applies to the
// repository, so callers can skip the work of finding protected digests.
func (r *Rules) HasImmutableTags(repo string) bool {
	for _, name := range r.names {
		t := r.tenants[name]
		if len(t.immutable) > 0 && t.covers(repo) {
			return true
		}
	}
	return false
}

// Patterns returns the repository patterns of a tenant, for messages.
func (r *Rules) Patterns(tenant string) []string {
	t, ok := r.tenants[tenant]
	if !ok {
		return nil
	}
	var out []string
	for _, g := range t.grants {
		if !slices.Contains(out, g.pattern.String()) {
			out = append(out, g.pattern.String())
		}
	}
	return out
}

func (t *tenantRules) covers(repo string) bool {
	for _, g := range t.grants {
		if g.pattern.Match(repo) {
			return true
		}
	}
	return false
}
