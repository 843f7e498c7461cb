package tenants

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/registry/authz"
)

// Cluster watches Namespaces (metadata only) and, unless told not to,
// Tenants, and answers from its informer cache.
type Cluster struct {
	cache        cache.Cache
	watchTenants bool

	dirty atomic.Bool
	mu    sync.Mutex
	rules atomic.Pointer[authz.Rules]
	// OnRules, if set, is called with each newly compiled rule set (to log
	// its problems).
	OnRules func(*authz.Rules)
}

// NewCluster prepares the informers. With watchTenants false only
// Namespaces are watched (the Tenants come from a file).
func NewCluster(cfg *rest.Config, watchTenants bool) (*Cluster, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("informer cache: %w", err)
	}
	cl := &Cluster{cache: c, watchTenants: watchTenants}
	cl.dirty.Store(true)
	return cl, nil
}

func namespaceMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return m
}

// Start runs the informers until ctx ends; it returns once they have
// synced, or with an error.
func (c *Cluster) Start(ctx context.Context) error {
	if _, err := c.cache.GetInformer(ctx, namespaceMeta()); err != nil {
		return fmt.Errorf("watch namespaces: %w", err)
	}
	if c.watchTenants {
		inf, err := c.cache.GetInformer(ctx, &v1alpha1.Tenant{})
		if err != nil {
			return fmt.Errorf("watch tenants (is the Tenant CRD installed?): %w", err)
		}
		mark := func(any) { c.dirty.Store(true) }
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: mark, DeleteFunc: mark, UpdateFunc: func(_, n any) { mark(n) },
		}); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- c.cache.Start(ctx) }()
	if !c.cache.WaitForCacheSync(ctx) {
		select {
		case err := <-errc:
			return fmt.Errorf("informer cache: %w", err)
		default:
			return fmt.Errorf("informer cache did not sync: %w", ctx.Err())
		}
	}
	return nil
}

// Rules returns the compiled rules of the Tenants in the cache, compiling
// them again after any Tenant changed.
func (c *Cluster) Rules() *authz.Rules {
	if !c.dirty.Load() {
		if r := c.rules.Load(); r != nil {
			return r
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirty.Swap(false) || c.rules.Load() == nil {
		var list v1alpha1.TenantList
		if err := c.cache.List(context.Background(), &list); err != nil {
			// Keep the previous rules and try again next time; with none yet,
			// nothing is allowed.
			c.dirty.Store(true)
			if r := c.rules.Load(); r != nil {
				return r
			}
			return authz.Compile(nil)
		}
		r := authz.Compile(list.Items)
		c.rules.Store(r)
		if c.OnRules != nil {
			c.OnRules(r)
		}
	}
	return c.rules.Load()
}

// TenantOf returns the tenant of a namespace: its tenantguard.dev/tenant
// label, "" when it has none or does not exist.
func (c *Cluster) TenantOf(ctx context.Context, namespace string) (string, error) {
	ns := namespaceMeta()
	if err := c.cache.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		return "", err
	}
	return ns.Labels[v1alpha1.TenantLabel], nil
}
