package hosts

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// Claimer makes host ownership race-free across any number of guard
// replicas. It records ownership as HostClaim objects in the API server:
//
//  1. Exact duplicates: the claim's name is derived from the host, so two
//     creates of the same host collide and the API server (etcd) lets
//     exactly one succeed.
//  2. Overlaps (a wildcard and a name it matches have different claim
//     names): after its create succeeds, the claimer reads, with consistent
//     reads (never an informer cache), every claim that could overlap. If
//     one of another owner exists, the claim created first (lower creation
//     revision) wins and the other withdraws. The later of two creates
//     always sees the earlier one, so two overlapping claims never both
//     survive.
//  3. A claim is pending until someone settles it by recording its creation
//     revision in its status, after a check of step 2 that passed: the
//     claim controller once the claim's object exists, or another request
//     of the same namespace that needs the host. A pending claim may still
//     be withdrawn or rolled back by its creator (a delete conditional on
//     its resource version, which fails once the claim is settled), so
//     nobody else relies on it before settling it.
//
// See docs/design/hosts.md for the argument. Client must read from the API
// server (a client.New client), never from an informer cache.
type Claimer struct {
	Client client.Client
	// PendingWait bounds how long a request keeps trying to claim a host
	// whose claim another request of its namespace is making and undoing
	// (default 5s).
	PendingWait time.Duration
}

// ConflictError says that a host belongs to someone else.
type ConflictError struct {
	Name  Name
	Owner Owner
	// Concurrent is set when the owner claimed at the same moment; the
	// request may be retried.
	Concurrent bool
}

func (e *ConflictError) Error() string {
	who := fmt.Sprintf("namespace %q", e.Owner.Namespace)
	if e.Owner.Namespace == "" {
		who = fmt.Sprintf("tenant %q (reserved)", e.Owner.Tenant)
	} else if e.Owner.Tenant != "" {
		who += fmt.Sprintf(" of tenant %q", e.Owner.Tenant)
	}
	verb := "belongs to"
	if e.Owner.Name != e.Name {
		verb = fmt.Sprintf("overlaps %q, which belongs to", e.Owner.Name)
	}
	msg := fmt.Sprintf("host %q %s %s", e.Name, verb, who)
	if e.Concurrent {
		msg += " (claimed at the same moment; retry if that namespace lets go)"
	}
	return msg
}

// made is a claim one Claim call made: created (pending until settled), or
// a reservation it bound to the owner's namespace.
type made struct {
	claim   *v1alpha1.HostClaim
	created bool
}

// Claim claims every name for owner, all or nothing: if one is refused or
// an error occurs, the claims this call created are deleted again and the
// reservations it bound are unbound. Names the owner already holds are left
// as they are. It returns the names of the claims it created or bound.
//
// A new name costs two round trips: the create, then the consistent reads
// of the claims that may overlap it (a GET of each wildcard claim above
// it, and for a wildcard one LIST of the claims below it), issued
// together. Creates go one by one in a fixed order, so that two requests
// for the same names cannot each take a part; the checks of several names
// run side by side. The claims are left pending (see Claimer): settling
// them is a write the request does not wait for.
func (c *Claimer) Claim(ctx context.Context, names []Name, owner Owner) ([]string, error) {
	sorted := append([]Name(nil), names...)
	sort.Slice(sorted, func(i, j int) bool { return ClaimName(sorted[i]) < ClaimName(sorted[j]) })
	var done []made
	fail := func(err error) ([]string, error) {
		c.rollback(ctx, done, owner)
		return nil, err
	}
	for _, n := range sorted {
		m, err := c.claimOne(ctx, n, owner)
		if err != nil {
			return fail(err)
		}
		if m == nil {
			continue // already the owner's, and settled
		}
		done = append(done, *m)
	}
	if err := each(done, func(m *made) error { return Verify(ctx, c.Client, m.claim) }); err != nil {
		return fail(err)
	}
	out := make([]string, len(done))
	for i, m := range done {
		out[i] = m.claim.Name
	}
	return out, nil
}

// parallelChecks bounds the checks one request runs at once.
const parallelChecks = 8

