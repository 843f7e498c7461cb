package controller_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/config/crd"
	"github.com/tenantguard/tenantguard/internal/controller"
	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/tenancy"
)

// The shared control plane of this package's tests, and a cluster-admin
// client on it.
var (
	env   *devenv.Env
	admin client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	crds, err := crd.CRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var stop func() error
	env, stop, err = devenvtest.StartShared(devenv.Options{CRDs: crds})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	env.Config.QPS = -1 // the API server's priority and fairness is the limit
	admin, err = client.New(env.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, r := range []*rbacv1.ClusterRole{tenancy.TenantAdminClusterRole(), tenancy.NamespaceCreatorClusterRole()} {
		if err := admin.Create(context.Background(), r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// startController runs the tenant controller in a manager of its own
// until the test ends.
func startController(tb testing.TB, opts tenancy.Options) *controller.TenantReconciler {
	tb.Helper()
	r, stop := runController(tb, rest.CopyConfig(env.Config), opts)
	tb.Cleanup(stop)
	return r
}

// runController runs the tenant controller on cfg until stop is called.
func runController(tb testing.TB, cfg *rest.Config, opts tenancy.Options) (r *controller.TenantReconciler, stop func()) {
	tb.Helper()
	managed, err := labels.Parse(tenancy.ManagedLabel)
	if err != nil {
		tb.Fatal(err)
	}
	byObject := map[client.Object]cache.ByObject{}
	for _, o := range controller.ManagedObjects() {
		byObject[o] = cache.ByObject{Label: managed}
	}
	skip := true
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme:                 kinds.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlconfig.Controller{SkipNameValidation: &skip},
		Cache:                  cache.Options{ByObject: byObject},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r = &controller.TenantReconciler{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("tenantguard"), Options: opts,
		ClaimCountDelay: time.Second,
	}
	if err := controller.IndexTenants(ctx, mgr.GetFieldIndexer()); err != nil {
		tb.Fatal(err)
	}
	if err := r.SetupWithManager(mgr); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return r, func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("manager: %v", err)
		}
	}
}

// as is a client that acts as user (rest.Config.Impersonate).
func as(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	c, err := client.New(cfg, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after a minute: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func createTenant(t *testing.T, name string, spec v1alpha1.TenantSpec) *v1alpha1.Tenant {
	t.Helper()
	tn := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := admin.Create(context.Background(), tn); err != nil {
		t.Fatalf("create tenant %s: %v", name, err)
	}
	return tn
}

// waitReady waits until the Tenant's status describes its current
// generation and says Ready, and returns it.
func waitReady(t *testing.T, name string) *v1alpha1.Tenant {
	t.Helper()
	tn := &v1alpha1.Tenant{}
	eventually(t, func() error {
		if err := admin.Get(context.Background(), client.ObjectKey{Name: name}, tn); err != nil {
			return err
		}
		c := meta.FindStatusCondition(tn.Status.Conditions, controller.ConditionReady)
		if c == nil || c.ObservedGeneration != tn.Generation || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("tenant %s not ready: %+v", name, c)
		}
		return nil
	})
	return tn
}

func namespace(t *testing.T, name string) *corev1.Namespace {
	t.Helper()
	ns := &corev1.Namespace{}
	if err := admin.Get(context.Background(), client.ObjectKey{Name: name}, ns); err != nil {
		t.Fatalf("get namespace %s: %v", name, err)
	}
	return ns
}

func deployment(ns string) *appsv1.Deployment {
	l := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
			},
		},
	}
}

