// Package controller holds tenantguard's reconcilers. They run in `serve`
// under leader election; each is level-based and idempotent.
package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// ClaimIndex is the field index of host objects by the names of the claims
// of the hosts they use.
const ClaimIndex = "tenantguard.dev/claims"

// HostKind is a kind whose objects use hosts, with a way to list them.
type HostKind struct {
	GVK     schema.GroupVersionKind
	Object  client.Object
	NewList func() client.ObjectList
}

// HostClaimReconciler keeps each HostClaim's list of objects up to date and
// releases the claim once nothing in the owner namespace has used the host
// for GracePeriod. Reserved claims are never released.
type HostClaimReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// Reader reads from the API server: the check before a pending claim
	// is settled needs consistent reads.
	Reader      client.Reader
	Engine      *policy.Engine
	Kinds       []HostKind
	GracePeriod time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// IndexHostObjects registers ClaimIndex on every host kind.
func IndexHostObjects(ctx context.Context, mgr ctrl.Manager, engine *policy.Engine, kinds []HostKind) error {
	for _, k := range kinds {
		err := mgr.GetFieldIndexer().IndexField(ctx, k.Object, ClaimIndex, func(o client.Object) []string {
			uses, _ := engine.HostUses(o, o.GetNamespace())
			names := make([]string, 0, len(uses))
			for _, u := range uses {
				names = append(names, hosts.ClaimName(u.Name))
			}
			return names
		})
		if err != nil {
			return fmt.Errorf("index %s by host: %w", k.GVK.Kind, err)
		}
	}
	return nil
}

// SetupWithManager registers the reconciler: it runs for every claim, and
// for the claims of the hosts an object uses whenever the object changes.
func (r *HostClaimReconciler) SetupWithManager(mgr ctrl.Manager) error {
	// Claims are independent, and settling a new one waits on a check and
	// a write: several workers keep up with the webhook's new hosts.
	b := ctrl.NewControllerManagedBy(mgr).Named("hostclaims").For(&v1alpha1.HostClaim{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4})
	for _, k := range r.Kinds {
		b = b.Watches(k.Object, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			uses, _ := r.Engine.HostUses(o, o.GetNamespace())
			reqs := make([]reconcile.Request, 0, len(uses))
			for _, u := range uses {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: hosts.ClaimName(u.Name)}})
			}
			return reqs
		}))
	}
	return b.Complete(r)
}

