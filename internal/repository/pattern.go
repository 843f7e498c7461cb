// Package repository matches image repository names against the patterns
// tenants are granted, for the admission guard (full image names such as
// myacr.azurecr.io/project1/app) and the registry gateway (repository paths
// such as project1/app).
//
// A pattern is a repository name, optionally ending in one wildcard
// component:
//
//	project1/app    exactly project1/app
//	project1/*      one component below project1: project1/app, not project1/a/b
//	project1/**     any depth below project1: project1/app, project1/a/b
//
// Matching is on whole "/"-separated components, so project1/* never matches
// project10/app, and myacr.azurecr.io/project1/* never matches
// myacr.azurecr.io.evil.com/project1/app. A wildcard matches at least one
// component: project1/* does not match project1 itself. Names and patterns
// compare case-sensitively except the first component when it is a registry
// host (it holds a dot or a colon, or is localhost), which DNS compares
// without case.
package repository

import (
	"fmt"
	"strings"
)

type depth int

const (
	exact    depth = iota // the name itself
	oneLevel              // prefix/<one component>
	anyDepth              // prefix/<one or more components>
)

// Pattern is a parsed repository pattern.
type Pattern struct {
	raw    string
	prefix string // components before the wildcard, or the whole name
	depth  depth
}

// ParsePattern parses a repository pattern. It refuses empty components,
// wildcards anywhere but as the whole last component, and a bare wildcard
// (which would grant every repository).
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty repository pattern; write a name such as project1/app or project1/*")
	}
	parts := strings.Split(s, "/")
	d := exact
	switch parts[len(parts)-1] {
	case "*":
		d = oneLevel
	case "**":
		d = anyDepth
	}
	if d != exact {
		parts = parts[:len(parts)-1]
		if len(parts) == 0 {
			return Pattern{}, fmt.Errorf("repository pattern %q grants every repository; name a prefix such as project1/*", s)
		}
	}
	for _, p := range parts {
		if p == "" {
			return Pattern{}, fmt.Errorf("repository pattern %q has an empty component (leading, trailing or double /)", s)
		}
		if strings.Contains(p, "*") {
			return Pattern{}, fmt.Errorf("repository pattern %q: a wildcard must be the whole last component (project1/* or project1/**)", s)
		}
	}
	return Pattern{raw: s, prefix: normalizeHost(strings.Join(parts, "/")), depth: d}, nil
}

// MustParsePattern is ParsePattern for constants in tests and defaults.
func MustParsePattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether the repository name matches the pattern.
func (p Pattern) Match(name string) bool {
	if p.prefix == "" {
		return false // the zero Pattern matches nothing
	}
	name = normalizeHost(name)
	if p.depth == exact {
		return name == p.prefix
	}
	rest, ok := strings.CutPrefix(name, p.prefix+"/")
	if !ok || rest == "" {
		return false
	}
	for _, c := range strings.Split(rest, "/") {
		if c == "" {
			return false // project1//x is not a repository name
		}
	}
	return p.depth == anyDepth || !strings.Contains(rest, "/")
}

// Covers reports whether every name the other pattern matches is also
// matched by p, so a grant of p includes a grant of other.
func (p Pattern) Covers(other Pattern) bool {
	switch p.depth {
	case exact:
		return other.depth == exact && other.prefix == p.prefix
	case oneLevel:
		return other.depth == exact && p.Match(other.prefix) || other.depth == oneLevel && other.prefix == p.prefix
	default:
		return p.Match(other.prefix) || (other.depth != exact && other.prefix == p.prefix)
	}
}

// normalizeHost lower-cases the first component when it is a registry host.
func normalizeHost(name string) string {
	first, rest, found := strings.Cut(name, "/")
	if !found || !(strings.ContainsAny(first, ".:") || first == "localhost") || !hasUpper(first) {
		return name
	}
	return strings.ToLower(first) + "/" + rest
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}