func TestTenantNamespacesAndOwners(t *testing.T) {
	startController(t, tenancy.Options{IngressNamespaces: []string{"ingress-nginx"}})
	ctx := context.Background()
	createTenant(t, "own-a", v1alpha1.TenantSpec{
		Owners:     []v1alpha1.Owner{{Kind: v1alpha1.OwnerUser, Name: "alice"}},
		Namespaces: []string{"own-a1", "own-a2"},
		Resources: v1alpha1.ResourceDefaults{
			Quota: &corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10")}},
			LimitRange: &corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
				Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
			}}},
			NetworkIsolation: v1alpha1.NetworkIsolationTenant,
		},
	})
	createTenant(t, "own-b", v1alpha1.TenantSpec{
		Owners:     []v1alpha1.Owner{{Kind: v1alpha1.OwnerGroup, Name: "b-devs"}},
		Namespaces: []string{"own-b1"},
	})
	a := waitReady(t, "own-a")
	waitReady(t, "own-b")
	if !slices.Equal(a.Status.Namespaces, []string{"own-a1", "own-a2"}) || a.Status.NamespaceCount != 2 {
		t.Errorf("status namespaces = %v (%d), want own-a1 own-a2", a.Status.Namespaces, a.Status.NamespaceCount)
	}
	for _, name := range []string{"own-a1", "own-a2"} {
		if l := namespace(t, name).Labels[v1alpha1.TenantLabel]; l != "own-a" {
			t.Errorf("namespace %s label = %q, want own-a", name, l)
		}
		rb := &rbacv1.RoleBinding{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: name, Name: tenancy.OwnersBinding}, rb); err != nil {
			t.Fatal(err)
		}
		if rb.RoleRef.Name != tenancy.TenantAdminRole || len(rb.Subjects) != 1 || rb.Subjects[0].Name != "alice" {
			t.Errorf("owners' binding in %s = %+v %+v", name, rb.RoleRef, rb.Subjects)
		}
		np := &networkingv1.NetworkPolicy{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: name, Name: tenancy.NetworkPolicyName}, np); err != nil {
			t.Fatal(err)
		}
		if from := np.Spec.Ingress[0].From; len(from) != 2 || from[0].NamespaceSelector.MatchLabels[v1alpha1.TenantLabel] != "own-a" ||
			!slices.Equal(from[1].NamespaceSelector.MatchExpressions[0].Values, []string{"ingress-nginx"}) {
			t.Errorf("isolation policy in %s admits %+v", name, from)
		}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: name, Name: tenancy.QuotaName}, &corev1.ResourceQuota{}); err != nil {
			t.Error(err)
		}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: name, Name: tenancy.LimitRangeName}, &corev1.LimitRange{}); err != nil {
			t.Error(err)
		}
	}

	// Every pass that changed something left an Event on the Tenant.
	eventually(t, func() error {
		var events eventsv1.EventList
		if err := admin.List(ctx, &events, client.InNamespace(metav1.NamespaceDefault)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Regarding.Kind == "Tenant" && e.Regarding.Name == "own-a" && strings.Contains(e.Note, "created namespace own-a1") {
				return nil
			}
		}
		return fmt.Errorf("no event on tenant own-a among %d", len(events.Items))
	})

	alice := as(t, "alice")
	// RBAC reaches the authorizer through its informers: wait for it.
	eventually(t, func() error { return alice.Create(ctx, deployment("own-a1")) })
	if err := alice.Create(ctx, deployment("own-a2")); err != nil {
		t.Errorf("alice deploys in her second namespace: %v", err)
	}
	if err := alice.Create(ctx, deployment("own-b1")); !apierrors.IsForbidden(err) {
		t.Errorf("alice deploys in tenant own-b's namespace: got %v, want Forbidden", err)
	}
	if err := alice.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "own-a-extra"}}); !apierrors.IsForbidden(err) {
		t.Errorf("alice creates a namespace without a namespaceQuota: got %v, want Forbidden", err)
	}
	if err := alice.Create(ctx, deployment("default")); !apierrors.IsForbidden(err) {
		t.Errorf("alice deploys in a namespace of no tenant: got %v, want Forbidden", err)
	}
	if err := alice.List(ctx, &appsv1.DeploymentList{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice lists deployments cluster-wide: got %v, want Forbidden", err)
	}
	if err := alice.Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "more", Namespace: "own-a1"}}); !apierrors.IsForbidden(err) {
		t.Errorf("alice creates a quota: got %v, want Forbidden", err)
	}
	// She reads her Tenant, and no other, and edits none.
	mine := &v1alpha1.Tenant{}
	eventually(t, func() error { return alice.Get(ctx, client.ObjectKey{Name: "own-a"}, mine) })
	if err := alice.Get(ctx, client.ObjectKey{Name: "own-b"}, &v1alpha1.Tenant{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice reads tenant own-b: got %v, want Forbidden", err)
	}
	mine.Spec.Namespaces = append(mine.Spec.Namespaces, "own-b1")
	if err := alice.Update(ctx, mine); !apierrors.IsForbidden(err) {
		t.Errorf("alice edits her Tenant: got %v, want Forbidden", err)
	}
	if err := alice.Create(ctx, &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "own-c"}}); !apierrors.IsForbidden(err) {
		t.Errorf("alice creates a Tenant: got %v, want Forbidden", err)
	}

	// A group owner deploys in its own namespace and not in alice's.
	bob := as(t, "bob", "b-devs")
	eventually(t, func() error { return bob.Create(ctx, deployment("own-b1")) })
	if err := bob.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "own-a1"}}); !apierrors.IsForbidden(err) {
		t.Errorf("bob writes in tenant own-a's namespace: got %v, want Forbidden", err)
	}
}

