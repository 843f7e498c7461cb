package controller

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// Adopter claims the hosts of objects that have none: on the guard's first
// start in a cluster that already serves Ingresses and routes, and for
// objects admitted while the guard was not asked (an excluded window, a
// webhook outage with failurePolicy Ignore). It goes oldest object first,
// so the host goes to whoever served it first, and it never refuses or
// changes an object: a conflict is logged, recorded as an Event on the
// object, and left to `tenantguard audit`.
type Adopter struct {
	// Client reads from the manager's cache.
	Client  client.Client
	Claimer *hosts.Claimer
	Engine  *policy.Engine
	View    *policy.Snapshot
	Kinds   []HostKind
	// Interval between passes (a minute when zero).
	Interval time.Duration
	// WaitSynced blocks until View reflects the cluster.
	WaitSynced func(context.Context) error
	Recorder   events.EventRecorder
}

// NeedLeaderElection makes the adopter run on the leader only.
func (a *Adopter) NeedLeaderElection() bool { return true }

// Start runs passes until ctx ends.
func (a *Adopter) Start(ctx context.Context) error {
	if err := a.WaitSynced(ctx); err != nil {
		return nil
	}
	interval := a.Interval
	if interval == 0 {
		interval = time.Minute
	}
	for {
		if err := a.Pass(ctx); err != nil && ctx.Err() == nil {
			log.FromContext(ctx).Error(err, "adopt existing hosts")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// hostObject is one object that uses hosts.
type hostObject struct {
	kind HostKind
	obj  client.Object
}

// Pass claims the unclaimed hosts of every object, oldest first.
func (a *Adopter) Pass(ctx context.Context) error {
	var objects []hostObject
	for _, k := range a.Kinds {
		list := k.NewList()
		if err := a.Client.List(ctx, list); err != nil {
			return fmt.Errorf("list %s: %w", k.GVK.Kind, err)
		}
		items, err := metaItems(list)
		if err != nil {
			return err
		}
		for _, o := range items {
			objects = append(objects, hostObject{kind: k, obj: o})
		}
	}
	slices.SortFunc(objects, func(x, y hostObject) int {
		if c := x.obj.GetCreationTimestamp().Compare(y.obj.GetCreationTimestamp().Time); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(x.obj.GetNamespace(), y.obj.GetNamespace()), cmp.Compare(x.obj.GetName(), y.obj.GetName()))
	})
	for _, ho := range objects {
		ns := ho.obj.GetNamespace()
		// Excluded namespaces are not asked by the webhook, but their hosts
		// are theirs all the same: the adopter claims them.
		if ho.obj.GetDeletionTimestamp() != nil {
			continue
		}
		uses, _ := a.Engine.HostUses(ho.obj, ns)
		owner := hosts.Owner{Namespace: ns}
		if t := a.View.TenantOf(ns); t != nil {
			owner.Tenant = t.Name
			if t.Spec.Ingress.HostOwnership == v1alpha1.HostOwnershipObject {
				owner.Object = &v1alpha1.ObjectReference{Group: ho.kind.GVK.Group, Kind: ho.kind.GVK.Kind, Name: ho.obj.GetName()}
			}
		}
		for _, u := range uses {
			if o, ok := a.View.Hosts().Owner(u.Name); ok && o.Namespace == ns {
				continue
			}
			if a.conflicting(u.Name, owner) {
				a.reportConflict(ctx, ho, u.Name)
				continue
			}
			if _, err := a.Claimer.Claim(ctx, []hosts.Name{u.Name}, owner); err != nil {
				if hosts.IsConflict(err) {
					a.reportConflict(ctx, ho, u.Name)
					continue
				}
				return err
			}
			o := owner
			o.Name = u.Name
			a.View.Hosts().SetOwner(o)
			log.FromContext(ctx).Info("claimed host of an existing object", "host", u.Name.String(), "namespace", ns, "kind", ho.kind.GVK.Kind, "name", ho.obj.GetName())
		}
	}
	return nil
}

func (a *Adopter) conflicting(n hosts.Name, owner hosts.Owner) bool {
	inTheWay := func(o hosts.Owner) bool {
		if o.Namespace == "" && o.Tenant != "" && o.Tenant == owner.Tenant && o.Name == n {
			return false // a reservation for exactly this name: the claim binds it
		}
		return hosts.Conflicts(o, owner)
	}
	return len(a.View.Hosts().Overlapping(n, 1, inTheWay)) > 0
}

func (a *Adopter) reportConflict(ctx context.Context, ho hostObject, n hosts.Name) {
	log.FromContext(ctx).Info("host already owned elsewhere; left to the audit", "host", n.String(),
		"namespace", ho.obj.GetNamespace(), "kind", ho.kind.GVK.Kind, "name", ho.obj.GetName())
	if a.Recorder != nil {
		a.Recorder.Eventf(ho.obj, nil, corev1.EventTypeWarning, "HostConflict", "ClaimHost",
			"host %s is owned by another namespace; this %s was created before the guard could refuse it (see tenantguard audit)", n, ho.kind.GVK.Kind)
	}
}

// metaItems returns the items of a typed list as client.Objects.
func metaItems(list client.ObjectList) ([]client.Object, error) {
	objs, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		co, ok := o.(client.Object)
		if !ok {
			return nil, fmt.Errorf("list item %T is not an object", o)
		}
		out = append(out, co)
	}
	return out, nil
}
