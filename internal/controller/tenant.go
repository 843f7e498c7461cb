package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/tenancy"
)

// defaultClaimCountDelay batches the claim events of one tenant into one
// look. The count is for people (kubectl get tenants), so a minute's lag
// is worth it: a tenant whose hosts come one at a time would otherwise cost
// a status write per host, and each competes with the tenants' own writes.
const defaultClaimCountDelay = time.Minute

// Field indexes of the tenant controller.
const (
	tenantNamespacesIndex = "tenantguard.dev/tenant-namespaces" // Tenants by spec.namespaces
	namespaceTenantIndex  = "tenantguard.dev/namespace-tenant"  // Namespaces by tenant label
	managedForIndex       = "tenantguard.dev/managed-for"       // managed objects by tenant
	claimTenantIndex      = "tenantguard.dev/claim-tenant"      // HostClaims by spec.tenant
)

// Condition types and reasons of a Tenant.
const (
	ConditionReady            = "Ready"
	ConditionNamespacesReady  = "NamespacesReady"
	ConditionObjectsApplied   = "ObjectsApplied"
	ReasonReconciled          = "Reconciled"
	ReasonNamespaceConflict   = "NamespaceConflict"
	ReasonNamespaceQuota      = "NamespaceQuotaExceeded"
	ReasonNamespaceTerminated = "NamespaceTerminating"
	ReasonApplyFailed         = "ApplyFailed"
)

// managedKind is a kind of object the controller makes for tenants.
type managedKind struct {
	obj     client.Object
	newList func() client.ObjectList
}

var managedKinds = []managedKind{
	{&rbacv1.RoleBinding{}, func() client.ObjectList { return &rbacv1.RoleBindingList{} }},
	{&corev1.ResourceQuota{}, func() client.ObjectList { return &corev1.ResourceQuotaList{} }},
	{&corev1.LimitRange{}, func() client.ObjectList { return &corev1.LimitRangeList{} }},
	{&networkingv1.NetworkPolicy{}, func() client.ObjectList { return &networkingv1.NetworkPolicyList{} }},
	{&rbacv1.ClusterRole{}, func() client.ObjectList { return &rbacv1.ClusterRoleList{} }},
	{&rbacv1.ClusterRoleBinding{}, func() client.ObjectList { return &rbacv1.ClusterRoleBindingList{} }},
}

// ManagedObjects are the kinds the tenant controller manages; every object
// it makes carries tenancy.ManagedLabel. A manager may restrict its cache
// of these kinds to that label (cache.Options.ByObject) to hold only them.
func ManagedObjects() []client.Object {
	out := make([]client.Object, len(managedKinds))
	for i, k := range managedKinds {
		out[i] = k.obj
	}
	return out
}

// TenantReconciler makes each Tenant's namespaces, owners' bindings,
// quotas, limit ranges and network policies match its spec, and releases
// them, keeping the namespaces, when they leave the tenant.
type TenantReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// Reader reads from the API server; used only when the cache is behind.
	Reader   client.Reader
	Recorder events.EventRecorder
	Options  tenancy.Options
	// Workers is how many Tenants are reconciled at once (default 4); one
	// Tenant is never reconciled by two workers.
	Workers int
	// ClaimCountDelay is how long claim events wait before the tenant's
	// claimedHosts is counted again (default one minute); the events of
	// that time share one status write.
	ClaimCountDelay time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// IndexTenants registers the cache indexes the tenant controller and the
