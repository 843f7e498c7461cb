package scope

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Scope
		wantErr string
	}{
		{in: "repository:project1/app:pull,push", want: Scope{Type: "repository", Name: "project1/app", Actions: []string{"pull", "push"}}},
		{in: "repository:project1/app:pull,pull", want: Scope{Type: "repository", Name: "project1/app", Actions: []string{"pull"}}},
		{in: "repository:a:*", want: Scope{Type: "repository", Name: "a", Actions: []string{"*"}}},
		{in: "registry:catalog:*", want: Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}}},
		{in: "repository(plugin):sample/app:pull", want: Scope{Type: "repository", Class: "plugin", Name: "sample/app", Actions: []string{"pull"}}},
		// a non-repository name may hold colons (host:port); the actions start after the last one
		{in: "custom:localhost:5000/x:get", want: Scope{Type: "custom", Name: "localhost:5000/x", Actions: []string{"get"}}},
		{in: "repository:Project1/app:pull", wantErr: "not allowed"},
		{in: "repository:project1//app:pull", wantErr: "empty path component"},
		{in: "repository:project1/../project2:pull", wantErr: "not allowed"},
		{in: "repository:project1%2Fapp:pull", wantErr: "not allowed"},
		{in: "repository:localhost:5000/x:pull", wantErr: "not allowed"},
		{in: "repository:project1/app:", wantErr: "names no action"},
		{in: "repository:project1/app:PULL", wantErr: "lower-case word"},
		{in: "repository:project1/app:pull,", wantErr: "lower-case word"},
		{in: "repository::pull", wantErr: "no resource name"},
		{in: "repository:project1/app", wantErr: "type:name:actions"},
		{in: "repository", wantErr: "type:name:actions"},
		{in: ":a:pull", wantErr: "resource type"},
		{in: "Repo:a:pull", wantErr: "resource type"},
		{in: "repository(:a:pull", wantErr: "class"},
		{in: "repository:" + strings.Repeat("a", 1100) + ":pull", wantErr: "longer than"},
		{in: "repository:a:" + strings.Repeat("a,", 9) + "a", wantErr: "more than"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if again, err := Parse(got.String()); err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("Parse(%q).String() = %q does not parse back: %+v, %v", tt.in, got.String(), again, err)
		}
	}
}

func TestParseAll(t *testing.T) {
	got, err := ParseAll([]string{"repository:a:pull repository:b:push", "repository:a:push", "registry:catalog:*"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Scope{
		{Type: "repository", Name: "a", Actions: []string{"pull", "push"}},
		{Type: "repository", Name: "b", Actions: []string{"push"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseAll = %+v, want %+v", got, want)
	}
	if s := Format(got); s != "repository:a:pull,push repository:b:push registry:catalog:*" {
		t.Errorf("Format = %q", s)
	}
	if _, err := ParseAll([]string{strings.Repeat("repository:a:pull ", MaxScopes+1)}); err == nil {
		t.Error("ParseAll accepted more than MaxScopes scopes")
	}
	if _, err := ParseAll([]string{"repository:a:pull repository:B:pull"}); err == nil {
		t.Error("ParseAll accepted an invalid scope among valid ones")
	}
}

func TestHas(t *testing.T) {
	if !Catalog().Has("anything") || Repository("a", Pull).Has(Push) || !Repository("a", Pull, Push).Has(Push) {
		t.Error("Has is wrong")
	}
}

func TestValidateRepository(t *testing.T) {
	valid := []string{"a", "project1/app", "a.b/c_d/e__f/g-h/i---j", "0/1", strings.Repeat("a", 255)}
	invalid := []string{"", "A", "project1/App", "/a", "a/", "a//b", ".", "..", "a/../b", "a/./b", "a..b", "a._b", "a___b",
		"-a", "a-", "_a", "a%2Fb", "a%2fb", "a b", "a:b", "a@b", "a\x00", "ä", strings.Repeat("a", 256)}
	for _, n := range valid {
		if err := ValidateRepository(n); err != nil {
			t.Errorf("ValidateRepository(%q): %v", n, err)
		}
	}
	for _, n := range invalid {
		if err := ValidateRepository(n); err == nil {
			t.Errorf("ValidateRepository(%q) = nil, want an error", n)
		}
	}
}

// specName is the distribution-spec name grammar as a regular expression,
// the oracle for the hand-written validator.
var specName = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)

func FuzzValidateRepository(f *testing.F) {
	for _, s := range []string{"project1/app", "a__b", "a---b/c.d", "A", "a//b", "a/../b", "a%2Fb", "a_", "a.-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateRepository(name)
		want := len(name) <= MaxNameLength && specName.MatchString(name)
		if (err == nil) != want {
			t.Fatalf("ValidateRepository(%q) = %v, spec grammar says valid=%v", name, err, want)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"repository:project1/app:pull,push", "registry:catalog:*", "repository(plugin):a:pull",
		"custom:host:5000/x:get", "repository:a:", ":::", "repository:a:pull,,push"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		if s.Type == "" || s.Name == "" || len(s.Actions) == 0 {
			t.Fatalf("Parse(%q) = %+v without error", in, s)
		}
		if s.Type == TypeRepository && ValidateRepository(s.Name) != nil {
			t.Fatalf("Parse(%q) accepted an invalid repository name %q", in, s.Name)
		}
		again, err := Parse(s.String())
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("Parse(%q) = %+v; its String %q parses to %+v, %v", in, s, s.String(), again, err)
		}
		if all, err := ParseAll([]string{in}); err == nil && len(all) > 1 {
			t.Fatalf("ParseAll(%q) split a scope that Parse accepted as one: %+v", in, all)
		}
	})
}