func TestTenantRepairsDrift(t *testing.T) {
	startController(t, tenancy.Options{})
	ctx := context.Background()
	createTenant(t, "drift", v1alpha1.TenantSpec{
		Owners:     []v1alpha1.Owner{{Kind: v1alpha1.OwnerGroup, Name: "drift-devs"}},
		Namespaces: []string{"drift-1"},
		Resources: v1alpha1.ResourceDefaults{
			Quota:            &corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("5")}},
			NetworkIsolation: v1alpha1.NetworkIsolationTenant,
		},
	})
	waitReady(t, "drift")
	// Something of the namespace's own: the controller must leave it alone.
	mine := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: tenancy.QuotaName, Namespace: "drift-1"}, Data: map[string]string{"k": "v"}}
	if err := admin.Create(ctx, mine); err != nil {
		t.Fatal(err)
	}

	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: tenancy.OwnersBinding, Namespace: "drift-1"}}
	if err := admin.Delete(ctx, rb); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error { return admin.Get(ctx, client.ObjectKeyFromObject(rb), rb) })

	q := &corev1.ResourceQuota{}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: "drift-1", Name: tenancy.QuotaName}, q); err != nil {
		t.Fatal(err)
	}
	q.Spec.Hard[corev1.ResourcePods] = resource.MustParse("500")
	if err := admin.Update(ctx, q); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(q), q); err != nil {
			return err
		}
		if got := q.Spec.Hard[corev1.ResourcePods]; got.Value() != 5 {
			return fmt.Errorf("quota pods = %s, want 5", got.String())
		}
		return nil
	})

	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: tenancy.NetworkPolicyName, Namespace: "drift-1"}}
	if err := admin.Delete(ctx, np); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error { return admin.Get(ctx, client.ObjectKeyFromObject(np), np) })

	// The namespace's label, removed by hand, comes back.
	ns := namespace(t, "drift-1")
	delete(ns.Labels, v1alpha1.TenantLabel)
	if err := admin.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if l := namespace(t, "drift-1").Labels[v1alpha1.TenantLabel]; l != "drift" {
			return fmt.Errorf("label = %q", l)
		}
		return nil
	})

	// A binding the tenant does not manage, named as the managed one in a
	// namespace that has none yet, is reported and left alone.
	createTenant(t, "drift-other", v1alpha1.TenantSpec{Namespaces: []string{"drift-2"}})
	waitReady(t, "drift-other")
	foreign := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: tenancy.OwnersBinding, Namespace: "drift-2"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "carol"}},
	}
	if err := admin.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	other := &v1alpha1.Tenant{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "drift-other"}, other); err != nil {
		t.Fatal(err)
	}
	other.Spec.Owners = []v1alpha1.Owner{{Kind: v1alpha1.OwnerUser, Name: "dave"}}
	if err := admin.Update(ctx, other); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := admin.Get(ctx, client.ObjectKey{Name: "drift-other"}, other); err != nil {
			return err
		}
		c := meta.FindStatusCondition(other.Status.Conditions, controller.ConditionObjectsApplied)
		if c == nil || c.ObservedGeneration != other.Generation || c.Reason != controller.ReasonApplyFailed || !strings.Contains(c.Message, "not managed") {
			return fmt.Errorf("condition = %+v", c)
		}
		return nil
	})
	if err := admin.Get(ctx, client.ObjectKeyFromObject(foreign), foreign); err != nil {
		t.Fatal(err)
	}
	if foreign.RoleRef.Name != "view" || foreign.Subjects[0].Name != "carol" {
		t.Errorf("a binding the tenant does not manage was changed: %+v %+v", foreign.RoleRef, foreign.Subjects)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(mine), mine); err != nil || mine.Data["k"] != "v" {
		t.Errorf("a config map of the namespace was changed: %v %v", err, mine.Data)
	}
}

