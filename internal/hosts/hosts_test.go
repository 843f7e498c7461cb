package hosts_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
)

const (
	exact  = v1alpha1.HostMatchExact
	single = v1alpha1.HostMatchSingleLabel
	anyD   = v1alpha1.HostMatchAnyDepth
)

func TestParse(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		in      string
		want    string
		match   v1alpha1.HostMatch
		wantErr string
	}{
		{in: "Shop.Example.COM", want: "shop.example.com", match: exact},
		{in: "shop.example.com.", want: "shop.example.com", match: exact},
		{in: "*.example.com", want: "*.example.com", match: single},
		{in: "bücher.example", want: "xn--bcher-kva.example", match: exact},
		{in: "*.Bücher.example", want: "*.xn--bcher-kva.example", match: single},
		{in: long + ".example.com", want: long + ".example.com", match: exact},
		{in: "", wantErr: "empty"},
		{in: "*", wantErr: "every host"},
		{in: "10.0.0.1", wantErr: "IP address"},
		{in: "::1", wantErr: "no port"},
		{in: "[::1]", wantErr: "no port"},
		{in: "shop.example.com:443", wantErr: "no port"},
		{in: "https://shop.example.com", wantErr: "no port"},
		{in: "a..example.com", wantErr: ""},
		{in: ".example.com", wantErr: ""},
		{in: "a" + long + ".example.com", wantErr: "longer than 63"},
		{in: "-a.example.com", wantErr: "invalid label"},
		{in: "a_b.example.com", wantErr: ""},
		{in: "a.*.example.com", wantErr: ""},
		{in: "*a.example.com", wantErr: ""},
		{in: "1.2.3", wantErr: "numeric"},
		{in: strings.Repeat(long+".", 4) + "com", wantErr: "longer than 253"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			n, err := hosts.Parse(tc.in, single)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", tc.in, n)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q lacks %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if n.String() != tc.want || n.Match != tc.match {
				t.Fatalf("Parse(%q) = %s (%s), want %s (%s)", tc.in, n, n.Match, tc.want, tc.match)
			}
		})
	}
}

func TestOverlaps(t *testing.T) {
	n := func(s string, m v1alpha1.HostMatch) hosts.Name { return hosts.MustParse(s, m) }
	tests := []struct {
		a, b hosts.Name
		want bool
	}{
		{n("a.example.com", exact), n("a.example.com", exact), true},
		{n("a.example.com", exact), n("b.example.com", exact), false},
		{n("*.example.com", single), n("a.example.com", exact), true},
		{n("*.example.com", single), n("x.a.example.com", exact), false},
		{n("*.example.com", single), n("example.com", exact), false},
		{n("*.example.com", anyD), n("x.a.example.com", exact), true},
		{n("*.example.com", anyD), n("example.com", exact), false},
		{n("*.example.com", anyD), n("badexample.com", exact), false},
		{n("*.example.com", single), n("*.example.com", anyD), true},
		{n("*.example.com", single), n("*.a.example.com", single), false},
		{n("*.example.com", single), n("*.a.example.com", anyD), false},
		{n("*.a.example.com", single), n("*.example.com", anyD), true},
		{n("*.example.com", anyD), n("*.a.example.com", anyD), true},
		{n("*.example.com", anyD), n("*.example.org", anyD), false},
	}
	for _, tc := range tests {
		if got := hosts.Overlaps(tc.a, tc.b); got != tc.want {
			t.Errorf("Overlaps(%s %s, %s %s) = %v, want %v", tc.a, tc.a.Match, tc.b, tc.b.Match, got, tc.want)
		}
		if got := hosts.Overlaps(tc.b, tc.a); got != tc.want {
			t.Errorf("Overlaps is not symmetric for %s, %s", tc.a, tc.b)
		}
	}
}

