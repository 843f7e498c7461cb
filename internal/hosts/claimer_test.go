package hosts_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/kinds"
)

// claimer returns a Claimer on a real API server with the CRDs installed.
func claimer(t *testing.T) (*hosts.Claimer, client.Client) {
	t.Helper()
	env := devenvtest.StartWithCRDs(t)
	c, err := client.New(env.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &hosts.Claimer{Client: c}, c
}

// pausing returns a Claimer whose client stops before the first call that
// pauseOn matches, until release is closed; paused is closed when it stops.
func pausing(t *testing.T, env *devenv.Env, pauseOn func(verb, name string) bool) (cl *hosts.Claimer, paused, release chan struct{}) {
	t.Helper()
	base, err := client.NewWithWatch(env.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	paused, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	stop := func(verb, name string) {
		if pauseOn(verb, name) {
			once.Do(func() { close(paused); <-release })
		}
	}
	c := interceptor.NewClient(base, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			stop("create", obj.GetName())
			return c.Create(ctx, obj, opts...)
		},
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			stop("get", key.Name)
			return c.Get(ctx, key, obj, opts...)
		},
		// The overlap check (step 2) GETs the wildcard claims above a
		// name and LISTs the claims below a wildcard.
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			stop("list", "")
			return c.List(ctx, list, opts...)
		},
	})
	return &hosts.Claimer{Client: c}, paused, release
}