func TestTenantDeletionKeepsNamespaces(t *testing.T) {
	startController(t, tenancy.Options{})
	ctx := context.Background()
	tn := createTenant(t, "keep", v1alpha1.TenantSpec{
		Owners:     []v1alpha1.Owner{{Kind: v1alpha1.OwnerUser, Name: "kim"}},
		Namespaces: []string{"keep-1", "keep-2"},
		Resources:  v1alpha1.ResourceDefaults{NetworkIsolation: v1alpha1.NetworkIsolationTenant},
	})
	waitReady(t, "keep")
	data := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "keep-1"}, Data: map[string]string{"k": "v"}}
	if err := admin.Create(ctx, data); err != nil {
		t.Fatal(err)
	}
	if err := admin.Delete(ctx, tn); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := admin.Get(ctx, client.ObjectKey{Name: "keep"}, &v1alpha1.Tenant{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("tenant still there: %v", err)
		}
		return nil
	})
	for _, name := range []string{"keep-1", "keep-2"} {
		ns := namespace(t, name)
		if ns.DeletionTimestamp != nil {
			t.Errorf("namespace %s is being deleted", name)
		}
		if _, ok := ns.Labels[v1alpha1.TenantLabel]; ok {
			t.Errorf("namespace %s still labelled: %v", name, ns.Labels)
		}
		assertNoManaged(t, name, "keep")
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(data), data); err != nil || data.Data["k"] != "v" {
		t.Errorf("the namespace's contents were lost: %v %v", err, data.Data)
	}
	assertNoManaged(t, "", "keep")
}

func TestTenantDeletionPolicyDelete(t *testing.T) {
	startController(t, tenancy.Options{})
	ctx := context.Background()
	tn := createTenant(t, "gone", v1alpha1.TenantSpec{
		Namespaces:     []string{"gone-1", "gone-2"},
		DeletionPolicy: v1alpha1.DeletionDelete,
	})
	waitReady(t, "gone")
	if err := admin.Delete(ctx, tn); err != nil {
		t.Fatal(err)
	}
	// This control plane runs no namespace controller: a deleted namespace
	// stays Terminating, which is what the API server does on delete.
	eventually(t, func() error {
		for _, name := range []string{"gone-1", "gone-2"} {
			ns := &corev1.Namespace{}
			err := admin.Get(ctx, client.ObjectKey{Name: name}, ns)
			if err == nil && ns.DeletionTimestamp == nil {
				return fmt.Errorf("namespace %s not deleted", name)
			}
			if client.IgnoreNotFound(err) != nil {
				return err
			}
		}
		return nil
	})
}

