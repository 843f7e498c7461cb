// Package scope parses and formats the access scopes of the Docker/OCI token
// flow, and validates the repository names they carry.
//
// The grammar, from the Docker token specification:
//
//	scope          := resourcescope [ ' ' resourcescope ]*
//	resourcescope  := resourcetype ":" resourcename ":" action [ ',' action ]*
//	resourcetype   := typevalue [ '(' typevalue ')' ]   (a type and an optional class)
//	typevalue      := [a-z0-9]+
//	resourcename   := anything without a space; may contain ':' (host:port)
//	action         := [a-z]+ | '*'
//
// So the type ends at the first ':' and the actions start after the last one.
// Repository names are further checked against the distribution-spec name
// grammar (see ValidateRepository): lower case, no empty, "." or ".."
// components, no percent-encoding, at most 255 characters.
package scope

import (
	"fmt"
	"slices"
	"strings"
)

// Resource types the gateway understands.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
	// CatalogName is the resource name of the repository list, asked for as
	// registry:catalog:*.
	CatalogName = "catalog"
)

// Actions on repositories, and the wildcard asked for on the catalog.
const (
	Pull   = "pull"
	Push   = "push"
	Delete = "delete"
	All    = "*"
)

// Limits keep a hostile request from making the parser do unbounded work.
const (
	// MaxScopeLength is the longest single resource scope accepted.
	MaxScopeLength = 1024
	// MaxScopes is the most resource scopes one token request may ask for.
	MaxScopes  = 64
	maxActions = 8
)

// Scope is one resource scope: a typed, named resource and the actions asked
// for or granted on it.
type Scope struct {
	Type    string
	Class   string // rarely used, e.g. repository(plugin); empty otherwise
	Name    string
	Actions []string // deduplicated, in the order first written
}

// Repository returns the scope for actions on a repository.
func Repository(name string, actions ...string) Scope {
	return Scope{Type: TypeRepository, Name: name, Actions: dedupe(actions)}
}

// Catalog returns the scope of the repository list, registry:catalog:*.
func Catalog() Scope {
	return Scope{Type: TypeRegistry, Name: CatalogName, Actions: []string{All}}
}

// String formats the scope as it is written in a token request or challenge.
func (s Scope) String() string {
	t := s.Type
	if s.Class != "" {
		t += "(" + s.Class + ")"
	}
	return t + ":" + s.Name + ":" + strings.Join(s.Actions, ",")
}

// Has reports whether the scope includes the action, literally or through *.
func (s Scope) Has(action string) bool {
	return slices.Contains(s.Actions, action) || slices.Contains(s.Actions, All)
}

// Parse parses one resource scope. A repository scope's name must be a valid
// repository name.
func Parse(s string) (Scope, error) {
	if len(s) > MaxScopeLength {
		return Scope{}, fmt.Errorf("scope is longer than %d characters", MaxScopeLength)
	}
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return Scope{}, fmt.Errorf("scope %q is not type:name:actions (e.g. repository:project1/app:pull,push)", s)
	}
	name, actionList := rest[:i], rest[i+1:]
	var sc Scope
	var err error
	if sc.Type, sc.Class, err = parseType(typ); err != nil {
		return Scope{}, fmt.Errorf("scope %q: %w", s, err)
	}
	if name == "" {
		return Scope{}, fmt.Errorf("scope %q has no resource name", s)
	}
	if strings.ContainsAny(name, " \t\r\n") {
		return Scope{}, fmt.Errorf("scope %q: resource name contains white space", s)
	}
	if sc.Type == TypeRepository {
		if err := ValidateRepository(name); err != nil {
			return Scope{}, fmt.Errorf("scope %q: %w", s, err)
		}
	}
	sc.Name = name
	if actionList == "" {
		return Scope{}, fmt.Errorf("scope %q names no action", s)
	}
	actions := strings.Split(actionList, ",")
	if len(actions) > maxActions {
		return Scope{}, fmt.Errorf("scope %q names more than %d actions", s, maxActions)
	}
	for _, a := range actions {
		if !validAction(a) {
			return Scope{}, fmt.Errorf("scope %q: action %q is not a lower-case word or *", s, a)
		}
	}
	sc.Actions = dedupe(actions)
	return sc, nil
}

// ParseAll parses the scope parameters of a token request. Each parameter may
// hold several scopes separated by spaces (as in a WWW-Authenticate
// challenge, and as the OAuth2 form sends them). Scopes on the same resource
// are merged.
func ParseAll(params []string) ([]Scope, error) {
	var out []Scope
	n := 0
	for _, p := range params {
		for _, f := range strings.Fields(p) {
			if n++; n > MaxScopes {
				return nil, fmt.Errorf("more than %d scopes in one request", MaxScopes)
			}
			s, err := Parse(f)
			if err != nil {
				return nil, err
			}
			out = Merge(out, s)
		}
	}
	return out, nil
}

// Merge adds s to list, joining its actions with an existing scope on the
// same resource.
func Merge(list []Scope, s Scope) []Scope {
	for i := range list {
		if list[i].Type == s.Type && list[i].Class == s.Class && list[i].Name == s.Name {
			list[i].Actions = dedupe(append(slices.Clone(list[i].Actions), s.Actions...))
			return list
		}
	}
	return append(list, Scope{Type: s.Type, Class: s.Class, Name: s.Name, Actions: dedupe(s.Actions)})
}

// Format joins scopes with spaces, as in a challenge's scope parameter.
func Format(list []Scope) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = s.String()
	}
	return strings.Join(parts, " ")
}

func parseType(t string) (typ, class string, err error) {
	typ, class, hasClass := strings.Cut(t, "(")
	if hasClass {
		var ok bool
		if class, ok = strings.CutSuffix(class, ")"); !ok || !lowerAlnum(class) {
			return "", "", fmt.Errorf("resource type %q: class must be (lower-case letters and digits)", t)
		}
	}
	if !lowerAlnum(typ) {
		return "", "", fmt.Errorf("resource type %q is not lower-case letters and digits", t)
	}
	return typ, class, nil
}

func lowerAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerAlnum(s[i]) {
			return false
		}
	}
	return true
}

func validAction(a string) bool {
	if a == All {
		return true
	}
	if a == "" || len(a) > 32 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] < 'a' || a[i] > 'z' {
			return false
		}
	}
	return true
}

func dedupe(actions []string) []string {
	out := make([]string, 0, len(actions))
	for _, a := range actions {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func isLowerAlnum(c byte) bool { return ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') }