// Reconcile brings one claim's status in line with the objects that use
// its host, and releases it when it has been unused for the grace period.
func (r *HostClaimReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	hc := &v1alpha1.HostClaim{}
	if err := r.Client.Get(ctx, req.NamespacedName, hc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	now := r.now()
	objects, err := r.objectsUsing(ctx, hc)
	if err != nil {
		return reconcile.Result{}, err
	}
	if hosts.Pending(hc) {
		if res, done, err := r.settle(ctx, hc, objects, now); done {
			return res, err
		}
	}
	// Claims written by hand, or by an older guard, get the labels the
	// claimer's LIST of the claims below a wildcard selects by.
	if want := hosts.ClaimLabels(hosts.OwnerOf(hc).Name); !hasLabels(hc.Labels, want) {
		// Every update of a claim records its creation revision first.
		if err := hosts.StampCreateRevision(ctx, r.Client, hc); err != nil {
			return lookAgainOnConflict(ctx, err)
		}
		if hc.Labels == nil {
			hc.Labels = map[string]string{}
		}
		maps.Copy(hc.Labels, want)
		if err := r.Client.Update(ctx, hc); err != nil {
			return lookAgainOnConflict(ctx, err)
		}
	}
	// The webhook claims a host before the API server stores the object
	// that uses it: a new claim with no object yet is looked at again once
	// the object had time to appear (its watch event brings it back
	// sooner), instead of being marked unused first. A new host then costs
	// this controller one write, not two.
	if len(objects) == 0 && hc.Status.UnusedSince == nil && hc.Spec.Namespace != "" && !hc.Spec.Reserved {
		if left := min(newClaimWait, r.GracePeriod) - now.Sub(hc.CreationTimestamp.Time); left > 0 {
			return reconcile.Result{RequeueAfter: left}, nil
		}
	}
	status := hc.Status.DeepCopy()
	// Every update of a claim records its creation revision first (see
	// hosts.StampCreateRevision); this one does it in the same write,
	// which is conditional on the resource version read.
	if status.CreateRevision == "" {
		status.CreateRevision = hc.ResourceVersion
	}
	status.Objects = objects
	status.UsedBy = usedBy(objects)
	switch {
	case len(objects) > 0 || hc.Spec.Reserved || hc.Spec.Namespace == "":
		status.UnusedSince = nil
	case status.UnusedSince == nil:
		t := metav1.NewTime(now)
		status.UnusedSince = &t
	}
	if !equalStatus(hc.Status, *status) {
		hc.Status = *status
		if err := r.Client.Status().Update(ctx, hc); err != nil {
			return lookAgainOnConflict(ctx, err)
		}
	}
	if status.UnusedSince == nil {
		return reconcile.Result{}, nil
	}
	if left := r.GracePeriod - now.Sub(status.UnusedSince.Time); left > 0 {
		return reconcile.Result{RequeueAfter: left}, nil
	}
	return r.release(ctx, hc, "unused since "+status.UnusedSince.Time.Format(time.RFC3339))
}

// settle decides what becomes of a pending claim. The webhook leaves the
// claims it makes pending, and this controller settles them once the
// object that uses the host exists, after the same check their creator
// made: a claim its creator is about to withdraw (it loses to an older
// overlapping claim of another owner) is never settled. One with no object
// by the end of the grace period, or one that loses that check, is
// released then (a replica that stopped half way through a request left
// it). done is false when the claim passed, and the caller's status write
// settles it.
func (r *HostClaimReconciler) settle(ctx context.Context, hc *v1alpha1.HostClaim, objects []v1alpha1.ObjectReference, now time.Time) (res reconcile.Result, done bool, err error) {
	left := r.GracePeriod - now.Sub(hc.CreationTimestamp.Time)
	if len(objects) == 0 {
		if left > 0 {
			// Its object has not appeared yet; the object's watch event
			// brings the claim back sooner.
			return reconcile.Result{RequeueAfter: left}, true, nil
		}
		res, err := r.release(ctx, hc, "pending claim never used")
		return res, true, err
	}
	if r.Reader == nil {
		return reconcile.Result{}, true, errors.New("the host claim controller needs an API reader to check pending claims")
	}
	err = hosts.Verify(ctx, r.Reader, hc)
	switch {
	case err == nil:
		return reconcile.Result{}, false, nil
	case !hosts.IsConflict(err):
		return reconcile.Result{}, true, err
	case left > 0:
		// Its creator withdraws it.
		return reconcile.Result{RequeueAfter: left}, true, nil
	}
	res, err = r.release(ctx, hc, "pending claim loses to an older overlapping one ("+err.Error()+")")
	return res, true, err
}

// newClaimWait is how long a new claim may have no object before it is
// marked unused (the grace period then runs from that mark).
const newClaimWait = 10 * time.Second

// lookAgainOnConflict treats an update conflict (the claim changed since the
// cache read it) as the ordinary event it is: look again, log at debug.
func lookAgainOnConflict(ctx context.Context, err error) (reconcile.Result, error) {
	switch {
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, nil
	case apierrors.IsConflict(err):
		log.FromContext(ctx).V(1).Info("claim changed while reconciling; looking again", "error", err.Error())
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	return reconcile.Result{}, err
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// release deletes the claim as read: if something changed it since, the
// preconditions fail and it is looked at again.
func (r *HostClaimReconciler) release(ctx context.Context, hc *v1alpha1.HostClaim, why string) (reconcile.Result, error) {
	uid, rv := hc.UID, hc.ResourceVersion
	err := r.Client.Delete(ctx, hc, client.Preconditions{UID: &uid, ResourceVersion: &rv})
	if err != nil && !apierrors.IsNotFound(err) {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, err
	}
	log.FromContext(ctx).Info("released host", "host", hc.Spec.Host, "namespace", hc.Spec.Namespace, "why", why)
	return reconcile.Result{}, nil
}

// objectsUsing lists the objects in the owner namespace that use the host.
func (r *HostClaimReconciler) objectsUsing(ctx context.Context, hc *v1alpha1.HostClaim) ([]v1alpha1.ObjectReference, error) {
	if hc.Spec.Namespace == "" {
		return nil, nil
	}
	var out []v1alpha1.ObjectReference
	for _, k := range r.Kinds {
		list := k.NewList()
		if err := r.Client.List(ctx, list, client.InNamespace(hc.Spec.Namespace), client.MatchingFields{ClaimIndex: hc.Name}); err != nil {
			return nil, fmt.Errorf("list %s using %s: %w", k.GVK.Kind, hc.Spec.Host, err)
		}
		items, err := metaItems(list)
		if err != nil {
			return nil, err
		}
		for _, o := range items {
			out = append(out, v1alpha1.ObjectReference{Group: k.GVK.Group, Kind: k.GVK.Kind, Name: o.GetName()})
		}
	}
	slices.SortFunc(out, func(a, b v1alpha1.ObjectReference) int {
		if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}

func (r *HostClaimReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func equalStatus(a, b v1alpha1.HostClaimStatus) bool {
	if a.CreateRevision != b.CreateRevision || a.UsedBy != b.UsedBy || !slices.Equal(a.Objects, b.Objects) {
		return false
	}
	if (a.UnusedSince == nil) != (b.UnusedSince == nil) {
		return false
	}
	return a.UnusedSince == nil || a.UnusedSince.Equal(b.UnusedSince)
}

// usedBy summarises objects for a printer column: kind/name of the first
// five, and how many more.
func usedBy(objects []v1alpha1.ObjectReference) string {
	const shown = 5
	var parts []string
	for i, o := range objects {
		if i == shown {
			parts = append(parts, fmt.Sprintf("and %d more", len(objects)-shown))
			break
		}
		parts = append(parts, o.Kind+"/"+o.Name)
	}
	return strings.Join(parts, ", ")
}
