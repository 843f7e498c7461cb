package policy_test

import (
	"strings"
	"testing"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// TestClaimRefusedReadsLikeTheIndex checks that a conflict found when the
// claim is made is refused with the text the ownership index gives for
// the same owner: real field path, owner (redacted or not), release hint.
func TestClaimRefusedReadsLikeTheIndex(t *testing.T) {
	// The contested host is named only in a TLS entry, so a wrong field
	// path cannot pass for the right one.
	tlsOnly := "tls: [{hosts: [x.shared.example.com, a.shared.example.com], secretName: s}]"
	cases := []struct {
		name       string
		redact     bool
		owner      string // the manifest that owns the host first
		contender  string
		conflict   hosts.ConflictError
		wantField  string
		wantIn     []string
		wantAbsent []string
	}{
		{
			name:      "another tenant's namespace",
			owner:     ingress("p1", "shop", "a.shared.example.com", "/"),
			contender: ingress("p2", "b", "b.shared.example.com", "/", tlsOnly),
			conflict: hosts.ConflictError{Name: hosts.MustParse("a.shared.example.com", v1alpha1.HostMatchSingleLabel),
				Owner: hosts.Owner{Name: hosts.MustParse("a.shared.example.com", v1alpha1.HostMatchSingleLabel), Namespace: "p1", Tenant: "project1"}},
			wantField: "spec.tls[0].hosts[1]",
			wantIn:    []string{`namespace "p1" of tenant "project1"`, "released 2m0s later", "HostClaim"},
		},
		{
			name:      "redacted",
			redact:    true,
			owner:     ingress("p1", "shop", "a.shared.example.com", "/"),
			contender: ingress("p2", "b", "b.shared.example.com", "/", tlsOnly),
			conflict: hosts.ConflictError{Name: hosts.MustParse("a.shared.example.com", v1alpha1.HostMatchSingleLabel),
				Owner: hosts.Owner{Name: hosts.MustParse("a.shared.example.com", v1alpha1.HostMatchSingleLabel), Namespace: "p1", Tenant: "project1"}},
			wantField:  "spec.tls[0].hosts[1]",
			wantIn:     []string{`belongs to tenant "project1"`, "released 2m0s later"},
			wantAbsent: []string{`"p1"`},
		},
		{
			name:      "redacted, owner without tenant",
			redact:    true,
			owner:     ingress("default", "legacy", "shop.example.com", "/"),
			contender: ingress("p2", "shop", "shop.example.com", "/"),
			conflict: hosts.ConflictError{Name: hosts.MustParse("shop.example.com", v1alpha1.HostMatchSingleLabel),
				Owner: hosts.Owner{Name: hosts.MustParse("shop.example.com", v1alpha1.HostMatchSingleLabel), Namespace: "default"}},
			wantField:  "spec.rules[0].host",
			wantIn:     []string{"another namespace"},
			wantAbsent: []string{`"default"`},
		},
		{
			name:      "a wildcard overlaps the host",
			owner:     ingress("p1", "w", "*.shared.example.com", "/"),
			contender: ingress("p2", "x", "x.shared.example.com", "/"),
			conflict: hosts.ConflictError{Name: hosts.MustParse("x.shared.example.com", v1alpha1.HostMatchSingleLabel),
				Owner: hosts.Owner{Name: hosts.MustParse("*.shared.example.com", v1alpha1.HostMatchSingleLabel), Namespace: "p1", Tenant: "project1"}},
			wantField: "spec.rules[0].host",
			wantIn:    []string{`overlaps "*.shared.example.com"`},
		},
		{
			name:      "another object in Object mode",
			owner:     ingress("s1", "a", "a.strict.example.com", "/"),
			contender: ingress("s1", "b", "a.strict.example.com", "/other"),
			conflict: hosts.ConflictError{Name: hosts.MustParse("a.strict.example.com", v1alpha1.HostMatchSingleLabel),
				Owner: hosts.Owner{Name: hosts.MustParse("a.strict.example.com", v1alpha1.HostMatchSingleLabel), Namespace: "s1", Tenant: "strict",
					Object: &v1alpha1.ObjectReference{Group: "networking.k8s.io", Kind: "Ingress", Name: "a"}}},
			wantField: "spec.rules[0].host",
			wantIn:    []string{`belongs to Ingress "a" in this namespace`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.RedactOwnerNamespace = tc.redact
			engine := policy.NewEngine(cfg)

			// The index path: the owner is known when the contender comes.
			known := fixture(t)
			known.Apply(engine, request(t, policy.Create, tc.owner, ""))
			byIndex := engine.Evaluate(request(t, policy.Create, tc.contender, ""), known)
			var fromIndex *policy.Violation
			for i, v := range byIndex.Violations {
				if v.Rule == policy.RuleHostOwnership {
					fromIndex = &byIndex.Violations[i]
					break
				}
			}
			if fromIndex == nil {
				t.Fatalf("index path did not refuse: %v", byIndex.Violations)
			}

			// The claim path: the owner's claim lands between the decision
			// and the contender's claim.
			racing := engine.Evaluate(request(t, policy.Create, tc.contender, ""), fixture(t))
			if !racing.Allowed() || len(racing.Claims) == 0 {
				t.Fatalf("without the owner the contender claims: %v %v", racing.Violations, racing.Claims)
			}
			refused := engine.ClaimRefused(racing, &tc.conflict)
			if refused.Allowed() || len(refused.Violations) != 1 || len(refused.Claims) != 0 {
				t.Fatalf("ClaimRefused: %+v", refused)
			}
			got := refused.Violations[0]
			if got != *fromIndex {
				t.Errorf("claim path and index path differ:\nclaim: %s\nindex: %s", got, *fromIndex)
			}
			if got.Field != tc.wantField {
				t.Errorf("field %q, want %q", got.Field, tc.wantField)
			}
			msg := refused.Message("Ingress", "p2", "b")
			for _, s := range tc.wantIn {
				if !strings.Contains(msg, s) {
					t.Errorf("message lacks %q:\n%s", s, msg)
				}
			}
			for _, s := range tc.wantAbsent {
				if strings.Contains(msg, s) {
					t.Errorf("message shows %s:\n%s", s, msg)
				}
			}
		})
	}
}

func TestClaimRefusedConcurrent(t *testing.T) {
	engine := policy.NewEngine(config.Default())
	d := engine.Evaluate(request(t, policy.Create, ingress("p2", "shop", "shop.example.com", "/"), ""), fixture(t))
	name := hosts.MustParse("shop.example.com", v1alpha1.HostMatchSingleLabel)
	refused := engine.ClaimRefused(d, &hosts.ConflictError{Name: name, Concurrent: true,
		Owner: hosts.Owner{Name: name, Namespace: "p1", Tenant: "project1", Pending: true}})
	v := refused.Violations[0]
	if !strings.Contains(v.Message, "at the same moment") || !strings.HasPrefix(v.Instead, "retry") || !strings.Contains(v.Instead, "released") {
		t.Fatalf("a concurrent claim should say so and suggest a retry: %s", v)
	}
	if v.Field != "spec.rules[0].host" {
		t.Errorf("field %q", v.Field)
	}
}