// admission decisions read. Call it once, on the manager whose cache they
// share, before that cache starts.
func IndexTenants(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &v1alpha1.Tenant{}, tenantNamespacesIndex, func(o client.Object) []string {
		return o.(*v1alpha1.Tenant).Spec.Namespaces
	}); err != nil {
		return fmt.Errorf("index tenants by namespace: %w", err)
	}
	if err := idx.IndexField(ctx, &corev1.Namespace{}, namespaceTenantIndex, labelIndex(v1alpha1.TenantLabel)); err != nil {
		return fmt.Errorf("index namespaces by tenant: %w", err)
	}
	if err := idx.IndexField(ctx, &v1alpha1.HostClaim{}, claimTenantIndex, func(o client.Object) []string {
		if t := o.(*v1alpha1.HostClaim).Spec.Tenant; t != "" {
			return []string{t}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index host claims by tenant: %w", err)
	}
	for _, k := range managedKinds {
		if err := idx.IndexField(ctx, k.obj, managedForIndex, labelIndex(tenancy.ManagedLabel)); err != nil {
			return fmt.Errorf("index %T by tenant: %w", k.obj, err)
		}
	}
	return nil
}

// SetupWithManager registers the controller (IndexTenants must have run on
// the cache it reads): it runs for every Tenant, and for a Tenant whenever
// one of its namespaces, managed objects or host claims changes.
func (r *TenantReconciler) SetupWithManager(mgr ctrl.Manager) error {
	workers := r.Workers
	if workers <= 0 {
		workers = 4
	}
	// A Tenant is looked at again when its spec, labels or annotations
	// change, not when its status does: the status is this controller's
	// own output (and the audit's and the refusal counter's), and reacting
	// to it would write it again at every claim.
	changed := predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{})
	b := ctrl.NewControllerManagedBy(mgr).Named("tenants").For(&v1alpha1.Tenant{}, builder.WithPredicates(changed)).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers})
	for _, k := range managedKinds {
		b = b.Watches(k.obj, handler.EnqueueRequestsFromMapFunc(byLabel(tenancy.ManagedLabel)))
	}
	b = b.Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.namespaceTenants))
	// A claim changes the count only when it comes or goes. The tenant is
	// looked at later, so that the new hosts of that time cost one status
	// write per tenant, not one per host.
	delay := r.ClaimCountDelay
	if delay == 0 {
		delay = defaultClaimCountDelay
	}
	enqueue := func(o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if t := o.(*v1alpha1.HostClaim).Spec.Tenant; t != "" {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: t}}, delay)
		}
	}
	b = b.Watches(&v1alpha1.HostClaim{}, handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(e.Object, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if e.ObjectOld.(*v1alpha1.HostClaim).Spec.Tenant != e.ObjectNew.(*v1alpha1.HostClaim).Spec.Tenant {
				enqueue(e.ObjectOld, q)
				enqueue(e.ObjectNew, q)
			}
		},
	})
	return b.Complete(r)
}

func labelIndex(key string) client.IndexerFunc {
	return func(o client.Object) []string {
		if v := o.GetLabels()[key]; v != "" {
			return []string{v}
		}
		return nil
	}
}

func byLabel(key string) handler.MapFunc {
	return func(_ context.Context, o client.Object) []reconcile.Request {
		if v := o.GetLabels()[key]; v != "" {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: v}}}
		}
		return nil
	}
}

// namespaceTenants are the Tenants a namespace concerns: the one its label
// names and those that list it.
func (r *TenantReconciler) namespaceTenants(ctx context.Context, o client.Object) []reconcile.Request {
	reqs := byLabel(v1alpha1.TenantLabel)(ctx, o)
	var list v1alpha1.TenantList
	if err := r.Client.List(ctx, &list, client.MatchingFields{tenantNamespacesIndex: o.GetName()}); err != nil {
		return reqs
	}
	for _, t := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: t.Name}})
	}
	return reqs
}