// TestSameNamespaceRequestsSettlePendingClaims interleaves two requests of
// one namespace for one host: the second relies on the first's pending
// claim only after checking it and settling it, and once it is settled the
// first cannot take it back.
func TestSameNamespaceRequestsSettlePendingClaims(t *testing.T) {
	env := devenvtest.StartWithCRDs(t)
	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	plain := &hosts.Claimer{Client: c}
	me, other, third := hosts.Owner{Namespace: "me"}, hosts.Owner{Namespace: "other"}, hosts.Owner{Namespace: "third"}
	claimOf := func(n hosts.Name) *v1alpha1.HostClaim {
		hc := &v1alpha1.HostClaim{}
		if err := c.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(n)}, hc); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			t.Fatal(err)
		}
		return hc
	}

	t.Run("a settled claim survives the rollback of its creator", func(t *testing.T) {
		x, y := hosts.MustParse("x.r.example.com", exact), hosts.MustParse("y.r.example.com", exact)
		if _, err := plain.Claim(ctx, []hosts.Name{y}, other); err != nil {
			t.Fatal(err)
		}
		// Request 1 claims x, then stops before it tries y (owned by other).
		first, paused, release := pausing(t, env, func(verb, name string) bool { return verb == "create" && name == hosts.ClaimName(y) })
		done1 := make(chan error, 1)
		go func() { _, err := first.Claim(ctx, []hosts.Name{x, y}, me); done1 <- err }()
		<-paused
		if hc := claimOf(x); hc == nil || !hosts.Pending(hc) {
			t.Fatalf("request 1's claim of x should exist and be pending: %+v", hc)
		}
		// Request 2 checks request 1's claim and settles it.
		if _, err := plain.Claim(ctx, []hosts.Name{x}, me); err != nil {
			t.Fatalf("request 2: %v", err)
		}
		if hc := claimOf(x); hc == nil || hosts.Pending(hc) {
			t.Fatalf("request 2 relied on x without settling it: %+v", hc)
		}
		close(release)
		if err := <-done1; !hosts.IsConflict(err) {
			t.Fatalf("request 1: %v, want a conflict on y", err)
		}
		hc := claimOf(x)
		if hc == nil || hc.Spec.Namespace != "me" || hosts.Pending(hc) {
			t.Fatalf("request 1's rollback took x from under request 2: %+v", hc)
		}
		if _, err := plain.Claim(ctx, []hosts.Name{x}, third); !hosts.IsConflict(err) {
			t.Fatalf("a third namespace took x: %v", err)
		}
	})

	t.Run("a claim its creator will withdraw is not relied on", func(t *testing.T) {
		w, x := hosts.MustParse("*.w.example.com", anyD), hosts.MustParse("x.w.example.com", exact)
		if _, err := plain.Claim(ctx, []hosts.Name{w}, other); err != nil {
			t.Fatal(err)
		}
		// Request 1 creates x, then stops before its overlap check.
		first, paused, release := pausing(t, env, func(verb, name string) bool { return verb == "get" && name == hosts.ClaimName(w) })
		done1 := make(chan error, 1)
		go func() { _, err := first.Claim(ctx, []hosts.Name{x}, me); done1 <- err }()
		<-paused
		if _, err := plain.Claim(ctx, []hosts.Name{x}, me); !hosts.IsConflict(err) {
			t.Fatalf("request 2: %v, want a conflict with *.w.example.com", err)
		}
		if hc := claimOf(x); hc == nil || !hosts.Pending(hc) {
			t.Fatalf("request 2 must leave request 1's claim pending: %+v", hc)
		}
		close(release)
		if err := <-done1; !hosts.IsConflict(err) {
			t.Fatalf("request 1: %v, want a conflict with *.w.example.com", err)
		}
		if hc := claimOf(x); hc != nil {
			t.Fatalf("x.w.example.com is claimed under other's older wildcard: %+v", hc.Spec)
		}
	})

	t.Run("a claim its creator withdrew is claimed again", func(t *testing.T) {
		z, y := hosts.MustParse("z.r.example.com", exact), hosts.MustParse("y.r.example.com", exact)
		// Request 1 claims z, then stops before y, which other owns: its
		// rollback will delete z.
		first, paused, release := pausing(t, env, func(verb, name string) bool { return verb == "create" && name == hosts.ClaimName(y) })
		done1 := make(chan error, 1)
		go func() { _, err := first.Claim(ctx, []hosts.Name{z, y}, me); done1 <- err }()
		<-paused
		close(release)
		if err := <-done1; !hosts.IsConflict(err) {
			t.Fatalf("request 1: %v, want a conflict on y", err)
		}
		if hc := claimOf(z); hc != nil {
			t.Fatalf("request 1 left its claim of z: %+v", hc.Spec)
		}
		if _, err := plain.Claim(ctx, []hosts.Name{z}, me); err != nil {
			t.Fatalf("z is free again: %v", err)
		}
	})
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
	t.Run("a refused request unbinds the reservation it bound", func(t *testing.T) {
		r := hosts.MustParse("reserved.example.com", exact)
		if err := c.Create(ctx, hosts.NewClaim(r, hosts.Owner{Tenant: "t1", Reserved: true})); err != nil {
			t.Fatal(err)
		}
		_, err := cl.Claim(ctx, []hosts.Name{r, b}, me) // b belongs to other
		if !hosts.IsConflict(err) {
			t.Fatalf("want a conflict on b, got %v", err)
		}
		hc := &v1alpha1.HostClaim{}
		if err := c.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(r)}, hc); err != nil || hc.Spec.Namespace != "" || !hc.Spec.Reserved {
			t.Fatalf("the reservation must be unbound again: %+v, %v", hc.Spec, err)
		}
		if _, err := cl.Claim(ctx, []hosts.Name{r}, hosts.Owner{Namespace: "x", Tenant: "t2"}); !hosts.IsConflict(err) {
			t.Fatalf("another tenant took the reservation: %v", err)
		}
		if _, err := cl.Claim(ctx, []hosts.Name{r}, me); err != nil {
			t.Fatalf("the tenant binds its reservation: %v", err)
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
	t.Run("a claim's name must be derived from its host", func(t *testing.T) {
		hc := hosts.NewClaim(hosts.MustParse("shop.example.com", exact), hosts.Owner{Tenant: "t1", Reserved: true})
		hc.Name = "reserve-shop"
		if err := c.Create(ctx, hc); err == nil || !strings.Contains(err.Error(), "derived from its host") {
			t.Fatalf("a claim named apart from its host would defeat the duplicate check: %v", err)
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
