package tenants

import (
	"strings"
	"testing"
)

func TestParseFile(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
		wantErr    string
	}{
		{name: "one", text: `
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: project1}
spec:
  registry:
    repositories:
    - pattern: project1/*
      actions: [pull, push]
    immutableTags: ["v*"]
`, want: []string{"project1"}},
		{name: "documents and lists", text: `
apiVersion: tenantguard.dev/v1alpha1
kind: Tenant
metadata: {name: a}
---
apiVersion: v1
kind: List
items:
- apiVersion: tenantguard.dev/v1alpha1
  kind: Tenant
  metadata: {name: b}
- apiVersion: tenantguard.dev/v1alpha1
  kind: TenantList
  items:
  - apiVersion: tenantguard.dev/v1alpha1
    kind: Tenant
    metadata: {name: c}
---
`, want: []string{"a", "b", "c"}},
		{name: "json", text: `{"apiVersion":"tenantguard.dev/v1alpha1","kind":"Tenant","metadata":{"name":"j"}}`, want: []string{"j"}},
		{name: "empty", text: "", want: nil},
		{name: "wrong kind", text: "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", wantErr: `kind "Namespace"`},
		{name: "wrong version", text: "apiVersion: tenantguard.dev/v2\nkind: Tenant\nmetadata: {name: x}\n", wantErr: "apiVersion"},
		{name: "typo in a field", text: "apiVersion: tenantguard.dev/v1alpha1\nkind: Tenant\nmetadata: {name: x}\nspec:\n  registry:\n    repository: []\n", wantErr: "unknown field"},
		{name: "no name", text: "apiVersion: tenantguard.dev/v1alpha1\nkind: Tenant\n", wantErr: "metadata.name"},
		{name: "not yaml", text: "kind: [", wantErr: "document 1"},
	}
	for _, tt := range tests {
		ts, err := ParseFile([]byte(tt.text))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		var names []string
		for _, t := range ts {
			names = append(names, t.Name)
		}
		if strings.Join(names, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: tenants %v, want %v", tt.name, names, tt.want)
		}
	}
}