// Reconcile makes one Tenant's namespaces and objects match its spec, or
// releases them when the Tenant is being deleted.
func (r *TenantReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	t := &v1alpha1.Tenant{}
	if err := r.Client.Get(ctx, req.NamespacedName, t); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		// Gone without its finalizer (removed by hand): remove what was
		// made for it, but leave namespace labels alone, since unlabelling
		// a namespace takes it out of the guard's tenant rules.
		s := &tenantSync{r: r, tenant: &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: req.Name}}}
		return reconcile.Result{}, s.prune(ctx, nil)
	}
	s := &tenantSync{r: r, tenant: t}
	if t.DeletionTimestamp != nil {
		return s.finalize(ctx)
	}
	if !controllerutil.ContainsFinalizer(t, tenancy.Finalizer) {
		controllerutil.AddFinalizer(t, tenancy.Finalizer)
		if err := r.Client.Update(ctx, t); err != nil {
			return requeueOnConflict(fmt.Errorf("add finalizer to tenant %q: %w", t.Name, err))
		}
	}
	return s.run(ctx)
}

// tenantSync is one reconciliation of one Tenant.
type tenantSync struct {
	r       *TenantReconciler
	tenant  *v1alpha1.Tenant
	changes []string           // what this pass changed, for the event
	all     []*v1alpha1.Tenant // every Tenant, read when first needed
}

func (s *tenantSync) changed(format string, args ...any) {
	s.changes = append(s.changes, fmt.Sprintf(format, args...))
}

func (s *tenantSync) run(ctx context.Context) (reconcile.Result, error) {
	t := s.tenant
	labelled, err := s.labelled(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}

	var (
		active      []string // namespaces that get the tenant's objects
		conflicts   []string
		terminating []string
		errs        []error
	)
	for _, name := range t.Spec.Namespaces {
		if s.r.Options.IsExcluded(name) {
			conflicts = append(conflicts, fmt.Sprintf("namespace %q is excluded from the guard (a system namespace or the guard's own) and cannot belong to a tenant", name))
			continue
		}
		ns := labelled[name]
		if ns == nil {
			ns = &corev1.Namespace{}
			if err := s.r.Client.Get(ctx, client.ObjectKey{Name: name}, ns); apierrors.IsNotFound(err) {
				ns = nil
			} else if err != nil {
				return reconcile.Result{}, fmt.Errorf("get namespace %q: %w", name, err)
			}
		}
		label := ""
		if ns != nil {
			label = ns.Labels[v1alpha1.TenantLabel]
		}
		if label != t.Name {
			holder, err := s.holder(ctx, name, label)
			if err != nil {
				return reconcile.Result{}, err
			}
			if holder != t.Name {
				conflicts = append(conflicts, fmt.Sprintf("namespace %q belongs to tenant %q", name, holder))
				continue
			}
		}
		if ns != nil && ns.DeletionTimestamp != nil {
			// Its deletion event brings us back to create it again.
			terminating = append(terminating, name)
			continue
		}
		if err := s.ensureNamespace(ctx, name, ns); err != nil {
			errs = append(errs, err)
			continue
		}
		active = append(active, name)
	}
	for name, ns := range labelled {
		if slices.Contains(t.Spec.Namespaces, name) || ns.DeletionTimestamp != nil || s.r.Options.IsExcluded(name) {
			continue
		}
		if ns.Annotations[tenancy.ListedAnnotation] != "" {
			// Removed from the spec: release it, keep it.
			if err := s.releaseNamespace(ctx, ns); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		active = append(active, name) // created by an owner
	}
	slices.Sort(active)

	desired := tenancy.ClusterObjects(t)
	for _, ns := range active {
		desired = append(desired, tenancy.NamespaceObjects(t, ns, s.r.Options)...)
	}
	for _, obj := range desired {
		if err := s.apply(ctx, obj); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.prune(ctx, desired); err != nil {
		errs = append(errs, err)
	}

	claims, err := s.claimedHosts(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	s.event()
	res, err := s.updateStatus(ctx, active, conflicts, terminating, claims, errors.Join(errs...))
	if err != nil {
		return res, err
	}
	if len(errs) > 0 {
		return reconcile.Result{}, errors.Join(errs...)
	}
	return res, nil
}

// holder is the tenant that has a namespace the tenant lists but which is
// not labelled for it. All Tenants are read only then: in the steady state
// every listed namespace carries the label.
func (s *tenantSync) holder(ctx context.Context, ns, label string) (string, error) {
	if s.all == nil {
		all, err := listTenants(ctx, s.r.Client)
		if err != nil {
			return "", err
		}
		s.all = all
	}
	return tenancy.Holder(ns, label, s.all), nil
}

// labelled are the existing namespaces labelled for the tenant, by name.
func (s *tenantSync) labelled(ctx context.Context) (map[string]*corev1.Namespace, error) {
	var list corev1.NamespaceList
	if err := s.r.Client.List(ctx, &list, client.MatchingFields{namespaceTenantIndex: s.tenant.Name}); err != nil {
		return nil, fmt.Errorf("list namespaces of tenant %q: %w", s.tenant.Name, err)
	}
	out := make(map[string]*corev1.Namespace, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// ensureNamespace creates a listed namespace, or labels it for the tenant.
func (s *tenantSync) ensureNamespace(ctx context.Context, name string, ns *corev1.Namespace) error {
	t := s.tenant.Name
	if ns == nil {
		ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{v1alpha1.TenantLabel: t},
			Annotations: map[string]string{tenancy.ListedAnnotation: "true"},
		}}
		err := s.r.Client.Create(ctx, ns)
		if apierrors.IsAlreadyExists(err) {
			return nil // the cache is behind; its event brings us back
		}
		if err != nil {
			return fmt.Errorf("create namespace %q: %w", name, err)
		}
		s.changed("created namespace %s", name)
		return nil
	}
	if ns.Labels[v1alpha1.TenantLabel] == t && ns.Annotations[tenancy.ListedAnnotation] != "" {
		return nil
	}
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q},"annotations":{%q:"true"}}}`, v1alpha1.TenantLabel, t, tenancy.ListedAnnotation)
	if err := s.r.Client.Patch(ctx, ns, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("label namespace %q for tenant %q: %w", name, t, err)
	}
	s.changed("labelled namespace %s", name)
	return nil
}

// releaseNamespace takes a namespace out of the tenant and keeps it with
// everything in it. The tenant's objects in it are pruned separately.
func (s *tenantSync) releaseNamespace(ctx context.Context, ns *corev1.Namespace) error {
	if ns.Labels[v1alpha1.TenantLabel] != s.tenant.Name {
		return nil
	}
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:null},"annotations":{%q:null}}}`, v1alpha1.TenantLabel, tenancy.ListedAnnotation)
	if err := s.r.Client.Patch(ctx, ns, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("release namespace %q: %w", ns.Name, err))
	}
	s.changed("released namespace %s (kept)", ns.Name)
	return nil
}

