// Package hosts normalises host names, decides which names and wildcards
// overlap, keeps the ownership index the policy reads, and claims hosts in
// the API server so that exactly one namespace owns each.
//
// A Name is an exact host (shop.example.com) or a wildcard (*.example.com).
// Wildcards mean different things in different APIs:
//
//	Ingress:     *.example.com matches a.example.com, not a.b.example.com (SingleLabel)
//	Gateway API: *.example.com matches a.example.com and a.b.example.com (AnyDepth)
//
// Neither matches example.com itself.
package hosts

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// Name is a normalised host name or wildcard.
type Name struct {
	// Host is the normalised name; for a wildcard, the part after "*.".
	Host string
	// Match is Exact for a name, else the wildcard's semantics.
	Match v1alpha1.HostMatch
}

// Wildcard reports whether n is a wildcard.
func (n Name) Wildcard() bool { return n.Match != v1alpha1.HostMatchExact }

// String returns the name as written in a manifest: "a.example.com" or
// "*.example.com".
func (n Name) String() string {
	if n.Wildcard() {
		return "*." + n.Host
	}
	return n.Host
}

// idnaProfile converts internationalised names to their ASCII (punycode)
// form with the lookup rules browsers and resolvers use.
var idnaProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false))

// Parse normalises a host as written in an Ingress (wildcard is
// SingleLabel) or a Gateway API route (wildcard is AnyDepth): lower case,
// one trailing dot removed, internationalised labels in punycode. It refuses
// empty names, IP addresses, ports, empty or over-long labels, characters
// outside letters, digits and '-', and a bare "*".
func Parse(raw string, wildcard v1alpha1.HostMatch) (Name, error) {
	if raw == "" {
		return Name{}, fmt.Errorf("empty host name")
	}
	if len(raw) > 1024 {
		return Name{}, fmt.Errorf("host name of %d characters is too long (at most 253)", len(raw))
	}
	if !utf8.ValidString(raw) {
		return Name{}, fmt.Errorf("host %q is not valid UTF-8", raw)
	}
	s := strings.TrimSuffix(raw, ".")
	match := v1alpha1.HostMatchExact
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		s, match = rest, wildcard
	} else if s == "*" {
		return Name{}, fmt.Errorf("host %q matches every host name; name the hosts you serve", raw)
	}
	if strings.ContainsAny(s, ":[]/") {
		return Name{}, fmt.Errorf("host %q: a host name has no port, scheme or path", raw)
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return Name{}, fmt.Errorf("host %q is an IP address; use a DNS name", raw)
	}
	ascii, err := idnaProfile.ToASCII(s)
	if err != nil {
		return Name{}, fmt.Errorf("host %q is not a valid host name: %v", raw, err)
	}
	ascii = strings.ToLower(ascii)
	if err := checkLabels(ascii); err != nil {
		return Name{}, fmt.Errorf("host %q: %v", raw, err)
	}
	if match != v1alpha1.HostMatchExact && len(ascii)+2 > 253 || len(ascii) > 253 {
		return Name{}, fmt.Errorf("host %q is longer than 253 characters", raw)
	}
	return Name{Host: ascii, Match: match}, nil
}

// MustParse is Parse for constants in tests.
func MustParse(raw string, wildcard v1alpha1.HostMatch) Name {
	n, err := Parse(raw, wildcard)
	if err != nil {
		panic(err)
	}
	return n
}

func checkLabels(s string) error {
	if s == "" {
		return fmt.Errorf("empty host name")
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return fmt.Errorf("empty label (two dots in a row, or a leading dot)")
		case len(l) > 63:
			return fmt.Errorf("label %q is longer than 63 characters", l)
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Errorf("label %q starts or ends with '-'", l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				if c == '*' {
					return fmt.Errorf("a wildcard must be the whole first label (*.example.com)")
				}
				return fmt.Errorf("label %q has %q; only letters, digits and '-' are allowed", l, c)
			}
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return fmt.Errorf("the last label %q is numeric, which no top-level domain is", labels[len(labels)-1])
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// under reports whether host is strictly below suffix (x.suffix, at any depth).
func under(host, suffix string) bool {
	return len(host) > len(suffix)+1 && strings.HasSuffix(host, suffix) && host[len(host)-len(suffix)-1] == '.'
}

// childOf reports whether host is exactly one label below suffix.
func childOf(host, suffix string) bool {
	return under(host, suffix) && !strings.Contains(host[:len(host)-len(suffix)-1], ".")
}

// Covers reports whether n matches the exact host name h.
func (n Name) Covers(h string) bool {
	switch n.Match {
	case v1alpha1.HostMatchSingleLabel:
		return childOf(h, n.Host)
	case v1alpha1.HostMatchAnyDepth:
		return under(h, n.Host)
	default:
		return h == n.Host
	}
}

// Overlaps reports whether some host name is matched by both a and b.
func Overlaps(a, b Name) bool {
	if !a.Wildcard() {
		return b.Covers(a.Host)
	}
	if !b.Wildcard() {
		return a.Covers(b.Host)
	}
	// Two wildcards. SingleLabel *.S matches names one label below S.
	single := func(n Name) bool { return n.Match == v1alpha1.HostMatchSingleLabel }
	switch {
	case single(a) && single(b):
		return a.Host == b.Host
	case single(a):
		return a.Host == b.Host || under(a.Host, b.Host)
	case single(b):
		return a.Host == b.Host || under(b.Host, a.Host)
	default:
		return a.Host == b.Host || under(a.Host, b.Host) || under(b.Host, a.Host)
	}
}