// each runs f for every element, parallelChecks at a time, and returns
// the error of the first element (in order) that failed.
func each(ms []made, f func(*made) error) error {
	errs := make([]error, len(ms))
	sem := make(chan struct{}, parallelChecks)
	var wg sync.WaitGroup
	for i := range ms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(&ms[i])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// claimOne creates the claim of n, binds a reservation of the owner's
// tenant for exactly n, or accepts a settled claim of the owner. It returns
// nil when there was nothing to make.
func (c *Claimer) claimOne(ctx context.Context, n Name, owner Owner) (*made, error) {
	wait := c.PendingWait
	if wait == 0 {
		wait = 5 * time.Second
	}
	deadline := time.Now().Add(wait)
	for attempt := 0; ; attempt++ {
		hc := NewClaim(n, owner)
		err := c.Client.Create(ctx, hc)
		if err == nil {
			return &made{claim: hc, created: true}, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("claim host %q: %w", n, err)
		}
		existing := &v1alpha1.HostClaim{}
		if err := c.Client.Get(ctx, client.ObjectKey{Name: hc.Name}, existing); err != nil {
			if apierrors.IsNotFound(err) {
				continue // released between our create and get
			}
			return nil, fmt.Errorf("read claim of host %q: %w", n, err)
		}
		theirs := OwnerOf(existing)
		switch {
		case theirs.Namespace != "" && theirs.Namespace == owner.Namespace:
			if owner.Object != nil && theirs.Object != nil && *owner.Object != *theirs.Object {
				return nil, &ConflictError{Name: n, Owner: theirs}
			}
			if !theirs.Pending {
				return nil, nil
			}
			// Another request of this namespace made the claim and may yet
			// withdraw it. Check it as its creator does, and settle it: from
			// then on the creator cannot delete it. If the creator deletes it
			// first, the settle fails and the host is claimed again.
			if err := Verify(ctx, c.Client, existing); err != nil {
				return nil, err
			}
			err := StampCreateRevision(ctx, c.Client, existing)
			if err == nil {
				return nil, nil
			}
			if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("settle claim of host %q: %w", n, err)
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("host %q is being claimed by another request of namespace %q; retry", n, owner.Namespace)
			}
		case theirs.Namespace == "" && theirs.Tenant != "" && theirs.Tenant == owner.Tenant:
			// A reservation of owner's tenant for exactly this name: bind it
			// to owner's namespace. Record its creation revision first, so the
			// spec update does not make it look newer than it is.
			if err := StampCreateRevision(ctx, c.Client, existing); err != nil {
				if apierrors.IsConflict(err) && attempt < 5 {
					continue
				}
				return nil, fmt.Errorf("bind reservation of host %q: %w", n, err)
			}
			existing.Spec.Namespace = owner.Namespace
			existing.Spec.Object = owner.Object
			if err := c.Client.Update(ctx, existing); err != nil {
				if apierrors.IsConflict(err) && attempt < 5 {
					continue
				}
				return nil, fmt.Errorf("bind reservation of host %q: %w", n, err)
			}
			return &made{claim: existing}, nil
		default:
			return nil, &ConflictError{Name: n, Owner: theirs}
		}
	}
}

// Verify checks a claim as its creator does after the create: it returns
// a ConflictError if an older overlapping claim of another owner exists.
// The reads are consistent, so r must read from the API server.
func Verify(ctx context.Context, r client.Reader, mine *v1alpha1.HostClaim) error {
	owner := OwnerOf(mine)
	n := owner.Name
	myRev := CreateRevision(mine)
	others, err := overlapping(ctx, r, n)
	if err != nil {
		return err
	}
	for i := range others {
		theirs := &others[i]
		if theirs.Name == mine.Name {
			continue
		}
		o := OwnerOf(theirs)
		if !Overlaps(n, o.Name) || !Conflicts(o, owner) {
			continue
		}
		older, err := resourceversion.CompareResourceVersion(CreateRevision(theirs), myRev)
		if err != nil {
			return fmt.Errorf("order claims %s and %s: %w", theirs.Name, mine.Name, err)
		}
		if older < 0 {
			return &ConflictError{Name: n, Owner: o, Concurrent: o.Pending}
		}
		// Theirs is newer: its claimer sees mine and withdraws.
	}
	return nil
}

// Conflicts reports whether a claim of o stands in the way of owner on an
// overlapping name. Claims of the owner's namespace do not, unless both
// name different owner objects (Object mode). A reservation not yet bound
// does, whatever its tenant: it is bound by using exactly its name.
func Conflicts(o, owner Owner) bool {
	if o.Namespace == "" || o.Namespace != owner.Namespace {
		return true
	}
	return owner.Object != nil && o.Object != nil && *owner.Object != *o.Object
}