// universe is every name and wildcard up to four labels over a small
// alphabet, in all three semantics.
func universe() []hosts.Name {
	var names []hosts.Name
	var grow func(suffix string, depth int)
	grow = func(suffix string, depth int) {
		for _, m := range []v1alpha1.HostMatch{exact, single, anyD} {
			names = append(names, hosts.Name{Host: suffix, Match: m})
		}
		if depth == 4 {
			return
		}
		for _, l := range []string{"a", "b"} {
			grow(l+"."+suffix, depth+1)
		}
	}
	grow("com", 1)
	grow("org", 1)
	return names
}

// covered brute-forces Overlaps on concrete names one to six labels deep.
func covered(a, b hosts.Name) bool {
	var concrete []string
	var grow func(s string, d int)
	grow = func(s string, d int) {
		concrete = append(concrete, s)
		if d == 6 {
			return
		}
		for _, l := range []string{"a", "b", "c"} {
			grow(l+"."+s, d+1)
		}
	}
	grow("com", 1)
	grow("org", 1)
	for _, h := range concrete {
		if a.Covers(h) && b.Covers(h) {
			return true
		}
	}
	return false
}

func TestOverlapsAgreesWithBruteForce(t *testing.T) {
	u := universe()
	for _, a := range u {
		for _, b := range u {
			if got, want := hosts.Overlaps(a, b), covered(a, b); got != want {
				t.Fatalf("Overlaps(%s %s, %s %s) = %v, brute force says %v", a, a.Match, b, b.Match, got, want)
			}
		}
	}
}

// TestEveryOverlapIsFoundByTheClaimer checks the lookup the claimer does
// after creating a claim: the wildcards above by name (AboveClaimNames)
// and, for wildcards, the claims below by label (BelowSelector). Every
// overlapping claim must be found, or the race between a wildcard and a
// name would go undetected.
func TestEveryOverlapIsFoundByTheClaimer(t *testing.T) {
	u := universe()
	for _, a := range u {
		above := map[string]bool{}
		for _, name := range hosts.AboveClaimNames(a) {
			above[name] = true
		}
		for _, b := range u {
			if a == b || !hosts.Overlaps(a, b) {
				continue
			}
			found := above[hosts.ClaimName(b)]
			if a.Wildcard() {
				key, value := hosts.BelowSelector(a.Host)
				found = found || hosts.ClaimLabels(b)[key] == value
			}
			if !found {
				t.Errorf("claim of %s (%s) does not find overlapping %s (%s)", a, a.Match, b, b.Match)
			}
		}
	}
}

func TestClaimNamesAreDistinctAndValid(t *testing.T) {
	seen := map[string]hosts.Name{}
	u := universe()
	long := hosts.Name{Host: strings.Repeat(strings.Repeat("x", 60)+".", 4) + "com", Match: anyD}
	u = append(u, long, hosts.Name{Host: long.Host, Match: exact})
	for _, n := range u {
		c := hosts.ClaimName(n)
		if prev, dup := seen[c]; dup {
			t.Fatalf("%s and %s share claim name %s", prev, n, c)
		}
		seen[c] = n
		if len(c) > 253 {
			t.Fatalf("claim name of %d characters", len(c))
		}
	}
	if got := hosts.ClaimName(hosts.MustParse("*.shop.example.com", anyD)); got != "wildcard-any.shop.example.com" {
		t.Errorf("readable claim name: %s", got)
	}
}

