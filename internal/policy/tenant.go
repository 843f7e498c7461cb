package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/repository"
)

// Tenant is a Tenant with its patterns compiled, ready for decisions.
type Tenant struct {
	Name string
	Spec v1alpha1.TenantSpec

	hosts         hosts.Allowlist
	externalNames hosts.Allowlist
	images        []repository.Pattern
	requireDigest map[string]bool
	classes       map[string]bool
}

// CompileTenant checks a Tenant's patterns and compiles them. Its error
// lists every bad entry.
func CompileTenant(t *v1alpha1.Tenant) (*Tenant, error) {
	c := &Tenant{Name: t.Name, Spec: *t.Spec.DeepCopy(), requireDigest: map[string]bool{}, classes: map[string]bool{}}
	var errs []error
	var err error
	if c.hosts, err = hosts.CompileAllowlist(t.Spec.Ingress.AllowedHosts, t.Spec.Ingress.AllowedHostPatterns); err != nil {
		errs = append(errs, fmt.Errorf("spec.ingress: %w", err))
	}
	if c.externalNames, err = hosts.CompileAllowlist(t.Spec.Services.AllowedExternalNames, nil); err != nil {
		errs = append(errs, fmt.Errorf("spec.services.allowedExternalNames: %w", err))
	}
	for i, p := range t.Spec.Images.AllowedRepositories {
		if first, _, _ := strings.Cut(p, "/"); !strings.ContainsAny(first, ".:") && first != "localhost" {
			errs = append(errs, fmt.Errorf("spec.images.allowedRepositories[%d]: %q does not start with a registry host; write it in full, as docker.io/library/nginx or myacr.azurecr.io/project1/*", i, p))
			continue
		}
		pat, err := repository.ParsePattern(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("spec.images.allowedRepositories[%d]: %w", i, err))
			continue
		}
		c.images = append(c.images, pat)
	}
	for i, g := range t.Spec.Registry.Repositories {
		if _, err := repository.ParsePattern(g.Pattern); err != nil {
			errs = append(errs, fmt.Errorf("spec.registry.repositories[%d].pattern: %w", i, err))
		}
	}
	for _, ns := range t.Spec.Images.RequireDigestNamespaces {
		if !slices.Contains(t.Spec.Namespaces, ns) {
			errs = append(errs, fmt.Errorf("spec.images.requireDigestNamespaces: %q is not one of the tenant's namespaces", ns))
		}
		c.requireDigest[ns] = true
	}
	for _, cl := range t.Spec.Ingress.AllowedClasses {
		c.classes[cl] = true
	}
	if t.Spec.Ingress.HostOwnership == "" {
		c.Spec.Ingress.HostOwnership = v1alpha1.HostOwnershipNamespace
	}
	if t.Spec.Services.LoadBalancer == "" {
		c.Spec.Services.LoadBalancer = v1alpha1.LoadBalancerDeny
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("tenant %q: %w", t.Name, errors.Join(errs...))
	}
	return c, nil
}

// HostAllowlist returns the hosts the tenant may use.
func (t *Tenant) HostAllowlist() hosts.Allowlist { return t.hosts }