// overlapping reads every claim that may overlap n, with consistent
// reads issued together: a GET of each wildcard claim above n, and for a
// wildcard a LIST of the claims below it by label. A GET or LIST without
// resourceVersion is answered from etcd, or from the watch cache only once
// it has caught up with etcd's current revision.
func overlapping(ctx context.Context, r client.Reader, n Name) ([]v1alpha1.HostClaim, error) {
	names := AboveClaimNames(n)
	got := make([]v1alpha1.HostClaim, len(names))
	found := make([]bool, len(names))
	errs := make([]error, len(names)+1)
	var below v1alpha1.HostClaimList
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.Get(ctx, client.ObjectKey{Name: name}, &got[i])
			found[i] = err == nil
			if !apierrors.IsNotFound(err) {
				errs[i] = err
			}
		}()
	}
	if n.Wildcard() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, value := BelowSelector(n.Host)
			errs[len(names)] = r.List(ctx, &below, client.MatchingLabels{key: value})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("read claims overlapping %s: %w", n, err)
	}
	out := below.Items
	for i := range got {
		if found[i] {
			out = append(out, got[i])
		}
	}
	return out, nil
}

// rollback undoes what one Claim call made: it deletes the claims it
// created while they are still pending, and unbinds the reservations it
// bound. It goes on even if the request's context is done; what it cannot
// undo (an error from the API server) is an unused claim, which the
// controller releases after the grace period.
func (c *Claimer) rollback(ctx context.Context, done []made, owner Owner) {
	ctx = context.WithoutCancel(ctx)
	for i := len(done) - 1; i >= 0; i-- {
		hc := done[i].claim
		for attempt := 0; attempt < 5; attempt++ {
			var err error
			if done[i].created {
				uid, rv := hc.UID, hc.ResourceVersion
				err = c.Client.Delete(ctx, hc, client.Preconditions{UID: &uid, ResourceVersion: &rv})
			} else {
				hc.Spec.Namespace, hc.Spec.Object = "", nil
				err = c.Client.Update(ctx, hc)
			}
			if !apierrors.IsConflict(err) {
				break
			}
			fresh := &v1alpha1.HostClaim{}
			if err := c.Client.Get(ctx, client.ObjectKey{Name: hc.Name}, fresh); err != nil || fresh.UID != hc.UID {
				break
			}
			if done[i].created && fresh.Status.CreateRevision != "" || !done[i].created && fresh.Spec.Namespace != owner.Namespace {
				break // no longer ours to undo
			}
			hc = fresh
		}
	}
}

// NewClaim returns the HostClaim that records owner's ownership of n.
func NewClaim(n Name, owner Owner) *v1alpha1.HostClaim {
	return &v1alpha1.HostClaim{
		ObjectMeta: metav1.ObjectMeta{Name: ClaimName(n), Labels: ClaimLabels(n)},
		Spec: v1alpha1.HostClaimSpec{
			Host:      n.String(),
			Match:     n.Match,
			Namespace: owner.Namespace,
			Tenant:    owner.Tenant,
			Object:    owner.Object,
			Reserved:  owner.Reserved,
		},
	}
}

// OwnerOf reads the owner recorded in a claim. A claim whose host does not
// parse (edited by hand) is reported under its raw host.
func OwnerOf(hc *v1alpha1.HostClaim) Owner {
	n, err := Parse(hc.Spec.Host, hc.Spec.Match)
	if err != nil || n.Match != hc.Spec.Match {
		n = Name{Host: hc.Spec.Host, Match: hc.Spec.Match}
	}
	return Owner{Name: n, Namespace: hc.Spec.Namespace, Tenant: hc.Spec.Tenant, Object: hc.Spec.Object,
		Reserved: hc.Spec.Reserved, Pending: Pending(hc)}
}

// Pending reports whether a claim's creator has not settled it yet (see
// Claimer). Reservations are never pending.
func Pending(hc *v1alpha1.HostClaim) bool {
	return hc.Status.CreateRevision == "" && !hc.Spec.Reserved
}

// CreateRevision is the resource version at which the claim was created:
// recorded in its status once anything updated it, else its resource
// version (which is the creation revision until the first update). Compare
// two with resourceversion.CompareResourceVersion.
func CreateRevision(hc *v1alpha1.HostClaim) string {
	if hc.Status.CreateRevision != "" {
		return hc.Status.CreateRevision
	}
	return hc.ResourceVersion
}

// StampCreateRevision records the claim's creation revision in its status
// if it is not there yet. Every update of a claim must do this first: the
// status update is conditional on the resource version read, so it only
// succeeds while that is still the creation revision.
func StampCreateRevision(ctx context.Context, c client.Client, hc *v1alpha1.HostClaim) error {
	if hc.Status.CreateRevision != "" {
		return nil
	}
	hc.Status.CreateRevision = hc.ResourceVersion
	if err := c.Status().Update(ctx, hc); err != nil {
		hc.Status.CreateRevision = ""
		return err
	}
	return nil
}

// IsConflict reports whether err is a ConflictError.
func IsConflict(err error) bool {
	var c *ConflictError
	return errors.As(err, &c)
}