func TestNamespaceRemovedFromSpecIsReleased(t *testing.T) {
	startController(t, tenancy.Options{})
	ctx := context.Background()
	createTenant(t, "shrink", v1alpha1.TenantSpec{
		Owners:     []v1alpha1.Owner{{Kind: v1alpha1.OwnerUser, Name: "sam"}},
		Namespaces: []string{"shrink-1", "shrink-2"},
	})
	waitReady(t, "shrink")
	data := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "shrink-2"}}
	if err := admin.Create(ctx, data); err != nil {
		t.Fatal(err)
	}
	tn := &v1alpha1.Tenant{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "shrink"}, tn); err != nil {
		t.Fatal(err)
	}
	tn.Spec.Namespaces = []string{"shrink-1"}
	if err := admin.Update(ctx, tn); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		tn := waitReady(t, "shrink")
		if !slices.Equal(tn.Status.Namespaces, []string{"shrink-1"}) {
			return fmt.Errorf("status namespaces = %v", tn.Status.Namespaces)
		}
		return nil
	})
	ns := namespace(t, "shrink-2")
	if _, ok := ns.Labels[v1alpha1.TenantLabel]; ok || ns.DeletionTimestamp != nil {
		t.Errorf("released namespace: labels %v, deleted %v", ns.Labels, ns.DeletionTimestamp)
	}
	assertNoManaged(t, "shrink-2", "shrink")
	if err := admin.Get(ctx, client.ObjectKeyFromObject(data), data); err != nil {
		t.Errorf("the released namespace's contents were lost: %v", err)
	}
	if l := namespace(t, "shrink-1").Labels[v1alpha1.TenantLabel]; l != "shrink" {
		t.Errorf("the kept namespace lost its label: %q", l)
	}
}

// TestOwnerCreatedNamespace: a namespace labelled for the tenant that it
// does not list (as the webhook labels an owner's new namespace) belongs
// to it, counts towards its quota and gets its objects.
func TestOwnerCreatedNamespace(t *testing.T) {
	startController(t, tenancy.Options{})
	ctx := context.Background()
	quota := int32(2)
	createTenant(t, "self", v1alpha1.TenantSpec{
		Owners:         []v1alpha1.Owner{{Kind: v1alpha1.OwnerUser, Name: "sue"}},
		Namespaces:     []string{"self-main"},
		NamespaceQuota: &quota,
	})
	waitReady(t, "self")
	// The owner may now create namespaces (the webhook confines the names).
	sue := as(t, "sue")
	eventually(t, func() error {
		return sue.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "self-dev", Labels: map[string]string{v1alpha1.TenantLabel: "self"}}})
	})
	eventually(t, func() error {
		return admin.Get(ctx, client.ObjectKey{Namespace: "self-dev", Name: tenancy.OwnersBinding}, &rbacv1.RoleBinding{})
	})
	eventually(t, func() error { return sue.Create(ctx, deployment("self-dev")) })
	// The status follows the objects (it is written after them).
	tn := waitReady(t, "self")
	eventually(t, func() error {
		if err := admin.Get(ctx, client.ObjectKey{Name: "self"}, tn); err != nil {
			return err
		}
		if !slices.Equal(tn.Status.Namespaces, []string{"self-dev", "self-main"}) {
			return fmt.Errorf("status namespaces = %v", tn.Status.Namespaces)
		}
		return nil
	})
	// Over the quota (an admin labelled one more): reported.
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "self-extra", Labels: map[string]string{v1alpha1.TenantLabel: "self"}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := admin.Get(ctx, client.ObjectKey{Name: "self"}, tn); err != nil {
			return err
		}
		c := meta.FindStatusCondition(tn.Status.Conditions, controller.ConditionNamespacesReady)
		if c == nil || c.Reason != controller.ReasonNamespaceQuota {
			return fmt.Errorf("condition = %+v", c)
		}
		return nil
	})
	// Removing the quota takes the owners' right to create namespaces away.
	tn.Spec.NamespaceQuota = nil
	if err := admin.Update(ctx, tn); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		err := admin.Get(ctx, client.ObjectKey{Name: tenancy.NamespaceCreatorBindingName("self")}, &rbacv1.ClusterRoleBinding{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace creator binding still there: %v", err)
		}
		return nil
	})
}

