package hosts

import (
	"context"
	"errors"
	"fmt"
	"sort"

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
//     names): after its create succeeds, the claimer reads, from the API
//     server and not from a cache, every claim that could overlap. If one
//     from another owner exists, the claim created first (lower creation
//     revision) wins and the other withdraws. The later of two creates
//     always sees the earlier one, so two overlapping claims never both
//     survive. See docs/design/hosts.md for the argument.
//
// Client must read from the API server (a client.New client), never from an
// informer cache: a stale read would break step 2.
type Claimer struct {
	Client client.Client
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

// Claim claims every name for owner, all or nothing: if one is refused or
// an error occurs, the claims this call created are deleted again. Names
// the owner already holds are left as they are. It returns the names of
// the claims it created.
func (c *Claimer) Claim(ctx context.Context, names []Name, owner Owner) ([]string, error) {
	sorted := append([]Name(nil), names...)
	sort.Slice(sorted, func(i, j int) bool { return ClaimName(sorted[i]) < ClaimName(sorted[j]) })
	var created []*v1alpha1.HostClaim
	for _, n := range sorted {
		hc, err := c.claimOne(ctx, n, owner)
		if err == nil && hc != nil {
			created = append(created, hc)
			err = c.verify(ctx, n, hc, owner)
		}
		if err != nil {
			c.rollback(ctx, created)
			return nil, err
		}
	}
	out := make([]string, len(created))
	for i, hc := range created {
		out[i] = hc.Name
	}
	return out, nil
}

// claimOne creates the claim of n, or accepts an existing one of the same
// owner (binding a reservation of owner's tenant to owner's namespace). It
// returns the claim when it created it.
func (c *Claimer) claimOne(ctx context.Context, n Name, owner Owner) (*v1alpha1.HostClaim, error) {
	hc := NewClaim(n, owner)
	err := c.Client.Create(ctx, hc)
	if err == nil {
		return hc, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("claim host %q: %w", n, err)
	}
	for attempt := 0; attempt < 5; attempt++ {
		existing := &v1alpha1.HostClaim{}
		if err := c.Client.Get(ctx, client.ObjectKey{Name: hc.Name}, existing); err != nil {
			if apierrors.IsNotFound(err) {
				// Released between our create and get: try again.
				if err := c.Client.Create(ctx, NewClaim(n, owner)); err == nil {
					return c.created(ctx, n)
				}
				continue
			}
			return nil, fmt.Errorf("read claim of host %q: %w", n, err)
		}
		theirs := OwnerOf(existing)
		switch {
		case theirs.Namespace == owner.Namespace && owner.Namespace != "":
			if owner.Object != nil && theirs.Object != nil && *owner.Object != *theirs.Object {
				return nil, &ConflictError{Name: n, Owner: theirs}
			}
			return nil, nil
		case theirs.Namespace == "" && theirs.Tenant != "" && theirs.Tenant == owner.Tenant:
			// A reservation for owner's tenant: bind it to owner's namespace.
			// Record the creation revision first, so the spec update does
			// not make the reservation look newer than it is.
			if err := StampCreateRevision(ctx, c.Client, existing); err != nil {
				if apierrors.IsConflict(err) {
					continue
				}
				return nil, err
			}
			existing.Spec.Namespace = owner.Namespace
			existing.Spec.Object = owner.Object
			if err := c.Client.Update(ctx, existing); err != nil {
				if apierrors.IsConflict(err) {
					continue
				}
				return nil, fmt.Errorf("bind reservation of host %q: %w", n, err)
			}
			return nil, nil
		default:
			return nil, &ConflictError{Name: n, Owner: theirs}
		}
	}
	return nil, fmt.Errorf("claim host %q: the claim kept changing; retry", n)
}

func (c *Claimer) created(ctx context.Context, n Name) (*v1alpha1.HostClaim, error) {
	hc := &v1alpha1.HostClaim{}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: ClaimName(n)}, hc); err != nil {
		return nil, fmt.Errorf("read claim of host %q: %w", n, err)
	}
	return hc, nil
}

// verify withdraws mine if an older overlapping claim of another owner
// exists.
func (c *Claimer) verify(ctx context.Context, n Name, mine *v1alpha1.HostClaim, owner Owner) error {
	myRev := CreateRevision(mine)
	others, err := c.overlapping(ctx, n)
	if err != nil {
		return err
	}
	for i := range others {
		theirs := &others[i]
		if theirs.Name == mine.Name {
			continue
		}
		o := OwnerOf(theirs)
		if !Overlaps(n, o.Name) || sameOwner(o, owner) {
			continue
		}
		older, err := resourceversion.CompareResourceVersion(CreateRevision(theirs), myRev)
		if err != nil {
			return fmt.Errorf("order claims %s and %s: %w", theirs.Name, mine.Name, err)
		}
		if older < 0 {
			// A claim the controller has not looked at yet is most likely
			// being made right now by another request.
			fresh := theirs.Status.CreateRevision == "" && len(theirs.Status.Objects) == 0
			return &ConflictError{Name: n, Owner: o, Concurrent: fresh}
		}
		// Theirs is newer: its claimer sees mine and withdraws.
	}
	return nil
}

func sameOwner(a, b Owner) bool {
	if a.Namespace != "" && b.Namespace != "" {
		return a.Namespace == b.Namespace
	}
	return a.Tenant != "" && a.Tenant == b.Tenant
}

// overlapping reads every claim that may overlap n: by name for the
// wildcards above it, and by label for the claims below a wildcard. The
// reads are not from a cache: a GET or LIST without resourceVersion is a
// consistent (quorum) read.
func (c *Claimer) overlapping(ctx context.Context, n Name) ([]v1alpha1.HostClaim, error) {
	var out []v1alpha1.HostClaim
	for _, name := range CandidateClaimNames(n) {
		hc := v1alpha1.HostClaim{}
		err := c.Client.Get(ctx, client.ObjectKey{Name: name}, &hc)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read claim %s: %w", name, err)
		}
		out = append(out, hc)
	}
	if n.Wildcard() {
		key, value := BelowSelector(n.Host)
		list := &v1alpha1.HostClaimList{}
		if err := c.Client.List(ctx, list, client.MatchingLabels{key: value}); err != nil {
			return nil, fmt.Errorf("list claims below %s: %w", n.Host, err)
		}
		out = append(out, list.Items...)
	}
	return out, nil
}

// rollback deletes the claims this call created; the UID precondition
// makes sure a claim someone else made since is never deleted.
func (c *Claimer) rollback(ctx context.Context, created []*v1alpha1.HostClaim) {
	// Roll back even if the request's context is done.
	ctx = context.WithoutCancel(ctx)
	for _, hc := range created {
		uid := hc.UID
		_ = c.Client.Delete(ctx, hc, client.Preconditions{UID: &uid})
		// A failed delete leaves an unused claim, which the controller
		// releases after the grace period.
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
	return Owner{Name: n, Namespace: hc.Spec.Namespace, Tenant: hc.Spec.Tenant, Object: hc.Spec.Object, Reserved: hc.Spec.Reserved}
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
