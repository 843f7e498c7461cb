package repository_test

import (
	"strings"
	"testing"

	"github.com/tenantguard/tenantguard/internal/repository"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"project1/app", "project1/app", true},
		{"project1/app", "project1/app2", false},
		{"project1/app", "project1/app/x", false},
		{"project1/*", "project1/app", true},
		{"project1/*", "project1/a/b", false},
		{"project1/*", "project1", false},
		{"project1/*", "project1/", false},
		{"project1/*", "project10/app", false},
		{"project1/*", "project1//app", false},
		{"project1/**", "project1/a", true},
		{"project1/**", "project1/a/b/c", true},
		{"project1/**", "project1", false},
		{"project1/**", "project1/a//b", false},
		{"project1/**", "project10/a", false},
		{"myacr.azurecr.io/project1/*", "myacr.azurecr.io/project1/app", true},
		{"myacr.azurecr.io/project1/*", "MyACR.AzureCR.io/project1/app", true},
		{"myacr.azurecr.io/project1/*", "myacr.azurecr.io/Project1/app", false},
		{"myacr.azurecr.io/project1/*", "myacr.azurecr.io.evil.com/project1/app", false},
		{"myacr.azurecr.io/project1/*", "myacr.azurecr.io:443/project1/app", false},
		{"localhost:5000/p/*", "LOCALHOST:5000/p/x", true},
		{"docker.io/library/nginx", "docker.io/library/nginx", true},
	}
	for _, tc := range tests {
		p, err := repository.ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", tc.pattern, err)
		}
		if got := p.Match(tc.name); got != tc.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
	if (repository.Pattern{}).Match("x") {
		t.Error("the zero Pattern matches nothing")
	}
}

func TestParsePatternRefuses(t *testing.T) {
	for _, p := range []string{"", "*", "**", "/a", "a/", "a//b", "a/*/b", "a/b*", "a/**/c", "*/a"} {
		if _, err := repository.ParsePattern(p); err == nil {
			t.Errorf("ParsePattern(%q) accepted", p)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"p/**", "p/*", true},
		{"p/**", "p/a/b", true},
		{"p/**", "p/x/**", true},
		{"p/*", "p/a", true},
		{"p/*", "p/**", false},
		{"p/*", "p/a/b", false},
		{"p/a", "p/a", true},
		{"p/a", "p/*", false},
		{"p/**", "q/*", false},
	}
	for _, tc := range tests {
		a, b := repository.MustParsePattern(tc.a), repository.MustParsePattern(tc.b)
		if got := a.Covers(b); got != tc.want {
			t.Errorf("%s covers %s = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func FuzzPattern(f *testing.F) {
	for _, s := range []string{"project1/*", "project1/**", "a/b", "myacr.azurecr.io/p/*"} {
		f.Add(s, "project1/app")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		p, err := repository.ParsePattern(pattern)
		if err != nil {
			return
		}
		if !p.Covers(p) {
			t.Fatalf("%q does not cover itself", pattern)
		}
		// A match is on whole components: the name is the pattern's
		// literal part, or that part followed by "/".
		if p.Match(name) {
			lit := strings.TrimSuffix(strings.TrimSuffix(pattern, "/**"), "/*")
			if !strings.EqualFold(name, lit) && !strings.HasPrefix(strings.ToLower(name), strings.ToLower(lit)+"/") {
				t.Fatalf("%q matches %q across a component boundary", pattern, name)
			}
		}
	})
}