func TestConflictingTenants(t *testing.T) {
	startController(t, tenancy.Options{})
	ctx := context.Background()
	createTenant(t, "first", v1alpha1.TenantSpec{Namespaces: []string{"shared-ns"}})
	waitReady(t, "first")
	createTenant(t, "second", v1alpha1.TenantSpec{Namespaces: []string{"shared-ns", "second-ns", "kube-system"}})
	tn := &v1alpha1.Tenant{}
	eventually(t, func() error {
		if err := admin.Get(ctx, client.ObjectKey{Name: "second"}, tn); err != nil {
			return err
		}
		c := meta.FindStatusCondition(tn.Status.Conditions, controller.ConditionReady)
		if c == nil || c.Reason != controller.ReasonNamespaceConflict || !strings.Contains(c.Message, `tenant "first"`) {
			return fmt.Errorf("condition = %+v", c)
		}
		return nil
	})
	if c := meta.FindStatusCondition(tn.Status.Conditions, controller.ConditionNamespacesReady); !strings.Contains(c.Message, `namespace "kube-system" is excluded`) {
		t.Errorf("a system namespace listed by a Tenant is not reported: %s", c.Message)
	}
	if l, ok := namespace(t, "kube-system").Labels[v1alpha1.TenantLabel]; ok {
		t.Errorf("kube-system labelled for tenant %q", l)
	}
	if l := namespace(t, "shared-ns").Labels[v1alpha1.TenantLabel]; l != "first" {
		t.Errorf("shared namespace label = %q, want first", l)
	}
	if !slices.Equal(tn.Status.Namespaces, []string{"second-ns"}) {
		t.Errorf("second's namespaces = %v", tn.Status.Namespaces)
	}
}

func TestClaimedHostsCounted(t *testing.T) {
	startController(t, tenancy.Options{})
	ctx := context.Background()
	createTenant(t, "hosts", v1alpha1.TenantSpec{Namespaces: []string{"hosts-1"}})
	waitReady(t, "hosts")
	hc := &v1alpha1.HostClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "host.count.example.com"},
		Spec:       v1alpha1.HostClaimSpec{Host: "count.example.com", Match: v1alpha1.HostMatchExact, Tenant: "hosts", Reserved: true},
	}
	if err := admin.Create(ctx, hc); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		tn := &v1alpha1.Tenant{}
		if err := admin.Get(ctx, client.ObjectKey{Name: "hosts"}, tn); err != nil {
			return err
		}
		if tn.Status.ClaimedHosts != 1 {
			return fmt.Errorf("claimed hosts = %d", tn.Status.ClaimedHosts)
		}
		return nil
	})
}

// assertNoManaged fails if any object managed for tenant is left in ns
// ("" for cluster-scoped ones).
func assertNoManaged(t *testing.T, ns, tenant string) {
	t.Helper()
	sel := client.MatchingLabels{tenancy.ManagedLabel: tenant}
	lists := []client.ObjectList{&rbacv1.ClusterRoleList{}, &rbacv1.ClusterRoleBindingList{}}
	if ns != "" {
		lists = []client.ObjectList{&rbacv1.RoleBindingList{}, &corev1.ResourceQuotaList{}, &corev1.LimitRangeList{}, &networkingv1.NetworkPolicyList{}}
	}
	for _, l := range lists {
		if err := admin.List(context.Background(), l, sel, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if n := meta.LenList(l); n > 0 {
			t.Errorf("%d %T of tenant %s left in %q", n, l, tenant, ns)
		}
	}
}

// TestWebhookDecisionsFromCache runs the namespace and Tenant admission
// decisions over the controller's cache.
func TestWebhookDecisionsFromCache(t *testing.T) {
	c := startController(t, tenancy.Options{}).Client
	ctx := context.Background()
	quota := int32(2)
	createTenant(t, "dec", v1alpha1.TenantSpec{
		Owners:         []v1alpha1.Owner{{Kind: v1alpha1.OwnerUser, Name: "dee"}},
		Namespaces:     []string{"dec-main"},
		NamespaceQuota: &quota,
	})
	waitReady(t, "dec")
	dee := tenancy.User{Name: "dee"}
	d, err := controller.DecideNamespace(ctx, c, dee, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dec-x"}})
	if err != nil || !d.Allowed || d.Tenant != "dec" || d.Patch == nil {
		t.Fatalf("first owner namespace: %+v %v", d, err)
	}
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dec-y", Labels: map[string]string{v1alpha1.TenantLabel: "dec"}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		d, err := controller.DecideNamespace(ctx, c, dee, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dec-z"}})
		if err != nil {
			return err
		}
		if d.Allowed || !strings.Contains(d.Message, "2 of its namespaceQuota of 2") {
			return fmt.Errorf("full quota: %+v", d)
		}
		return nil
	})
	conflicts, err := controller.TenantConflicts(ctx, c, &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "dec2"}, Spec: v1alpha1.TenantSpec{Namespaces: []string{"free-ns", "dec-y"}}})
	if err != nil || len(conflicts) != 1 || conflicts[0].Namespace != "dec-y" || conflicts[0].Tenant != "dec" {
		t.Errorf("conflicts = %+v %v", conflicts, err)
	}
}