func TestIndexOverlappingAgreesWithOverlaps(t *testing.T) {
	u := universe()
	ix := hosts.NewIndex()
	// Claim every third name, so lookups meet both claimed and free names.
	claimed := map[hosts.Name]bool{}
	for i, n := range u {
		if i%3 == 0 {
			ix.SetOwner(hosts.Owner{Name: n, Namespace: "ns"})
			claimed[n] = true
		}
	}
	for _, a := range u {
		var want, got []string
		for b := range claimed {
			if hosts.Overlaps(a, b) {
				want = append(want, b.String()+"/"+string(b.Match))
			}
		}
		for _, o := range ix.Overlapping(a, 0, nil) {
			got = append(got, o.Name.String()+"/"+string(o.Name.Match))
		}
		sort.Strings(want)
		sort.Strings(got)
		if strings.Join(want, " ") != strings.Join(got, " ") {
			t.Fatalf("Overlapping(%s %s) = %v, want %v", a, a.Match, got, want)
		}
	}
	if ix.Len() != len(claimed) {
		t.Fatalf("Len %d, want %d", ix.Len(), len(claimed))
	}
	for n := range claimed {
		ix.DeleteOwner(n)
	}
	if ix.Len() != 0 || len(ix.Overlapping(hosts.Name{Host: "com", Match: anyD}, 0, nil)) != 0 {
		t.Fatal("index not empty after deleting every owner")
	}
}

func TestIndexUses(t *testing.T) {
	ix := hosts.NewIndex()
	n := hosts.MustParse("shop.example.com", exact)
	key := hosts.ObjectKey{Namespace: "p1", Kind: "Ingress", Name: "a"}
	use := hosts.Use{Name: n, Namespace: "p1", Object: v1alpha1.ObjectReference{Kind: "Ingress", Name: "a"}, Paths: []string{"/"}}
	ix.SetUses(key, []hosts.Use{use})
	if !ix.UsedIn(n, "p1") || ix.UsedIn(n, "p2") {
		t.Fatal("use not recorded for its namespace only")
	}
	// Replacing the uses drops the old host.
	other := hosts.MustParse("other.example.com", exact)
	use.Name = other
	ix.SetUses(key, []hosts.Use{use})
	if ix.UsedIn(n, "p1") || !ix.UsedIn(other, "p1") {
		t.Fatal("SetUses did not replace the object's hosts")
	}
	ix.DeleteUses(key)
	if ix.UsedIn(other, "p1") {
		t.Fatal("DeleteUses left a use behind")
	}
}

func TestAllowlist(t *testing.T) {
	a, err := hosts.CompileAllowlist([]string{"shop.example.com", "*.p1.example.com"}, []string{`api-\d+\.example\.com`})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		m    v1alpha1.HostMatch
		want bool
	}{
		{"shop.example.com", single, true},
		{"x.shop.example.com", single, false},
		{"a.p1.example.com", single, true},
		{"a.b.p1.example.com", single, true},
		{"p1.example.com", single, false},
		{"*.p1.example.com", single, true},
		{"*.x.p1.example.com", anyD, true},
		{"*.example.com", single, false},
		{"api-7.example.com", single, true},
		{"api-7.example.com.evil.org", single, false},
		{"xapi-7.example.com", single, false},
	}
	for _, tc := range tests {
		if got := a.Allows(hosts.MustParse(tc.host, tc.m)); got != tc.want {
			t.Errorf("Allows(%s) = %v, want %v", tc.host, got, tc.want)
		}
	}
	if _, err := hosts.CompileAllowlist(nil, []string{"("}); err == nil {
		t.Error("bad regex accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"shop.example.com", "*.example.com", "bücher.example", "10.0.0.1", "a..b", "*", "xn--bcher-kva.example", "A.B.C."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, m := range []v1alpha1.HostMatch{single, anyD} {
			n, err := hosts.Parse(raw, m)
			if err != nil {
				continue
			}
			// A parsed name is stable, has a valid claim name, and
			// overlaps itself.
			again, err := hosts.Parse(n.String(), m)
			if err != nil || again != n {
				t.Fatalf("Parse(%q) = %v, but Parse(%q) = %v, %v", raw, n, n.String(), again, err)
			}
			if c := hosts.ClaimName(n); len(c) > 253 || c == "" {
				t.Fatalf("claim name %q", c)
			}
			if !hosts.Overlaps(n, n) {
				t.Fatalf("%v does not overlap itself", n)
			}
		}
	})
}
