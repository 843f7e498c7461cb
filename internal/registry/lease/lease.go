// Package lease is a gateway.Locker across replicas: a lock is a
// coordination.k8s.io Lease whose creation is the atomic step, as a host
// claim is. The first replica to create the Lease holds the lock; the
// others wait until it is deleted. A Lease left behind by a replica that
// died is taken over once it has not been renewed for its duration, with an
// update that fails if anyone else touched it first.
package lease

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Locker takes locks as Leases in one namespace.
type Locker struct {
	Client kubernetes.Interface
	// Namespace holds the Leases (the gateway's own).
	Namespace string
	// Holder names this replica (its pod name).
	Holder string
	// Duration is how long a Lease counts as held without renewal. A lock
	// is held for one manifest push, so no renewal is done; the duration
	// must be longer than a push takes. Zero means 60 seconds.
	Duration time.Duration
	// Poll is how often a waiter looks again; zero means 50ms.
	Poll time.Duration
	// Log receives a failure to release (the Lease then expires by
	// itself); nil discards.
	Log *slog.Logger
}

// Label marks the gateway's Leases.
const Label = "tenantguard.dev/registry-lock"

// Name is the Lease name for a lock key (repository:tag), a hash since keys
// are not valid object names.
func Name(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "tenantguard-registry-" + hex.EncodeToString(sum[:16])
}

// Lock implements gateway.Locker.
func (l *Locker) Lock(ctx context.Context, key string) (func(), error) {
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	name := Name(key)
	dur := l.Duration
	if dur <= 0 {
		dur = 60 * time.Second
	}
	poll := l.Poll
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	secs := int32(dur / time.Second)
	for {
		now := metav1.NewMicroTime(time.Now())
		want := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: l.Namespace,
				Labels:      map[string]string{Label: "true"},
				Annotations: map[string]string{Label: key}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &l.Holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
		}
		created, err := leases.Create(ctx, want, metav1.CreateOptions{})
		if err == nil {
			return l.unlock(created), nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("lock %s: %w", key, err)
		}
		// Held. Take it over if its holder stopped renewing it.
		cur, err := leases.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue // released meanwhile
		case err != nil:
			return nil, fmt.Errorf("lock %s: %w", key, err)
		}
		if expired(cur, time.Now()) {
			cur.Spec = want.Spec
			if taken, err := leases.Update(ctx, cur, metav1.UpdateOptions{}); err == nil {
				return l.unlock(taken), nil
			}
			// Someone else took it over or released it: look again.
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

func expired(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return now.After(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// unlock deletes the Lease if it is still the one taken (same UID and
// version), never a successor's.
func (l *Locker) unlock(held *coordinationv1.Lease) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		uid, rv := held.UID, held.ResourceVersion
		err := l.Client.CoordinationV1().Leases(l.Namespace).Delete(ctx, held.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && l.Log != nil {
			l.Log.Warn("releasing an immutable-tag lock failed; it expires by itself", "lease", held.Name, "error", err)
		}
	}
}