// apply creates obj, or updates the object of its name to match it. An
// object of that name that the tenant does not manage is left alone.
func (s *tenantSync) apply(ctx context.Context, want client.Object) error {
	have := want.DeepCopyObject().(client.Object)
	key := client.ObjectKeyFromObject(want)
	what := describe(want)
	err := s.r.Client.Get(ctx, key, have)
	if apierrors.IsNotFound(err) {
		err = s.r.Client.Create(ctx, want.DeepCopyObject().(client.Object))
		if apierrors.IsAlreadyExists(err) {
			// The cache is behind, or filters out an object we do not manage.
			if err := s.r.Reader.Get(ctx, key, have); err != nil {
				return fmt.Errorf("read %s: %w", what, err)
			}
			if have.GetLabels()[tenancy.ManagedLabel] != s.tenant.Name {
				return fmt.Errorf("%s exists and is not managed for tenant %q; it is left alone: delete or rename it", what, s.tenant.Name)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", what, err)
		}
		s.changed("created %s", what)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	if have.GetLabels()[tenancy.ManagedLabel] != s.tenant.Name {
		return fmt.Errorf("%s exists and is not managed for tenant %q; it is left alone: delete or rename it", what, s.tenant.Name)
	}
	same, recreate := sameContent(have, want)
	labels := have.GetLabels()
	for k, v := range want.GetLabels() {
		if labels[k] != v {
			labels[k] = v
			same = false
		}
	}
	if same {
		return nil
	}
	if recreate {
		uid := have.GetUID()
		if err := s.r.Client.Delete(ctx, have, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("replace %s: %w", what, err)
		}
		if err := s.r.Client.Create(ctx, want.DeepCopyObject().(client.Object)); err != nil {
			return fmt.Errorf("replace %s: %w", what, err)
		}
		s.changed("replaced %s", what)
		return nil
	}
	have.SetLabels(labels)
	if err := s.r.Client.Update(ctx, have); err != nil {
		return fmt.Errorf("update %s: %w", what, err)
	}
	s.changed("restored %s", what)
	return nil
}

// sameContent reports whether have already says what want says, copying
// want's content into have when not. recreate is set when the difference
// is in an immutable field (a binding's role).
func sameContent(have, want client.Object) (same, recreate bool) {
	eq := equality.Semantic.DeepEqual
	switch h := have.(type) {
	case *rbacv1.RoleBinding:
		w := want.(*rbacv1.RoleBinding)
		if !eq(h.RoleRef, w.RoleRef) {
			return false, true
		}
		same = eq(h.Subjects, w.Subjects)
		h.Subjects = w.Subjects
	case *rbacv1.ClusterRoleBinding:
		w := want.(*rbacv1.ClusterRoleBinding)
		if !eq(h.RoleRef, w.RoleRef) {
			return false, true
		}
		same = eq(h.Subjects, w.Subjects)
		h.Subjects = w.Subjects
	case *rbacv1.ClusterRole:
		w := want.(*rbacv1.ClusterRole)
		same = eq(h.Rules, w.Rules)
		h.Rules = w.Rules
	case *corev1.ResourceQuota:
		w := want.(*corev1.ResourceQuota)
		same = eq(h.Spec, w.Spec)
		h.Spec = w.Spec
	case *corev1.LimitRange:
		w := want.(*corev1.LimitRange)
		same = eq(h.Spec, w.Spec)
		h.Spec = w.Spec
	case *networkingv1.NetworkPolicy:
		w := want.(*networkingv1.NetworkPolicy)
		same = eq(h.Spec, w.Spec)
		h.Spec = w.Spec
	default:
		panic(fmt.Sprintf("tenant controller: unmanaged kind %T", have)) // a programming error, not input
	}
	return same, false
}

// prune deletes the objects managed for the tenant that are not in keep.
func (s *tenantSync) prune(ctx context.Context, keep []client.Object) error {
	kept := make(map[string]bool, len(keep))
	for _, o := range keep {
		kept[describe(o)] = true
	}
	var errs []error
	for _, k := range managedKinds {
		list := k.newList()
		if err := s.r.Client.List(ctx, list, client.MatchingFields{managedForIndex: s.tenant.Name}); err != nil {
			errs = append(errs, fmt.Errorf("list %T of tenant %q: %w", k.obj, s.tenant.Name, err))
			continue
		}
		err := meta.EachListItem(list, func(o runtime.Object) error {
			obj := o.(client.Object)
			if kept[describe(obj)] || obj.GetLabels()[tenancy.ManagedLabel] != s.tenant.Name {
				return nil
			}
			uid := obj.GetUID()
			if err := s.r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete %s: %w", describe(obj), err)
			}
			s.changed("deleted %s", describe(obj))
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// finalize releases a deleted Tenant's namespaces (deletes them under
// deletionPolicy Delete), removes what was made for it, then lets it go.
// Its host claims are left to the claim controller, which releases them
// after the grace period once nothing uses their hosts, so a Tenant
// deleted and created again keeps its hosts.
func (s *tenantSync) finalize(ctx context.Context) (reconcile.Result, error) {
	t := s.tenant
	if !controllerutil.ContainsFinalizer(t, tenancy.Finalizer) {
		return reconcile.Result{}, nil
	}
	labelled, err := s.labelled(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	var errs []error
	if err := s.prune(ctx, nil); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range labelled {
		if t.Spec.DeletionPolicy == v1alpha1.DeletionDelete {
			if ns.DeletionTimestamp != nil {
				continue
			}
			uid := ns.UID
			if err := s.r.Client.Delete(ctx, ns, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("delete namespace %q: %w", ns.Name, err))
				continue
			}
			s.changed("deleted namespace %s (deletionPolicy Delete)", ns.Name)
			continue
		}
		if err := s.releaseNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	s.event()
	if len(errs) > 0 {
		return reconcile.Result{}, errors.Join(errs...)
	}
	controllerutil.RemoveFinalizer(t, tenancy.Finalizer)
	if err := s.r.Client.Update(ctx, t); err != nil {
		return requeueOnConflict(client.IgnoreNotFound(fmt.Errorf("remove finalizer of tenant %q: %w", t.Name, err)))
	}
	return reconcile.Result{}, nil
}

// claimedHosts counts the tenant's host claims.
func (s *tenantSync) claimedHosts(ctx context.Context) (int32, error) {
	var list v1alpha1.HostClaimList
	if err := s.r.Client.List(ctx, &list, client.MatchingFields{claimTenantIndex: s.tenant.Name}); err != nil {
		return 0, fmt.Errorf("list host claims of tenant %q: %w", s.tenant.Name, err)
	}
	return int32(len(list.Items)), nil
}

// event records what this pass changed, in one Event on the Tenant.
func (s *tenantSync) event() {
	if len(s.changes) == 0 || s.r.Recorder == nil {
		return
	}
	note := strings.Join(s.changes, "; ")
	if len(note) > 1000 { // the Events API limit is 1kB
		note = note[:990] + " ..."
	}
	s.r.Recorder.Eventf(s.tenant, nil, corev1.EventTypeNormal, "Reconciled", "Reconcile", "%s", note)
}

// updateStatus writes the status when it changed; an unchanged tenant
// costs no request.
func (s *tenantSync) updateStatus(ctx context.Context, active, conflicts, terminating []string, claims int32, applyErr error) (reconcile.Result, error) {
	t := s.tenant
	st := t.Status.DeepCopy()
	now := metav1.NewTime(s.r.now())
	if st.ObservedGeneration != t.Generation {
		st.ObservedGeneration = t.Generation
		st.Refusals = 0
		st.RefusalsSince = &now
	}
	st.Namespaces = active
	st.NamespaceCount = int32(len(active))
	st.ClaimedHosts = claims

	nsCond := metav1.Condition{Type: ConditionNamespacesReady, Status: metav1.ConditionTrue, Reason: ReasonReconciled,
		Message: fmt.Sprintf("%d namespaces", len(active))}
	switch q := t.Spec.NamespaceQuota; {
	case len(conflicts) > 0:
		nsCond.Status, nsCond.Reason = metav1.ConditionFalse, ReasonNamespaceConflict
		nsCond.Message = strings.Join(conflicts, "; ") + "; the tenant does not manage them"
	case len(terminating) > 0:
		nsCond.Status, nsCond.Reason = metav1.ConditionFalse, ReasonNamespaceTerminated
		nsCond.Message = fmt.Sprintf("namespaces %s are being deleted; they are created again once gone", strings.Join(terminating, ", "))
	case q != nil && len(active) > int(*q) && len(active) > len(t.Spec.Namespaces):
		nsCond.Status, nsCond.Reason = metav1.ConditionFalse, ReasonNamespaceQuota
		nsCond.Message = fmt.Sprintf("%d namespaces, more than the namespaceQuota of %d; owners cannot create more", len(active), *q)
	}
	objCond := metav1.Condition{Type: ConditionObjectsApplied, Status: metav1.ConditionTrue, Reason: ReasonReconciled,
		Message: "bindings, quotas, limit ranges and network policies match the spec"}
	if applyErr != nil {
		objCond.Status, objCond.Reason, objCond.Message = metav1.ConditionFalse, ReasonApplyFailed, truncate(applyErr.Error(), 2000)
	}
	ready := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonReconciled, Message: "the tenant matches its spec"}
	for _, c := range []metav1.Condition{nsCond, objCond} {
		if c.Status != metav1.ConditionTrue {
			ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, c.Reason, c.Message
			break
		}
	}
	for _, c := range []metav1.Condition{ready, nsCond, objCond} {
		c.ObservedGeneration = t.Generation
		meta.SetStatusCondition(&st.Conditions, c)
	}
	if equality.Semantic.DeepEqual(&t.Status, st) {
		return reconcile.Result{}, nil
	}
	t.Status = *st
	if err := s.r.Client.Status().Update(ctx, t); err != nil {
		return requeueOnConflict(client.IgnoreNotFound(fmt.Errorf("update status of tenant %q: %w", t.Name, err)))
	}
	return reconcile.Result{}, nil
}

func (r *TenantReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// requeueOnConflict turns a write conflict (the cache was behind) into a
// quiet retry; the event of the newer version brings the Tenant back too.
// Other errors are returned for the controller's backoff.
func requeueOnConflict(err error) (reconcile.Result, error) {
	if apierrors.IsConflict(err) {
		return reconcile.Result{RequeueAfter: 200 * time.Millisecond}, nil
	}
	return reconcile.Result{}, err
}

func describe(o client.Object) string {
	kind := fmt.Sprintf("%T", o)
	kind = kind[strings.LastIndex(kind, ".")+1:]
	if o.GetNamespace() == "" {
		return kind + " " + o.GetName()
	}
	return kind + " " + o.GetNamespace() + "/" + o.GetName()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-4] + " ..."
}

// DecideNamespace is tenancy.DecideNamespace over a cache with the
// IndexTenants indexes, for the namespace webhook: a namespace created by
// u, who is not a cluster admin. The serving manager's cache runs on every
// replica, leader or not.
func DecideNamespace(ctx context.Context, c client.Reader, u tenancy.User, ns *corev1.Namespace) (tenancy.NamespaceDecision, error) {
	all, err := listTenants(ctx, c)
	if err != nil {
		return tenancy.NamespaceDecision{}, err
	}
	var listErr error
	labelled := func(tenant string) []string {
		var list corev1.NamespaceList
		if err := c.List(ctx, &list, client.MatchingFields{namespaceTenantIndex: tenant}); err != nil {
			listErr = err
			return nil
		}
		names := make([]string, 0, len(list.Items))
		for _, n := range list.Items {
			if n.Name != ns.Name {
				names = append(names, n.Name)
			}
		}
		return names
	}
	d := tenancy.DecideNamespace(u, ns.Name, ns.Labels, all, labelled)
	if listErr != nil {
		return tenancy.NamespaceDecision{}, fmt.Errorf("list namespaces by tenant: %w", listErr)
	}
	return d, nil
}

// TenantConflicts is tenancy.Conflicts over a cache, for the Tenant
// webhook: the namespaces t lists that belong to another tenant.
func TenantConflicts(ctx context.Context, c client.Reader, t *v1alpha1.Tenant) ([]tenancy.Conflict, error) {
	all, err := listTenants(ctx, c)
	if err != nil {
		return nil, err
	}
	var getErr error
	labelOf := func(name string) string {
		ns := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, ns); client.IgnoreNotFound(err) != nil {
			getErr = err
		}
		return ns.Labels[v1alpha1.TenantLabel]
	}
	out := tenancy.Conflicts(t, all, labelOf)
	if getErr != nil {
		return nil, fmt.Errorf("read namespace: %w", getErr)
	}
	return out, nil
}

func listTenants(ctx context.Context, c client.Reader) ([]*v1alpha1.Tenant, error) {
	var list v1alpha1.TenantList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	all := make([]*v1alpha1.Tenant, len(list.Items))
	for i := range list.Items {
		all[i] = &list.Items[i]
	}
	return all, nil
}
