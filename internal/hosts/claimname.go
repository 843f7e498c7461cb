package hosts

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// Claim object names are "<tag>.<host>": host.shop.example.com,
// wildcard.example.com (Ingress *.example.com), wildcard-any.example.com
// (Gateway API *.example.com). The tag is always the first label, so the
// mapping is one-to-one. A name that would exceed the 253 characters of an
// object name becomes "<tag>.sha256-<64 hex digits>": that label is longer
// than the 63 characters a host label may have, so it can never collide
// with a readable name.
var claimTags = map[v1alpha1.HostMatch]string{
	v1alpha1.HostMatchExact:       "host",
	v1alpha1.HostMatchSingleLabel: "wildcard",
	v1alpha1.HostMatchAnyDepth:    "wildcard-any",
}

// ClaimName is the HostClaim object name for n.
func ClaimName(n Name) string {
	tag := claimTags[n.Match]
	if len(tag)+1+len(n.Host) <= 253 {
		return tag + "." + n.Host
	}
	sum := sha256.Sum256([]byte(n.Host))
	return tag + ".sha256-" + hex.EncodeToString(sum[:])
}

// SuffixLabelPrefix prefixes the labels that index a claim under each of its
// parent domains, so that the claims below a wildcard can be listed with a
// label selector: a claim of a.shop.example.com carries
// under.tenantguard.dev/2 = hash("example.com") and
// under.tenantguard.dev/3 = hash("shop.example.com"); *.shop.example.com
// carries the same two. The hash only narrows the list; every result is
// checked with Overlaps.
const SuffixLabelPrefix = "under.tenantguard.dev/"

// ClaimLabels returns the labels of n's claim: the suffix labels.
func ClaimLabels(n Name) map[string]string {
	labels := map[string]string{}
	for _, s := range parents(n) {
		labels[suffixLabelKey(s)] = suffixLabelValue(s)
	}
	return labels
}

// AboveClaimNames returns the names of the wildcard claims on n's parent
// domains (for a wildcard, on its own domain too) that would overlap n:
// the claims above n. Each is one object name, so the claimer reads them
// with GETs, whose cost does not grow with the number of claims.
func AboveClaimNames(n Name) []string {
	var out []string
	for _, p := range parents(n) {
		for _, m := range []v1alpha1.HostMatch{v1alpha1.HostMatchSingleLabel, v1alpha1.HostMatchAnyDepth} {
			w := Name{Host: p, Match: m}
			if w != n && Overlaps(n, w) {
				out = append(out, ClaimName(w))
			}
		}
	}
	return out
}

// BelowSelector returns the label key and value that select every claim
// strictly below suffix (exact names under it, and wildcards of it or
// below it).
func BelowSelector(suffix string) (key, value string) {
	return suffixLabelKey(suffix), suffixLabelValue(suffix)
}

// parents returns the domains strictly above the names n matches, nearest
// first: for a.shop.example.com and for *.shop.example.com both,
// shop.example.com, example.com, com.
func parents(n Name) []string {
	s := n.Host
	var out []string
	if n.Wildcard() {
		out = append(out, s)
	}
	for {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return out
		}
		s = s[i+1:]
		out = append(out, s)
	}
}

func suffixLabelKey(suffix string) string {
	return SuffixLabelPrefix + strconv.Itoa(strings.Count(suffix, ".")+1)
}

func suffixLabelValue(suffix string) string {
	sum := sha256.Sum256([]byte(suffix))
	return hex.EncodeToString(sum[:16])
}