// TestRefusalsCounted: refusals reach the Tenant's status, add up across
// flushes and counters (replicas), and start again when the spec changes.
func TestRefusalsCounted(t *testing.T) {
	startController(t, tenancy.Options{})
	ctx := context.Background()
	createTenant(t, "refused", v1alpha1.TenantSpec{Namespaces: []string{"refused-1"}})
	waitReady(t, "refused")
	replicas := []*controller.Refusals{{Client: admin, Reader: admin}, {Client: admin, Reader: admin}}
	replicas[0].Add("refused")
	replicas[0].Add("refused")
	replicas[1].Add("refused")
	replicas[1].Add("no-such-tenant")
	for _, r := range replicas {
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tn := &v1alpha1.Tenant{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "refused"}, tn); err != nil {
		t.Fatal(err)
	}
	if tn.Status.Refusals != 3 || tn.Status.RefusalsSince == nil {
		t.Errorf("refusals = %d since %v, want 3", tn.Status.Refusals, tn.Status.RefusalsSince)
	}
	if err := replicas[0].Flush(ctx); err != nil { // nothing pending: no change
		t.Fatal(err)
	}
	tn.Spec.Namespaces = append(tn.Spec.Namespaces, "refused-2")
	if err := admin.Update(ctx, tn); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		tn := waitReady(t, "refused")
		if tn.Status.Refusals != 0 {
			return fmt.Errorf("refusals = %d after a spec change, want 0", tn.Status.Refusals)
		}
		return nil
	})
}

// TestControllerRulesSuffice runs the controller as a user that holds only
// tenancy.ControllerRules: what the install grants the guard is enough to
// reconcile and release a Tenant that uses every feature.
func TestControllerRulesSuffice(t *testing.T) {
	ctx := context.Background()
	const user = "tenant-controller"
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test-tenant-controller"}, Rules: tenancy.ControllerRules()}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "test-tenant-controller"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	// Wait until the authorizer knows the binding.
	probe, err := client.New(cfg, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error { return probe.List(ctx, &v1alpha1.TenantList{}) })
	_, stop := runController(t, cfg, tenancy.Options{IngressNamespaces: []string{"ingress-nginx"}})
	t.Cleanup(stop)

	quota := int32(3)
	tn := createTenant(t, "rbac", v1alpha1.TenantSpec{
		Owners:         []v1alpha1.Owner{{Kind: v1alpha1.OwnerUser, Name: "rita"}},
		Namespaces:     []string{"rbac-1"},
		NamespaceQuota: &quota,
		Resources: v1alpha1.ResourceDefaults{
			Quota:            &corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("5")}},
			LimitRange:       &corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}},
			NetworkIsolation: v1alpha1.NetworkIsolationTenant,
		},
	})
	waitReady(t, "rbac")
	eventually(t, func() error {
		return admin.Get(ctx, client.ObjectKey{Name: tenancy.NamespaceCreatorBindingName("rbac")}, &rbacv1.ClusterRoleBinding{})
	})
	if err := admin.Delete(ctx, tn); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := admin.Get(ctx, client.ObjectKey{Name: "rbac"}, &v1alpha1.Tenant{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("tenant not released: %v", err)
		}
		return nil
	})
	if _, ok := namespace(t, "rbac-1").Labels[v1alpha1.TenantLabel]; ok {
		t.Error("namespace still labelled")
	}
	assertNoManaged(t, "rbac-1", "rbac")
	assertNoManaged(t, "", "rbac")
}
