package policy

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"

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
	patterns, patternErrs := checkHostPatterns(t.Spec.Ingress.AllowedHostPatterns)
	errs = append(errs, patternErrs...)
	if c.hosts, err = hosts.CompileAllowlist(t.Spec.Ingress.AllowedHosts, patterns); err != nil {
		errs = append(errs, fmt.Errorf("spec.ingress: %w", err))
	}
	if c.externalNames, err = hosts.CompileAllowlist(t.Spec.Services.AllowedExternalNames, nil); err != nil {
		errs = append(errs, fmt.Errorf("spec.services.allowedExternalNames: %w", err))
	}
	for i, p := range t.Spec.Images.AllowedRepositories {
		field := fmt.Sprintf("spec.images.allowedRepositories[%d]", i)
		if p == "" {
			errs = append(errs, fmt.Errorf("%s: empty pattern; write a repository such as myacr.azurecr.io/project1/*", field))
			continue
		}
		if first, _, _ := strings.Cut(p, "/"); !strings.ContainsAny(first, ".:") && first != "localhost" {
			errs = append(errs, fmt.Errorf("%s: %q does not start with a registry host; write it in full, as docker.io/library/nginx or myacr.azurecr.io/project1/*", field, p))
			continue
		}
		if err := noTagOrDigest(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			continue
		}
		pat, err := repository.ParsePattern(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			continue
		}
		c.images = append(c.images, pat)
	}
	for i, g := range t.Spec.Registry.Repositories {
		field := fmt.Sprintf("spec.registry.repositories[%d].pattern", i)
		if err := noTagOrDigest(g.Pattern); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			continue
		}
		if _, err := repository.ParsePattern(g.Pattern); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	for i, tag := range t.Spec.Registry.ImmutableTags {
		if strings.TrimSpace(tag) == "" {
			errs = append(errs, fmt.Errorf("spec.registry.immutableTags[%d]: empty tag pattern, which protects no tag; write a pattern such as v* or release-*, or * for every tag", i))
		}
	}
	for i, cl := range t.Spec.Ingress.AllowedClasses {
		if cl == "" {
			errs = append(errs, fmt.Errorf("spec.ingress.allowedClasses[%d]: empty class name; it would admit Ingresses that name no class, which the cluster's default controller serves; list class names only", i))
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

// tooWideProbes are names in reserved domains (RFC 2606) that no tenant can
// own: a host pattern that matches one of them is not tied to a domain and
// would admit any host, as "*" would.
var tooWideProbes = []string{"tenantguard-probe.invalid", "a.b.tenantguard-probe.invalid", "tenantguard-probe.example"}

// checkHostPatterns returns the allowedHostPatterns that may be compiled,
// and an error for each that may not: empty, not a regular expression on
// its own (errors show the pattern as written, and a pattern such as
// "a)|(.*" cannot escape the anchoring the allowlist adds), or so wide it
// matches every host.
func checkHostPatterns(patterns []string) ([]string, []error) {
	var ok []string
	var errs []error
	for i, p := range patterns {
		field := fmt.Sprintf("spec.ingress.allowedHostPatterns[%d]", i)
		if p == "" {
			errs = append(errs, fmt.Errorf("%s: empty pattern, which matches no host; write a regular expression for whole names, such as api-[0-9]+\\.example\\.com", field))
			continue
		}
		if _, err := regexp.Compile(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a regular expression (RE2): %v", field, p, unwrapRegexpError(err)))
			continue
		}
		if upper := upperLiteral(p); upper != "" {
			errs = append(errs, fmt.Errorf("%s: %q has the upper-case letter %q, which never matches: host names are compared in lower case; write the pattern in lower case", field, p, upper))
			continue
		}
		anchored, err := regexp.Compile(`^(?:` + p + `)$`)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a regular expression (RE2): %v", field, p, unwrapRegexpError(err)))
			continue
		}
		wide := ""
		for _, probe := range tooWideProbes {
			if anchored.MatchString(probe) {
				wide = probe
				break
			}
		}
		if wide != "" {
			errs = append(errs, fmt.Errorf("%s: %q matches host names of any domain (it matches %q, a reserved name nobody owns), so it admits every host, as \"*\" would; write the domain out, as in api-[0-9]+\\.example\\.com", field, p, wide))
			continue
		}
		ok = append(ok, p)
	}
	return ok, errs
}

// upperLiteral returns an upper-case letter the pattern requires
// literally (not under (?i)), or "".
func upperLiteral(p string) string {
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return ""
	}
	var walk func(*syntax.Regexp) string
	walk = func(r *syntax.Regexp) string {
		if r.Op == syntax.OpLiteral && r.Flags&syntax.FoldCase == 0 {
			for _, c := range r.Rune {
				if unicode.IsUpper(c) {
					return string(c)
				}
			}
		}
		for _, sub := range r.Sub {
			if u := walk(sub); u != "" {
				return u
			}
		}
		return ""
	}
	return walk(re)
}

// unwrapRegexpError drops the "error parsing regexp: " prefix: the message
// already says the pattern is not a regular expression.
func unwrapRegexpError(err error) string {
	var re *syntax.Error
	if errors.As(err, &re) {
		return fmt.Sprintf("%s in `%s`", re.Code, re.Expr)
	}
	return err.Error()
}

// noTagOrDigest refuses a repository pattern that names a tag or digest:
// images are matched by repository, so such a pattern never matches, and
// a refusal would list it as allowed.
func noTagOrDigest(p string) error {
	if at := strings.Index(p, "@"); at >= 0 {
		return fmt.Errorf("%q names a digest (%s); a pattern names repositories, so it would never match. Write %s", p, p[at:], p[:at])
	}
	// A ":" after the first "/" is a tag; in the first component it is a
	// registry port.
	if i := strings.Index(p, "/"); i >= 0 {
		if c := strings.LastIndex(p[i:], ":"); c >= 0 {
			return fmt.Errorf("%q names a tag (%s); a pattern names repositories, so it would never match. Write %s, and pin tags in the pods themselves", p, p[i+c:], p[:i+c])
		}
	}
	return nil
}
