package authz

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/registry/scope"
)

func tenant(name string, immutable []string, grants ...v1alpha1.RepositoryGrant) v1alpha1.Tenant {
	return v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.TenantSpec{Registry: v1alpha1.RegistryPolicy{Repositories: grants, ImmutableTags: immutable}}}
}

func g(pattern string, actions ...v1alpha1.RegistryAction) v1alpha1.RepositoryGrant {
	return v1alpha1.RepositoryGrant{Pattern: pattern, Actions: actions}
}

func rules() *Rules {
	return Compile([]v1alpha1.Tenant{
		tenant("project1", []string{"v*", "release-*"},
			g("project1/*", "pull", "push"),
			g("project1/app", "delete"),
			g("shared/base", "pull")),
		tenant("project2", []string{"*"}, g("project2/**", "pull", "push", "delete")),
		tenant("ops", nil, g("shared/**", "pull", "push")),
		tenant("broken", nil, g("**", "pull"), g("ok/*", "pull", "fly"), g("Bad*/x", "pull"), g("Upper/*", "pull"), g("a/../b/*", "pull")),
	})
}

func TestAllowed(t *testing.T) {
	r := rules()
	p1 := Identity{Subject: "robot:p1", Tenant: "project1"}
	tests := []struct {
		id   Identity
		repo string
		want Actions
	}{
		{p1, "project1/app", Pull | Push | Delete},
		{p1, "project1/web", Pull | Push},
		{p1, "project1/a/b", None}, // one level only
		{p1, "project10/app", None},
		{p1, "project1", None},
		{p1, "shared/base", Pull},
		{p1, "project2/app", None},
		{Identity{Tenant: "project2"}, "project2/a/b/c", All},
		{Identity{Tenant: "project2"}, "project1/app", None},
		{Identity{Tenant: "project1", Limit: Pull}, "project1/app", Pull},
		{Identity{Tenant: "nobody"}, "project1/app", None},
		{Identity{}, "project1/app", None},
		{Identity{Tenant: "broken"}, "anything", None},
		{Identity{Tenant: "broken"}, "ok/x", Pull},
		{Identity{Tenant: "broken"}, "upper/x", None},
	}
	for _, tt := range tests {
		if got := r.Allowed(tt.id, tt.repo); got != tt.want {
			t.Errorf("Allowed(%+v, %q) = %v, want %v", tt.id, tt.repo, got, tt.want)
		}
	}
	if len(r.Problems) != 5 {
		t.Errorf("Problems = %q, want the bare wildcard, the unknown action, the bad pattern and the two that never match", r.Problems)
	}
}

func TestGrant(t *testing.T) {
	r := rules()
	p1 := Identity{Subject: "robot:p1", Tenant: "project1"}
	req, err := scope.ParseAll([]string{
		"repository:project1/web:pull,push,delete", // delete not allowed: narrowed
		"repository:project2/app:pull,push",        // nothing allowed: left out
		"repository:project1/app:*",                // * = everything allowed
		"repository:shared/base:push,pull",
		"registry:catalog:*",
		"repository(plugin):project1/web:pull", // classes are not granted
		"custom:project1/web:pull",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Grant(p1, req)
	want := []scope.Scope{
		scope.Repository("project1/web", "pull", "push"),
		scope.Repository("project1/app", "pull", "push", "delete"),
		scope.Repository("shared/base", "pull"),
		scope.Catalog(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Grant = %v\nwant    %v", got, want)
	}
	if got := r.Grant(Identity{Subject: "sa", Tenant: ""}, req); len(got) != 0 {
		t.Errorf("an identity without a tenant was granted %v", got)
	}
}

func TestImmutableTag(t *testing.T) {
	r := rules()
	tests := []struct {
		repo, tag string
		want      bool
		tenant    string
	}{
		{"project1/app", "v1.0", true, "project1"},
		{"project1/app", "release-2026", true, "project1"},
		{"project1/app", "latest", false, ""},
		{"project1/app", "dev-v1", false, ""},
		{"project2/x/y", "latest", true, "project2"},
		{"project3/app", "v1", false, ""},
		// shared/base is covered by project1 (pull) and ops (no patterns)
		{"shared/base", "v2", true, "project1"},
		{"shared/other", "v2", false, ""},
	}
	for _, tt := range tests {
		p, ok := r.ImmutableTag(tt.repo, tt.tag)
		if ok != tt.want || p.Tenant != tt.tenant {
			t.Errorf("ImmutableTag(%q, %q) = %+v, %v; want %v by %q", tt.repo, tt.tag, p, ok, tt.want, tt.tenant)
		}
		if ok && !r.HasImmutableTags(tt.repo) {
			t.Errorf("HasImmutableTags(%q) = false", tt.repo)
		}
	}
	if r.HasImmutableTags("project3/app") {
		t.Error("HasImmutableTags for a repository no tenant covers")
	}
}

func TestTagPattern(t *testing.T) {
	tests := []struct {
		pattern, tag string
		want         bool
	}{
		{"*", "anything", true},
		{"v*", "v1.2.3", true},
		{"v*", "v", true},
		{"v*", "xv1", false},
		{"release-*", "release-", true},
		{"release-*", "release", false},
		{"*-prod", "app-prod", true},
		{"*-prod", "app-prod-1", false},
		{"v*.*", "v1.2", true},
		{"v*.*", "v12", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"latest", "latest", true},
		{"latest", "Latest", false},
		{"**", "x", true},
	}
	for _, tt := range tests {
		p, err := ParseTagPattern(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(tt.tag); got != tt.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.pattern, tt.tag, got, tt.want)
		}
	}
	for _, bad := range []string{"", "v/1", "v?", "[a]", strings.Repeat("a", 129)} {
		if _, err := ParseTagPattern(bad); err == nil {
			t.Errorf("ParseTagPattern(%q) accepted", bad)
		}
	}
}

func TestExplain(t *testing.T) {
	r := rules()
	msg := r.Explain(Identity{Subject: "robot:p1", Tenant: "project1"}, "project2/app", Push)
	for _, want := range []string{"tenant project1 may not push project2/app", "project1/* (pull, push)", "spec.registry.repositories"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Explain = %q, missing %q", msg, want)
		}
	}
	msg = r.Explain(Identity{Subject: "robot:ro", Tenant: "project1", Limit: Pull}, "project1/app", Push)
	if !strings.Contains(msg, "limited to pull") {
		t.Errorf("Explain for a limited robot = %q", msg)
	}
	msg = r.Explain(Identity{Subject: "system:serviceaccount:x:y"}, "project1/app", Pull)
	if !strings.Contains(msg, v1alpha1.TenantLabel) {
		t.Errorf("Explain without a tenant = %q", msg)
	}
}
