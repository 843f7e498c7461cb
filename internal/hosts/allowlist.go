package hosts

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// Allowlist is the set of host names a tenant may use.
//
//   - An exact entry (shop.example.com) admits that name.
//   - A wildcard entry (*.example.com) admits every name below example.com,
//     at any depth, and every wildcard on example.com or below it. It does
//     not admit example.com itself.
//   - A pattern is a regular expression (RE2) that must match the whole
//     name. It admits exact names only: a regex never grants a wildcard.
type Allowlist struct {
	exact     map[string]bool
	suffixes  []string
	patterns  []*regexp.Regexp
	hostsText []string // entries as written, for messages
}

// CompileAllowlist parses the entries of an allowlist.
func CompileAllowlist(entries, patterns []string) (Allowlist, error) {
	a := Allowlist{exact: map[string]bool{}}
	for _, e := range entries {
		n, err := Parse(e, v1alpha1.HostMatchAnyDepth)
		if err != nil {
			return Allowlist{}, fmt.Errorf("allowed host %q: %w", e, err)
		}
		if n.Wildcard() {
			a.suffixes = append(a.suffixes, n.Host)
		} else {
			a.exact[n.Host] = true
		}
		a.hostsText = append(a.hostsText, n.String())
	}
	for _, p := range patterns {
		// On its own first: a pattern such as `a)|(.*` is not a regular
		// expression, but wrapped in the anchors it would be one that
		// matches every host. The error shows the pattern as written.
		if _, err := regexp.Compile(p); err != nil {
			return Allowlist{}, fmt.Errorf("allowed host pattern %q: %w", p, err)
		}
		re, err := regexp.Compile(`^(?:` + p + `)$`)
		if err != nil {
			return Allowlist{}, fmt.Errorf("allowed host pattern %q: %w", p, err)
		}
		a.patterns = append(a.patterns, re)
		a.hostsText = append(a.hostsText, "/"+p+"/")
	}
	return a, nil
}

// Empty reports whether the allowlist admits nothing.
func (a Allowlist) Empty() bool {
	return len(a.exact) == 0 && len(a.suffixes) == 0 && len(a.patterns) == 0
}

// Allows reports whether n may be used.
func (a Allowlist) Allows(n Name) bool {
	if n.Wildcard() {
		for _, s := range a.suffixes {
			if n.Host == s || under(n.Host, s) {
				return true
			}
		}
		return false
	}
	if a.exact[n.Host] {
		return true
	}
	for _, s := range a.suffixes {
		if under(n.Host, s) {
			return true
		}
	}
	for _, re := range a.patterns {
		if re.MatchString(n.Host) {
			return true
		}
	}
	return false
}

// String lists the entries, for messages.
func (a Allowlist) String() string {
	if len(a.hostsText) == 0 {
		return "(none)"
	}
	return strings.Join(a.hostsText, ", ")
}
