package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/policy"
)

// checkInvariants checks host ownership across the whole cluster:
//
//  1. every name an Ingress uses is claimed by the Ingress's namespace;
//  2. no name, and no overlapping pair of names, is served from two
//     namespaces;
//  3. every claim is used in its namespace, or is gone once the grace
//     period has passed.
//
// 2 must hold at once. 1 and 3 may need the controllers a moment (the
// adopter claims objects admitted while no replica answered; the release
// controller removes unused claims after the grace period), so they are
// waited for, within a bound.
func checkInvariants(t *testing.T) {
	t.Helper()
	if err := servedFromOneNamespace(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2*gracePeriod + 2*adoptInterval + time.Minute)
	for {
		err := claimsMatchUses(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host claims do not match the objects: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// uses returns every Ingress's names, by namespace and object.
func uses(ctx context.Context) ([]hosts.Use, error) {
	list := &networkingv1.IngressList{}
	if err := admin.List(ctx, list); err != nil {
		return nil, err
	}
	engine := policy.NewEngine(cfg)
	var out []hosts.Use
	for i := range list.Items {
		ing := &list.Items[i]
		if ing.DeletionTimestamp != nil {
			continue
		}
		us, _ := engine.HostUses(ing, ing.Namespace)
		for j := range us {
			us[j].Created = ing.CreationTimestamp.Time
		}
		out = append(out, us...)
	}
	return out, nil
}

func servedFromOneNamespace(ctx context.Context) error {
	all, err := uses(ctx)
	if err != nil {
		return err
	}
	ix := hosts.NewIndex()
	for _, u := range all {
		ix.SetUses(hosts.ObjectKey{Namespace: u.Namespace, Group: u.Object.Group, Kind: u.Object.Kind, Name: u.Object.Name + "/" + u.Name.String()}, []hosts.Use{u})
	}
	var bad []string
	for _, u := range all {
		for _, o := range ix.Overlapping(u.Name, 0, func(o hosts.Owner) bool { return o.Namespace != u.Namespace }) {
			bad = append(bad, fmt.Sprintf("%s in %s and %s in %s", u.Name, u.Namespace, o.Name, o.Namespace))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("served from two namespaces: %s", strings.Join(bad, "; "))
	}
	return nil
}

func claimsMatchUses(ctx context.Context) error {
	all, err := uses(ctx)
	if err != nil {
		return err
	}
	claims := &v1alpha1.HostClaimList{}
	if err := admin.List(ctx, claims); err != nil {
		return err
	}
	byName := map[string]*v1alpha1.HostClaim{}
	for i := range claims.Items {
		byName[claims.Items[i].Name] = &claims.Items[i]
	}
	used := map[string]bool{}
	var problems []string
	for _, u := range all {
		name := hosts.ClaimName(u.Name)
		used[name+"@"+u.Namespace] = true
		hc := byName[name]
		switch {
		case hc == nil:
			problems = append(problems, fmt.Sprintf("%s (%s/%s) has no claim", u.Name, u.Namespace, u.Object.Name))
		case hc.Spec.Namespace != u.Namespace:
			problems = append(problems, fmt.Sprintf("%s (%s/%s) is claimed by namespace %q", u.Name, u.Namespace, u.Object.Name, hc.Spec.Namespace))
		}
	}
	for _, hc := range claims.Items {
		if hc.Spec.Reserved || used[hc.Name+"@"+hc.Spec.Namespace] {
			continue
		}
		// Unused: the controller marks it and deletes it a grace period
		// later. A claim that stays past that (with slack for the
		// controller's pace) is a leak.
		const slack = 10 * time.Second
		old := time.Since(hc.CreationTimestamp.Time) > gracePeriod+slack
		overdue := hc.Status.UnusedSince == nil || time.Since(hc.Status.UnusedSince.Time) > gracePeriod+slack
		if old && overdue {
			problems = append(problems, fmt.Sprintf("claim %s of %q is unused past the grace period", hc.Name, hc.Spec.Namespace))
		}
	}
	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("and %d more", len(problems)-10))
		}
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}
