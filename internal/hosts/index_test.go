package hosts_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
)

// TestIndexUnclaimedUsesOwnTheirNames checks that a name in use is owned
// with or without a claim: the oldest object using it owns it, a claim
// overrides the uses, and every name of the universe that an object uses
// is found by Overlapping as exactly as claims are.
func TestIndexUnclaimedUsesOwnTheirNames(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	use := func(ns, obj, host string, m v1alpha1.HostMatch, age int) (hosts.ObjectKey, []hosts.Use) {
		key := hosts.ObjectKey{Namespace: ns, Kind: "Ingress", Group: "networking.k8s.io", Name: obj}
		return key, []hosts.Use{{Name: hosts.MustParse(host, m), Namespace: ns, Paths: []string{"/"},
			Object:  v1alpha1.ObjectReference{Group: "networking.k8s.io", Kind: "Ingress", Name: obj},
			Created: t0.Add(time.Duration(age) * time.Second)}}
	}
	ix := hosts.NewIndex()
	ix.SetUses(use("project1", "new", "grafana.example.com", exact, 10))
	ix.SetUses(use("kube-system", "grafana", "grafana.example.com", exact, 1))
	ix.SetUses(use("project2", "wild", "*.example.com", anyD, 5))

	owners := func(host string, m v1alpha1.HostMatch) string {
		var out []string
		for _, o := range ix.Overlapping(hosts.MustParse(host, m), 0, nil) {
			out = append(out, o.Name.String()+"@"+o.Namespace+map[bool]string{true: "(unclaimed)"}[o.Unclaimed])
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	if got, want := owners("grafana.example.com", exact), "*.example.com@project2(unclaimed) grafana.example.com@kube-system(unclaimed)"; got != want {
		t.Fatalf("owners %q, want %q (the oldest user owns a name)", got, want)
	}
	// A claim is the record, and it wins over the uses.
	ix.SetOwner(hosts.Owner{Name: hosts.MustParse("grafana.example.com", exact), Namespace: "project1"})
	if got, want := owners("grafana.example.com", exact), "*.example.com@project2(unclaimed) grafana.example.com@project1"; got != want {
		t.Fatalf("owners %q, want %q", got, want)
	}
	// Names below a wildcard are found through their uses too.
	if got, want := owners("*.example.com", anyD), "*.example.com@project2(unclaimed) grafana.example.com@project1"; got != want {
		t.Fatalf("owners below the wildcard %q, want %q", got, want)
	}
	if !ix.HasObject(hosts.ObjectKey{Namespace: "project1", Kind: "Ingress", Group: "networking.k8s.io", Name: "new"}) ||
		ix.HasObject(hosts.ObjectKey{Namespace: "project1", Kind: "Ingress", Group: "networking.k8s.io", Name: "other"}) {
		t.Fatal("HasObject does not report the objects the index holds")
	}
}

// TestIndexOverlappingFindsEveryUse is TestIndexOverlappingAgreesWithOverlaps
// for names that are used but not claimed.
func TestIndexOverlappingFindsEveryUse(t *testing.T) {
	u := universe()
	ix := hosts.NewIndex()
	used := map[hosts.Name]bool{}
	for i, n := range u {
		if i%3 == 1 {
			key := hosts.ObjectKey{Namespace: "ns", Kind: "Ingress", Name: "o" + n.String() + string(n.Match)}
			ix.SetUses(key, []hosts.Use{{Name: n, Namespace: "ns", Paths: []string{"/"}, Object: v1alpha1.ObjectReference{Kind: "Ingress", Name: key.Name}}})
			used[n] = true
		}
	}
	for _, a := range u {
		var want, got []string
		for b := range used {
			if hosts.Overlaps(a, b) {
				want = append(want, b.String()+"/"+string(b.Match))
			}
		}
		for _, o := range ix.Overlapping(a, 0, nil) {
			if !o.Unclaimed {
				t.Fatalf("owner %v of an unclaimed name is not marked Unclaimed", o)
			}
			got = append(got, o.Name.String()+"/"+string(o.Name.Match))
		}
		sort.Strings(want)
		sort.Strings(got)
		if strings.Join(want, " ") != strings.Join(got, " ") {
			t.Fatalf("Overlapping(%s %s) = %v, want %v", a, a.Match, got, want)
		}
	}
}

func TestAllowlistPatternsStandAlone(t *testing.T) {
	// Wrapped in ^(?:...)$ this would be ^(?:a)|(.*)$, which matches
	// every host.
	if _, err := hosts.CompileAllowlist(nil, []string{`a)|(.*`}); err == nil {
		t.Fatal("a pattern that is not a regular expression on its own was accepted")
	} else if strings.Contains(err.Error(), "^(?:") {
		t.Fatalf("the error shows the guard's anchoring: %v", err)
	}
}
