package hosts_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/config/crd"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/kinds"
)

// claimer returns a Claimer on a real API server with the CRDs installed.
func claimer(t *testing.T) (*hosts.Claimer, client.Client) {
	t.Helper()
	crds, err := crd.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	env := devenvtest.Start(t, devenv.Options{CRDs: crds})
	c, err := client.New(env.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &hosts.Claimer{Client: c}, c
}

func TestClaimer(t *testing.T) {
	cl, c := claimer(t)
	ctx := context.Background()
	exists := func(n hosts.Name) bool {
		err := c.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(n)}, &v1alpha1.HostClaim{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	a := hosts.MustParse("a.example.com", exact)
	b := hosts.MustParse("b.example.com", exact)
	me, other := hosts.Owner{Namespace: "me", Tenant: "t1"}, hosts.Owner{Namespace: "other", Tenant: "t2"}

	t.Run("all or nothing", func(t *testing.T) {
		if _, err := cl.Claim(ctx, []hosts.Name{b}, other); err != nil {
			t.Fatal(err)
		}
		_, err := cl.Claim(ctx, []hosts.Name{a, b}, me)
		var conflict *hosts.ConflictError
		if !errors.As(err, &conflict) || conflict.Owner.Namespace != "other" || conflict.Name != b {
			t.Fatalf("want a conflict on b owned by other, got %v", err)
		}
		if exists(a) {
			t.Fatal("the claim of a was left behind after b was refused")
		}
	})
	t.Run("claiming what one owns is a no-op", func(t *testing.T) {
		created, err := cl.Claim(ctx, []hosts.Name{b}, other)
		if err != nil || len(created) != 0 {
			t.Fatalf("got %v, %v; want nothing created", created, err)
		}
	})
	t.Run("a wildcard withdraws for an older name it covers", func(t *testing.T) {
		x := hosts.MustParse("x.w.example.com", exact)
		if _, err := cl.Claim(ctx, []hosts.Name{x}, other); err != nil {
			t.Fatal(err)
		}
		w := hosts.MustParse("*.w.example.com", anyD)
		_, err := cl.Claim(ctx, []hosts.Name{w}, me)
		if !hosts.IsConflict(err) || exists(w) {
			t.Fatalf("want a conflict and no wildcard claim, got %v (exists %v)", err, exists(w))
		}
		// Deeper names are found by label, and the other kind by name.
		deep := hosts.MustParse("*.w.example.com", single)
		if _, err := cl.Claim(ctx, []hosts.Name{deep}, me); !hosts.IsConflict(err) {
			t.Fatalf("Ingress wildcard over x.w.example.com: %v", err)
		}
	})
	t.Run("a name withdraws for an older wildcard over it", func(t *testing.T) {
		w := hosts.MustParse("*.v.example.com", anyD)
		if _, err := cl.Claim(ctx, []hosts.Name{w}, other); err != nil {
			t.Fatal(err)
		}
		deep := hosts.MustParse("a.b.v.example.com", exact)
		if _, err := cl.Claim(ctx, []hosts.Name{deep}, me); !hosts.IsConflict(err) || exists(deep) {
			t.Fatalf("want a conflict, got %v", err)
		}
	})
	t.Run("the creation revision survives updates", func(t *testing.T) {
		n := hosts.MustParse("stamp.example.com", exact)
		if _, err := cl.Claim(ctx, []hosts.Name{n}, me); err != nil {
			t.Fatal(err)
		}
		hc := &v1alpha1.HostClaim{}
		if err := c.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(n)}, hc); err != nil {
			t.Fatal(err)
		}
		created := hosts.CreateRevision(hc)
		if err := hosts.StampCreateRevision(ctx, c, hc); err != nil {
			t.Fatal(err)
		}
		hc.Spec.Tenant = "t9"
		if err := c.Update(ctx, hc); err != nil {
			t.Fatal(err)
		}
		if hosts.CreateRevision(hc) != created {
			t.Fatalf("creation revision moved from %s to %s", created, hosts.CreateRevision(hc))
		}
		if cmp, _ := resourceversion.CompareResourceVersion(hc.ResourceVersion, created); cmp <= 0 {
			t.Fatalf("the update should have a later resource version (%s vs %s)", hc.ResourceVersion, created)
		}
	})
	t.Run("names too long for readable claim names", func(t *testing.T) {
		label := strings.Repeat("x", 60)
		long := hosts.MustParse("a."+strings.Repeat(label+".", 4)+"com", exact) // 249 characters
		if !strings.Contains(hosts.ClaimName(long), "sha256-") {
			t.Fatalf("claim name %s is not hashed", hosts.ClaimName(long))
		}
		if _, err := cl.Claim(ctx, []hosts.Name{long}, me); err != nil {
			t.Fatalf("the API server must accept the hashed claim name %s: %v", hosts.ClaimName(long), err)
		}
	})
}
