package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/controller"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/policy"
)

var ingressKind = controller.HostKind{
	GVK:     networkingv1.SchemeGroupVersion.WithKind("Ingress"),
	Object:  &networkingv1.Ingress{},
	NewList: func() client.ObjectList { return &networkingv1.IngressList{} },
}

// cachedClient starts a manager's cache with the host index registered and
// returns its client (reads from the cache, as the controllers' do).
func cachedClient(t *testing.T, engine *policy.Engine) client.Client {
	t.Helper()
	skip := true
	mgr, err := ctrl.NewManager(env.Config, manager.Options{
		Scheme: kinds.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: ctrlconfig.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := controller.IndexHostObjects(ctx, mgr, engine, []controller.HostKind{ingressKind}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// Informers start on first use: touch both kinds, then wait.
	_ = mgr.GetClient().List(ctx, &networkingv1.IngressList{})
	_ = mgr.GetClient().List(ctx, &v1alpha1.HostClaimList{})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	return mgr.GetClient()
}

func testIngress(ns, name, host string) *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: host}}}}
}

func createNamespace(t *testing.T, name string) {
	t.Helper()
	if err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// claimReconciler returns a claim reconciler on a started cache with a
// one-minute grace period, its cached client, and its clock, set past the
// wait for a new claim's object to appear.
func claimReconciler(t *testing.T) (*controller.HostClaimReconciler, client.Client, *time.Time) {
	t.Helper()
	engine := policy.NewEngine(config.Default())
	c := cachedClient(t, engine)
	now := time.Now().Add(15 * time.Second)
	r := &controller.HostClaimReconciler{Client: c, Reader: admin, Engine: engine, Kinds: []controller.HostKind{ingressKind},
		GracePeriod: time.Minute, Now: func() time.Time { return now }}
	return r, c, &now
}

// TestHostClaimReconciler: a pending claim whose object exists is checked
// and settled with its objects recorded; a claim whose object went away is
// marked, kept through the grace period and released after it; a pending
// claim never used is released after the grace period; a claim written
// without labels gets them.
func TestHostClaimReconciler(t *testing.T) {
	ctx := context.Background()
	r, _, now := claimReconciler(t)
	createNamespace(t, "hc-a")

	used := hosts.MustParse("used.hc.example.com", v1alpha1.HostMatchExact)
	unused := hosts.MustParse("unused.hc.example.com", v1alpha1.HostMatchExact)
	never := hosts.MustParse("never.hc.example.com", v1alpha1.HostMatchExact)
	claimer := &hosts.Claimer{Client: admin}
	for _, n := range []hosts.Name{used, unused, never} {
		if _, err := claimer.Claim(ctx, []hosts.Name{n}, hosts.Owner{Namespace: "hc-a"}); err != nil {
			t.Fatal(err)
		}
	}
	// unused was settled once (its object came and went).
	settled := &v1alpha1.HostClaim{}
	if err := admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(unused)}, settled); err != nil {
		t.Fatal(err)
	}
	if err := hosts.StampCreateRevision(ctx, admin, settled); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, testIngress("hc-a", "web", used.Host)); err != nil {
		t.Fatal(err)
	}
	reconcileUntil := func(n hosts.Name, ok func(*v1alpha1.HostClaim, error) bool) {
		t.Helper()
		req := reconcile.Request{NamespacedName: types.NamespacedName{Name: hosts.ClaimName(n)}}
		for range 100 {
			if _, err := r.Reconcile(ctx, req); err != nil {
				t.Fatalf("reconcile %s: %v", n, err)
			}
			hc := &v1alpha1.HostClaim{}
			err := admin.Get(ctx, req.NamespacedName, hc)
			if ok(hc, err) {
				return
			}
			time.Sleep(50 * time.Millisecond) // the cache catches up with the writes
		}
		t.Fatalf("claim of %s never reached the expected state", n)
	}
	reconcileUntil(used, func(hc *v1alpha1.HostClaim, err error) bool {
		return err == nil && hc.Status.UsedBy == "Ingress/web" && hc.Status.UnusedSince == nil && !hosts.Pending(hc)
	})
	reconcileUntil(unused, func(hc *v1alpha1.HostClaim, err error) bool {
		return err == nil && hc.Status.UnusedSince != nil
	})
	reconcileUntil(never, func(hc *v1alpha1.HostClaim, err error) bool {
		return err == nil && hosts.Pending(hc) && hc.Status.UnusedSince == nil
	})
	// Within the grace period they stay; after it, they go.
	*now = now.Add(30 * time.Second)
	for _, n := range []hosts.Name{unused, never} {
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: hosts.ClaimName(n)}}); err != nil {
			t.Fatal(err)
		}
		if err := admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(n)}, &v1alpha1.HostClaim{}); err != nil {
			t.Fatalf("claim of %s released within the grace period: %v", n, err)
		}
	}
	*now = now.Add(2 * time.Minute)
	reconcileUntil(unused, func(_ *v1alpha1.HostClaim, err error) bool { return apierrors.IsNotFound(err) })
	reconcileUntil(never, func(_ *v1alpha1.HostClaim, err error) bool { return apierrors.IsNotFound(err) })

	// A claim written by hand without labels gets them.
	bare := hosts.MustParse("*.bare.example.com", v1alpha1.HostMatchSingleLabel)
	hc := hosts.NewClaim(bare, hosts.Owner{Namespace: "hc-a"})
	hc.Labels = nil
	if err := admin.Create(ctx, hc); err != nil {
		t.Fatal(err)
	}
	// Settled, as an admin's claim would be once anything updated it (a
	// pending one waits for its object until the grace period ends).
	if err := hosts.StampCreateRevision(ctx, admin, hc); err != nil {
		t.Fatal(err)
	}
	want := hosts.ClaimLabels(bare)
	reconcileUntil(bare, func(hc *v1alpha1.HostClaim, err error) bool {
		if err != nil {
			return false
		}
		for k, v := range want {
			if hc.Labels[k] != v {
				return false
			}
		}
		return true
	})
}

