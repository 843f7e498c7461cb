package guard

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/controller"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// viewFeeder keeps a policy.Snapshot in step with the cluster through
// informers: tenants, namespaces, host claims and every object that uses
// hosts.
type viewFeeder struct {
	engine        *policy.Engine
	view          *policy.Snapshot
	registrations []toolscache.ResourceEventHandlerRegistration
}

// feedView registers the informers. Kinds the cluster does not serve
// (Gateway API not installed) are passed over, and reported.
func feedView(ctx context.Context, c cache.Cache, hostKinds []controller.HostKind, engine *policy.Engine, view *policy.Snapshot) (*viewFeeder, error) {
	f := &viewFeeder{engine: engine, view: view}
	watch := func(obj client.Object, set func(client.Object), del func(client.Object)) error {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { set(o.(client.Object)) },
			UpdateFunc: func(_, o any) { set(o.(client.Object)) },
			DeleteFunc: func(o any) {
				if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
					o = tomb.Obj
				}
				if obj, ok := o.(client.Object); ok {
					del(obj)
				}
			},
		})
		if err != nil {
			return err
		}
		f.registrations = append(f.registrations, reg)
		return nil
	}

	if err := watch(&v1alpha1.Tenant{}, f.setTenant, func(o client.Object) { view.DeleteTenant(o.GetName()) }); err != nil {
		return nil, fmt.Errorf("watch tenants (is the Tenant CRD installed?): %w", err)
	}
	if err := watch(&corev1.Namespace{}, func(o client.Object) { view.SetNamespace(o.GetName(), o.GetLabels()) },
		func(o client.Object) { view.DeleteNamespace(o.GetName()) }); err != nil {
		return nil, fmt.Errorf("watch namespaces: %w", err)
	}
	if err := watch(&v1alpha1.HostClaim{}, func(o client.Object) { view.Hosts().SetOwner(hosts.OwnerOf(o.(*v1alpha1.HostClaim))) },
		func(o client.Object) { view.Hosts().DeleteOwner(hosts.OwnerOf(o.(*v1alpha1.HostClaim)).Name) }); err != nil {
		return nil, fmt.Errorf("watch host claims (is the HostClaim CRD installed?): %w", err)
	}
	for _, k := range hostKinds {
		gvk := k.GVK
		set := func(o client.Object) {
			uses, _ := engine.HostUses(o, o.GetNamespace())
			for i := range uses {
				uses[i].Created = o.GetCreationTimestamp().Time
			}
			view.Hosts().SetUses(objectKey(gvk, o), uses)
		}
		del := func(o client.Object) { view.Hosts().DeleteUses(objectKey(gvk, o)) }
		if err := watch(k.Object, set, del); err != nil {
			return nil, fmt.Errorf("watch %s: %w", gvk.Kind, err)
		}
	}
	return f, nil
}

func (f *viewFeeder) setTenant(o client.Object) {
	t := o.(*v1alpha1.Tenant)
	compiled, err := policy.CompileTenant(t)
	if err != nil {
		// Admitted before the guard ran, or edited past it: fail closed
		// with an empty spec rather than guard nothing.
		compiled, _ = policy.CompileTenant(&v1alpha1.Tenant{ObjectMeta: t.ObjectMeta})
		compiled.Spec.Namespaces = t.Spec.Namespaces
	}
	f.view.SetTenant(compiled)
}

// synced reports whether every handler has seen the informers' initial
// lists.
func (f *viewFeeder) synced() bool {
	for _, r := range f.registrations {
		if !r.HasSynced() {
			return false
		}
	}
	return true
}

// waitSynced blocks until synced or ctx ends.
func (f *viewFeeder) waitSynced(ctx context.Context) error {
	for !f.synced() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func objectKey(gvk schema.GroupVersionKind, o client.Object) hosts.ObjectKey {
	return hosts.ObjectKey{Namespace: o.GetNamespace(), Group: gvk.Group, Kind: gvk.Kind, Name: o.GetName()}
}
