package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// Refusals counts the guard's refusals per tenant and adds them to each
// Tenant's status.refusals, at most once per Interval per tenant, so that
// a refusal costs no request of its own. Every replica runs one (each
// counts what it refused); an update carries the resourceVersion it read
// and is retried on a conflict, so replicas never overwrite each other or
// the tenant controller, which resets the count when the spec changes.
type Refusals struct {
	// Client writes the status; Reader reads the Tenant from the API server.
	Client client.Client
	Reader client.Reader
	// Interval between flushes (default 10s).
	Interval time.Duration

	mu      sync.Mutex
	pending map[string]int64
}

// Add counts one refusal of a request of tenant.
func (r *Refusals) Add(tenant string) {
	if tenant == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[string]int64{}
	}
	r.pending[tenant]++
}

// NeedLeaderElection is false: every replica flushes its own count.
func (r *Refusals) NeedLeaderElection() bool { return false }

// Start flushes every Interval until ctx ends, then once more.
func (r *Refusals) Start(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = r.Flush(flushCtx) // best effort on the way out
			return nil
		case <-tick.C:
			_ = r.Flush(ctx) // what failed stays pending for the next tick
		}
	}
}

// Flush adds the pending counts to the Tenants' status. Counts it could not
// write stay pending; those of a Tenant that no longer exists are dropped.
func (r *Refusals) Flush(ctx context.Context) error {
	r.mu.Lock()
	pending := r.pending
	r.pending = nil
	r.mu.Unlock()
	var errs []error
	for name, n := range pending {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			t := &v1alpha1.Tenant{}
			if err := r.Reader.Get(ctx, client.ObjectKey{Name: name}, t); err != nil {
				return err
			}
			t.Status.Refusals += n
			if t.Status.RefusalsSince == nil {
				now := metav1.Now()
				t.Status.RefusalsSince = &now
			}
			return r.Client.Status().Update(ctx, t)
		})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("add %d refusals to tenant %q: %w", n, name, err))
			r.mu.Lock()
			if r.pending == nil {
				r.pending = map[string]int64{}
			}
			r.pending[name] += n
			r.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}