// TestPendingClaimThatLosesIsNeverSettled: a pending claim under an older
// wildcard of another namespace is one its creator withdraws. The
// controller must not settle it, even if an object of its namespace uses
// the host, and releases it after the grace period if the creator never
// did (a replica that stopped half way).
func TestPendingClaimThatLosesIsNeverSettled(t *testing.T) {
	ctx := context.Background()
	r, c, now := claimReconciler(t)
	createNamespace(t, "hc-older")
	createNamespace(t, "hc-loser")
	wildcard := hosts.MustParse("*.lose.example.com", v1alpha1.HostMatchSingleLabel)
	if _, err := (&hosts.Claimer{Client: admin}).Claim(ctx, []hosts.Name{wildcard}, hosts.Owner{Namespace: "hc-older"}); err != nil {
		t.Fatal(err)
	}
	// What a creator leaves between its create and its check: a pending
	// claim it is about to withdraw, and (admitted while the guard was not
	// asked) an object of its namespace that uses the host.
	loser := hosts.MustParse("a.lose.example.com", v1alpha1.HostMatchExact)
	if err := admin.Create(ctx, hosts.NewClaim(loser, hosts.Owner{Namespace: "hc-loser"})); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, testIngress("hc-loser", "web", loser.Host)); err != nil {
		t.Fatal(err)
	}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: hosts.ClaimName(loser)}}
	for range 100 { // until the cache has the object
		var objs networkingv1.IngressList
		if err := c.List(ctx, &objs, client.InNamespace("hc-loser")); err == nil && len(objs.Items) == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := r.Reconcile(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	hc := &v1alpha1.HostClaim{}
	if err := admin.Get(ctx, req.NamespacedName, hc); err != nil {
		t.Fatal(err)
	}
	if !hosts.Pending(hc) || res.RequeueAfter <= 0 {
		t.Fatalf("a claim that loses to an older overlapping one was settled (pending %v, %+v)", hosts.Pending(hc), res)
	}
	*now = now.Add(time.Minute)
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(ctx, req.NamespacedName, hc); !apierrors.IsNotFound(err) {
		t.Fatalf("the losing claim is still there after the grace period: %v", err)
	}
}

// TestAdopterClaimsOldestFirst: objects that predate the guard are claimed
// oldest first. The first user of a host owns it; a later user in another
// namespace is left to the audit, and claims nothing.
func TestAdopterClaimsOldestFirst(t *testing.T) {
	ctx := context.Background()
	engine := policy.NewEngine(config.Default())
	c := cachedClient(t, engine)
	createNamespace(t, "adopt-old")
	createNamespace(t, "adopt-new")
	shared := "shared.adopt.example.com"
	if err := admin.Create(ctx, testIngress("adopt-old", "first", shared)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution
	for _, ing := range []*networkingv1.Ingress{testIngress("adopt-new", "second", shared), testIngress("adopt-new", "own", "own.adopt.example.com")} {
		if err := admin.Create(ctx, ing); err != nil {
			t.Fatal(err)
		}
	}
	// The view as the guard's informers fill it.
	view := policy.NewSnapshot()
	list := &networkingv1.IngressList{}
	if err := admin.List(ctx, list); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		ing := &list.Items[i]
		uses, _ := engine.HostUses(ing, ing.Namespace)
		for j := range uses {
			uses[j].Created = ing.CreationTimestamp.Time
		}
		view.Hosts().SetUses(hosts.ObjectKey{Namespace: ing.Namespace, Group: "networking.k8s.io", Kind: "Ingress", Name: ing.Name}, uses)
	}
	for _, ns := range []string{"adopt-old", "adopt-new"} {
		view.SetNamespace(ns, nil)
	}
	for {
		l := &networkingv1.IngressList{}
		if err := c.List(ctx, l, client.InNamespace("adopt-new")); err != nil {
			t.Fatal(err)
		}
		if len(l.Items) == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	a := &controller.Adopter{Client: c, Claimer: &hosts.Claimer{Client: admin}, Engine: engine, View: view,
		Kinds: []controller.HostKind{ingressKind}, WaitSynced: func(context.Context) error { return nil }}
	if err := a.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	owner := func(host string) string {
		hc := &v1alpha1.HostClaim{}
		if err := admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(hosts.MustParse(host, v1alpha1.HostMatchExact))}, hc); err != nil {
			return fmt.Sprint(err)
		}
		return hc.Spec.Namespace
	}
	if got := owner(shared); got != "adopt-old" {
		t.Fatalf("shared host claimed by %q, want the oldest user adopt-old", got)
	}
	if got := owner("own.adopt.example.com"); got != "adopt-new" {
		t.Fatalf("own host claimed by %q, want adopt-new", got)
	}
}

// TestNewClaimIsNotMarkedUnusedBeforeItsObject: the webhook claims before
// the API server stores the object, so a claim seconds old with no object
// is not written (no unusedSince); it is looked at again shortly.
func TestNewClaimIsNotMarkedUnusedBeforeItsObject(t *testing.T) {
	ctx := context.Background()
	engine := policy.NewEngine(config.Default())
	c := cachedClient(t, engine)
	createNamespace(t, "hc-new")
	n := hosts.MustParse("fresh.hc.example.com", v1alpha1.HostMatchExact)
	if _, err := (&hosts.Claimer{Client: admin}).Claim(ctx, []hosts.Name{n}, hosts.Owner{Namespace: "hc-new"}); err != nil {
		t.Fatal(err)
	}
	hc := &v1alpha1.HostClaim{}
	if err := admin.Get(ctx, client.ObjectKey{Name: hosts.ClaimName(n)}, hc); err != nil {
		t.Fatal(err)
	}
	r := &controller.HostClaimReconciler{Client: c, Reader: admin, Engine: engine, Kinds: []controller.HostKind{ingressKind},
		GracePeriod: time.Minute, Now: func() time.Time { return hc.CreationTimestamp.Time.Add(time.Second) }}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: hc.Name}}
	for range 50 { // until the cache has the claim
		if err := c.Get(ctx, req.NamespacedName, &v1alpha1.HostClaim{}); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := r.Reconcile(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter <= 0 {
		t.Fatalf("a new claim without its object is not looked at again: %+v", res)
	}
	after := &v1alpha1.HostClaim{}
	if err := admin.Get(ctx, req.NamespacedName, after); err != nil {
		t.Fatal(err)
	}
	if after.Status.UnusedSince != nil || after.ResourceVersion != hc.ResourceVersion {
		t.Fatalf("a claim seconds old was written before its object could appear: %+v", after.Status)
	}
}
